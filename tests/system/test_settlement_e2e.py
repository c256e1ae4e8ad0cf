"""Certificate -> grant -> served -> metered -> settled, across real node processes and the `consortium settle` CLI.

The data owner (insurer_b) runs a node that serves its claims; the buyer (insurer_a) runs its own node.
Every step on chain is taken by the member's own CLI with its own encrypted key; usage is metered
from the access records the owner's node logged, with no transaction per access.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from nodes import ROOT, TEST_PASSPHRASE, deploy_members, start_node

from node.chain.deployment import Role
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.client import NodeClient
from node.settlement.formula import CertificateUsage, DeclaredFigure, Formula, StatementInputs, compute_statement

CLAIMS_CSV = """claim_id,person_id,policy_id,amount,claim_date,status,age_band,region
c1,p1,pol1,1200.50,2026-01-05,paid,30-39,east
c2,p2,pol2,300.00,2026-02-11,open,40-49,west
c3,p3,pol3,90.25,2026-03-20,paid,30-39,east
"""
DAY = 86_400
QUERIES = 4


def cli(*args):
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE}, timeout=180)


def settle(config, *args) -> dict:
    done = cli("settle", *args, "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def market(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("settle")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    roles = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "regulator": Role.REGULATOR}
    keys, deployment, dep_path = deploy_members(gateway, base, roles)
    nodes = {}
    for name in ("insurer_b", "insurer_a"):
        home = base / name
        home.mkdir()
        nodes[name] = start_node(home, name, base / "keys" / name, anvil.url, dep_path, log_flush_seconds=0.1,
                                 release_min_cohort=1)
    (base / "claims.csv").write_text(CLAIMS_CSV)
    imported = cli("data", "import", "claims", str(base / "claims.csv"), "--config", str(nodes["insurer_b"].config), "--json")
    assert imported.returncode == 0, imported.stderr
    try:
        yield {"gateway": gateway, "keys": keys, "nodes": nodes, "base": base, "deployment": deployment,
               "regulator": Ledger(gateway, keys["regulator"].account)}
    finally:
        for node in nodes.values():
            node.stop()


def advance(gateway, seconds):
    gateway.w3.provider.make_request("evm_increaseTime", [seconds])
    gateway.w3.provider.make_request("evm_mine", [])


def access_records(m, grant_id):
    return [e for e in m["gateway"].events("DataUseAuthorization", "AccessRecorded", from_block=m["deployment"].deployment_block)
            if e["args"]["grantId"] == grant_id]


def test_certificate_grant_served_metered_and_settled(market):
    m = market
    owner, buyer = m["nodes"]["insurer_b"], m["nodes"]["insurer_a"]
    owner_addr = m["keys"]["insurer_b"].address
    # 1. the owner offers, the buyer buys: certificate and grant
    offer = settle(owner.config, "offer", "--dataset", "claims", "--purpose", "STATISTICS", "--days", "30", "--period-fee", "1000",
                   "--per-access", "7", "--per-row", "2", "--share-bps", "2000", "--consent-ref", "owner consent record 2026-07")
    start = m["gateway"].block_time()
    agreement = settle(buyer.config, "agree", "--provider", owner_addr, "--base-bps", "500", "--share-bps", "2000",
                       "--start", str(start), "--period-days", "1", "--window-days", "1")
    aid = agreement["agreement_id"]
    assert settle(owner.config, "accept", str(aid))["state"] == 2
    bought = settle(buyer.config, "buy", str(offer["offer_id"]))
    # 2. the owner's node serves the certificate's grant and logs each use (no transaction of ours per access)
    client = NodeClient(owner.url, m["keys"]["insurer_a"].account, owner_addr, m["gateway"].chain_id)
    for _ in range(QUERIES):
        r = client.query("claims", "STATISTICS", metric="sum", column="amount", group_by="age_band")
        assert r.status_code == 200, r.text
        assert r.json()["grant_id"] == bought["grant_id"]
    deadline = time.monotonic() + 30
    while len(access_records(m, bought["grant_id"])) < QUERIES and time.monotonic() < deadline:
        time.sleep(0.2)
    records = access_records(m, bought["grant_id"])
    assert len(records) == QUERIES and sum(e["args"]["rows"] for e in records) == 3 * QUERIES
    # 3. figures for period 0, then the period ends
    (m["base"] / "premium.csv").write_text("policy,premium\npol1,400000\npol2,600000\n")
    settle(buyer.config, "declare", str(aid), "0", "--figure", "PREMIUM", "--value", "1000000", "--provider", owner_addr,
           "--evidence", str(m["base"] / "premium.csv"))
    settle(owner.config, "declare", str(aid), "0", "--figure", "COST", "--value", "5")
    advance(m["gateway"], DAY)
    # 4. the owner computes and issues the statement; it equals the formula applied to what the chain shows
    issued = settle(owner.config, "statement", str(aid), "0", "--issue")
    expected = compute_statement(StatementInputs(
        (owner_addr,), Formula(500, 2000, 5000, 3000, 2000),
        (CertificateUsage(bought["certificate_id"], owner_addr, 1000, 7, 2, 0, accesses=QUERIES, rows=3 * QUERIES),),
        {owner_addr: {"PREMIUM": DeclaredFigure(1_000_000), "COST": DeclaredFigure(5)}}))
    assert [line["total"] for line in issued["lines"]] == [line.total for line in expected]
    assert issued["total"] == 1000 + 7 * QUERIES + 2 * 3 * QUERIES + 50_000 + 200_000
    assert issued["matches_chain"] and issued["on_chain"]["state"] == "ISSUED"
    # 5. both parties reproduce and confirm; the payer pays off chain and records it; the payee confirms receipt
    settle(buyer.config, "confirm", str(aid), "0")
    assert settle(owner.config, "confirm", str(aid), "0")["state"] == "CONFIRMED"
    earned = owner_client(m, "insurer_b").request("GET", "/settlement/earnings").json()
    assert earned["totals"]["earned"] == {"CONFIRMED": issued["total"]}
    settle(buyer.config, "pay", str(aid), "0", "--payee", owner_addr, "--reference", "BANK-TRANSFER-20260801-0042")
    assert settle(owner.config, "received", str(aid), "0")["state"] == "SETTLED"
    # 6. each node shows what its member earned and owes (operator only)
    earned = owner_client(m, "insurer_b").request("GET", "/settlement/earnings").json()
    owed = owner_client(m, "insurer_a").request("GET", "/settlement/earnings").json()
    assert earned["totals"] == {"earned": {"SETTLED": issued["total"]}, "owed": {}}
    assert owed["totals"] == {"earned": {}, "owed": {"SETTLED": issued["total"]}}
    assert earned["statements"][0]["payment"] == "received"
    money = {e.event for e in _settlement_events(m)}
    assert {"OfferPublished", "CertificateIssued", "StatementIssued", "StatementConfirmed", "PaymentRecorded",
            "PaymentReceived", "PeriodSettled"} <= money
    # a period settles once
    again = cli("settle", "statement", str(aid), "0", "--issue", "--config", str(owner.config))
    assert again.returncode == 1 and "StatementExists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    # 7. revoking the certificate ends the grant at once for the owner's enforcement
    settle(owner.config, "revoke", str(bought["certificate_id"]), "--reason", "breach of scope")
    r = client.query("claims", "STATISTICS", metric="sum", column="amount", group_by="age_band")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "revoked"
    listed = settle(buyer.config, "certificates")["certificates"]
    assert [(c["certificate_id"], c["valid"], c["role"]) for c in listed] == [(bought["certificate_id"], False, "holder")]


def test_holder_suspension_ends_the_certificate_grant_at_once(market):
    m = market
    owner, buyer = m["nodes"]["insurer_b"], m["nodes"]["insurer_a"]
    offer = settle(owner.config, "offer", "--dataset", "claims", "--purpose", "PRICING", "--days", "1")
    settle(buyer.config, "buy", str(offer["offer_id"]))
    client = NodeClient(owner.url, m["keys"]["insurer_a"].account, m["keys"]["insurer_b"].address, m["gateway"].chain_id)
    assert client.query("claims", "PRICING", metric="count", group_by="age_band").status_code == 200
    m["regulator"].suspend(m["keys"]["insurer_a"].address)
    try:
        r = client.query("claims", "PRICING", metric="count", group_by="age_band")
        assert r.status_code == 403 and r.json()["detail"]["reason"] == "requester_suspended"
        refused = cli("settle", "buy", str(offer["offer_id"]), "--config", str(buyer.config))
        assert refused.returncode == 1 and "MemberNotInGoodStanding" in refused.stderr
    finally:
        m["regulator"].reinstate(m["keys"]["insurer_a"].address)


def owner_client(m, name) -> NodeClient:
    node = m["nodes"][name]
    return NodeClient(node.url, m["keys"][name].account, m["keys"][name].address, m["gateway"].chain_id)


def _settlement_events(m):
    from node.chain.events import EventReader

    return [e for e in EventReader(m["gateway"]).read(m["deployment"].deployment_block) if e.contract in ("DataMarket", "Settlement")]
