"""The regulator's Settlement and Pools pages and a member's money section show exactly the chain's money events.

A real anvil run drives every settlement and pool event (tests/money_history.py); the regulator's index is
filled from it; the pages are rendered by the node's own routers (TestClient, the same login and headers).
Each expectation is read back from the chain (contract views or raw events), never from the index.
"""
from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from money_history import build_money_history

from node.api import member_pages, pages
from node.audit.indexer import AuditIndexer
from node.audit.service import AuditService
from node.audit.web_auth import issue_login_token
from node.settlement.book import SettlementBook
from node.store.db import create_store_engine


class Rows(HTMLParser):
    """The <tr> rows of one table (by id): each row's attributes and the attributes of its spans."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows = table_id, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("id") == self.table_id
        elif self.inside and tag == "tr" and any(k.startswith("data-") for k in attrs):
            self.rows.append({**attrs, "spans": []})
        elif self.inside and tag == "span" and self.rows:
            self.rows[-1]["spans"].append(attrs)

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False


def rows(html: str, table_id: str) -> list[dict]:
    parser = Rows(table_id)
    parser.feed(html)
    assert f'id="{table_id}"' in html, table_id
    return parser.rows


def _app(service: AuditService, engine, routers) -> TestClient:
    app = FastAPI()
    app.state.audit = service
    app.state.ctx = SimpleNamespace(stats=None, engine=engine)
    for r in routers:
        app.include_router(r)
    pages.mount_static(app)
    pages.install_refusal_handler(app)
    return TestClient(app)


def _login(client: TestClient, home) -> TestClient:
    r = client.post("/web/login", data={"token": issue_login_token(home)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


@pytest.fixture(scope="module")
def money(anvil, artifacts, tmp_path_factory):
    from conftest import build_consortium

    from node.chain.gateway import ChainGateway

    c = build_consortium(ChainGateway.connect(anvil.url, artifacts))
    ids = build_money_history(c)
    base = tmp_path_factory.mktemp("money-pages")
    engine = create_store_engine(f"sqlite:///{base / 'audit.db'}")
    AuditIndexer(engine, c.gateway, c.deployment).sync()
    clients = {}
    for name in ("regulator", "insurer_b", "platform"):
        home = base / name
        service = AuditService(engine, c.gateway, c.deployment, c[name], home)
        service.web.ensure_token()
        clients[name] = _login(_app(service, engine, [pages.router, member_pages.router]), home)
    return {"c": c, "ids": ids, "clients": clients, "base": base, "engine": engine}


def _events(c, contract: str, event: str) -> list[dict]:
    return [e["args"] for e in c.gateway.events(contract, event, from_block=c.deployment.deployment_block)]


CONTRACT_STATE = {"issued": "ISSUED", "disputed": "DISPUTED", "confirmed": "CONFIRMED", "paid": "CONFIRMED", "settled": "SETTLED"}


def test_settlement_page_shows_every_statement_with_its_state_lines_and_payments_as_on_chain(money):
    c, aid = money["c"], money["ids"]["agreement"]
    r = money["clients"]["regulator"].get("/web/settlement")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    shown = rows(r.text, "statements-table")
    issued = {(e["agreementId"], e["period"]) for e in _events(c, "Settlement", "StatementIssued")}
    assert {(int(x["data-agreement"]), int(x["data-period"])) for x in shown} == issued == {(aid, 0), (aid, 1), (aid, 2)}
    providers = c["regulator"].get_agreement(aid)["providers"]
    for row in shown:
        period = int(row["data-period"])
        on_chain = c["regulator"].get_statement(aid, period)
        assert CONTRACT_STATE[row["data-state"]] == on_chain["state"]
        lines = [(s["data-provider"], int(s["data-amount"]), s["data-payment"]) for s in row["spans"]]
        assert [(p, a) for p, a, _ in lines] == list(zip(providers, on_chain["amounts"]))
        assert [pay for _, _, pay in lines] == [("none", "recorded", "received")[c["regulator"].payment_state(aid, period, p)]
                                                for p in providers]
    # The history's own facts: period 0 was disputed once and settled on its second revision; period 1 is paid,
    # awaiting a receipt; period 2 waits for confirmations.
    assert [x["data-state"] for x in shown] == ["settled", "paid", "issued"]
    disputes = rows(r.text, "disputes-table")
    assert [(int(d["data-period"]), d["data-party"]) for d in disputes] == \
           [(e["period"], e["party"]) for e in _events(c, "Settlement", "StatementDisputed")] == [(0, c.accounts["insurer_b"].address)]


def test_settlement_page_lists_offers_and_certificates_with_holder_expiry_and_revocation(money):
    c, ids = money["c"], money["ids"]
    html = money["clients"]["regulator"].get("/web/settlement").text
    offers = {int(o["data-offer"]): o["data-state"] for o in rows(html, "offers-table")}
    assert offers == {o: ("open" if c["regulator"].get_offer(o)["open"] else "withdrawn") for o in ids["offers"]}
    assert offers == {ids["offers"][0]: "open", ids["offers"][1]: "withdrawn"}
    shown = rows(html, "certificates-table")
    certs = {int(x["data-certificate"]): x["data-state"] for x in shown}
    issued = _events(c, "DataMarket", "CertificateIssued")
    assert sorted(certs) == sorted(e["certificateId"] for e in issued) == sorted(ids["certificates"])
    for cid, state in certs.items():
        assert (state == "valid") == c["regulator"].certificate_valid(cid)
    assert certs[ids["certificates"][1]] == "revoked"
    # holder, offer and expiry as the chain's events carry them
    assert sorted((int(x["data-certificate"]), x["data-holder"], int(x["data-offer"]), int(x["data-expires"])) for x in shown) == \
           sorted((e["certificateId"], e["holder"], e["offerId"], e["expiresAt"]) for e in issued)


def test_filters_by_member_and_period_and_the_csv_holds_the_rows_shown(money):
    c = money["c"]
    client = money["clients"]["regulator"]
    platform = c.accounts["platform"].address
    html = client.get("/web/settlement", params={"member": platform, "period": 1}).text
    assert [(int(x["data-period"]), x["data-state"]) for x in rows(html, "statements-table")] == [(1, "paid")]
    assert rows(html, "disputes-table") == []  # the only dispute is of period 0
    assert {int(o["data-offer"]) for o in rows(html, "offers-table")} == {money["ids"]["offers"][0]}  # platform's own offer
    outsider = c.accounts["outsider"].address
    assert rows(client.get("/web/settlement", params={"member": outsider}).text, "statements-table") == []

    page = client.get("/web/settlement", params={"member": platform})
    block = page.text.split('id="as-of-block">')[1].split("<")[0]
    r = client.get("/web/settlement/statements.csv", params={"member": platform, "as_of": block})
    assert r.status_code == 200 and r.headers["x-audit-as-of-block"] == block
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [(int(t["period"]), t["state"], int(t["total"])) for t in table] == \
           [(int(x["data-period"]), x["data-state"], sum(int(s["data-amount"]) for s in x["spans"]))
            for x in rows(page.text, "statements-table")]
    assert client.get("/web/pools/losses.csv").status_code == 200


@pytest.mark.parametrize("path, params", [
    ("/web/settlement", {"member": "not-an-address"}), ("/web/settlement", {"period": "-1"}),
    ("/web/pools", {"period": "x"}), ("/web/pools", {"as_of": str(10**12)}), ("/web/settlement/nothing.csv", {}),
    ("/web/pools/offers.csv", {}),
])
def test_bad_filters_are_4xx_pages_never_500(money, path, params):
    r = money["clients"]["regulator"].get(path, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def test_pools_page_shows_losses_shares_contributions_and_mutual_aid_as_on_chain(money):
    c, ids = money["c"], money["ids"]
    html = money["clients"]["regulator"].get("/web/pools").text
    losses = rows(html, "losses-table")
    shared = _events(c, "RiskPool", "LossShared")
    assert sorted(x["data-loss"] for x in losses) == sorted("0x" + bytes(e["lossId"]).hex() for e in shared)
    for row in losses:
        loss_id = bytes.fromhex(row["data-loss"][2:])
        on_chain = c["regulator"].get_loss(loss_id)
        assert int(row["data-period"]) == on_chain["period"]
        for span in row["spans"]:
            amount, state = c["regulator"].loss_share(loss_id, span["data-member"])
            assert int(span["data-amount"]) == amount
            expected = "borne" if span["data-member"] == on_chain["insurer"] else ("none", "owed", "recorded", "confirmed")[state]
            assert span["data-payment"] == expected
        assert sum(int(s["data-amount"]) for s in row["spans"]) == on_chain["shared"]
    contributions = rows(html, "contributions-table")
    assert [(x["data-payer"], x["data-state"]) for x in contributions] == [(c.accounts["insurer_b"].address, "confirmed")]
    aid = rows(html, "aid-table")
    key = ids["apportionment"]["claim_key"]
    on_chain = c["regulator"].get_apportionment(key)
    assert [x["data-claim"] for x in aid] == ["0x" + key.hex()] and aid[0]["data-state"] == "confirmed" == \
           ("none", "anchored", "paid", "confirmed")[on_chain["state"]]
    assert "0x" + on_chain["share_root"].hex() in html and ">7,000<" in html and ">MutualAid<" in html


def test_a_member_sees_what_it_earned_and_owes_per_period_equal_to_its_settlement_book(money):
    c = money["c"]
    me = c.accounts["insurer_b"].address
    r = money["clients"]["insurer_b"].get("/web/me")
    assert r.status_code == 200, r.text[:500]
    shown = rows(r.text, "statements-table")
    book = SettlementBook(c["insurer_b"], from_block=c.deployment.deployment_block).earnings(me)
    assert [(int(x["data-agreement"]), int(x["data-period"]), x["data-role"], int(x["data-amount"]),
             CONTRACT_STATE[x["data-state"]]) for x in shown] == \
           [(s["agreement_id"], s["period"], s["role"], s["amount"], s["state"]) for s in book["statements"]]
    assert [int(x["data-amount"]) for x in shown] == [900, 0, 70]
    # Pools: insurer_b's 30% of the first loss was paid and confirmed; of its own second loss insurer_a owes 350.
    pool_rows = rows(r.text, "pool-money-table")
    first, second = (loss["loss_id"] for loss in money["ids"]["losses"])
    assert {(x["data-loss"], x["data-direction"], int(x["data-amount"])) for x in pool_rows} == {
        ("0x" + first.hex(), "owes", c["regulator"].loss_share(first, me)[0]),
        ("0x" + second.hex(), "owed_to", c["regulator"].loss_share(second, c.accounts["insurer_a"].address)[0])}
    assert 'id="owes-open">0<' in r.text and 'id="due-open">350<' in r.text and 'id="aid-received">7,000<' in r.text


def test_money_pages_are_the_regulators_only(money):
    member = money["clients"]["platform"]
    for path in ("/web/settlement", "/web/pools", "/web/settlement/offers.csv", "/web/pools/aid.csv"):
        r = member.get(path)
        assert r.status_code == 403 and "regulator" in r.text, path
    anonymous = TestClient(member.app)
    assert anonymous.get("/web/settlement").status_code == 403
    nav = money["clients"]["regulator"].get("/web/pools").text
    assert 'id="nav-settlement"' in nav and 'id="nav-pools"' in nav


def test_settlement_events_are_searchable_by_category_like_the_others(money):
    from node.audit.queries import AuditQueries
    from node.chain.events import EventReader

    c = money["c"]
    found = AuditQueries(money["engine"]).search_events(category="settlement", limit=1000).items
    on_chain = [e for e in EventReader(c.gateway).read(c.deployment.deployment_block) if e.contract in ("DataMarket", "Settlement")]
    assert [(i["block"], i["log_index"], i["event"]) for i in reversed(found)] == \
           [(e.block_number, e.log_index, e.event) for e in on_chain]
    assert {"OfferPublished", "CertificateIssued", "StatementIssued", "StatementDisputed", "PaymentReceived",
            "PeriodSettled"} <= {i["event"] for i in found}
