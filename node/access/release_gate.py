"""The release gate: the one place that decides what data leaves this member's node.

Every answer with data in it passes here -- ``POST /data/query``, a horizontal contribution, the
platform's vertical bucket sums, a fraud-signal answer -- and nothing else in the node releases data.
The requester is never trusted with any of these rules: it is the party they protect against.

Rules, in the order they are applied (DESIGN.md "Release policy"):

1. **Grant.** A grant on chain from this member to the requester for the dataset and purpose (deny
   by default, ``node.access.enforcement``). Refusals are logged on chain as denials.
2. **Scope.** Aggregates only; key and direct-identifier columns (declared per dataset schema) are
   never grouped on or filtered on (``identifier_column``); filter values outside a declared domain
   are refused (``unknown_value``) -- enforced by the spec parsers this gate calls.
3. **Who contributes.** Horizontal: the requester is not one of the contributors and at least two
   other contributors are named (``too_few_contributors``), so no answer is one member's alone.
   Vertical: the requester computes its own labels only (``not_label_owner``).
4. **Minimum cohort on distinct persons.** k = max(this node's floor ``release_min_cohort``, the job's
   k). A bucket with fewer than k distinct persons is suppressed here, before it is encrypted or
   answered; the answer reports k, whether it was raised, and the suppressed buckets.
5. **Differencing.** Each release's footprint (persons per released bucket) is kept per requester and
   dataset; a release with a bucket differing from an earlier one by 1 .. k-1 persons is refused
   (``differencing``, privacy.differencing).
6. **Differential privacy.** A job asking for epsilon is charged to this node's budget for the
   requester and dataset (``release_epsilon_budget``) and the noise is added here, by the owner.
7. **Logged.** The access goes on chain with the number of records in released buckets only (the
   count of a suppressed bucket must not leak through the public access log either).
"""
from __future__ import annotations

import bisect
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NoReturn

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, Text, and_, bindparam, select, update
from sqlalchemy.engine import Engine

from node.access.log import LogRecord
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason
from node.store.db import migrate, write_lock
from node.store.prepared import for_engine
from privacy.differencing import Footprint, find_conflict
from privacy.release import effective_min_cohort, laplace_noise

SCHEMA_VERSION = 1
metadata = MetaData()

history = Table(
    "release_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requester", String(42), nullable=False, index=True),
    Column("dataset", String(64), nullable=False),
    Column("ref", String(128), nullable=False),  # what was released: "query:<hash>" or "job:<chain id>"
    Column("buckets", Text, nullable=False),  # JSON [[bucket, persons], ...] in the order of ``digests``
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of the whole footprint: a repeat is stored once
    Column("digests", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)
budget = Table(
    "release_budget", metadata,
    Column("requester", String(42), primary_key=True),
    Column("dataset", String(64), primary_key=True),
    Column("spent", Float, nullable=False),
)


