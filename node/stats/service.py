"""The statistics service: this node's Paillier key on the registry, jobs it requests, answers it gives.

Requester side, one thread per job (state in the store, so a restart resumes it):
OPEN -> openJob on StatsLedger (spec hash, participants, key fingerprint, k, deadline) -> COLLECTING:
each participant is asked over the signed node API (endpoint and audience from the registry); every
answer is checked against the participant's commitment on chain before it is kept -> aggregate,
decrypt, check every bucket against the spec's declared bounds (``implausible_result`` fails the job),
release (the participants' own suppressions and k, already applied by each data owner's release gate,
applied again here as a second line) -> publishResult -> PUBLISHED. Minimum cohort, differencing and
the DP budget are enforced by each data owner (node/access/release_gate.py), never trusted to this side. A refusal fails the job at once with the participant's reason; a participant still
missing at the deadline fails it with ``deadline_missed``; either way the job is aborted on chain
once the deadline has passed, and ``rerun`` opens a new round without the missing participants.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.engine import Engine

from node.access.release_gate import ReleaseGate
from node.chain.errors import ContractRevert
from node.chain.ledger import Ledger
from node.enums import ZERO32
from node.stats.collect import FraudRunner, HorizontalRunner
from node.stats.errors import NotFailed, UnknownJob
from node.stats.housekeeping import Housekeeper
from node.stats.jobs import ChainClock, RunnerDeps, executor_for, fail_job, open_on_chain
from node.stats.keys import StatsKey
from node.stats.participant import Participant
from node.stats.peer import Peers
from node.stats.release import ReleaseStep
from node.stats.spec import JobRequest, SpecError, complete, horizontal_spec, join_spec, parse_request, spec_hash
from node.stats.store import COLLECTING, FAILED, OPEN, PUBLISHED, StatsStore
from node.stats.vertical import VerticalRunner
from privacy import workers
from privacy.errors import PrivacyError
from privacy.paillier import PrivateKey
from privacy.psi import Blinder

log = logging.getLogger("consortium.stats")


class StatsService:
    """Jobs this node requests (one thread each, a runner per kind, then the release step) and, through
    ``participant``, the answers it gives. Built from explicit parts: see :meth:`for_node`."""

    def __init__(self, store: StatsStore, ledger: Ledger, engine: Engine, key: StatsKey, deps: RunnerDeps,
                 participant: Participant):
        self.store = store
        self.ledger = ledger
        self.engine = engine
        self.key = key
        self.deps = deps
        self.participant = participant
        self.runners = {"horizontal": HorizontalRunner(deps), "fraud": FraudRunner(deps),
                        "vertical": VerticalRunner(deps, engine)}
        self.release = ReleaseStep(store, ledger, key)
        self.housekeeper = Housekeeper(store, ledger, deps.clock, deps.stop)
        self._threads: dict[str, threading.Thread] = {}
        self._wake: dict[str, threading.Event] = {}

    @classmethod
    def for_node(cls, *, ledger: Ledger, engine: Engine, home: Path, passphrase: str | None, x25519: X25519PrivateKey,
                 x25519_public: bytes, gate: ReleaseGate, peer_answer_max_bytes: int, key_bits: int = 2048) -> "StatsService":
        store = StatsStore(engine)
        key = StatsKey(home, passphrase, ledger, x25519_public, bits=key_bits)
        deps = RunnerDeps(store, ledger, key, ChainClock(ledger.gateway),
                          Peers(ledger, ledger.gateway.chain_id, peer_answer_max_bytes), threading.Event())
        participant = Participant(ledger.address, ledger, x25519, gate, engine, store, executor_for)
        return cls(store, ledger, engine, key, deps, participant)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        threading.Thread(target=self._prepare, name="stats-key", daemon=True).start()

    def stop(self) -> None:
        self.deps.stop.set()
        for event in list(self._wake.values()):
            event.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)
        workers.shutdown(wait=False)  # and the workers exit by themselves if this process dies first

    def _prepare(self) -> None:
        """Unlock and register the Paillier key, then resume unfinished jobs and start the housekeeping."""
        if not self.key.prepare(self.deps.stop):
            return
        for job in self.store.jobs_in(OPEN, COLLECTING):
            log.info("resuming statistics job %s (%s)", job["id"], job["state"])
            self._launch(job["id"])
        self.housekeeper.start()

    def wait_key(self, timeout: float = 120.0) -> PrivateKey:
        return self.key.wait(timeout)

    @property
    def key_ready(self) -> threading.Event:  # read by the readiness check (node/api/health.py)
        return self.key.ready

    @property
    def key_error(self) -> str | None:
        return self.key.error

    @property
    def key_retrying(self) -> bool:  # key_error is about registering on chain, which is being retried
        return self.key.retrying

    # ------------------------------------------------------------------ requests

    def _resolver(self):
        members = self.ledger.members()
        by_name = {m.name: m.address for m in members}
        by_address = {m.address.lower(): m.address for m in members}

        def resolve(who: str) -> str:
            found = by_address.get(who.lower()) or by_name.get(who)
            if not found:
                raise SpecError(f"unknown member {who!r}", reason="unknown_member",
                                hint="name members by their registered name or address (consortium members)")
            return found

        return resolve

    def submit(self, data: Any) -> dict:
        private_key = self.wait_key()
        request = parse_request(data, self._resolver(), self.ledger.address)
        self._check_participants(request.participants)
        if request.kind == "vertical":
            self._check_population(request)
        public = complete(request, self.ledger.address, private_key.public_key)
        return self._create(request, public)

    def _check_population(self, request: JobRequest) -> None:
        """A claim rate needs a population: without policyholders every person would be a claimant (rate 1.0)."""
        from node.stats.local import policyholder_count

        if policyholder_count(self.engine, request.private.get("population_filters", {})) == 0:
            raise SpecError("this node holds no policyholders (policies dataset, after population_filters): persons would "
                            "equal claimants and every claim rate would be 1.0", reason="empty_population",
                            hint="import the policies dataset first (consortium data import policies FILE.csv)")

    def _check_participants(self, participants: list[str]) -> None:
        for p in participants:
            m = self.ledger.member(p)
            if not m.in_good_standing:
                raise SpecError(f"participant {m.name or p} is not in good standing", reason="participant_not_in_good_standing")
            if not m.endpoint:
                raise SpecError(f"participant {m.name or p} registered no node endpoint", reason="participant_no_endpoint",
                                hint="the member must set its endpoint on the registry")
            if m.x25519_key == ZERO32:
                raise SpecError(f"participant {m.name or p} registered no X25519 key", reason="participant_no_key",
                                hint="the member's node registers it when it starts")

    def _create(self, request: JobRequest, public: dict, rerun_of: str | None = None) -> dict:
        try:  # the privacy layer checks the layout (sizes, widths) before anything goes on chain
            horizontal_spec(public) if request.kind == "horizontal" else join_spec(public) if request.kind == "vertical" else None
        except PrivacyError as exc:
            raise SpecError(f"job spec refused: {exc}", reason=exc.reason) from None
        private = dict(request.private)
        if request.kind == "fraud":
            private["blinder"] = Blinder().secret().hex()  # one scalar per job, kept so a resumed job asks the same
        job_id = public["job_id"] + (f"-r{public['round']}" if public["round"] else "")
        self.store.insert_job(id=job_id, kind=request.kind, name=request.name, state=OPEN, public_spec=public,
                              private_spec=private, spec_hash=spec_hash(public), participants=request.participants,
                              deadline_seconds=request.deadline_seconds, rerun_of=rerun_of,
                              progress={"phase": "opening", "participants": {p: "pending" for p in request.participants}})
        self._launch(job_id)
        return self.view(job_id)

    def rerun(self, job_id: str) -> dict:
        self.wait_key()
        job = self.store.job(job_id)
        if job is None:
            raise UnknownJob(f"no statistics job {job_id}")
        if job["state"] != FAILED:
            raise NotFailed(f"job {job_id} is {job['state']}; only a failed job is re-run")
        missing = set(job["missing"] or [])
        remaining = [p for p in job["participants"] if p not in missing] or list(job["participants"])
        if job["kind"] == "horizontal" and len(remaining) < 2:
            raise SpecError("fewer than two participants would remain", reason="missing_participant",
                            hint="open a new job with other participants")
        public = dict(job["public_spec"])
        public |= {"participants": sorted(remaining), "round": public["round"] + 1}
        private = {k: v for k, v in job["private_spec"].items() if k != "blinder"}  # a fraud re-run blinds afresh
        request = JobRequest(job["kind"], public, private, sorted(remaining), job["deadline_seconds"], job["name"])
        return self._create(request, public, rerun_of=job_id)

    def view(self, job_id: str) -> dict:
        job = self.store.job(job_id)
        if job is None:
            raise UnknownJob(f"no statistics job {job_id}", hint="list jobs with GET /stats/jobs")
        return public_view(job)

    def list(self) -> list[dict]:
        return [public_view(j) for j in self.store.list_jobs()]

    # ------------------------------------------------------------------ job threads

    def _launch(self, job_id: str) -> None:
        self._wake[job_id] = threading.Event()
        thread = threading.Thread(target=self._run, args=(job_id,), name=f"stats-job-{job_id[:8]}", daemon=True)
        self._threads[job_id] = thread
        thread.start()

    def _run(self, job_id: str) -> None:
        try:
            job = self.store.job(job_id)
            if job["state"] == OPEN:
                job = open_on_chain(self.deps, job)
            if job["state"] != COLLECTING:
                return
            if self.runners[job["kind"]].run(job, self._wake[job_id]):
                self.release.finish(job_id)
        except Exception as exc:  # a job never takes the node down; it fails with the reason
            log.exception("statistics job %s failed", job_id)
            reason = exc.name if isinstance(exc, ContractRevert) else getattr(exc, "reason", "internal_error")
            fail_job(self.store, job_id, reason, f"{type(exc).__name__}: {exc}", [])
        finally:
            self._threads.pop(job_id, None)


def public_view(job: dict) -> dict:
    """A job as the API shows it (the private part of the spec, e.g. fraud persons, stays in the store)."""
    return {
        "id": job["id"], "kind": job["kind"], "name": job["name"], "state": job["state"],
        "chain_job_id": job["chain_job_id"], "spec_hash": job["spec_hash"], "participants": job["participants"],
        "deadline": job["deadline"], "chain_aborted": bool(job["chain_aborted"]), "progress": job["progress"],
        "error": {"reason": job["error_reason"], "message": job["error_message"], "missing": job["missing"] or []}
        if job["state"] == FAILED else None,
        "result": job["result"] if job["state"] == PUBLISHED else None, "result_hash": job["result_hash"],
        "rerun_of": job["rerun_of"], "created_at": job["created_at"], "updated_at": job["updated_at"],
        "spec": job["public_spec"] | {"public_key": {"fingerprint": job["public_spec"]["public_key"]["fingerprint"]}},
    }


def result_csv(result: dict) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result["columns"])
    writer.writerows(result["rows"])
    return out.getvalue()
