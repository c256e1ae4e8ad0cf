"""The participant's side of a job: check the job on chain, check the grant, compute, commit, log, answer.

Every answer starts with the same checks, all against the chain and the registry, never the request:
the job exists and is open, its requester is the signer of the request, its spec hash is the hash of
the spec sent, its key fingerprint is the requester's registered Paillier fingerprint (and the key
sent has that fingerprint), and this member is one of its participants. Then the release gate
(node/access/release_gate.py) decides what, if anything, leaves: the grant, who contributes, k on distinct
persons, differencing, the DP budget. A refusal is logged on chain as a denial, an answer as an
access with the grant id, the spec hash as query hash and the number of records released.

A computed answer is stored before its commitment is sent, so a retried request gets the very same
answer back and the chain sees one commitment per participant, across crashes too.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.engine import Engine

from node.access.release_gate import ReleaseGate, Request, fraud_admission, horizontal_contribution, vertical_admission
from node.chain.ledger import Ledger
from node.enums import ZERO32, JobState, Purpose
from node.stats import local
from node.stats.errors import (
    AlreadyCommitted,
    BadJobId,
    BadQuery,
    InvalidJobRequest,
    JobNotOpen,
    MalformedMessage,
    NoSession,
    NotParticipant,
    NotRequester,
    SpecMismatch,
    StatsRefusal,
    WrongKey,
)
from node.stats.spec import SpecError, check_public, horizontal_spec, join_spec, message_commitment, public_key_of, spec_hash
from node.stats.store import StatsStore
from privacy.aggregation import contribute
from privacy.fraud import MembershipQuery, answer_membership
from privacy.join import DoubleBlindedBuckets, EncryptedLabelBatch, FeatureOwner

__all__ = ["Participant", "StatsRefusal", "VerticalSession"]


@dataclass
class VerticalSession:
    """The platform's state of one vertical job between the requests of the exchange."""

    public: dict
    spec_hash: str
    grant_id: int
    owner: FeatureOwner
    rows: int
    release: dict
    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: int = 0
    touched: float = field(default_factory=time.monotonic)


