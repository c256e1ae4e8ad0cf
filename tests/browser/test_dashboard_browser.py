"""The regulator's dashboard and a member's own view in a real headless browser (Debian chromium, Playwright).

A known history on the session's anvil, two real node processes (the regulator's and insurer_a's):
each chart must show exactly the marks that history implies, a click must lead to the filtered table,
the CSV behind a chart must equal the audit API's numbers, and the member's view must show its own
data and nothing of anyone else's. Screenshots land in tests/screenshots/ (git-ignored) for a reviewer.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from audit_network import AuditNetwork
from test_pages_browser import CHROMIUM, FLAGS

from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason

SHOTS = Path(__file__).resolve().parents[1] / "screenshots"
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                "(scripts/setup.sh installs it when run as root: apt-get install chromium)")

# (owner, requester, purpose, dataset, accesses, rows each) -- the history every assertion below derives from.
USES = [("insurer_a", "platform", Purpose.STATISTICS, "claims", 7, 3),
        ("insurer_a", "insurer_b", Purpose.CLAIMS, "claims", 5, 2),
        ("insurer_b", "platform", Purpose.PRICING, "policies", 4, 10),
        ("insurer_b", "insurer_a", Purpose.UNDERWRITING, "policies", 2, 1)]
# (owner that refused, requester, purpose, count)
DENIALS = [("insurer_b", "outsider", Purpose.CLAIMS, 2), ("insurer_a", "platform", Purpose.FRAUD, 1)]


@pytest.fixture(scope="module")
def net(anvil, artifacts, tmp_path_factory):
    network = AuditNetwork(anvil, artifacts, tmp_path_factory.mktemp("dash"), node_names=("regulator", "insurer_a"))
    led = network.ledgers
    network.grants = {}
    for i, (owner, requester, purpose, ds, n, rows) in enumerate(USES):
        if i == 2:  # the second half of the history on the next chain day
            network.gateway.w3.provider.make_request("evm_increaseTime", [86_400])
        gid = led[owner].grant(network.address(requester), dataset_id(ds), purpose, expires_at=network.now() + 30 * 86_400)
        network.grants[(owner, requester)] = gid
        led[owner].record_access_batch([gid] * n, [os.urandom(32) for _ in range(n)], [rows] * n).wait()
    for owner, requester, purpose, n in DENIALS:
        led[owner].record_denial_batch([network.address(requester)] * n, [dataset_id("claims")] * n, [purpose] * n,
                                       [int(DenialReason.NO_GRANT)] * n, [os.urandom(32) for _ in range(n)]).wait()
    led["insurer_a"].anchor_batch(os.urandom(32), 6, os.urandom(32))
    led["insurer_b"].anchor_batch(os.urandom(32), 9, os.urandom(32))
    network.wait_indexed()
    # The denials were logged straight on chain, with no signed request behind them: the regulator's node
    # flags each owner's as one unproven_denial once it has asked. Wait for both, so the page is stable.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = network.client("regulator").request("GET", "/audit/anomalies").json()
        if found["count"] >= 2:
            break
        time.sleep(0.5)
    network.anomalies = found
    yield network
    network.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def _login(net, browser, node: str, landing: str, **context):
    from node.audit.web_auth import issue_login_token

    ctx = browser.new_context(accept_downloads=True, viewport=WIDE, **context)
    page = ctx.new_page()
    page.goto(f"{net.nodes[node].url}/web/login?token={issue_login_token(net.nodes[node].home)}")
    page.wait_for_url(f"**{landing}")
    return ctx, page


@pytest.fixture(scope="module")
def _regulator_session(net, browser):
    ctx, page = _login(net, browser, "regulator", "/web/dashboard")  # one login per module: logins are slow here
    yield page
    ctx.close()


@pytest.fixture(scope="module")
def _member_session(net, browser):
    ctx, page = _login(net, browser, "insurer_a", "/web/me")
    yield page
    ctx.close()


@pytest.fixture
def regulator(net, _regulator_session):
    _regulator_session.set_viewport_size(WIDE)
    _regulator_session.goto(net.nodes["regulator"].url + "/web/")  # the landing page after login
    _regulator_session.wait_for_url("**/web/dashboard")
    return _regulator_session


@pytest.fixture
def member(net, _member_session):
    _member_session.set_viewport_size(WIDE)
    _member_session.goto(net.nodes["insurer_a"].url + "/web/")
    _member_session.wait_for_url("**/web/me")
    return _member_session


def _count(page, selector: str) -> int:
    return page.eval_on_selector_all(selector, "els => els.length")


def _download(page, selector: str) -> str:
    with page.expect_download() as download:
        page.click(selector)
    return Path(download.value.path()).read_text()


def _api(net, path: str, **params):
    r = net.client("regulator").request("GET", path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _window(page) -> dict:
    """since/until/as_of of the page's window, read from its first table link."""
    href = page.get_attribute("#fig-daily .fig-table, #fig-my-daily .fig-table", "href")
    return {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}


