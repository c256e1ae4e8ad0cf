"""The participant's side of a statistics job (node/stats/participant.py): every refusal it gives, and answering once.

The participant reads the chain through five ledger methods (get_job, member, is_participant, commitment_of,
commit_contribution). ``ChainJobs`` holds one job the way node/chain/ledger.py returns it, so each case can
change exactly one fact on chain; the spec, keys, store, release gate and participant are the real ones.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.access.release_gate import ReleaseGate
from node.enums import ZERO32, JobState
from node.stats import errors
from node.stats.participant import Participant, VerticalSession
from node.stats.spec import SpecError, complete, parse_request, spec_hash
from node.stats.store import StatsStore
from node.store.db import create_store_engine
from tests.gate_fixtures import Enforcer, Log
from tests.privacy_fixtures import keypair

REQUESTER = "0x" + "ab" * 20
ME = "0x" + "ee" * 20
OTHER = "0x" + "cc" * 20
STRANGER = "0x" + "dd" * 20
JOB = 1
NAMES = {"me": ME, "other": OTHER, "requester": REQUESTER}


def resolve(who: str) -> str:
    if who in NAMES:
        return NAMES[who]
    raise SpecError(f"unknown member {who!r}", reason="unknown_member")


HORIZONTAL = {"kind": "horizontal", "dataset": "claims", "value": "amount", "participants": ["me", "other"],
              "group_by": [{"column": "age_band", "values": ["18-29", "30-39"]}]}
FRAUD = {"kind": "fraud", "participants": ["me"], "persons": ["p1", "p2"]}


@pytest.fixture(scope="module")
def keys():
    """The requester's job key and a second, unregistered one."""
    return keypair(2048, 0)[0], keypair(2048, 1)[0]


class ChainJobs:
    """One statistics job on chain and the registry entries the participant reads (as node/chain/ledger.py returns them)."""

    def __init__(self, public: dict, key_fingerprint: bytes):
        self.job = {"requester": REQUESTER, "spec_hash": bytes.fromhex(spec_hash(public)), "key_fingerprint": key_fingerprint,
                    "min_cohort": public["min_cohort"], "state": JobState.OPEN}
        self.fingerprints = {REQUESTER: key_fingerprint}
        self.participants = {ME, OTHER}
        self.commitments: dict[str, bytes] = {}
        self.commits = 0

    def get_job(self, job_id: int) -> dict:
        assert job_id == JOB  # an unknown id reverts on chain (404 UnknownJob), tested with the contracts
        return dict(self.job)

    def member(self, address: str):
        return SimpleNamespace(paillier_fingerprint=self.fingerprints.get(address, ZERO32), x25519_key=b"\x00" * 32, name="")

    def is_participant(self, job_id: int, address: str) -> bool:
        return job_id == JOB and address in self.participants

    def commitment_of(self, job_id: int, participant: str) -> bytes:
        return self.commitments.get(participant, ZERO32)

    def commit_contribution(self, job_id: int, commitment: bytes) -> None:
        self.commitments[ME] = commitment
        self.commits += 1


@pytest.fixture
def world(tmp_path, keys):
    """(participant, chain, horizontal public spec, fraud public spec)."""
    job_key = keys[0]
    horizontal = complete(parse_request(HORIZONTAL, resolve, REQUESTER), REQUESTER, job_key, job_id="h-1")
    fraud = complete(parse_request(FRAUD, resolve, REQUESTER), REQUESTER, job_key, job_id="f-1")
    chain = ChainJobs(horizontal, bytes.fromhex(job_key.fingerprint))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'node.db'}")
    participant = Participant(ME, chain, X25519PrivateKey.generate(), ReleaseGate(engine, Enforcer(), Log()), engine,
                              StatsStore(engine), executor=lambda rows: None)
    yield participant, chain, horizontal, fraud
    engine.dispose()


def reopen(chain: ChainJobs, public: dict) -> None:
    """The same job opened on chain with this spec (its hash and min_cohort), so only the case's own change differs."""
    chain.job["spec_hash"] = bytes.fromhex(spec_hash(public))
    chain.job["min_cohort"] = public["min_cohort"]


def _drop(key):
    def change(public, chain, keys):
        del public[key]
    return change


def _set(key, value, *, on_chain: bool):
    def change(public, chain, keys):
        public[key] = value
        if on_chain:
            reopen(chain, public)
    return change


