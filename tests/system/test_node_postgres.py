"""The node on PostgreSQL instead of SQLite: the same flows, the same store guarantees."""
from __future__ import annotations

import hashlib
import time

import pg_server
import pytest
from eth_account import Account
from nodes import TEST_PASSPHRASE, start_node
from sqlalchemy import create_engine, text

from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.client import NodeClient
from node.keys import create_member_keys

pytestmark = pytest.mark.skipif(pg_server.available() is not None, reason=str(pg_server.available()))


def test_node_serves_logs_and_anchors_on_a_postgresql_store(anvil, artifacts, tmp_path):
    pg = pg_server.PostgresServer()
    try:
        gateway = ChainGateway.connect(anvil.url, artifacts)
        keys = {n: create_member_keys(tmp_path / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ("insurer", "platform")}
        deployer = Account.create()
        for a in (deployer, *(k.account for k in keys.values())):
            gateway.fund(a.address)
        dep = deploy_consortium(gateway, deployer, [GenesisMember(keys["insurer"].address, "insurer", Role.INSURER),
                                                    GenesisMember(keys["platform"].address, "platform", Role.PLATFORM)])
        node = start_node(tmp_path / "home", "insurer", tmp_path / "insurer", anvil.url, dep.save(tmp_path / "d.json"),
                          database_url=pg.url, log_flush_seconds=0.2, evidence_batch_age=0.3,
                          release_min_cohort=1)  # two claims: an exact answer (the release gate's tables live in PG too)
        try:
            from node.store.datasets import import_csv

            engine = create_engine(pg.url)
            assert import_csv(engine, "claims", "claim_id,person_id,amount,claim_date,status,age_band\n"
                                                "c1,p1,100.5,2026-01-02,paid,30-39\nc2,p2,50,2026-01-03,open,30-39\n") == 2
            ledger = Ledger(gateway, keys["insurer"].account)
            from node.chain.deployment import attach

            attach(gateway, dep)
            now = gateway.w3.eth.get_block("latest")["timestamp"]
            ledger.grant(keys["platform"].address, dataset_id("claims"), Purpose.STATISTICS, expires_at=now + 3600)
            platform = NodeClient(node.url, keys["platform"].account, keys["insurer"].address, gateway.chain_id)
            served = platform.query("claims", "STATISTICS", metric="sum", column="amount")
            assert served.status_code == 200 and served.json()["rows"][0]["value"] == pytest.approx(150.5)
            refused = platform.query("claims", "PRICING")
            assert refused.status_code == 403
            insurer = NodeClient(node.url, keys["insurer"].account, keys["insurer"].address, gateway.chain_id)
            receipt = insurer.request("POST", "/evidence/hashes", {"sha256": hashlib.sha256(b"doc").hexdigest(),
                                                                   "claim_id": "CLM-PG", "doc_type": "invoice"})
            assert receipt.status_code == 200, receipt.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    states = dict(conn.execute(text("select state, count(*) from chain_log_outbox group by state")).all())
                proofs = insurer.request("GET", "/evidence/proofs/CLM-PG").json()["proofs"]
                if states == {"mined": 2} and proofs[0]["state"] == "ANCHORED":
                    break
                time.sleep(0.2)
            assert states == {"mined": 2} and proofs[0]["state"] == "ANCHORED"
            assert len(gateway.events("DataUseAuthorization", "AccessRecorded")) == 1
            assert len(gateway.events("DataUseAuthorization", "DenialRecorded")) == 1
        finally:
            node.stop()
    finally:
        pg.stop()


def test_regulator_index_on_a_postgresql_store_matches_the_chain(anvil, artifacts, tmp_path):
    pg = pg_server.PostgresServer()
    try:
        gateway = ChainGateway.connect(anvil.url, artifacts)
        for _ in range(130):  # past block 127 chain positions (block << 24 | log index) need 64-bit columns
            gateway.w3.provider.make_request("evm_mine", [])
        keys = {n: create_member_keys(tmp_path / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ("insurer", "regulator")}
        deployer = Account.create()
        for a in (deployer, *(k.account for k in keys.values())):
            gateway.fund(a.address)
        dep = deploy_consortium(gateway, deployer, [GenesisMember(keys["insurer"].address, "insurer", Role.INSURER),
                                                    GenesisMember(keys["regulator"].address, "regulator", Role.REGULATOR)])
        from node.chain.deployment import attach

        attach(gateway, dep)
        insurer = Ledger(gateway, keys["insurer"].account)
        gid = insurer.grant(keys["regulator"].address, dataset_id("claims"), Purpose.STATISTICS,
                            expires_at=gateway.w3.eth.get_block("latest")["timestamp"] + 3600)
        insurer.record_access_batch([gid] * 5, [bytes([i]) * 32 for i in range(5)], [1] * 5).wait()
        insurer.record_denial(keys["regulator"].address, dataset_id("claims"), Purpose.PRICING, 5, b"\x09" * 32)
        node = start_node(tmp_path / "home", "regulator", tmp_path / "regulator", anvil.url, dep.save(tmp_path / "d.json"),
                          database_url=pg.url)
        try:
            regulator = NodeClient(node.url, keys["regulator"].account, keys["regulator"].address, gateway.chain_id)
            head = gateway.block_number()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and regulator.request("GET", "/audit/status").json().get("as_of_block", -1) < head:
                time.sleep(0.2)
            status = regulator.request("GET", "/audit/status").json()
            assert status["access_events"] == 5 and status["denial_events"] == 1
            denials = regulator.request("GET", "/audit/logs", params={"outcome": "denial"}).json()
            assert denials["count"] == 1
            check = regulator.request("GET", "/audit/verify", params={"from_block": 0}).json()
            assert check["matches"] is True
        finally:
            node.stop()
    finally:
        pg.stop()
