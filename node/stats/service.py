"""The statistics service: this node's Paillier key on the registry, jobs it requests, answers it gives.

Requester side, one thread per job (state in the store, so a restart resumes it):
OPEN -> openJob on StatsLedger (spec hash, participants, key fingerprint, k, deadline) -> COLLECTING:
each participant is asked over the signed node API (endpoint and audience from the registry); every
answer is checked against the participant's commitment on chain before it is kept -> aggregate,
decrypt, check every bucket against the spec's declared bounds (``implausible_result`` fails the job),
release (the participants' own suppressions and k, already applied by each data owner's release gate,
applied again here as a second line) -> publishResult -> PUBLISHED. Minimum cohort, differencing and
the DP budget are enforced by each data owner (node/release_gate.py), never trusted to this side. A refusal fails the job at once with the participant's reason; a participant still
missing at the deadline fails it with ``deadline_missed``; either way the job is aborted on chain
once the deadline has passed, and ``rerun`` opens a new round without the missing participants.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import threading
import time
from typing import Any

from web3 import Web3

from node.chain.errors import ChainError, ContractRevert
from node.paillier_store import load_or_create
from node.stats import local
from node.stats.participant import PARALLEL_ROWS, Participant
from node.stats.peer import PeerClient, PeerError
from node.stats.spec import (
    MAX_BUCKETS,
    OVERFLOW,
    JobRequest,
    SpecError,
    canonical_json,
    complete,
    horizontal_spec,
    join_spec,
    message_commitment,
    parse_request,
    spec_hash,
)
from node.stats.store import COLLECTING, FAILED, OPEN, PUBLISHED, StatsStore
from privacy.aggregation import Aggregator, Contribution
from privacy.errors import PrivacyError
from privacy.fraud import FraudSignalQuery, MembershipAnswer
from privacy.join import BucketSums, LabelOwner, PlatformBuckets
from privacy import workers
from privacy.paillier import PrivateKey
from privacy.plausibility import Bounds, ImplausibleResult, check_buckets
from privacy.psi import Blinder
from privacy.release import BudgetAccountant, ReleasePolicy, release

log = logging.getLogger("consortium.stats")

ZERO32 = b"\x00" * 32
LABEL_BATCH_ROWS = 5000
# the most records one participant may claim to have used: a plausibility bound on counts it cannot raise at will
MAX_RECORDS = 100_000_000
JOB_PUBLISHED, JOB_ABORTED = 2, 3


class StatsService:
    def __init__(self, ctx: Any, passphrase: str | None, key_bits: int = 2048):
        self.ctx = ctx
        self.passphrase = passphrase
        self.key_bits = key_bits
        self.store = StatsStore(ctx.engine)
        self.participant = Participant(ctx, self.store, self.executor_for)
        self.key_ready = threading.Event()
        self.private_key: PrivateKey | None = None
        self.key_error: str | None = None
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._wake: dict[str, threading.Event] = {}
        self._budget_lock = threading.Lock()
        self._housekeeper: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        threading.Thread(target=self._prepare, name="stats-key", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for event in list(self._wake.values()):
            event.set()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)
        workers.shutdown(wait=False)  # and the workers exit by themselves if this process dies first

    def _prepare(self) -> None:
        """Load (or generate, first start only) the Paillier key, publish it, then resume unfinished jobs."""
        try:
            if not self.passphrase:
                raise SpecError("no passphrase to unlock the Paillier key", reason="key_not_ready",
                                hint="start the node with CONSORTIUM_PASSPHRASE set")
            self.private_key = load_or_create(self.ctx.settings.home, self.passphrase, bits=self.key_bits)
            self.publish_keys()
        except Exception as exc:  # the node still serves everything else; stats requests say why they wait
            self.key_error = f"{type(exc).__name__}: {exc}"
            log.error("statistics key not ready: %s", self.key_error)
            return
        self.key_ready.set()
        for job in self.store.jobs_in(OPEN, COLLECTING):
            log.info("resuming statistics job %s (%s)", job["id"], job["state"])
            self._launch(job["id"])
        self._housekeeper = threading.Thread(target=self._housekeeping, name="stats-housekeeping", daemon=True)
        self._housekeeper.start()

    def publish_keys(self) -> None:
        """Register this node's X25519 key and Paillier fingerprint on the registry if they differ."""
        record = self.ctx.ledger.member(self.ctx.address)
        x25519 = self.ctx.keys.x25519_public
        fingerprint = bytes.fromhex(self.private_key.public_key.fingerprint)
        if record.x25519_key != x25519 or record.paillier_fingerprint != fingerprint:
            self.ctx.ledger.rotate_keys(x25519, fingerprint)
            log.info("registered X25519 key and Paillier fingerprint %s", fingerprint.hex()[:16])

    def wait_key(self, timeout: float = 120.0) -> PrivateKey:
        if not self.key_ready.wait(timeout):
            raise SpecError(f"the node's Paillier key is not ready ({self.key_error or 'still generating'})",
                            reason="key_not_ready", hint="retry in a few seconds; see the node log")
        return self.private_key

    def chain_now(self) -> int:
        """The chain's clock: the timestamp the next block would get (deadlines are checked by the contract
        against block time, which can run ahead of this machine's clock, e.g. on a dev chain moved forward)."""
        try:
            return int(self.ctx.gateway.w3.eth.get_block("pending")["timestamp"])
        except Exception:  # a node without the pending block: the latest block, or the local clock if later
            try:
                return max(self.ctx.gateway.block_time(), int(time.time()))
            except Exception:
                return int(time.time())

    def executor_for(self, rows: int) -> concurrent.futures.Executor | None:
        """A process pool for the big steps (blinding, encryption); None for small jobs."""
        if rows < PARALLEL_ROWS:
            return None
        return workers.shared_pool()

    # ------------------------------------------------------------------ requests

    def _resolver(self):
        members = self.ctx.ledger.members()
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
        request = parse_request(data, self._resolver(), self.ctx.address)
        self._check_participants(request.participants)
        if request.kind == "vertical":
            self._check_population(request)
        public = complete(request, self.ctx.address, private_key.public_key)
        return self._create(request, public)

    def _check_population(self, request: JobRequest) -> None:
        """A claim rate needs a population: without policyholders every person would be a claimant (rate 1.0)."""
        from node.stats.local import policyholder_count

        if policyholder_count(self.ctx.engine, request.private.get("population_filters", {})) == 0:
            raise SpecError("this node holds no policyholders (policies dataset, after population_filters): persons would "
                            "equal claimants and every claim rate would be 1.0", reason="empty_population",
                            hint="import the policies dataset first (consortium data import policies FILE.csv)")

    def _check_participants(self, participants: list[str]) -> None:
        for p in participants:
            m = self.ctx.ledger.member(p)
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
            raise SpecError(f"no statistics job {job_id}", reason="unknown_job")
        if job["state"] != FAILED:
            raise SpecError(f"job {job_id} is {job['state']}; only a failed job is re-run", reason="not_failed")
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
            raise SpecError(f"no statistics job {job_id}", reason="unknown_job", hint="list jobs with GET /stats/jobs")
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
                job = self._open_on_chain(job)
            if job["state"] != COLLECTING:
                return
            if job["kind"] == "vertical":
                self._run_vertical(job)
            else:
                self._collect(job)
        except Exception as exc:  # a job never takes the node down; it fails with the reason
            log.exception("statistics job %s failed", job_id)
            reason = exc.name if isinstance(exc, ContractRevert) else getattr(exc, "reason", "internal_error")
            self._fail(job_id, reason, f"{type(exc).__name__}: {exc}", [])
        finally:
            self._threads.pop(job_id, None)

    def _open_on_chain(self, job: dict) -> dict:
        h = bytes.fromhex(job["spec_hash"])
        # resumed after a crash between openJob and storing its id: find the job by its spec hash
        opened = [e for e in self.ctx.gateway.events("StatsLedger", "JobOpened", filters={"specHash": h})
                  if e["args"]["requester"] == self.ctx.address]
        if opened:
            chain_job_id, deadline = opened[-1]["args"]["jobId"], opened[-1]["args"]["deadline"]
        else:
            deadline = self.chain_now() + job["deadline_seconds"]
            fingerprint = bytes.fromhex(job["public_spec"]["public_key"]["fingerprint"])
            chain_job_id = self.ctx.ledger.open_job(h, job["participants"], fingerprint, job["public_spec"]["min_cohort"], deadline)
        self.store.update_job(job["id"], chain_job_id=chain_job_id, deadline=deadline, state=COLLECTING)
        self.store.set_progress(job["id"], phase="collecting")
        return self.store.job(job["id"])

    def _fail(self, job_id: str, reason: str, message: str, missing: list[str]) -> None:
        with self.store.lock:
            job = self.store.job(job_id)
            if job is None or job["state"] in (PUBLISHED, FAILED):
                return
            self.store.update_job(job_id, state=FAILED, error_reason=reason, error_message=message, missing=sorted(missing))
            self.store.set_progress(job_id, phase="failed")
        log.warning("statistics job %s failed: %s (%s)", job_id, reason, message)

    def _client(self, participant: str, timeout: float = 120.0) -> PeerClient:
        member = self.ctx.ledger.member(participant)  # endpoint from the registry, never from a request
        return PeerClient(member.endpoint, self.ctx.keys.account, participant, self.ctx.gateway.chain_id, timeout,
                          max_bytes=self.ctx.settings.peer_answer_max_bytes)

    def answer_limit(self, job: dict, message: str, own_rows: int = 0) -> int:
        """The most bytes a peer's answer to ``message`` can need for this job, doubled, and never under the
        ``peer_answer_max_bytes`` setting: answers are ciphertexts and points whose number the spec fixes."""
        public = job["public_spec"]
        hex_ciphertext = 2 * ((int(public["key_bits"]) * 2 + 7) // 8) + 16
        if message == "contribute":
            need = horizontal_spec(public).layout.plaintext_count * hex_ciphertext
        elif message == "fraud":
            need = int(public["persons"]) * 2 * 70
        elif message == "vertical/finish":
            need = len(public["buckets"]) * (join_spec(public).layout.plaintext_count * hex_ciphertext + 200)
        else:  # vertical/start: the platform's blinded ids per bucket, 64 hex characters each
            padded = (public.get("pad_to") or 0) * len(public["buckets"])
            need = 70 * max(padded, 10 * own_rows, 1_000_000)
        return max(self.ctx.settings.peer_answer_max_bytes, 2 * need + 65536)

    def _onchain_commitment(self, chain_job_id: int, participant: str) -> str:
        stats = self.ctx.ledger.stats
        return bytes(self.ctx.gateway.call(stats.functions.commitmentOf(chain_job_id, Web3.to_checksum_address(participant)))).hex()

    # ------------------------------------------------------------------ horizontal and fraud: one answer each

    def _collect(self, job: dict) -> None:
        job_id, wake = job["id"], self._wake[job["id"]]
        refusals: dict[str, tuple[str, str]] = {}
        have = set(self.store.received_for(job_id))
        for p in job["participants"]:
            if p not in have:
                threading.Thread(target=self._ask, args=(job, p, refusals), daemon=True,
                                 name=f"stats-ask-{job_id[:6]}-{p[:8]}").start()
        while not self._stop.is_set():
            have = set(self.store.received_for(job_id))
            missing = [p for p in job["participants"] if p not in have]
            if not missing:
                self._finish(job_id)
                return
            if refusals:
                who, (reason, message) = sorted(refusals.items())[0]
                name = self.ctx.ledger.member(who).name
                # the ones to leave out of a re-run are the refusers; slower participants may still answer
                self._fail(job_id, reason, f"participant {name} ({who}) refused: {message}", sorted(refusals))
                return
            if self.chain_now() >= job["deadline"]:
                names = ", ".join(self.ctx.ledger.member(p).name or p for p in missing)
                self._fail(job_id, "deadline_missed", f"no contribution from {names} before the deadline; "
                                                      "re-run the job without them", missing)
                return
            wake.wait(0.5)
            wake.clear()

    def _ask(self, job: dict, participant: str, refusals: dict) -> None:
        public, chain_job_id = job["public_spec"], job["chain_job_id"]
        body: dict[str, Any] = {"chain_job_id": chain_job_id, "spec": public}
        path = "/stats/contribute"
        if job["kind"] == "fraud":
            path = "/stats/fraud"
            query = self._fraud_query(job)
            body["query"] = query.query().to_dict()
        backoff = 0.5
        client = None
        while not self._stop.is_set() and self.chain_now() < job["deadline"]:
            try:
                client = client or self._client(participant)
                answer = client.post_json(path, body, max_bytes=self.answer_limit(job, path.rsplit("/", 1)[-1]))
                payload = answer["contribution" if job["kind"] == "horizontal" else "answer"]
                self._accept(job, participant, payload)
                if job["kind"] == "horizontal":
                    self.store.set_participant_release(job["id"], participant, _release_report(answer.get("release")))
                self.store.set_participant_status(job["id"], participant, "contributed")
                break
            except PeerError as exc:
                if exc.definitive:
                    refusals[participant] = (exc.reason, str(exc))
                    self.store.set_participant_status(job["id"], participant, f"refused: {exc.reason}")
                    break
                self.store.set_participant_status(job["id"], participant, f"retrying: {exc.reason}")
            except (PrivacyError, SpecError, KeyError, TypeError, ValueError) as exc:
                reason = getattr(exc, "reason", "bad_contribution")
                refusals[participant] = (reason, f"invalid contribution: {exc}")
                self.store.set_participant_status(job["id"], participant, f"invalid: {reason}")
                break
            except ChainError as exc:
                self.store.set_participant_status(job["id"], participant, f"retrying: {exc.reason}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        if client is not None:
            client.close()
        self._wake[job["id"]].set()

    def _accept(self, job: dict, participant: str, payload: dict) -> None:
        """Keep an answer only if it is well formed and is exactly what the participant committed on chain."""
        public, private_key = job["public_spec"], self.private_key
        if job["kind"] == "horizontal":
            contribution = Contribution.from_dict(payload, horizontal_spec(public), private_key.public_key)
            if contribution.participant != participant:
                raise SpecError("contribution names another participant", reason="bad_contribution")
            commitment = contribution.commitment
        else:
            answer = MembershipAnswer.from_dict(payload)
            if answer.member != participant or answer.query_id != public["job_id"] or len(answer.double_blinded) != public["persons"]:
                raise SpecError("fraud answer does not match the query", reason="bad_contribution")
            commitment = message_commitment(payload)
        if self._onchain_commitment(job["chain_job_id"], participant) != commitment:
            raise SpecError("answer differs from the participant's commitment on chain", reason="commitment_mismatch")
        self.store.add_received(job["id"], participant, payload, commitment)

    def _fraud_query(self, job: dict) -> FraudSignalQuery:
        private = job["private_spec"]
        return FraudSignalQuery(private["persons"], query_id=job["public_spec"]["job_id"],
                                blinder=Blinder.from_secret(bytes.fromhex(private["blinder"])))

    # ------------------------------------------------------------------ vertical: a multi-message exchange

    def _run_vertical(self, job: dict) -> None:
        public, platform, chain_job_id = job["public_spec"], job["participants"][0], job["chain_job_id"]
        spec, key = join_spec(public), self.private_key
        rows = local.insurer_rows(self.ctx.engine, job["private_spec"])
        self.store.set_progress(job["id"], label_rows=len(rows))  # the plausibility bound on persons per bucket
        label_owner = LabelOwner(spec, key, rows)
        backoff = 0.5
        while not self._stop.is_set():
            if self.chain_now() >= job["deadline"]:
                name = self.ctx.ledger.member(platform).name
                self._fail(job["id"], "deadline_missed", f"no answer from {name} before the deadline", [platform])
                return
            try:
                sums = self._exchange(job, platform, label_owner, len(rows))
                break
            except PeerError as exc:
                if exc.definitive:
                    name = self.ctx.ledger.member(platform).name
                    self.store.set_participant_status(job["id"], platform, f"refused: {exc.reason}")
                    self._fail(job["id"], exc.reason, f"participant {name} ({platform}) refused: {exc}", [platform])
                    return
                self.store.set_participant_status(job["id"], platform, f"retrying: {exc.reason}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            return
        commitment = message_commitment(sums)
        if self._onchain_commitment(chain_job_id, platform) != commitment:
            self._fail(job["id"], "commitment_mismatch", "the bucket sums differ from the platform's commitment on chain", [platform])
            return
        self.store.add_received(job["id"], platform, sums, commitment)
        self.store.set_participant_status(job["id"], platform, "contributed")
        self._finish(job["id"])

    def _exchange(self, job: dict, platform: str, label_owner: LabelOwner, rows: int) -> dict:
        chain_job_id = job["chain_job_id"]
        executor = self.executor_for(rows)
        with self._client(platform, timeout=900.0) as client:
            self.store.set_progress(job["id"], phase="platform blinding")
            first = client.post_json("/stats/vertical/start", {"chain_job_id": chain_job_id, "spec": job["public_spec"]},
                                     max_bytes=self.answer_limit(job, "vertical/start", rows))
            if "sums" in first:
                self.store.set_participant_release(job["id"], platform, _release_report(first.get("release")))
                return first["sums"]
            self.store.set_progress(job["id"], phase="double blinding")
            buckets = PlatformBuckets.from_dict(first["buckets"], label_owner.spec)
            double = label_owner.double_blind(buckets, self.executor_for(sum(len(v) for v in buckets.buckets.values())))
            del buckets, first
            client.post_json(f"/stats/vertical/double?job={chain_job_id}", double.to_dict())
            del double
            total = -(-rows // LABEL_BATCH_ROWS)
            self.store.set_progress(job["id"], phase="sending encrypted labels", batches=0, batches_total=total)
            width = (self.private_key.public_key.nsquare.bit_length() + 7) // 8
            sent, last_report = 0, time.monotonic()
            for batch in label_owner.label_batches(LABEL_BATCH_ROWS, executor):
                raw = b"".join(batch.points) + b"".join(c.to_bytes(width, "little") for c in batch.ciphertexts)
                client.post_bytes(f"/stats/vertical/labels?job={chain_job_id}", raw)
                sent += 1
                if time.monotonic() - last_report > 1.0 or sent == total:
                    self.store.set_progress(job["id"], batches=sent)
                    last_report = time.monotonic()
            self.store.set_progress(job["id"], phase="platform summing")
            finished = client.post_json(f"/stats/vertical/finish?job={chain_job_id}", {},
                                        max_bytes=self.answer_limit(job, "vertical/finish"))
            self.store.set_participant_release(job["id"], platform, _release_report(finished.get("release")))
            return finished["sums"]

    # ------------------------------------------------------------------ finishing

    def _finish(self, job_id: str) -> None:
        job = self.store.job(job_id)
        public = job["public_spec"]
        received = self.store.received_for(job_id)
        self.store.set_progress(job_id, phase="aggregating")
        try:
            if job["kind"] == "horizontal":
                result = self._release_horizontal(job, received)
            elif job["kind"] == "vertical":
                result = self._release_vertical(job, received)
            else:
                query = self._fraud_query(job)
                counts = query.count_matches([MembershipAnswer.from_dict(received[p]) for p in job["participants"]])
                result = {"kind": "fraud", "check": public["check"], "members_asked": len(job["participants"]),
                          "persons": counts, "flagged": sum(1 for c in counts.values() if c > 0),
                          "columns": ["person", "members"], "rows": [[p, c] for p, c in counts.items()]}
        except PrivacyError as exc:
            self._fail(job_id, exc.reason, str(exc), [])
            return
        result |= {"job_id": job_id, "chain_job_id": job["chain_job_id"], "spec_hash": job["spec_hash"],
                   "participants": job["participants"]}
        result_hash = hashlib.sha256(b"consortium/stats-result/v1|" + canonical_json(result)).hexdigest()
        self.store.update_job(job_id, result=result, result_hash=result_hash)
        try:
            self.ctx.ledger.publish_result(job["chain_job_id"], bytes.fromhex(result_hash))
        except ContractRevert as exc:
            on_chain = self.ctx.ledger.get_job(job["chain_job_id"])
            if not (on_chain["state"] == JOB_PUBLISHED and on_chain["result_hash"].hex() == result_hash):
                raise  # anything but "already published by our previous run" fails the job
            log.info("job %s was already published (%s)", job_id, exc.name)
        self.store.update_job(job_id, state=PUBLISHED)
        self.store.set_progress(job_id, phase="published")

    def _owner_releases(self, job: dict) -> dict[str, dict]:
        return dict((self.store.job(job["id"])["progress"] or {}).get("releases", {}))

    def _release(self, job: dict, exact: dict[str, dict], min_cohort: int, withheld: set[str]) -> Any:
        """Second line behind the owners' gates: drop what any owner suppressed and anything under k; no noise here
        (each owner added its own), so nothing is charged on this side either."""
        kept = {b: s for b, s in exact.items() if b not in withheld}
        released = release(job["id"], self.ctx.address, job["public_spec"]["dataset"], kept,
                           ReleasePolicy(min_cohort=min_cohort), BudgetAccountant(default_limit=0.0))
        return released, sorted(set(released.suppressed) | (withheld & set(exact)))

    def _release_horizontal(self, job: dict, received: dict) -> dict:
        public = job["public_spec"]
        aggregator = Aggregator(horizontal_spec(public), self.private_key)
        for participant in job["participants"]:
            aggregator.add(received[participant])
        exact = {b: s.to_dict() for b, s in aggregator.finish().items()}
        owners = self._owner_releases(job)
        epsilon = float(public.get("epsilon") or 0.0)
        lo, hi = public.get("value_range") or (None, None)
        slack = None
        if epsilon:  # each owner's Laplace noise may move a statistic; 40 scales per owner is a miss of e^-40
            per_stat = epsilon / len(public["statistics"])
            bound = max(abs(lo or 0.0), abs(hi or 0.0))
            n = len(job["participants"])
            slack = {"count": 40 * n / per_stat, "sum": 40 * n * bound / per_stat,
                     "sum_of_squares": 40 * n * bound * bound / per_stat}
        records = sum(int(r.get("records", 0)) for r in owners.values())
        check_buckets(exact, Bounds(max_count=records, lo=lo, hi=hi, slack=slack))
        k = max([public["min_cohort"], *(int(r.get("min_cohort", 0)) for r in owners.values())])
        withheld = {b for r in owners.values() for b in r.get("suppressed", [])}
        released, suppressed = self._release(job, exact, 1 if epsilon else k, withheld)
        columns = ["bucket", "count"] + (["sum", "mean"] if "sum" in public["statistics"] else []) + \
                  (["variance", "stddev"] if "sum_of_squares" in public["statistics"] else [])
        buckets = {}
        for bucket, stats in released.buckets.items():
            if epsilon:  # derived statistics recomputed from the noisy ones
                stats = _derive(stats)
            buckets[bucket] = {k_: stats.get(k_) for k_ in columns[1:]}
        return {"kind": "horizontal", "dataset": public["dataset"], "value": public.get("value"), "columns": columns,
                "buckets": buckets, "rows": [[b, *(v[c] for c in columns[1:])] for b, v in buckets.items()],
                "suppressed": suppressed, "totals": released.totals, "epsilon": epsilon,
                "min_cohort": k, "min_cohort_requested": public["min_cohort"], "min_cohort_raised": k > public["min_cohort"],
                "overflow_bucket": OVERFLOW, "value_range": public.get("value_range"),
                "noise": "laplace, added by each data owner" if epsilon else None,
                "owners": {p: _release_report(owners.get(p)) for p in job["participants"]}}

    def _release_vertical(self, job: dict, received: dict) -> dict:
        public = job["public_spec"]
        platform = job["participants"][0]
        owner = self._owner_releases(job).get(platform, {})
        k = max(public["min_cohort"], int(owner.get("min_cohort", 0)))
        epsilon = float(public.get("epsilon") or 0.0)
        # the platform suppressed under its k on exact counts before summing; decrypt drops anything under k again
        # (with noise the counts are no longer exact: only the platform's decision counts)
        spec = join_spec(public | {"min_cohort": 1 if epsilon else k})
        sums = BucketSums.from_dict(received[platform], spec, self.private_key.public_key)
        exact = {b: r.to_dict() for b, r in LabelOwner(spec, self.private_key, []).decrypt(sums).items()}
        own_rows = int(self.store.job(job["id"])["progress"].get("label_rows", 0))
        _check_vertical(exact, own_rows, epsilon, public)
        withheld = set(sums.suppressed) | {b for b in public["buckets"] if b not in exact}
        exact |= {b: {"count": 0} for b in public["buckets"] if b not in exact}  # reported as suppressed
        released, suppressed = self._release(job, exact, 1 if epsilon else k, withheld)
        columns = ["bucket", "persons", "claimants", "claim_rate", "claim_amount", "average_claim"]
        buckets = {b: {"persons": s["count"], "claimants": s["claimed"], "claim_rate": s["claim_rate"],
                       "claim_amount": s["amount"], "average_claim": s["average_loss"]} for b, s in released.buckets.items()}
        return {"kind": "vertical", "columns": columns, "buckets": buckets,
                "rows": [[b, *(v[c] for c in columns[1:])] for b, v in buckets.items()],
                "suppressed": suppressed, "totals": released.totals, "epsilon": public.get("epsilon", 0.0),
                "min_cohort": k, "min_cohort_requested": public["min_cohort"], "min_cohort_raised": k > public["min_cohort"],
                "overflow_bucket": OVERFLOW, "semantics": public.get("semantics"), "label_owner": public.get("label_owner"),
                "owners": {platform: _release_report(owner)}}

    # ------------------------------------------------------------------ housekeeping

    def _housekeeping(self) -> None:
        """Abort failed jobs on chain once their deadline has passed (the contract refuses earlier)."""
        while not self._stop.wait(2.0):
            for job in self.store.jobs_in(FAILED):
                if job["chain_aborted"] or not job["chain_job_id"] or self.chain_now() < (job["deadline"] or 0) + 1:
                    continue
                try:
                    state = self.ctx.ledger.get_job(job["chain_job_id"])["state"]
                    if state == 1:
                        self.ctx.ledger.abort_job(job["chain_job_id"])
                    self.store.update_job(job["id"], chain_aborted=True)
                except ContractRevert as exc:
                    if exc.name != "DeadlineNotPassed":
                        self.store.update_job(job["id"], chain_aborted=True)
                except ChainError as exc:
                    log.warning("abort of job %s postponed: %s", job["id"], exc.one_line())


def _release_report(raw: Any) -> dict:
    """A participant's release report, kept only in the fields the requester uses (a peer's extra keys are dropped)."""
    raw = raw if isinstance(raw, dict) else {}
    out = {"min_cohort": raw.get("min_cohort"), "min_cohort_raised": bool(raw.get("min_cohort_raised")),
           "suppressed": [b for b in raw.get("suppressed", []) if isinstance(b, str)][:MAX_BUCKETS],
           "records": min(raw["records"], MAX_RECORDS) if isinstance(raw.get("records"), int) and raw["records"] >= 0 else 0}
    if not isinstance(out["min_cohort"], int) or out["min_cohort"] < 1:
        out["min_cohort"] = 1
    return out


def _check_vertical(exact: dict[str, dict], own_rows: int, epsilon: float, public: dict) -> None:
    """Plausibility of vertical sums: persons at most the label owner's own rows, claimants at most persons, and
    claim amounts within the schema's money range per claim (the platform adds nothing but its noise)."""
    if epsilon:  # the platform's noise may move every slot; the bounds then hold only loosely
        bound = float(public.get("value_bound") or 0.0)
        slack = {"count": 40 * 4 / epsilon, "claimed": 40 * 4 / epsilon, "amount": 40 * 4 * bound / epsilon}
    else:
        slack = {"count": 0.0, "claimed": 0.0, "amount": 0.0}
    for bucket, s in exact.items():
        count, claimed, amount = s["count"], s["claimed"], s["amount"]
        if not -slack["count"] <= count <= own_rows + slack["count"]:
            raise ImplausibleResult(f"bucket {bucket!r}: {count} persons, but this member holds {own_rows}")
        if not -slack["claimed"] <= claimed <= count + slack["count"] + slack["claimed"]:
            raise ImplausibleResult(f"bucket {bucket!r}: {claimed} claimants among {count} persons")
        if amount < -slack["amount"]:
            raise ImplausibleResult(f"bucket {bucket!r}: negative claim amount {amount}")


def _derive(stats: dict) -> dict:
    out = dict(stats)
    count = out.get("count") or 0
    if out.get("sum") is not None and count > 0:
        out["mean"] = out["sum"] / count
    if out.get("sum_of_squares") is not None and count > 0:
        out["variance"] = max(0.0, out["sum_of_squares"] / count - (out["sum"] / count) ** 2)
        out["stddev"] = out["variance"] ** 0.5
    return out


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