def _other_key(public, chain, keys):
    public["public_key"] = keys[1].to_dict()  # a well-formed key, but not the one the requester registered
    reopen(chain, public)


def _small_key(public, chain, keys):
    public["public_key"] = {"kind": "paillier-public-key", "n": str(2**1023 + 1)}  # 1024 bits, fingerprint left out
    reopen(chain, public)


# Every refusal verify_job gives: (case, change to the request or the chain, refusal class, reason, HTTP status).
VERIFY_CASES = [
    ("job id is a bool", "id", True, errors.BadJobId, "bad_job", 422),
    ("job id is zero", "id", 0, errors.BadJobId, "bad_job", 422),
    ("job id is text", "id", "1", errors.BadJobId, "bad_job", 422),
    ("spec is not an object", "spec", ["horizontal"], errors.InvalidJobRequest, "bad_spec", 422),
    ("spec of another kind", lambda p, c, k: p.update(kind="vertical"), None, errors.InvalidJobRequest, "bad_spec", 422),
    ("spec lacks min_cohort", _drop("min_cohort"), None, errors.InvalidJobRequest, "bad_spec", 422),
    ("spec lacks participants", _drop("participants"), None, errors.InvalidJobRequest, "bad_spec", 422),
    ("spec fails the participant's check", _set("dataset", "payroll", on_chain=True), None, errors.InvalidJobRequest, "bad_spec", 422),
    ("job opened by another member", lambda p, c, k: c.job.update(requester=OTHER), None, errors.NotRequester, "not_requester", 403),
    ("spec names another requester", _set("requester", OTHER, on_chain=True), None, errors.NotRequester, "not_requester", 403),
    ("spec differs from the hash on chain", _set("round", 1, on_chain=False), None, errors.SpecMismatch, "spec_mismatch", 409),
    ("job no longer open", lambda p, c, k: c.job.update(state=JobState.PUBLISHED), None, errors.JobNotOpen, "job_not_open", 409),
    ("job key below 2048 bits", _small_key, None, errors.InvalidJobRequest, "key_too_small", 422),
    ("requester registered no key", lambda p, c, k: c.fingerprints.pop(REQUESTER), None, errors.WrongKey, "wrong_key", 403),
    ("job key is not the registered one", _other_key, None, errors.WrongKey, "wrong_key", 403),
    ("job on chain has another key", lambda p, c, k: c.job.update(key_fingerprint=b"\x01" * 32), None, errors.WrongKey, "wrong_key", 403),
    ("min_cohort differs from the chain", lambda p, c, k: c.job.update(min_cohort=p["min_cohort"] + 1), None,
     errors.SpecMismatch, "spec_mismatch", 409),
    ("not a participant on chain", lambda p, c, k: c.participants.discard(ME), None, errors.NotParticipant, "not_participant", 403),
]


