"""The regulator's Settlement and Pools pages in a real headless browser, on a real regulator node process."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from audit_network import AuditNetwork
from money_history import build_money_history

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(scripts/setup.sh installs it when run as root: apt-get install chromium)")


class _Members:
    """The AuditNetwork's members in the shape tests/money_history.py drives (ledgers by name, accounts, clock)."""

    def __init__(self, net: AuditNetwork):
        self.net = net
        self.accounts = {n: k.account for n, k in net.keys.items()}

    def __getitem__(self, name: str):
        return self.net.ledgers[name]

    def now(self) -> int:
        return self.net.now()

    def advance(self, seconds: int) -> None:
        self.net.gateway.w3.provider.make_request("evm_increaseTime", [seconds])
        self.net.gateway.w3.provider.make_request("evm_mine", [])


@pytest.fixture(scope="module")
def net(anvil, artifacts, tmp_path_factory):
    network = AuditNetwork(anvil, artifacts, tmp_path_factory.mktemp("money-browser"))
    network.ids = build_money_history(_Members(network))
    network.wait_indexed()
    yield network
    network.stop()


@pytest.fixture
def page(net):
    from playwright.sync_api import sync_playwright

    from node.audit.web_auth import issue_login_token

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.violations = []  # a blocked inline style or script is a console error; a broken link a failed response
        page.on("console", lambda m: page.violations.append(m.text) if m.type == "error" and "Failed to load" not in m.text
                else None)
        page.on("response", lambda r: page.violations.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
        page.goto(f"{net.nodes['regulator'].url}/web/login?token={issue_login_token(net.nodes['regulator'].home)}")
        page.wait_for_url("**/web/dashboard")
        yield page
        browser.close()


def _rows(page, table: str) -> list[dict]:
    return page.eval_on_selector_all(f"#{table} tbody tr[data-period]", """rows => rows.map(r => ({
        period: +r.dataset.period, state: r.dataset.state, total: r.querySelector('.total') && r.querySelector('.total').textContent}))""")


def test_settlement_page_from_the_nav_filters_by_member_and_downloads_the_rows_shown(net, page):
    page.click("#nav-settlement")
    page.wait_for_url("**/web/settlement")
    assert [(r["period"], r["state"]) for r in _rows(page, "statements-table")] == [(0, "settled"), (1, "paid"), (2, "issued")]
    page.fill("#f-period", "0")
    page.select_option("#f-member", net.address("insurer_b"))
    page.click("#apply")
    page.wait_for_url("**period=0*")
    shown = _rows(page, "statements-table")
    assert [(r["period"], r["state"], r["total"]) for r in shown] == [(0, "settled", "2,100")]
    assert page.eval_on_selector_all("#disputes-table tbody tr[data-party]", "rows => rows.map(r => r.dataset.party)") == \
           [net.address("insurer_b")]
    with page.expect_download() as download:
        page.click("#csv-statements")
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(int(t["period"]), t["state"], int(t["total"])) for t in table] == [(0, "settled", 2100)]
    assert page.violations == []


def test_pools_page_shows_the_mutual_aid_payout_and_losses(net, page):
    page.click("#nav-pools")
    page.wait_for_url("**/web/pools")
    key = "0x" + net.ids["apportionment"]["claim_key"].hex()
    assert page.text_content(f'#aid-table tr[data-claim="{key}"] .payout') == "7,000"
    assert page.text_content(f'#aid-table tr[data-claim="{key}"] .participants') == "7"
    assert len(page.query_selector_all("#losses-table tbody tr[data-loss]")) == 2
    assert page.violations == []
