"""Settled means confirmed, on anvil where a reorg and a dropped transaction can be forced exactly:
the gateway re-broadcasts a forgotten transaction once (same bytes, so it takes effect once), waits for
its confirmations, and the indexer rolls back what a reorg orphaned (evm_snapshot / evm_revert)."""
from __future__ import annotations

import os

from conftest import build_consortium
from sqlalchemy import func, select

from node.audit import schema as s
from node.audit.indexer import AuditIndexer
from node.chain.anvil import AnvilNode
from node.chain.deployment import Purpose
from node.chain.gateway import ChainGateway
from node.chain.ledger import dataset_id
from node.store.db import create_store_engine


def test_a_dropped_transaction_is_rebroadcast_once_and_settles_after_its_confirmations(artifacts):
    with AnvilNode() as node:
        gw = ChainGateway.connect(node.url, artifacts)
        c = build_consortium(gw)
        member = c.accounts["insurer_a"]
        nonce_before = gw.w3.eth.get_transaction_count(member.address)
        gw.confirmations = 2
        gw.raw_request("evm_setAutomine", [False])  # nothing is mined: the transaction waits in the pool
        sent = gw.submit(member, c["insurer_a"].registry.functions.setEndpoint("https://a.example:8700"))
        tx_hash = "0x" + bytes(sent.tx_hash).hex()
        gw.raw_request("anvil_dropTransaction", [tx_hash])  # as a reorg or a restart would lose it
        assert gw.raw_request("eth_getTransactionByHash", [tx_hash]).get("result") is None
        assert gw.confirmed_receipt(tx_hash) is None  # unknown: re-broadcast
        assert gw.resends == 1
        gw.raw_request("evm_setIntervalMining", [1])
        receipt = sent.wait(60)
        assert receipt["status"] == 1
        assert gw.block_number() - receipt["blockNumber"] >= 2
        assert gw.resends == 1
        # Sending the same bytes again changes nothing: the nonce is spent.
        gw.raw_request("eth_sendRawTransaction", ["0x" + sent.raw.hex()])
        gw.raw_request("evm_mine", [])
        assert gw.w3.eth.get_transaction_count(member.address) == nonce_before + 1
        assert c["insurer_a"].member(member.address).endpoint == "https://a.example:8700"


def _indexed(engine) -> set[bytes]:
    with engine.connect() as conn:
        return {bytes(q) for (q,) in conn.execute(select(s.log.c.query_hash))}


def test_the_indexer_rolls_back_events_a_reorg_orphaned(artifacts, tmp_path):
    with AnvilNode() as node:
        gw = ChainGateway.connect(node.url, artifacts)
        c = build_consortium(gw)
        a = c["insurer_a"]
        gid = a.grant(c.accounts["platform"].address, dataset_id("claims"), Purpose.STATISTICS, expires_at=c.now() + 86_400)
        engine = create_store_engine(f"sqlite:///{tmp_path / 'audit.db'}")
        indexer = AuditIndexer(engine, gw, c.deployment, confirmations=0)
        common = [os.urandom(32) for _ in range(3)]
        a.record_access_batch([gid] * 3, common, [1, 2, 3]).wait()
        snapshot = gw.raw_request("evm_snapshot", [])["result"]
        orphaned = [os.urandom(32) for _ in range(2)]
        a.record_access_batch([gid] * 2, orphaned, [50, 50]).wait()
        a.revoke(gid)
        indexer.sync()
        assert _indexed(engine) == set(common) | set(orphaned)
        with engine.connect() as conn:
            assert conn.execute(select(s.grants.c.revoked_pos).where(s.grants.c.grant_id == gid)).scalar() is not None

        gw.raw_request("evm_revert", [snapshot])  # the other branch wins
        gw._nonce.clear()  # the account's nonce went back with the chain
        canonical = [os.urandom(32) for _ in range(2)]
        a.record_access_batch([gid] * 2, canonical, [7, 7]).wait()
        for _ in range(3):
            gw.raw_request("evm_mine", [])
        indexer.sync()
        assert indexer.rollbacks == 1
        assert _indexed(engine) == set(common) | set(canonical)
        onchain = {bytes(e["args"]["queryHash"]) for e in gw.events("DataUseAuthorization", "AccessRecorded",
                                                                    from_block=c.deployment.deployment_block)}
        assert _indexed(engine) == onchain
        with engine.connect() as conn:
            assert conn.execute(select(s.grants.c.revoked_pos).where(s.grants.c.grant_id == gid)).scalar() is None
            events, rows = conn.execute(select(func.sum(s.daily.c.events), func.sum(s.daily.c.rows))
                                        .where(s.daily.c.kind == s.KIND_ACCESS)).one()
            assert (events, rows) == (5, 1 + 2 + 3 + 7 + 7)
            revocations = conn.execute(select(func.count()).select_from(s.events)
                                       .where(s.events.c.event == "AuthorizationRevoked")).scalar()
            assert revocations == 0
        indexer.sync()
        assert indexer.rollbacks == 1  # a canonical chain is not rolled back again