@pytest.mark.parametrize("case, change, value, refusal, reason, status", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_each_job_check_refuses_with_its_reason_and_status(world, keys, case, change, value, refusal, reason, status):
    participant, chain, public, _ = world
    public = copy.deepcopy(public)
    job_id = JOB
    if change == "id":
        job_id = value
    elif change == "spec":
        public = value
    else:
        change(public, chain, keys)
    with pytest.raises(errors.StatsRefusal) as info:
        participant.verify_job(REQUESTER, job_id, public, "horizontal")
    assert type(info.value) is refusal, info.value
    assert (info.value.reason, info.value.http_status, info.value.status) == (reason, status, status)
    assert chain.commits == 0  # a refused request commits nothing


def test_the_unchanged_request_passes_every_check(world):
    participant, chain, public, _ = world
    assert participant.verify_job(REQUESTER, JOB, public, "horizontal") == spec_hash(public)


def test_a_caller_other_than_the_requester_is_refused_even_with_the_right_spec(world):
    participant, _, public, _ = world
    with pytest.raises(errors.NotRequester):
        participant.verify_job(STRANGER, JOB, public, "horizontal")


def test_a_member_on_chain_but_not_in_the_spec_is_refused_before_any_query(world):
    participant, chain, public, _ = world
    public = copy.deepcopy(public)
    public["participants"] = [OTHER, STRANGER]
    reopen(chain, public)
    with pytest.raises(errors.NotParticipant) as info:
        participant.contribute_horizontal(REQUESTER, {"chain_job_id": JOB, "spec": public})
    assert "spec's participants" in str(info.value) and chain.commits == 0


# ---------------------------------------------------------------------------------------------- answering once


def test_a_stored_answer_is_returned_again_and_committed_once(world):
    participant, chain, public, _ = world
    h = spec_hash(public)
    participant.store.save_own_contribution(REQUESTER, JOB, "horizontal", h, {"contribution": {"x": 1}, "release": {}}, "ab" * 32, 5)
    body = {"chain_job_id": JOB, "spec": public}
    first = participant.contribute_horizontal(REQUESTER, body)  # stored, not yet committed (a crash in between)
    again = participant.contribute_horizontal(REQUESTER, body)
    assert first == again == {"contribution": {"x": 1}, "release": {}, "commitment": "ab" * 32}
    assert chain.commitments[ME] == bytes.fromhex("ab" * 32) and chain.commits == 1


def test_an_answer_stored_for_another_spec_is_refused(world):
    participant, chain, public, _ = world
    participant.store.save_own_contribution(REQUESTER, JOB, "horizontal", "ff" * 32, {"contribution": {}}, "ab" * 32, 5)
    with pytest.raises(errors.SpecMismatch) as info:
        participant.contribute_horizontal(REQUESTER, {"chain_job_id": JOB, "spec": public})
    assert "another spec" in str(info.value) and chain.commits == 0


def test_another_commitment_already_on_chain_is_refused(world):
    participant, chain, public, _ = world
    participant.store.save_own_contribution(REQUESTER, JOB, "horizontal", spec_hash(public), {"contribution": {}}, "ab" * 32, 5)
    chain.commitments[ME] = b"\x02" * 32
    with pytest.raises(errors.AlreadyCommitted) as info:
        participant.contribute_horizontal(REQUESTER, {"chain_job_id": JOB, "spec": public})
    assert info.value.reason == "already_committed" and info.value.http_status == 409 and chain.commits == 0


# ---------------------------------------------------------------------------------------------- fraud and vertical messages


@pytest.mark.parametrize("query_id, points, why", [
    ("another-job", ["11" * 32, "22" * 32], "query id is not the job's"),
    ("f-1", ["11" * 32], "one point for two persons"),
    ("f-1", [], "no points at all"),
])
def test_a_fraud_query_that_does_not_match_its_job_is_refused(world, query_id, points, why):
    participant, chain, _, fraud = world
    reopen(chain, fraud)
    query = {"kind": "fraud-membership-query", "query_id": query_id, "points": points}
    with pytest.raises(errors.BadQuery) as info:
        participant.answer_fraud(REQUESTER, {"chain_job_id": JOB, "spec": fraud, "query": query})
    assert info.value.reason == "bad_query" and info.value.http_status == 422, why
    assert chain.commits == 0


@pytest.mark.parametrize("step", ["double_blinded", "labels", "finish"])
def test_a_vertical_message_without_its_exchange_is_refused(world, step):
    participant, _, _, _ = world
    with pytest.raises(errors.NoSession) as info:
        if step == "double_blinded":
            participant.vertical_double_blinded(REQUESTER, JOB, {})
        elif step == "labels":
            participant.vertical_labels(REQUESTER, JOB, b"")
        else:
            participant.vertical_finish(REQUESTER, JOB)
    assert info.value.reason == "no_session" and info.value.http_status == 409


def test_a_session_belongs_to_its_requester_only(world):
    participant, _, public, _ = world
    participant.sessions[(REQUESTER, JOB)] = VerticalSession(public, spec_hash(public), 7, None, 0, {})
    with pytest.raises(errors.NoSession):
        participant.vertical_labels(STRANGER, JOB, b"")


@pytest.mark.parametrize("extra", [None, 0, 1, 31, 33])
def test_a_label_batch_that_is_not_whole_rows_is_refused(world, keys, extra):
    participant, _, public, _ = world
    participant.sessions[(REQUESTER, JOB)] = VerticalSession(public, spec_hash(public), 7, None, 0, {})
    width = (keys[0].nsquare.bit_length() + 7) // 8
    raw = b"" if extra is None else b"\x01" * (2 * (32 + width) + extra)
    if extra == 0:  # whole rows pass the size check and reach the feature owner (none in this session)
        with pytest.raises(AttributeError):
            participant.vertical_labels(REQUESTER, JOB, raw)
        return
    with pytest.raises(errors.MalformedMessage) as info:
        participant.vertical_labels(REQUESTER, JOB, raw)
    assert info.value.reason == "malformed_message" and info.value.http_status == 422 and str(width) in str(info.value)
