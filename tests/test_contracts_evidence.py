"""EvidenceRegistry: write-once anchors and the claim lifecycle."""
from __future__ import annotations

import hashlib

import pytest

from node.chain.deployment import ClaimStep
from node.chain.errors import ContractRevert

ROOT = hashlib.sha256(b"root").digest()
BATCH = hashlib.sha256(b"batch-1").digest()
CLAIM = hashlib.sha256(b"claim-0001").digest()


def test_anchored_batch_is_readable_by_root_and_by_id(consortium):
    c = consortium
    receipt = c["insurer_a"].anchor_batch(ROOT, 128, BATCH, b"\x07" * 32)
    batch = c["auditor"].batch_by_root(ROOT)
    assert batch["size"] == 128 and batch["batch_id"] == BATCH and batch["submitter"] == c.accounts["insurer_a"].address
    assert batch["block_number"] == receipt["blockNumber"]
    by_id = c.gateway.call(c["auditor"].evidence.functions.getBatch(BATCH))
    assert bytes(by_id[0]) == ROOT


def test_root_anchored_twice_is_refused(consortium):
    c = consortium
    c["insurer_a"].anchor_batch(ROOT, 1, BATCH)
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].anchor_batch(ROOT, 1, hashlib.sha256(b"other").digest())
    assert e.value.name == "RootAlreadyAnchored"
    # The first anchor is untouched.
    assert c["auditor"].batch_by_root(ROOT)["submitter"] == c.accounts["insurer_a"].address


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
        consortium["auditor"].batch_by_root(ROOT)
    assert e.value.name == "UnknownRoot"


def test_claim_lifecycle_runs_in_order_with_the_acting_member(consortium):
    c = consortium
    insurer = c["insurer_a"]
    for step, flags in ((ClaimStep.REPORTED, 0), (ClaimStep.MATERIALS_COMPLETE, 0), (ClaimStep.ASSESSED, 1),
                        (ClaimStep.APPROVED, 0), (ClaimStep.PAID, 0)):
        insurer.record_claim_step(CLAIM, step, hashlib.sha256(step.name.encode()).digest(), flags)
    events = c.gateway.events("EvidenceRegistry", "ClaimStepRecorded", filters={"claimIdHash": CLAIM})
    assert [e["args"]["step"] for e in events] == [1, 2, 3, 4, 6]
    assert {e["args"]["actor"] for e in events} == {insurer.address}
    assert events[2]["args"]["flags"] == 1  # express claim flagged with the assessment


def test_claim_steps_out_of_order_or_by_another_member_are_refused(consortium):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.ASSESSED)
    assert e.value.name == "InvalidClaimStep"
    c["insurer_a"].record_claim_step(CLAIM, ClaimStep.REPORTED)
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].record_claim_step(CLAIM, ClaimStep.MATERIALS_COMPLETE)
    assert e.value.name == "NotClaimInsurer"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.PAID)
    assert e.value.name == "InvalidClaimStep"
    for step in (ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED, ClaimStep.REJECTED):
        c["insurer_a"].record_claim_step(CLAIM, step)
    with pytest.raises(ContractRevert) as e:  # a rejected claim is never paid
        c["insurer_a"].record_claim_step(CLAIM, ClaimStep.PAID)
    assert e.value.name == "InvalidClaimStep"