class Participant:
    def __init__(self, me: str, ledger: Ledger, x25519: X25519PrivateKey, gate: ReleaseGate, engine: Engine,
                 store: StatsStore, executor: Callable[[int], Any]):
        self.me = me
        self.ledger = ledger
        self.x25519 = x25519  # this member's masking key (pairwise masks with the other participants)
        self.gate = gate
        self.engine = engine
        self.store = store
        self.executor = executor  # rows -> a process pool, or None when not worth it
        self._locks: dict[tuple[str, int], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self.sessions: dict[tuple[str, int], VerticalSession] = {}

    def _lock(self, key: tuple[str, int]) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    # ------------------------------------------------------------------ checks

    def verify_job(self, caller: str, chain_job_id: Any, public: Any, kind: str) -> str:
        """All chain checks of a job request; returns the spec hash."""
        if isinstance(chain_job_id, bool) or not isinstance(chain_job_id, int) or chain_job_id < 1:
            raise BadJobId("chain_job_id must be a positive integer")
        if not isinstance(public, dict) or public.get("kind") != kind:
            raise InvalidJobRequest(f"expected a {kind} job spec")
        for key in ("requester", "job_id", "public_key", "participants", "dataset", "purpose", "min_cohort"):
            if key not in public:
                raise InvalidJobRequest(f"job spec lacks {key}")
        try:
            check_public(public)
        except SpecError as exc:
            raise InvalidJobRequest(exc.one_line(), exc.reason) from None
        h = spec_hash(public)
        job = self.ledger.get_job(chain_job_id)  # an unknown id reverts: 404 UnknownJob
        if job["requester"] != caller or public["requester"] != caller:
            raise NotRequester("the job on chain was opened by another member than the signer")
        if job["spec_hash"] != bytes.fromhex(h):
            raise SpecMismatch("the spec sent does not hash to the job's spec hash on chain")
        if job["state"] != JobState.OPEN:
            raise JobNotOpen(f"job {chain_job_id} is not open on chain")
        try:
            key = public_key_of(public)
        except Exception as exc:  # a malformed or too-small key is refused, never used
            raise InvalidJobRequest(f"job key: {exc}", getattr(exc, "reason", "bad_key")) from None
        registered = self.ledger.member(caller).paillier_fingerprint
        if registered == ZERO32 or registered != bytes.fromhex(key.fingerprint) or job["key_fingerprint"] != registered:
            raise WrongKey("the job key is not the requester's registered Paillier key")
        if job["min_cohort"] != public["min_cohort"]:
            raise SpecMismatch("min_cohort differs from the job on chain")
        if not self.ledger.is_participant(chain_job_id, self.me):
            raise NotParticipant(f"this member is not a participant of job {chain_job_id}")
        return h

    def _log_access(self, caller: str, public: dict, h: str, grant_id: int, records: int) -> None:
        self.gate.log_access(Request(caller, public["dataset"], Purpose[public["purpose"]], bytes.fromhex(h), ""), grant_id, records)

    def _commit(self, chain_job_id: int, commitment: str) -> None:
        """Commit once: after a crash between storing and committing, the retry finds no commitment yet."""
        current = self.ledger.commitment_of(chain_job_id, self.me)
        if current == ZERO32:
            self.ledger.commit_contribution(chain_job_id, bytes.fromhex(commitment))
        elif current.hex() != commitment:
            raise AlreadyCommitted("this member committed another contribution to the job")

    def _stored(self, caller: str, chain_job_id: int, h: str) -> dict | None:
        stored = self.store.own_contribution(caller, chain_job_id)
        if stored is None:
            return None
        if stored["spec_hash"] != h:
            raise SpecMismatch("this member already answered the job for another spec")
        self._commit(chain_job_id, stored["commitment"])
        return stored

    # ------------------------------------------------------------------ horizontal

    def contribute_horizontal(self, caller: str, body: dict) -> dict:
        chain_job_id, public = body.get("chain_job_id"), body.get("spec")
        h = self.verify_job(caller, chain_job_id, public, "horizontal")
        with self._lock((caller, chain_job_id)):
            stored = self._stored(caller, chain_job_id, h)
            if stored is not None:
                return {**stored["payload"], "commitment": stored["commitment"]}
            if self.me not in public["participants"]:
                raise NotParticipant("this member is not in the spec's participants")
            try:
                grant_id, vector, outcome = horizontal_contribution(self.gate, caller, public, h)
                spec = horizontal_spec(public)
            except SpecError as exc:
                raise InvalidJobRequest(exc.one_line(), exc.reason) from None
            # the peers' masking keys come from the registry, like the requester's key fingerprint
            peers = {p: self.ledger.member(p).x25519_key for p in spec.participants if p != self.me}
            contribution = contribute(spec, self.me, self.x25519, peers, public_key_of(public), vector=vector)
            report = outcome.report()
            payload, commitment = {"contribution": contribution.to_dict(), "release": report}, contribution.commitment
            self.store.save_own_contribution(caller, chain_job_id, "horizontal", h, payload, commitment, outcome.records)
            self._commit(chain_job_id, commitment)
            self._log_access(caller, public, h, grant_id, outcome.records)
            return {"contribution": payload["contribution"], "release": report, "commitment": commitment}

    # ------------------------------------------------------------------ fraud

    def answer_fraud(self, caller: str, body: dict) -> dict:
        chain_job_id, public = body.get("chain_job_id"), body.get("spec")
        h = self.verify_job(caller, chain_job_id, public, "fraud")
        with self._lock((caller, chain_job_id)):
            stored = self._stored(caller, chain_job_id, h)
            if stored is not None:
                return {"answer": stored["payload"], "commitment": stored["commitment"]}
            grant_id, _ = fraud_admission(self.gate, caller, public, h)
            query = MembershipQuery.from_dict(body.get("query"))
            if query.query_id != public["job_id"] or len(query.points) != public["persons"]:
                raise BadQuery("the query does not match the job spec (id or number of persons)")
            members = local.fraud_set(self.engine, public)
            answer = answer_membership(query, self.me, members).to_dict()
            commitment = message_commitment(answer)
            self.store.save_own_contribution(caller, chain_job_id, "fraud", h, answer, commitment, len(members))
            self._commit(chain_job_id, commitment)
            self._log_access(caller, public, h, grant_id, len(members))
            return {"answer": answer, "commitment": commitment}

    # ------------------------------------------------------------------ vertical (the platform)

    def vertical_start(self, caller: str, body: dict) -> dict:
        chain_job_id, public = body.get("chain_job_id"), body.get("spec")
        h = self.verify_job(caller, chain_job_id, public, "vertical")
        with self._lock((caller, chain_job_id)):
            stored = self._stored(caller, chain_job_id, h)
            if stored is not None:  # already finished: the encrypted sums are all the insurer needs
                return {**stored["payload"], "commitment": stored["commitment"]}
            rows = local.platform_rows(self.engine, public)
            grant_id, outcome = vertical_admission(self.gate, caller, public, h, rows)
            # k on the matched persons of each bucket is the gate's k, not the job's (it may only be raised)
            owner = FeatureOwner(join_spec(public | {"min_cohort": outcome.min_cohort}), rows, pad_to=public.get("pad_to"))
            message = owner.blinded_buckets(self.executor(len(rows)))
            self._expire_sessions()
            self.sessions[(caller, chain_job_id)] = VerticalSession(public, h, grant_id, owner, len(rows), outcome.report())
            return {"buckets": message.to_dict(), "release": outcome.report()}

    def _session(self, caller: str, chain_job_id: int) -> VerticalSession:
        session = self.sessions.get((caller, chain_job_id))
        if session is None:
            raise NoSession("no vertical exchange in progress for this job; start it again")
        session.touched = time.monotonic()
        return session

    def _expire_sessions(self, idle_seconds: float = 3600) -> None:
        now = time.monotonic()
        for key, session in list(self.sessions.items()):
            if now - session.touched > idle_seconds:
                self.sessions.pop(key, None)

    def vertical_double_blinded(self, caller: str, chain_job_id: int, body: dict) -> dict:
        session = self._session(caller, chain_job_id)
        with session.lock:
            session.owner.load_double_blinded(DoubleBlindedBuckets.from_dict(body, session.owner.spec))
        return {"loaded": True}

    def vertical_labels(self, caller: str, chain_job_id: int, raw: bytes) -> dict:
        session = self._session(caller, chain_job_id)
        public_key = public_key_of(session.public)
        width = (public_key.nsquare.bit_length() + 7) // 8
        if not raw or len(raw) % (32 + width):
            raise MalformedMessage(f"a label batch is rows of 32-byte points and {width}-byte ciphertexts")
        count = len(raw) // (32 + width)
        points = [raw[i * 32:(i + 1) * 32] for i in range(count)]
        base = 32 * count
        ciphertexts = [int.from_bytes(raw[base + i * width: base + (i + 1) * width], "little") for i in range(count)]
        batch = EncryptedLabelBatch(session.owner.spec.job_id, public_key.fingerprint, points, ciphertexts)
        with session.lock:
            # the match count stays here: telling the insurer per batch would leak more than the final sums
            session.owner.accumulate(batch, public_key, self.executor(count * 4))
            session.batches += 1
        return {"received": count}

    def vertical_finish(self, caller: str, chain_job_id: int) -> dict:
        session = self._session(caller, chain_job_id)
        with self._lock((caller, chain_job_id)), session.lock:
            stored = self._stored(caller, chain_job_id, session.spec_hash)
            if stored is None:
                noise = None
                if "epsilon" in session.public:  # encrypted Laplace noise per released bucket (DESIGN flow 3)
                    spec = session.owner.spec
                    noise = {b: spec.laplace_noise_vector(session.public["epsilon"], session.public["value_bound"])
                             for b in spec.buckets}
                sums = session.owner.bucket_sums(noise=noise)
                matched = session.owner.matched_counts
                released = sum(n for b, n in matched.items() if b in sums.sums)
                report = session.release | {"suppressed": sums.suppressed, "records": released}
                payload = sums.to_dict()
                commitment = message_commitment(payload)
                self.store.save_own_contribution(caller, chain_job_id, "vertical", session.spec_hash,
                                                 {"sums": payload, "release": report}, commitment, released)
                self._commit(chain_job_id, commitment)
                self._log_access(caller, session.public, session.spec_hash, session.grant_id, released)
                stored = {"payload": {"sums": payload, "release": report}, "commitment": commitment}
            self.sessions.pop((caller, chain_job_id), None)
            return {**stored["payload"], "commitment": stored["commitment"]}
