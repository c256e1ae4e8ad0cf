"""Evidence outbox and anchoring in process: batches by size and age, idempotent resends, chain outages."""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
import time

import pytest
from evidence_testing import TcpProxy, audit_exactly_once

from node.chain.deployment import attach
from node.chain.errors import ChainError
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.evidence.errors import InvalidEvidenceInput
from node.evidence.leaf import DocType, evidence_leaf_hash, is_express_claim
from node.evidence.service import POOL_TREE_LEAVES, EvidenceService, EvidenceSettings, build_tree
from node.evidence.store import ANCHORED, CLOSED, OPEN, create_store_engine
from node.evidence.verify import RegistryEvidenceChain, verify_evidence
from privacy import workers
from privacy.merkle import MerkleTree, tree_levels


def doc(n: int) -> bytes:
    return hashlib.sha256(f"document {n}".encode()).digest()


def make_service(tmp_path, ledger, **settings) -> EvidenceService:
    return EvidenceService(create_store_engine(tmp_path / "evidence.db"), ledger, EvidenceSettings(**settings))


def test_accepted_hashes_are_anchored_in_one_transaction_and_proofs_verify_on_chain(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"])
    receipts = service.accept_many([(doc(n), f"CLM-{n % 3}", "invoice") for n in range(10)])
    assert [r.leaf_index for r in receipts] == list(range(10))
    assert len({r.batch_id for r in receipts}) == 1
    assert receipts[0].leaf_hash == evidence_leaf_hash(doc(0), "CLM-0", DocType.INVOICE).hex()
    before = consortium.gateway.call(consortium["insurer_a"].evidence.functions.batchCount())
    service.close_open_batch()
    assert service.run_once().anchored == [1]
    assert consortium.gateway.call(consortium["insurer_a"].evidence.functions.batchCount()) == before + 1
    proofs = service.proofs("CLM-1")
    assert len(proofs) == 3 and all(p["state"] == ANCHORED for p in proofs)
    chain = RegistryEvidenceChain(consortium.gateway)
    verdict = verify_evidence(doc(1), proofs[0], chain)
    assert verdict.submitter == consortium["insurer_a"].address and verdict.submitter_name == "insurer_a"
    assert verdict.tree_size == 10
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, consortium["insurer_a"].address)


def test_batch_closes_by_size_and_by_age(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"], max_batch_size=4, max_batch_age=2.0)
    receipts = service.accept_many([(doc(n), "CLM-size", "loss-photo") for n in range(10)])
    assert [r.leaf_index for r in receipts] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    states = [(b["state"], b["size"]) for b in service.store.batches()]
    assert states == [(CLOSED, 4), (CLOSED, 4), (OPEN, 2)]
    service.run_once()
    assert [b["state"] for b in service.store.batches()] == [ANCHORED, ANCHORED, OPEN]
    assert service.run_once(now=time.time() + 1.0).closed == []  # younger than 2 s: stays open
    result = service.run_once(now=time.time() + 2.5)
    assert result.closed == [3] and result.anchored == [3]
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, consortium["insurer_a"].address)


def test_background_anchorer_anchors_within_the_age_limit(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"], max_batch_age=0.2).start()
    try:
        receipt = service.accept(doc(1).hex(), "CLM-bg", "medical-record")
        assert service.wait_until_anchored(timeout=10)
        assert time.time() <= receipt.expected_anchor_by + 5
    finally:
        service.stop()
    assert service.receipts("CLM-bg")[0]["state"] == ANCHORED


def test_resend_after_a_crash_between_mining_and_recording_does_not_anchor_twice(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"])
    service.accept_many([(doc(n), "CLM-resend", "invoice") for n in range(5)])
    service.close_open_batch()
    service.run_once()
    batch = service.store.batches()[0]
    # As if killed after the transaction was mined but before ANCHORED was committed.
    service.store.update_batch(batch["batch_seq"], state=CLOSED, block_number=None, block_time=None)
    block = consortium.gateway.block_number()
    fresh = make_service(tmp_path, consortium["insurer_a"])  # a restarted node: nothing in memory
    assert fresh.run_once().anchored == [batch["batch_seq"]]
    assert consortium.gateway.block_number() == block, "no transaction was sent"
    assert fresh.store.batches()[0]["block_number"] == batch["block_number"]
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, consortium["insurer_a"].address)


def test_resend_racing_an_earlier_send_is_settled_from_the_chain(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"])
    service.accept_many([(doc(n), "CLM-race", "invoice") for n in range(3)])
    service.close_open_batch()
    batch = service.store.batches()[0]
    root = service._root_of(batch)
    ledger = consortium["insurer_a"]  # the "earlier process" anchored it and died before recording anything
    ledger.anchor_batch(root, 3, bytes(batch["batch_id"]), service._metadata_hash(batch))
    assert service.run_once().anchored == [1]
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, ledger.address)


def test_the_same_leaves_resubmitted_in_a_new_batch_are_settled_against_their_first_anchoring(tmp_path, consortium):
    """The same document, claim and type after its first batch closed gives a batch with the same root."""
    service = make_service(tmp_path, consortium["insurer_a"])
    first = service.accept(doc(7), "CLM-again", "invoice")
    service.close_open_batch()
    assert service.run_once().anchored == [1]
    again = service.accept(doc(7), "CLM-again", "invoice")
    assert again.batch_id != first.batch_id and again.leaf_hash == first.leaf_hash
    service.close_open_batch()
    block = consortium.gateway.block_number()
    result = service.run_once()
    assert result.anchored == [2] and result.failed == []
    assert consortium.gateway.block_number() == block, "settled from the chain: no transaction sent"
    batches = service.store.batches()
    assert [b["state"] for b in batches] == [ANCHORED, ANCHORED]
    assert bytes(batches[1]["anchored_batch_id"]) == bytes(batches[0]["batch_id"])
    chain = RegistryEvidenceChain(consortium.gateway)
    proofs = service.proofs("CLM-again")
    assert len(proofs) == 2 and all(p["state"] == ANCHORED for p in proofs)
    for p in proofs:
        assert verify_evidence(doc(7), p, chain).batch_id == first.batch_id
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, consortium["insurer_a"].address)