def _fits_narrow_screen(page) -> None:
    """Nothing widens the page past a phone's screen: wide tables and charts scroll inside their own box,
    and a chart is never shrunk below 480 px (so its 11 px labels stay readable)."""
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).filter(e =>
        e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-scroll, .chart-box'))
        .map(e => e.tagName + '#' + e.id)""")
    assert wide == [] and page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    boxes = page.eval_on_selector_all(".chart-box", "els => els.map(e => e.getBoundingClientRect().right)")
    charts = page.eval_on_selector_all("svg.chart", "els => els.map(e => e.getBoundingClientRect().width)")
    assert boxes and max(boxes) <= NARROW["width"] and min(charts) >= 479


# ---------------------------------------------------------------------- regulator


def test_dashboard_is_the_landing_page_and_each_chart_has_the_marks_of_the_history(net, regulator):
    page = regulator
    as_of = int(page.text_content("#as-of-block"))
    assert as_of >= net.gateway.block_number() - 1
    # every figure states the block it reflects
    blocks = page.eval_on_selector_all(".figure", "els => els.map(e => +e.dataset.asOfBlock)")
    assert len(blocks) == 7 and all(b >= as_of for b in blocks) and blocks[:6] == [as_of] * 6
    assert _count(page, "#chart-daily circle.point") == 7 * 2  # 7 days, accesses and denials
    purposes_used = {p.name for _, _, p, *_ in USES}
    assert _count(page, "#chart-purposes circle.point") == 7 * len(purposes_used)
    assert set(page.eval_on_selector_all("#chart-purposes g.series", "els => els.map(e => e.dataset.series)")) == purposes_used
    assert _count(page, "#chart-members circle.point") == 7 * len({r for _, r, *_ in USES})
    requesters = {r for _, r, *_ in USES} | {r for _, r, _, _ in DENIALS}
    assert _count(page, "#chart-requesters g.bar") == len(requesters)
    assert _count(page, "#chart-owners g.bar") == len({o for o, *_ in USES} | {o for o, *_ in DENIALS})
    pairs = {(o, r) for o, r, *_ in USES} | {(o, r) for o, r, _, _ in DENIALS}
    assert _count(page, "#chart-flows g.edge") == len(pairs)
    assert _count(page, "#chart-flows g.edge.has-denials") == len(DENIALS)
    assert _count(page, "#chart-flows g.node") == 5 + 1  # the five members and the outsider
    flagged = set(page.eval_on_selector_all("#chart-flows g.node.flagged", "els => els.map(e => e.dataset.label)"))
    assert flagged == {"insurer_a", "insurer_b"}  # each owner's unproven denials
    assert _count(page, "#chart-anomalies circle.mark") == net.anomalies["count"] == 2
    # Daily points carry the API's numbers: the sum over the window is the whole history.
    values = page.eval_on_selector_all("#chart-daily circle.point", "els => els.map(e => [e.dataset.series, +e.dataset.value])")
    assert sum(v for s, v in values if s == "access") == sum(n for *_, n, _ in USES)
    assert sum(v for s, v in values if s == "denial") == sum(n for *_, n in DENIALS)


def test_one_screen_answers_who_used_most_for_what_and_what_was_refused(net, regulator):
    page = regulator
    first = page.query_selector("#top-table tbody tr")
    cells = [c.text_content().strip() for c in first.query_selector_all("td")]
    platform_rows = sum(n * rows for _, r, _, _, n, rows in USES if r == "platform")
    assert cells[0] == "platform" and cells[1] == f"{platform_rows:,}"
    assert "PRICING (40)" in cells[3] and "STATISTICS (21)" in cells[3]
    assert cells[4] == "1 refused (FRAUD)"
    # The answer sits above the fold at 1280x800.
    box = page.query_selector("#top-table").bounding_box()
    assert box["y"] + box["height"] <= WIDE["height"]


def test_clicking_a_flow_edge_opens_the_filtered_table(net, regulator):
    page = regulator
    edge = (f"#chart-flows g.edge[data-source='{net.address('insurer_a')}']"
            f"[data-target='{net.address('platform')}']")
    assert page.get_attribute(edge, "data-uses") == "7" and page.get_attribute(edge, "data-denials") == "1"
    page.click(edge + " text")  # the label sits on the curve's midpoint
    page.wait_for_url("**/web/logs?*")
    rows = page.eval_on_selector_all("#log-table tbody tr[data-block]", "rows => rows.map(r => "
                                     "Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))")
    assert len(rows) == 7 + 1
    assert {(r[3], r[4]) for r in rows} == {("platform", "insurer_a")}
    assert sorted(r[2] for r in rows).count("denial") == 1


def test_clicking_a_daily_point_opens_that_days_table(net, regulator):
    page = regulator
    point = page.query_selector("#chart-daily circle.point[data-series='access']:not([data-value='0'])")
    expected = int(point.get_attribute("data-value"))
    point.click()
    page.wait_for_url("**/web/logs?*outcome=access*")
    assert _count(page, "#log-table tbody tr[data-block]") == expected


def test_chart_csvs_equal_the_audit_api(net, regulator):
    page = regulator
    w = _window(page)
    daily = list(csv.DictReader(io.StringIO(_download(page, "#fig-daily .fig-csv"))))
    api = _api(net, "/audit/aggregates", group_by="day,outcome", since=w["since"], until=w["until"])
    want = {(g["day"], g["outcome"]): (g["events"], g["rows"]) for g in api["groups"]}
    got = {(r["day"], r["outcome"]): (int(r["events"]), int(r["rows"])) for r in daily if int(r["events"])}
    assert got == want and len(daily) == 7 * 2

    flows = list(csv.DictReader(io.StringIO(_download(page, "#fig-flows .fig-csv"))))
    api = _api(net, "/audit/aggregates", group_by="owner,requester,outcome", since=w["since"], until=w["until"])
    want = {}
    for g in api["groups"]:
        e = want.setdefault((g["owner"], g["requester"]), {"access": 0, "denial": 0, "rows": 0})
        e[g["outcome"]] += g["events"]
        e["rows"] += g["rows"]
    assert {(r["owner"], r["requester"]): {"access": int(r["accesses"]), "denial": int(r["denials"]), "rows": int(r["rows"])}
            for r in flows} == want

    events = _download(page, "#fig-requesters .fig-events-csv")
    export = net.client("regulator").request("GET", "/audit/logs/export", params={**w, "format": "csv"})
    assert export.status_code == 200 and events == export.text
    assert len(list(csv.DictReader(io.StringIO(events)))) == sum(n for *_, n, _ in USES) + sum(n for *_, n in DENIALS)


def test_dashboard_renders_offline_without_javascript(net, browser):
    """Charts are SVG from the node: no script needed, no request leaves the node."""
    ctx = browser.new_context(java_script_enabled=False, viewport=WIDE)
    page = ctx.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    from node.audit.web_auth import issue_login_token

    base = net.nodes["regulator"].url
    page.goto(f"{base}/web/login?token={issue_login_token(net.nodes['regulator'].home)}")
    page.click("#login-button")  # without scripts the operator presses the button
    page.wait_for_url("**/web/dashboard")
    assert _count(page, "#chart-flows g.edge") == 5 and _count(page, "#chart-daily circle.point") == 14
    assert seen and all(u.startswith(base) for u in seen), seen
    ctx.close()


def test_screenshots_of_the_dashboard_at_desktop_and_phone_width(net, regulator):
    SHOTS.mkdir(exist_ok=True)
    page = regulator
    page.screenshot(path=str(SHOTS / "dashboard-1280x800.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.reload()
    # Readable on a phone: nothing makes the page wider than the screen, and charts shrink to fit.
    _fits_narrow_screen(page)
    page.screenshot(path=str(SHOTS / "dashboard-390.png"), full_page=True)
    assert (SHOTS / "dashboard-1280x800.png").stat().st_size > 10_000


# ---------------------------------------------------------------------- a member's own view


def test_member_sees_who_used_its_data_for_what_under_which_grant(net, member):
    page = member
    assert page.get_attribute("#me", "data-address") == net.address("insurer_a")
    rows = page.eval_on_selector_all("#uses-table tbody tr[data-requester]", "rows => rows.map(r => "
                                     "Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))")
    g = net.grants
    assert sorted(rows) == sorted([
        ["platform", "STATISTICS", str(g[("insurer_a", "platform")]), "access", "7", "21"],
        ["insurer_b", "CLAIMS", str(g[("insurer_a", "insurer_b")]), "access", "5", "10"],
        ["platform", "FRAUD", "", "denial", "1", "0"]])
    assert _count(page, "#chart-users g.bar") == 2 and _count(page, "#chart-sources g.bar") == 1
    assert _count(page, "#chart-my-daily circle.point") == 14
    given = page.eval_on_selector_all("#grants-given tbody tr[data-grant]", "rs => rs.map(r => +r.dataset.grant)")
    received = page.eval_on_selector_all("#grants-received tbody tr[data-grant]", "rs => rs.map(r => +r.dataset.grant)")
    assert sorted(given) == sorted([g[("insurer_a", "platform")], g[("insurer_a", "insurer_b")]])
    assert received == [g[("insurer_b", "insurer_a")]]
    assert "active" in page.text_content("#grants-given") and "UTC" in page.text_content("#grants thead")
    assert _count(page, "#batches-table tbody tr[data-block]") == 1  # its own batch, not insurer_b's
    assert "6" in page.text_content("#batches-table tbody")


def test_member_chart_click_and_csv(net, member):
    page = member
    page.click(f"#chart-users g.bar[data-key='{net.address('platform')}']")
    page.wait_for_url("**/web/me/logs?*")
    rows = page.eval_on_selector_all("#log-table tbody tr[data-block]", "rs => rs.map(r => [r.dataset.owner, r.dataset.requester])")
    assert len(rows) == 8 and set(map(tuple, rows)) == {(net.address("insurer_a"), net.address("platform"))}
    page.go_back()
    users = list(csv.DictReader(io.StringIO(_download(page, "#fig-users .fig-csv"))))
    w = _window(page)
    api = _api(net, "/audit/aggregates", group_by="requester,outcome", owner=net.address("insurer_a"),
               since=w["since"], until=w["until"])
    want = {}
    for grp in api["groups"]:
        e = want.setdefault(grp["requester"], {"access": 0, "denial": 0, "rows": 0})
        e[grp["outcome"]] += grp["events"]
        e["rows"] += grp["rows"]
    assert {r["requester"]: {"access": int(r["accesses"]), "denial": int(r["denials"]), "rows": int(r["rows"])}
            for r in users} == want


def test_member_view_shows_nothing_of_other_members(net, member):
    """Asking the member pages for other members' rows gets this member's rows, nothing else."""
    page = member
    base = net.nodes["insurer_a"].url
    me, b, p = net.address("insurer_a"), net.address("insurer_b"), net.address("platform")
    page.goto(f"{base}/web/me/logs?side=owner&owner={b}&requester={p}")
    owners = page.eval_on_selector_all("#log-table tbody tr[data-block]", "rs => rs.map(r => r.dataset.owner)")
    assert owners and set(owners) == {me}  # platform's uses of insurer_a's data, not of insurer_b's
    page.goto(f"{base}/web/me/logs?side=requester&requester={p}")
    pairs = page.eval_on_selector_all("#log-table tbody tr[data-block]", "rs => rs.map(r => [r.dataset.owner, r.dataset.requester])")
    assert set(map(tuple, pairs)) == {(b, me)}
    csv_text = page.request.get(f"{base}/web/me/logs.csv?side=owner&owner={b}").text()
    assert {r["owner"] for r in csv.DictReader(io.StringIO(csv_text))} == {me}
    page.goto(f"{base}/web/me")
    text = page.text_content("main")
    assert "PRICING" not in text  # insurer_b -> platform, which insurer_a is no party to
    assert page.request.get(f"{base}/web/me/logs?side=everyone").status == 422  # refused with the reason, not a 500
    page.goto(f"{base}/web/me/logs?side=everyone")
    assert "not owner or requester" in page.text_content("#filter-error")


def test_pages_refuse_who_may_not_see_them(net, browser, member, regulator):
    base_a, base_r = net.nodes["insurer_a"].url, net.nodes["regulator"].url
    anonymous = browser.new_context()
    for url in (f"{base_a}/web/me", f"{base_a}/web/me/logs", f"{base_a}/web/me/logs.csv", f"{base_a}/web/me/users.csv",
                f"{base_r}/web/dashboard", f"{base_r}/web/dashboard/flows.csv"):
        r = anonymous.request.get(url)
        assert r.status == 403 and "Log in" in r.text(), url
    anonymous.close()
    # insurer_a's operator is not a regulator: no dashboard, on its own node either.
    r = member.request.get(f"{base_a}/web/dashboard")
    assert r.status == 403 and "regulator" in r.text()
    r = regulator.request.get(f"{base_r}/web/me")  # the regulator holds no data of its own to show
    assert r.status == 403
    assert regulator.request.get(f"{base_r}/web/dashboard?days=0").status == 422
    assert regulator.request.get(f"{base_r}/web/dashboard?days=x").status == 422
    assert regulator.request.get(f"{base_r}/web/dashboard?as_of=999999999").status == 409
    assert regulator.request.get(f"{base_r}/web/dashboard/nothing.csv").status == 404


def test_screenshots_of_the_member_view(net, member):
    SHOTS.mkdir(exist_ok=True)
    member.screenshot(path=str(SHOTS / "member-1280x800.png"), full_page=True)
    member.set_viewport_size(NARROW)
    member.reload()
    _fits_narrow_screen(member)
    member.screenshot(path=str(SHOTS / "member-390.png"), full_page=True)
