"""The regulator's and auditor's pages in a real headless browser (Debian's chromium driven by Playwright)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path

import pytest
from audit_network import AuditNetwork

from node.chain.deployment import Purpose, Status
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCUMENT = b"%PDF-1.7 hospital invoice 2026-0042, total 980.00\n" * 10

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(scripts/setup.sh installs it when run as root: apt-get install chromium)")


@pytest.fixture(scope="module")
def net(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("pages")
    network = AuditNetwork(anvil, artifacts, base)
    led, claims = network.ledgers, dataset_id("claims")
    for owner, grantee, n in (("insurer_a", "platform", 7), ("insurer_a", "insurer_b", 5), ("insurer_b", "platform", 4)):
        gid = led[owner].grant(network.address(grantee), claims, Purpose.STATISTICS, expires_at=network.now() + 3600)
        led[owner].record_access_batch([gid] * n, [os.urandom(32) for _ in range(n)], [3] * n).wait()
    led["insurer_b"].record_denial_batch([network.address("outsider")] * 2, [claims] * 2, [Purpose.CLAIMS] * 2,
                                         [int(DenialReason.NO_GRANT)] * 2, [os.urandom(32) for _ in range(2)]).wait()
    network.proof = _anchored_proof(network, base)
    network.wait_indexed()
    yield network
    network.stop()


def _anchored_proof(network, base: Path) -> Path:
    """insurer_a anchors a batch holding DOCUMENT with the evidence service; returns the proof file."""
    from node.evidence.service import EvidenceService, EvidenceSettings
    from node.evidence.store import create_store_engine

    service = EvidenceService(create_store_engine(base / "evidence.db"), network.ledgers["insurer_a"], EvidenceSettings())
    items = [(hashlib.sha256(b"photo %d" % n).digest(), f"CLM-{n}", "loss-photo") for n in range(5)]
    items.append((hashlib.sha256(DOCUMENT).digest(), "CLM-42", "invoice"))
    service.accept_many(items)
    service.close_open_batch()
    service.run_once()
    path = base / "proof.json"
    path.write_text(json.dumps(service.proofs("CLM-42")[0]))
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)  # a fresh profile per launch
        yield b
        b.close()


def _login_url(net) -> str:
    """What `consortium audit web-url` prints: a fresh single-use link (same function as the CLI)."""
    from node.audit.web_auth import issue_login_token

    return f"{net.nodes['regulator'].url}/web/login?token={issue_login_token(net.nodes['regulator'].home)}"


@pytest.fixture
def page(net, browser):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(_login_url(net))
    page.wait_for_url("**/web/dashboard")  # the page's script POSTs the token, the session cookie is set
    page.goto(net.nodes["regulator"].url + "/web/logs")
    yield page
    context.close()


def _table_rows(page) -> list[dict]:
    return page.eval_on_selector_all("#log-table tbody tr[data-block]", """rows => rows.map(r => ({
        block: +r.dataset.block, log_index: +r.dataset.logIndex,
        cells: Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim())}))""")


def test_access_log_page_loads_and_a_filter_narrows_the_table(net, page):
    assert page.url.endswith("/web/logs")
    everything = _table_rows(page)
    assert len(everything) == 18  # 16 accesses and 2 denials
    page.select_option("#f-requester", net.address("platform"))
    page.click("#apply")
    page.wait_for_url("**requester=*")
    narrowed = _table_rows(page)
    assert len(narrowed) == 11 and {r["cells"][3] for r in narrowed} == {"platform"}
    api = net.client("regulator").request("GET", "/audit/logs", params={"requester": net.address("platform")}).json()
    assert [(r["block"], r["log_index"]) for r in narrowed] == [(i["block"], i["log_index"]) for i in api["items"]]
    assert int(page.text_content("#as-of-block")) <= api["as_of_block"]


def test_csv_download_matches_the_api_export(net, page):
    page.select_option("#f-owner", net.address("insurer_a"))
    page.click("#apply")
    page.wait_for_url("**owner=*")
    as_of = page.text_content("#as-of-block")
    with page.expect_download() as download:
        page.click("#csv-link")
    downloaded = Path(download.value.path()).read_text()
    api = net.client("regulator").request("GET", "/audit/logs/export", params={
        "owner": net.address("insurer_a"), "format": "csv", "as_of": as_of})
    assert api.status_code == 200 and downloaded == api.text
    assert len(list(csv.DictReader(io.StringIO(downloaded)))) == 12


def test_denials_and_anomalies_pages(net, page):
    base = net.nodes["regulator"].url
    page.goto(base + "/web/denials")
    rows = _table_rows(page)
    assert len(rows) == 2 and {r["cells"][2] for r in rows} == {"denial"} and {r["cells"][8] for r in rows} == {"NO_GRANT"}
    # The 2 denials were logged straight on chain with no signed request behind them: once the
    # regulator's node has asked the owner, they are one unproven_denial anomaly (and no burst).
    deadline = time.monotonic() + 60
    while True:
        page.goto(base + "/web/anomalies")
        if page.text_content("#anomaly-count") != "0" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.text_content("#anomaly-count") == "1" and "unproven_denial" in page.content()


def test_evidence_check_shows_valid_and_invalid(net, page, tmp_path):
    base = net.nodes["regulator"].url
    document = tmp_path / "invoice.pdf"
    document.write_bytes(DOCUMENT)
    page.goto(base + "/web/evidence")
    page.set_input_files("#document", str(document))
    page.set_input_files("#proof", str(net.proof))
    page.click("#check")
    page.wait_for_selector("#verdict")
    assert page.get_attribute("#verdict", "data-valid") == "true"
    assert "insurer_a" in page.text_content("#verdict")

    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(DOCUMENT.replace(b"980.00", b"9800.00"))
    page.set_input_files("#document", str(tampered))
    page.set_input_files("#proof", str(net.proof))
    page.click("#check")
    page.wait_for_selector("#verdict[data-valid=false]")
    assert page.text_content("#verdict-reason") == "tampered_document"


def test_regulator_warns_a_member_from_the_members_page(net, page):
    base = net.nodes["regulator"].url
    page.goto(base + "/web/members")
    row = f"#member-table tr[data-address='{net.address('insurer_b')}']"
    page.fill(f"{row} input[name=reason]", "late access logs")
    page.click(f"{row} button.warn")
    page.wait_for_selector("#action-message")
    assert page.text_content(f"{row} .status") == "WARNED"
    assert net.ledgers["regulator"].member(net.address("insurer_b")).status == Status.WARNED


def test_login_link_works_once_and_leaves_no_token_in_the_address_bar(net, browser):
    url = _login_url(net)
    first = browser.new_context()
    page = first.new_page()
    history = []
    page.on("framenavigated", lambda frame: history.append(frame.url) if frame == page.main_frame else None)
    page.goto(url)
    page.wait_for_url("**/web/dashboard")
    assert "token=" not in page.url and all("token=" not in u for u in history[1:])
    page.click("form.logout button")
    page.wait_for_url("**/web/login")
    # The same link after use (and after logout): refused, in a fresh browser too.
    second = browser.new_context()
    again = second.new_page()
    again.goto(url)
    again.wait_for_selector("#login-message")
    assert "used, expired" in again.text_content("#login-message")
    assert again.evaluate("document.cookie") == ""
    first.close()
    second.close()


def test_members_page_renders_only_known_messages(net, page):
    base = net.nodes["regulator"].url
    page.goto(base + "/web/members?message=<b>Your+account+is+locked,+call+555</b>&error=Send+your+key+to+evil.example"
              "&done=owned&member=0x" + "12" * 20)
    page.wait_for_selector("#member-table")
    body = page.text_content("main")
    # the injected words, not "555" alone: the members' hex addresses on the page contain it by chance
    assert "call 555" not in body and "locked" not in body and "evil.example" not in body and "owned" not in body
    assert page.text_content("#action-error") == "The action was refused."
    assert page.query_selector("#action-message") is None
