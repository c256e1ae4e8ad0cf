"""EvidenceRegistry: write-once anchors and the claim lifecycle, each in the member's own namespace."""
from __future__ import annotations

import hashlib

import pytest

from node.chain.deployment import ClaimStep
from node.chain.errors import ContractRevert
from node.evidence.claims import claim_history, record_claim_step
from node.evidence.errors import InvalidEvidenceInput
from node.evidence.leaf import claim_id_hash, claim_key

ROOT = hashlib.sha256(b"root").digest()
BATCH = hashlib.sha256(b"batch-1").digest()
CLAIM = hashlib.sha256(b"claim-0001").digest()


def test_anchored_batch_is_readable_by_root_and_by_id(consortium):
    c = consortium
    receipt = c["insurer_a"].anchor_batch(ROOT, 128, BATCH, b"\x07" * 32)
    batch = c["auditor"].batch_by_root(ROOT, c.accounts["insurer_a"].address)
    assert batch["size"] == 128 and batch["batch_id"] == BATCH and batch["submitter"] == c.accounts["insurer_a"].address
    assert batch["block_number"] == receipt["blockNumber"]
    by_id = c.gateway.call(c["auditor"].evidence.functions.getBatch(c.accounts["insurer_a"].address, BATCH))
    assert bytes(by_id[0]) == ROOT


def test_root_anchored_twice_by_the_same_member_is_refused(consortium):
    c = consortium
    c["insurer_a"].anchor_batch(ROOT, 1, BATCH)
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].anchor_batch(ROOT, 1, hashlib.sha256(b"other").digest())
    assert e.value.name == "RootAlreadyAnchored"
    assert c["insurer_a"].batch_by_root(ROOT)["batch_id"] == BATCH  # the first anchor is untouched


def test_another_member_cannot_take_a_root_or_batch_id_first(consortium):
    """Pre-anchoring a member's root or batch id blocks nothing: both are keyed by the submitter."""
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    c["insurer_b"].anchor_batch(ROOT, 1, BATCH)          # the squatter goes first with the same root and id
    c["insurer_a"].anchor_batch(ROOT, 7, BATCH, b"\x01" * 32)
    assert c["auditor"].batch_by_root(ROOT, a)["size"] == 7 and c["auditor"].batch_by_root(ROOT, a)["submitter"] == a
    assert c["auditor"].batch_by_root(ROOT, b)["size"] == 1 and c["auditor"].batch_by_root(ROOT, b)["submitter"] == b
    ev = c["auditor"].evidence
    assert c.gateway.call(ev.functions.isAnchored(a, ROOT)) and c.gateway.call(ev.functions.isAnchored(b, ROOT))
    assert not c.gateway.call(ev.functions.isAnchored(c.accounts["platform"].address, ROOT))


def test_batch_id_used_twice_is_refused(consortium):
    c = consortium
    c["insurer_a"].anchor_batch(ROOT, 1, BATCH)
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].anchor_batch(hashlib.sha256(b"root-2").digest(), 1, BATCH)
    assert e.value.name == "BatchIdAlreadyUsed"


def test_anchor_refuses_empty_values_and_non_members(consortium):
    c = consortium
    for args, expected in (((b"\x00" * 32, 1, BATCH), "EmptyRoot"), ((ROOT, 1, b"\x00" * 32), "EmptyBatchId"),
                           ((ROOT, 0, BATCH), "EmptyBatch")):
        with pytest.raises(ContractRevert) as e:
            c["insurer_a"].anchor_batch(*args)
        assert e.value.name == expected
    with pytest.raises(ContractRevert) as e:
        c["outsider"].anchor_batch(ROOT, 1, BATCH)
    assert e.value.name == "NotMember"
    c["regulator"].suspend(c.accounts["insurer_b"].address)
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].anchor_batch(ROOT, 1, BATCH)
    assert e.value.name == "MemberNotInGoodStanding"


def test_unknown_root_is_reported(consortium):
    with pytest.raises(ContractRevert) as e:
        consortium["auditor"].batch_by_root(ROOT, consortium.accounts["insurer_a"].address)
    assert e.value.name == "UnknownRoot"


def test_claim_lifecycle_runs_in_order_with_the_acting_member(consortium):
    c = consortium
    insurer = c["insurer_a"]
    for step, flags in ((ClaimStep.REPORTED, 0), (ClaimStep.MATERIALS_COMPLETE, 0), (ClaimStep.ASSESSED, 1),
                        (ClaimStep.APPROVED, 0), (ClaimStep.PAID, 0)):
        insurer.record_claim_step(CLAIM, step, hashlib.sha256(step.name.encode()).digest(), flags)
    events = c.gateway.events("EvidenceRegistry", "ClaimStepRecorded", filters={"claimIdHash": CLAIM})
    key = c.gateway.call(insurer.evidence.functions.claimKey(insurer.address, CLAIM))
    assert {bytes(e["args"]["claimKey"]) for e in events} == {bytes(key)}
    assert [e["args"]["step"] for e in events] == [1, 2, 3, 4, 6]
    assert {e["args"]["actor"] for e in events} == {insurer.address}
    assert events[2]["args"]["flags"] == 1  # express claim flagged with the assessment


def test_claim_steps_out_of_order_or_by_another_member_are_refused(consortium):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.ASSESSED)
    assert e.value.name == "InvalidClaimStep"
    c["insurer_a"].record_claim_step(CLAIM, ClaimStep.REPORTED)
    with pytest.raises(ContractRevert) as e:  # insurer_b's claim of that id is its own, not yet reported
        c["insurer_b"].record_claim_step(CLAIM, ClaimStep.MATERIALS_COMPLETE)
    assert e.value.name == "InvalidClaimStep"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.PAID)
    assert e.value.name == "InvalidClaimStep"
    for step in (ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED, ClaimStep.REJECTED):
        c["insurer_a"].record_claim_step(CLAIM, step)
    with pytest.raises(ContractRevert) as e:  # a rejected claim is never paid
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.PAID)
    assert e.value.name == "InvalidClaimStep"


def test_a_claim_id_reported_first_by_another_member_is_not_squatted(consortium):
    """The claim is (insurer, claim id): a squatter reporting the same id first opens only its own claim."""
    c = consortium
    a, b = c["insurer_a"], c["insurer_b"]
    record_claim_step(b, "CLM-2026-0001", ClaimStep.REPORTED)          # the squatter goes first
    for step in (ClaimStep.REPORTED, ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED):
        record_claim_step(a, "CLM-2026-0001", step)                    # the real insurer is not refused
    assert a.get_claim(a.address, claim_id_hash("CLM-2026-0001"))["step"] == ClaimStep.ASSESSED
    assert a.get_claim(b.address, claim_id_hash("CLM-2026-0001"))["step"] == ClaimStep.REPORTED
    # the node's key is the contract's key
    assert claim_key(a.address, "CLM-2026-0001") == bytes(c.gateway.call(
        a.evidence.functions.claimKey(a.address, claim_id_hash("CLM-2026-0001"))))
    # readers: each insurer's history is its own; without an insurer the ambiguity is refused, not merged
    assert [h.step for h in claim_history(c.gateway, "CLM-2026-0001", "insurer_a")] == [
        "REPORTED", "MATERIALS_COMPLETE", "ASSESSED"]
    assert [h.step for h in claim_history(c.gateway, "CLM-2026-0001", b.address)] == ["REPORTED"]
    with pytest.raises(InvalidEvidenceInput) as e:
        claim_history(c.gateway, "CLM-2026-0001")
    assert e.value.reason == "ambiguous_claim"