def test_root_and_batch_id_pre_anchored_by_another_member_do_not_block_this_member(tmp_path, consortium):
    service = make_service(tmp_path, consortium["insurer_a"])
    service.accept_many([(doc(n), "CLM-front", "invoice") for n in range(4)])
    service.close_open_batch()
    batch = service.store.batches()[0]
    root, batch_id = service._root_of(batch), bytes(batch["batch_id"])
    rival = consortium["insurer_b"]  # e.g. copied from insurer_a's pending transaction
    rival.anchor_batch(root, 4, hashlib.sha256(b"rival batch").digest())
    rival.anchor_batch(hashlib.sha256(b"junk root").digest(), 1, batch_id)
    result = service.run_once()
    assert result.anchored == [1] and result.failed == []
    assert service.store.batches()[0]["state"] == ANCHORED
    verdict = verify_evidence(doc(2), service.proofs("CLM-front")[2], RegistryEvidenceChain(consortium.gateway))
    assert verdict.submitter == consortium["insurer_a"].address
    audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, consortium["insurer_a"].address)


def test_chain_outage_backs_off_keeps_accepting_and_anchors_everything_once_back(tmp_path, consortium, anvil, artifacts):
    proxy = TcpProxy("127.0.0.1", anvil.port)
    try:
        gateway = attach(ChainGateway.connect(proxy.url, artifacts, timeout=2), consortium.deployment)
        ledger = Ledger(gateway, consortium.accounts["insurer_a"])
        service = make_service(tmp_path, ledger, max_batch_size=5, retry_base=0.2, retry_cap=1.0)
        service.accept_many([(doc(n), "CLM-outage", "invoice") for n in range(7)])
        proxy.cut()
        first = service.run_once()
        assert first.anchored == [] and first.failed and first.failed[0][0] == 1
        service.accept_many([(doc(n), "CLM-outage", "invoice") for n in range(7, 20)])  # intake goes on
        second = service.run_once(now=time.time() + 0.3)
        assert second.failed
        batches = service.store.batches()
        assert batches[0]["attempts"] == 2 and batches[0]["next_attempt_at"] > time.time()
        assert "chain" in (batches[0]["last_error"] or "").lower()
        proxy.restore()
        service.close_open_batch()
        service.run_once(now=time.time() + 10)
        assert [b["state"] for b in service.store.batches() if b["size"]] == [ANCHORED] * 4
        counts = audit_exactly_once(tmp_path / "evidence.db", consortium.gateway, ledger.address)
        assert counts["leaves"] == 20
    finally:
        proxy.close()


@pytest.mark.parametrize("item, reason", [
    (("zz" * 32, "CLM-1", "invoice"), "invalid_hash"),
    ((b"short", "CLM-1", "invoice"), "invalid_hash"),
    ((doc(1), "", "invoice"), "invalid_claim_id"),
    ((doc(1), "x" * 129, "invoice"), "invalid_claim_id"),
    ((doc(1), 7, "invoice"), "invalid_claim_id"),
    ((doc(1), "CLM-1", "selfie"), "invalid_doc_type"),
    ((doc(1), "CLM-1", 9), "invalid_doc_type"),
    ((doc(1), "CLM-1"), "invalid_input"),
])
def test_bad_input_is_refused_and_nothing_of_the_request_is_stored(tmp_path, consortium, item, reason):
    service = make_service(tmp_path, consortium["insurer_a"])
    with pytest.raises(InvalidEvidenceInput) as err:
        service.accept_many([(doc(0), "CLM-ok", "invoice"), item])
    assert err.value.reason == reason and "item 1" in str(err.value)
    assert service.store.counts()["leaves"] == 0