class ReleaseRefusal(Exception):
    """The gate refuses: HTTP ``status`` with a machine-readable ``reason`` (already logged on chain)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class Release:
    """What the gate lets out of one answer, and what it tells the requester about it."""

    min_cohort: int
    requested_min_cohort: int
    released: list[str]
    suppressed: list[str]
    records: int  # records in released buckets: what the access log says was used
    epsilon: float = 0.0
    extra: dict = field(default_factory=dict)

    def report(self) -> dict:
        return {"min_cohort": self.min_cohort, "min_cohort_raised": self.min_cohort > self.requested_min_cohort,
                "suppressed": self.suppressed, "records": self.records, "epsilon": self.epsilon, **self.extra}


@dataclass(frozen=True)
class Request:
    """Who asks, for which dataset and purpose, and the hash logged on chain with the access or denial."""

    requester: str
    dataset: str
    purpose: Purpose
    query_hash: bytes
    ref: str


class ReleaseGate:
    def __init__(self, engine: Engine, enforcer: Any, access_log: Any, *, floor: int = 10, epsilon_budget: float = 1.0,
                 history_compared: int = 500):
        self.engine = engine
        self.enforcer = enforcer
        self.access_log = access_log
        self.floor = floor
        self.epsilon_budget = epsilon_budget
        self.history_compared = history_compared
        self._lock = threading.Lock()  # one release decision at a time: history and budget read-check-write
        migrate(engine, "release_gate", metadata, SCHEMA_VERSION)

    # ------------------------------------------------------------------ refusals and logs

    def refuse(self, req: Request, code: DenialReason, reason: str, message: str, status: int = 403) -> NoReturn:
        # the denial carries the requester's signed request (its digest on chain), the regulator's proof that it asked
        self.access_log.deny(req.requester, dataset_id(req.dataset), req.purpose, code)
        raise ReleaseRefusal(status, reason, message)

    def log_access(self, req: Request, grant_id: int, records: int) -> None:
        self.access_log.append(LogRecord("access", req.requester, dataset_id(req.dataset), int(req.purpose), req.query_hash,
                                         grant_id=grant_id, rows=records))

    # ------------------------------------------------------------------ rules 1 and 3

    def authorize(self, req: Request, arrived: float | None = None) -> int:
        """Rule 1: the grant on chain; returns its id."""
        decision = self.enforcer.decide(req.requester, req.dataset, req.purpose, arrived)
        if not decision.allowed:
            self.refuse(req, decision.reason, decision.reason.name.lower(), decision.message)
        return decision.grant_id

    def check_contributors(self, req: Request, participants: Iterable[str]) -> None:
        """Rule 3, horizontal: two or more contributors besides the requester, never the requester itself."""
        others = [p for p in participants if p.lower() != req.requester.lower()]
        if len(others) != len(list(participants)):
            self.refuse(req, DenialReason.TOO_FEW_CONTRIBUTORS, "requester_is_participant",
                        "the requester is named as a contributor of its own job: its own share would unmask the others'")
        if len(others) < 2:
            self.refuse(req, DenialReason.TOO_FEW_CONTRIBUTORS, "too_few_contributors",
                        f"{len(others)} contributor(s) besides the requester; this member answers only with at least two, "
                        "so that no answer is one member's alone")

    def check_label_owner(self, req: Request, public: Mapping) -> None:
        """Rule 3, vertical: the labels joined are the requester's own."""
        if str(public.get("label_owner", "")).lower() != req.requester.lower():
            self.refuse(req, DenialReason.NOT_LABEL_OWNER, "not_label_owner",
                        "a vertical job joins the requester's own labels; this spec names another label owner")

    # ------------------------------------------------------------------ rules 4 to 6

    def min_cohort(self, job_min_cohort: int) -> int:
        return effective_min_cohort(self.floor, int(job_min_cohort))

    def release(self, req: Request, persons: Mapping[str, Iterable[str]], job_min_cohort: int,
                records: Mapping[str, int] | None = None, epsilon: float = 0.0) -> Release:
        """Rules 4-6 on one answer: suppress buckets under k distinct persons, refuse differencing, charge epsilon.

        ``persons``: every bucket of the answer with the persons in it. ``records``: records per bucket (default:
        persons). The footprint of the released buckets is recorded before the caller sends anything.
        """
        k = self.min_cohort(job_min_cohort)
        footprint = Footprint.from_persons(persons)
        sizes = footprint.sizes()
        released = [b for b in footprint.buckets if sizes[b] >= k]
        suppressed = [b for b in footprint.buckets if sizes[b] < k]
        kept = Footprint({b: footprint.buckets[b] for b in released})
        fingerprint = _fingerprint(kept) if kept.buckets else ""
        with self._lock:
            # an answer with no released bucket can differ from nothing: no history to read
            earlier, repeat = self._history(req, kept, k, fingerprint) if kept.buckets else ([], False)
            conflict = find_conflict(kept, earlier, k) if earlier else None
            if conflict is not None:
                self.refuse(req, DenialReason.DIFFERENCING, "differencing",
                            f"bucket {conflict.bucket!r} differs from bucket {conflict.earlier_bucket!r} of an earlier release "
                            f"to this requester ({conflict.earlier}) by {conflict.persons} person(s), fewer than k = {k}")
            if epsilon:
                spent = self._spent(req)
                if spent + epsilon > self.epsilon_budget + 1e-12:
                    self.refuse(req, DenialReason.BUDGET_EXHAUSTED, "budget_exhausted",
                                f"this member has {max(0.0, self.epsilon_budget - spent):.4g} epsilon left for the requester "
                                f"on {req.dataset}; the job asks for {epsilon:.4g}")
            if not repeat or epsilon:
                self._record(req, kept, spent + epsilon if epsilon else None, fingerprint)
        counted = records or sizes
        return Release(k, int(job_min_cohort), released, sorted(suppressed), sum(counted.get(b, 0) for b in released), epsilon)

    def _history(self, req: Request, new: Footprint, k: int, mine: str) -> tuple[list[tuple[str, Footprint]], bool]:
        """The earlier releases that could conflict, and whether this very footprint was released before.

        A repeat (the same persons in the same buckets as one of the compared releases, found by its fingerprint
        and confirmed digest for digest, so a fingerprint collision is never taken for one) adds nothing to check:
        every pair it could form was checked when the earlier copy or the later release was made. Otherwise only
        releases with a bucket within k persons of a new bucket's size are read whole (8 bytes per person).
        """
        scan = for_engine(self.engine, "release_history.scan", _history_scan)
        rows = scan.rows(self.engine, {"requester": req.requester, "dataset": req.dataset, "limit": self.history_compared})
        same = next(((row_id, raw) for row_id, _, raw, fingerprint in rows if fingerprint == mine), None)
        if same is not None and _same_persons(self._footprint(*same), new):
            return [], True
        sizes = sorted(len(d) for d in new.buckets.values())
        wanted = [(row_id, ref, raw) for row_id, ref, raw, _ in rows if any(_near(sizes, n, k) for _, n in json.loads(raw))]
        return [(ref, self._footprint(row_id, raw)) for row_id, ref, raw in wanted], False

    def _footprint(self, row_id: int, raw: str) -> Footprint:
        """An earlier release's footprint, read whole."""
        blob = for_engine(self.engine, "release_history.digests", _history_digests)
        return _unpack(json.loads(raw), bytes(blob.rows(self.engine, {"id": row_id})[0][0]))

    def _spent(self, req: Request) -> float:
        with self.engine.connect() as conn:
            spent = conn.execute(select(budget.c.spent).where(budget.c.requester == req.requester,
                                                              budget.c.dataset == req.dataset)).scalar()
        return float(spent or 0.0)

    def _record(self, req: Request, kept: Footprint, spent: float | None, fingerprint: str) -> None:
        order = list(kept.buckets)
        if not order and spent is None:
            return  # nothing released and no budget charged: nothing to record
        with write_lock(self.engine), self.engine.begin() as conn:  # footprint and budget in one transaction, before anything is sent
            seen = conn.execute(select(history.c.id).where(history.c.requester == req.requester, history.c.dataset == req.dataset,
                                                           history.c.fingerprint == fingerprint)).first()
            if order and seen is None:
                conn.execute(history.insert().values(
                    requester=req.requester, dataset=req.dataset, ref=req.ref, created_at=time.time(),
                    buckets=json.dumps([[b, len(kept.buckets[b])] for b in order]), fingerprint=fingerprint,
                    digests=b"".join(kept.buckets[b].tobytes() for b in order)))
            if spent is not None:
                found = conn.execute(select(budget.c.spent).where(budget.c.requester == req.requester,
                                                                  budget.c.dataset == req.dataset)).first()
                if found is None:
                    conn.execute(budget.insert().values(requester=req.requester, dataset=req.dataset, spent=spent))
                else:
                    conn.execute(update(budget).where(budget.c.requester == req.requester, budget.c.dataset == req.dataset)
                                 .values(spent=spent))

    # ------------------------------------------------------------------ noise (rule 6), added by the owner

    @staticmethod
    def laplace_slots(sensitivities: list[float], epsilon: float) -> list[int]:
        """Integer Laplace noise for one bucket's slots, epsilon split evenly across them (buckets are disjoint)."""
        per_slot = epsilon / len(sensitivities)
        return [round(laplace_noise(s / per_slot)) for s in sensitivities]


