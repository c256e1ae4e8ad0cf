"""StatsLedger: jobs, one commitment per participant, result after all, abort after the deadline."""
from __future__ import annotations

import hashlib

import pytest

from node.chain.errors import ContractRevert

SPEC = hashlib.sha256(b"spec").digest()
KEY = hashlib.sha256(b"paillier-n").digest()
OPEN, PUBLISHED, ABORTED = 1, 2, 3


def open_job(c, participants=("insurer_a", "insurer_b"), lifetime=600):
    return c["platform"].open_job(SPEC, [c.accounts[p].address for p in participants], KEY, 10, c.now() + lifetime)


def test_job_runs_from_open_to_published(consortium):
    c = consortium
    job = open_job(c)
    c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    c["insurer_b"].commit_contribution(job, b"\x02" * 32)
    c["platform"].publish_result(job, b"\x03" * 32)
    state = c["platform"].get_job(job)
    assert state["state"] == PUBLISHED and state["committed"] == 2 and state["result_hash"] == b"\x03" * 32
    commits = c.gateway.events("StatsLedger", "ContributionCommitted", filters={"jobId": job})
    assert {e["args"]["participant"] for e in commits} == {c.accounts["insurer_a"].address, c.accounts["insurer_b"].address}


def test_contribution_by_non_participant_is_refused(consortium):
    c = consortium
    job = open_job(c)
    with pytest.raises(ContractRevert) as e:
        c["auditor"].commit_contribution(job, b"\x01" * 32)
    assert e.value.name == "NotParticipant"
    with pytest.raises(ContractRevert) as e:
        c["outsider"].commit_contribution(job, b"\x01" * 32)
    assert e.value.name == "NotMember"


def test_contribution_twice_is_refused(consortium):
    c = consortium
    job = open_job(c)
    c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].commit_contribution(job, b"\x09" * 32)
    assert e.value.name == "AlreadyCommitted"
    assert c.gateway.call(c["platform"].stats.functions.commitmentOf(job, c.accounts["insurer_a"].address)) == b"\x01" * 32


def test_contribution_after_the_deadline_is_refused(consortium):
    c = consortium
    job = open_job(c, lifetime=60)
    c.advance(61)
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    assert e.value.name == "DeadlinePassed"


def test_result_before_all_commitments_is_refused(consortium):
    c = consortium
    job = open_job(c)
    c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    with pytest.raises(ContractRevert) as e:
        c["platform"].publish_result(job, b"\x03" * 32)
    assert e.value.name == "MissingContributions"
    assert e.value.args_by_name["committed"] == 1 and e.value.args_by_name["expected"] == 2


def test_result_by_someone_else_or_twice_is_refused(consortium):
    c = consortium
    job = open_job(c)
    c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    c["insurer_b"].commit_contribution(job, b"\x02" * 32)
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].publish_result(job, b"\x03" * 32)
    assert e.value.name == "NotRequester"
    c["platform"].publish_result(job, b"\x03" * 32)
    with pytest.raises(ContractRevert) as e:
        c["platform"].publish_result(job, b"\x04" * 32)
    assert e.value.name == "JobNotOpen"


def test_abort_before_the_deadline_is_refused_and_after_it_succeeds(consortium):
    c = consortium
    job = open_job(c, lifetime=120)
    c["insurer_a"].commit_contribution(job, b"\x01" * 32)
    with pytest.raises(ContractRevert) as e:
        c["platform"].abort_job(job)
    assert e.value.name == "DeadlineNotPassed"
    with pytest.raises(ContractRevert) as e:
        c["auditor"].abort_job(job)
    assert e.value.name == "NotParticipant"
    c.advance(121)
    c["platform"].abort_job(job)
    assert c["platform"].get_job(job)["state"] == ABORTED
    aborted = c.gateway.events("StatsLedger", "JobAborted", filters={"jobId": job})
    assert aborted[0]["args"]["committed"] == 1 and aborted[0]["args"]["expected"] == 2
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].commit_contribution(job, b"\x02" * 32)
    assert e.value.name == "JobNotOpen"


def test_open_job_refuses_bad_participants_and_parameters(consortium):
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    now = c.now()
    cases = [
        (([a, a], 10, now + 600), "DuplicateParticipant"),
        (([a, c.accounts["outsider"].address], 10, now + 600), "ParticipantNotInGoodStanding"),
        (([], 10, now + 600), "NoParticipants"),
        (([a, b], 0, now + 600), "InvalidMinCohort"),
        (([a, b], 10, now - 1), "DeadlinePassed"),
    ]
    for (participants, k, deadline), expected in cases:
        with pytest.raises(ContractRevert) as e:
            c["platform"].open_job(SPEC, participants, KEY, k, deadline)
        assert e.value.name == expected
    with pytest.raises(ContractRevert) as e:
        c["outsider"].open_job(SPEC, [a], KEY, 10, now + 600)
    assert e.value.name == "NotMember"
    with pytest.raises(ContractRevert) as e:
        c["platform"].get_job(42)
    assert e.value.name == "UnknownJob"