def test_document_over_the_size_limit_is_refused(tmp_path, consortium):
    from node.evidence.errors import DocumentTooLarge

    service = make_service(tmp_path, consortium["insurer_a"], max_document_bytes=10, document_dir=tmp_path / "docs")
    with pytest.raises(DocumentTooLarge):
        service.accept_document([b"12345678", b"90ab"], "CLM-big", "invoice")
    assert service.store.counts()["leaves"] == 0 and list((tmp_path / "docs").iterdir()) == []
    receipt = service.accept_document([b"12345", b"678"], "CLM-big", "invoice")
    assert receipt.doc_sha256 == hashlib.sha256(b"12345678").hexdigest()
    assert (tmp_path / "docs" / receipt.doc_sha256).read_bytes() == b"12345678"


@pytest.mark.parametrize("amount, complete, clear, express", [
    (999.99, True, True, True), (1000, True, True, False), (0, True, True, True),
    (10, False, True, False), (10, True, False, False),
])
def test_express_claim_rule(amount, complete, clear, express):
    assert is_express_claim(amount, 1000, materials_complete=complete, liability_clear=clear) is express


def test_a_large_intake_is_stored_row_for_row_across_statements_and_batches(tmp_path, consortium):
    """7,500 hashes with batches of 5,000: the store inserts 3,000 rows per statement with its parameters laid out
    column by column; every row must land with its own sequence, batch, index, leaf hash and claim, and a leaf
    from the last statement of the second batch must prove on chain."""
    from sqlalchemy import text

    from node.evidence.store import _ROWS_PER_INSERT

    n, size = 7_500, 5_000
    assert n > 2 * _ROWS_PER_INSERT  # several statements, one of them cut by the batch boundary
    service = make_service(tmp_path, consortium["insurer_a"], max_batch_size=size, max_hashes_per_request=n)
    items = [(doc(i), f"CLM-big-{i // 3}", "invoice" if i % 2 else "loss-photo") for i in range(n)]
    answer = service.accept_bulk(items)
    assert answer["accepted"] == n and [s["count"] for s in answer["spans"]] == [size, n - size]
    engine = service.store.engine
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, batch_seq, leaf_index, leaf_hash, doc_sha256, claim_id, doc_type, doc_path "
                                 "FROM evidence_leaves ORDER BY seq")).all()
    assert len(rows) == n
    for i, (seq, batch_seq, index, leaf, digest, claim, kind, path) in enumerate(rows):
        expected_kind = DocType.INVOICE if i % 2 else DocType.LOSS_PHOTO
        assert (seq, batch_seq, index) == (i + 1, 1 + i // size, i % size)
        assert (bytes(digest), claim, kind, path) == (doc(i), f"CLM-big-{i // 3}", int(expected_kind), None)
        assert bytes(leaf) == evidence_leaf_hash(doc(i), f"CLM-big-{i // 3}", expected_kind)
    service.close_open_batch()
    assert service.run_once().anchored == [1, 2]
    last = n - 1
    proof = next(p for p in service.proofs(f"CLM-big-{last // 3}") if p["doc_sha256"] == doc(last).hex())
    verdict = verify_evidence(doc(last), proof, RegistryEvidenceChain(consortium.gateway))
    assert verdict.tree_size == n - size


def test_the_background_pass_sends_new_batches_while_earlier_anchors_are_in_flight(tmp_path, artifacts):
    """``run_once(wait=False)`` (the anchorer's loop): an anchor in flight is looked at, never waited for, so a batch
    closing meanwhile is sent at once; each settles at the first pass after its block; one never mined times out and
    is retried, and is anchored once when the chain mines again."""
    from conftest import build_consortium

    from node.chain.anvil import AnvilNode

    with AnvilNode() as node:  # a chain of its own: mining is switched off and on here
        gw = ChainGateway.connect(node.url, artifacts)
        ledger = build_consortium(gw)["insurer_a"]
        service = make_service(tmp_path, ledger, max_batch_size=2, tx_timeout=1.0)
        gw.raw_request("evm_setAutomine", [False])
        service.accept_many([(doc(n), "CLM-fly", "invoice") for n in range(2)])
        first = service.run_once(wait=False)
        assert first.anchored == [] and set(service._inflight) == {1}  # full batches close as they fill
        service.accept_many([(doc(n), "CLM-fly", "invoice") for n in range(2, 4)])
        second = service.run_once(wait=False)  # batch 2 is sent although batch 1 is not mined yet
        assert second.anchored == [] and set(service._inflight) == {1, 2}
        pool = gw.raw_request("txpool_content", [])["result"]["pending"]
        assert sum(len(txs) for txs in pool.values()) == 2  # two anchors in flight, batch 1 not sent twice
        gw.raw_request("evm_mine", [])
        settled = service.run_once(wait=False)
        assert settled.anchored == [1, 2] and not service._inflight
        # An anchor that is never mined times out: the batch is retried later, and anchored once the chain mines.
        service.accept_many([(doc(n), "CLM-fly", "invoice") for n in range(4, 6)])
        assert service.run_once(wait=False).anchored == []
        real_look = gw.confirmed_receipt

        def unreachable(*_a, **_k):
            raise ChainError("connection refused", hint="start the chain node")

        gw.confirmed_receipt = unreachable  # the chain node is down for a pass: the look is repeated, nothing raised
        try:
            assert service.run_once(wait=False).anchored == [] and set(service._inflight) == {3}
        finally:
            gw.confirmed_receipt = real_look
        time.sleep(1.2)
        timed_out = service.run_once(wait=False)
        assert [seq for seq, _ in timed_out.failed] == [3] and not service._inflight
        gw.raw_request("evm_setAutomine", [True])
        gw.raw_request("evm_mine", [])
        retried = service.run_once(wait=False, now=time.time() + 3600)  # past the retry back-off
        assert retried.anchored == [3]
        audit_exactly_once(tmp_path / "evidence.db", gw, ledger.address)


def test_a_large_batch_tree_is_built_in_the_worker_pool_and_here_when_a_worker_fails(monkeypatch):
    """Trees of POOL_TREE_LEAVES leaves and more go to the shared worker pool (off this process's interpreter lock,
    which the intake holds); a pool that fails leaves the work to the caller; smaller trees never leave it."""
    leaves = [os.urandom(32) for _ in range(POOL_TREE_LEAVES)]
    expected = MerkleTree(leaves)
    was_running = workers.running(2)
    workers.warm(2, wait=True)
    pool = workers.shared_pool(2)
    real_submit, submitted = pool.submit, []
    monkeypatch.setattr(workers, "pool_if_running", lambda processes=None: pool)
    monkeypatch.setattr(pool, "submit", lambda fn, *args: submitted.append(fn) or real_submit(fn, *args))
    built = build_tree(leaves)
    assert submitted == [tree_levels] and built.root() == expected.root()
    assert built.inclusion_proof(12_345) == expected.inclusion_proof(12_345)

    def broken(fn, *args):
        submitted.append(fn)
        failed = concurrent.futures.Future()
        failed.set_exception(concurrent.futures.process.BrokenProcessPool("a worker died"))
        return failed

    monkeypatch.setattr(pool, "submit", broken)
    assert build_tree(leaves).root() == expected.root() and len(submitted) == 2
    assert build_tree(leaves[:POOL_TREE_LEAVES - 1]).root() == MerkleTree(leaves[:POOL_TREE_LEAVES - 1]).root()
    assert len(submitted) == 2  # below the threshold: built here
    if not was_running:
        workers.shutdown()


def test_the_background_pass_settles_an_anchor_from_its_receipt_as_the_chain_records_it(tmp_path, consortium, monkeypatch):
    """A settled anchor's BatchAnchored event (root, id, size, submitter) and its block give what getBatch answers: the
    background pass settles from them without asking the chain again (nor before a first attempt: the gas estimate
    would refuse an anchor already on chain). What it stores equals the chain's own record."""
    import node.evidence.service as service_module
    from node.chain.ledger import find_batch

    ledger = consortium["insurer_a"]
    service = make_service(tmp_path, ledger, max_batch_size=3)
    asked = []
    monkeypatch.setattr(service_module, "find_batch", lambda *a, **k: asked.append(k) or find_batch(*a, **k))
    service.accept_many([(doc(n), "CLM-receipt", "invoice") for n in range(3)])
    anchored, deadline = [], time.monotonic() + 30
    while not anchored and time.monotonic() < deadline:  # sent, then looked at each pass until its receipt is there
        anchored = service.run_once(wait=False).anchored
        time.sleep(0.05)
    assert anchored == [1] and asked == [] and not service._inflight
    stored = service.store.batch(1)
    onchain = find_batch(ledger.gateway, ledger.address, batch_id=bytes(stored["batch_id"]))
    assert stored["state"] == ANCHORED and bytes(stored["root"]) == onchain["root"] == service._tree(1).root()
    assert (stored["block_number"], stored["block_time"]) == (onchain["block_number"], onchain["timestamp"])
    assert stored["submitter"] == onchain["submitter"] and bytes(stored["anchored_batch_id"]) == onchain["batch_id"]
    audit_exactly_once(tmp_path / "evidence.db", ledger.gateway, ledger.address)