def _history_scan():
    # newest first: ids, refs, bucket sizes and fingerprints of the releases a new one is compared with
    return (select(history.c.id, history.c.ref, history.c.buckets, history.c.fingerprint)
            .where(and_(history.c.requester == bindparam("requester"), history.c.dataset == bindparam("dataset")))
            .order_by(history.c.id.desc()).limit(bindparam("limit")))


def _history_digests():
    return select(history.c.digests).where(history.c.id == bindparam("id"))


def _fingerprint(footprint: Footprint) -> str:
    return footprint.fingerprint()


def _same_persons(a: Footprint, b: Footprint) -> bool:
    # Footprints are built sorted: equal arrays are the common case and compare in C; a record written before
    # they were sorted is compared sorted.
    return a.buckets.keys() == b.buckets.keys() and all(
        a.buckets[x] == b.buckets[x] or sorted(a.buckets[x]) == sorted(b.buckets[x]) for x in a.buckets)


def _near(sorted_sizes: list[int], n: int, k: int) -> bool:
    """Whether some size lies strictly within k of n (a symmetric difference under k needs that)."""
    i = bisect.bisect_left(sorted_sizes, n - k + 1)
    return i < len(sorted_sizes) and sorted_sizes[i] < n + k


def _unpack(sizes: list, blob: bytes) -> Footprint:
    raw, offset = {}, 0
    for bucket, n in sizes:
        raw[bucket] = blob[offset:offset + 8 * n]
        offset += 8 * n
    return Footprint.from_bytes(raw)


# ---------------------------------------------------------------------------------------- the flows
# Each outgoing answer kind, start to finish through the rules above. Computing stays in node.stats.local
# and node.store.datasets; deciding what of it leaves stays here.


def answer_query(gate: ReleaseGate, requester: str, query: Any, purpose: Purpose, arrived: float | None) -> dict:
    """``POST /data/query``: one aggregate, grouped by at most one non-identifier column, k per group."""
    from node.store.datasets import DatasetError, dataset_schema, query_groups

    schema = dataset_schema(query.dataset)
    req = Request(requester, schema.name, purpose, query.query_hash(requester, int(purpose)), "query")
    grant_id = gate.authorize(req, arrived)
    try:
        query.check_release(schema)
    except DatasetError as exc:  # an identifier column or an undeclared value: a scope refusal, logged
        gate.refuse(req, DenialReason.SCOPE_EXCEEDED, exc.reason, exc.one_line(),
                    status=403 if exc.reason == "identifier_column" else 422)
    rows, persons = query_groups(gate.engine, query)
    req = Request(requester, schema.name, purpose, req.query_hash, f"query:{req.query_hash.hex()[:16]}")
    outcome = gate.release(req, persons, gate.floor, records={g: r["records"] for g, r in rows.items()})
    released = [rows[g] for g in outcome.released]
    gate.log_access(req, grant_id, outcome.records)
    return {"grant_id": grant_id, "records": outcome.records, "rows": released, **outcome.report()}


def horizontal_contribution(gate: ReleaseGate, requester: str, public: dict, spec_hash: str) -> tuple[int, list[int], Release]:
    """A participant's vector for a horizontal job: suppressed buckets zeroed, owner's noise added."""
    from node.stats import local

    req = Request(requester, public["dataset"], Purpose[public["purpose"]], bytes.fromhex(spec_hash), f"job:{spec_hash[:16]}")
    grant_id = gate.authorize(req)
    gate.check_contributors(req, public["participants"])
    totals, persons = local.horizontal_buckets(gate.engine, public)
    epsilon = float(public.get("epsilon") or 0.0)
    outcome = gate.release(req, persons, public["min_cohort"], records={b: t[0] for b, t in totals.items()}, epsilon=epsilon)
    stats = public["statistics"]
    for bucket in outcome.suppressed:  # nothing of a small bucket is encrypted: zeros, like an empty bucket
        totals[bucket] = [0] * len(stats)
    if epsilon:
        lo, hi = public.get("value_range") or (0.0, 0.0)
        bound = max(abs(lo), abs(hi)) * 10 ** public["decimals"]
        sens = {"count": 1.0, "sum": bound, "sum_of_squares": bound * bound}
        for bucket in outcome.released:
            noise = gate.laplace_slots([sens[s] for s in stats], epsilon)
            totals[bucket] = [v + n for v, n in zip(totals[bucket], noise)]
        outcome.extra["noise"] = "laplace, added by the data owner"
    return grant_id, local.horizontal_vector(totals, public["buckets"]), outcome


def vertical_admission(gate: ReleaseGate, requester: str, public: dict, spec_hash: str,
                       rows: list[tuple[str, str]]) -> tuple[int, Release]:
    """The platform's side of a vertical job: label owner, k (the join suppresses matched buckets under it),
    differencing on the platform's own bucket membership, and its epsilon for the encrypted noise."""
    req = Request(requester, public["dataset"], Purpose[public["purpose"]], bytes.fromhex(spec_hash), f"job:{spec_hash[:16]}")
    grant_id = gate.authorize(req)
    gate.check_label_owner(req, public)
    persons: dict[str, list[str]] = {b: [] for b in public["buckets"]}
    for person, bucket in rows:
        persons[bucket].append(person)
    outcome = gate.release(req, persons, public["min_cohort"], epsilon=float(public.get("epsilon") or 0.0))
    # the platform's bucket sizes are not what is released (the intersection is): k is applied again to the
    # matched counts in privacy.join.FeatureOwner.bucket_sums with this same k
    outcome.extra["applies_to"] = "matched persons per bucket"
    return grant_id, outcome


def fraud_admission(gate: ReleaseGate, requester: str, public: dict, spec_hash: str) -> tuple[int, Request]:
    """A fraud-signal answer: per-person counts under a FRAUD grant only (no cohort applies to a yes/no per person)."""
    req = Request(requester, public["dataset"], Purpose.FRAUD, bytes.fromhex(spec_hash), f"job:{spec_hash[:16]}")
    return gate.authorize(req), req
