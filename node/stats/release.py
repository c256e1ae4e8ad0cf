"""The requester's release step: aggregate and decrypt what the participants sent, check it, drop what must not be
shown, and publish the result's hash on chain.

This is the second line behind each data owner's release gate (node/access/release_gate.py), which already applied its
minimum cohort, differencing and DP budget: here the owners' suppressions and k are applied again, no noise is
added (each owner added its own) and nothing is charged, so no budget is loaded or saved on this side.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from node.chain.errors import ContractRevert
from node.chain.ledger import Ledger
from node.enums import JobState
from node.stats.jobs import fail_job
from node.stats.keys import StatsKey
from node.stats.spec import MAX_BUCKETS, OVERFLOW, canonical_json, horizontal_spec, join_spec
from node.stats.store import PUBLISHED, StatsStore
from privacy.aggregation import Aggregator
from privacy.errors import PrivacyError
from privacy.fraud import FraudSignalQuery, MembershipAnswer
from privacy.join import BucketSums, LabelOwner
from privacy.paillier import PrivateKey
from privacy.plausibility import Bounds, ImplausibleResult, check_buckets
from privacy.psi import Blinder
from privacy.release import BudgetAccountant, ReleasePolicy, release

log = logging.getLogger("consortium.stats")

# the most records one participant may claim to have used: a plausibility bound on counts it cannot raise at will
MAX_RECORDS = 100_000_000


class ReleaseStep:
    def __init__(self, store: StatsStore, ledger: Ledger, key: StatsKey):
        self.store = store
        self.ledger = ledger
        self.key = key

    @property
    def private_key(self) -> PrivateKey:
        return self.key.private_key

    def finish(self, job_id: str) -> str | None:
        """Release and publish a job whose answers are all in; the privacy layer's refusal reason when it fails."""
        job = self.store.job(job_id)
        received = self.store.received_for(job_id)
        self.store.set_progress(job_id, phase="aggregating")
        try:
            if job["kind"] == "horizontal":
                result = self.horizontal(job, received)
            elif job["kind"] == "vertical":
                result = self.vertical(job, received)
            else:
                result = fraud_result(job, received)
        except PrivacyError as exc:
            fail_job(self.store, job_id, exc.reason, str(exc), [])
            return exc.reason
        result |= {"job_id": job_id, "chain_job_id": job["chain_job_id"], "spec_hash": job["spec_hash"],
                   "participants": job["participants"]}
        result_hash = hashlib.sha256(b"consortium/stats-result/v1|" + canonical_json(result)).hexdigest()
        self.store.update_job(job_id, result=result, result_hash=result_hash)
        try:
            self.ledger.publish_result(job["chain_job_id"], bytes.fromhex(result_hash))
        except ContractRevert as exc:
            on_chain = self.ledger.get_job(job["chain_job_id"])
            if not (on_chain["state"] == JobState.PUBLISHED and on_chain["result_hash"].hex() == result_hash):
                raise  # anything but "already published by our previous run" fails the job
            log.info("job %s was already published (%s)", job_id, exc.name)
        self.store.update_job(job_id, state=PUBLISHED)
        self.store.set_progress(job_id, phase="published")
        return None

    def _owner_releases(self, job: dict) -> dict[str, dict]:
        return dict((self.store.job(job["id"])["progress"] or {}).get("releases", {}))

    def _release(self, job: dict, exact: dict[str, dict], min_cohort: int, withheld: set[str]) -> Any:
        """Drop what any owner suppressed and anything under k (no noise, no budget: see the module docstring)."""
        kept = {b: s for b, s in exact.items() if b not in withheld}
        released = release(job["id"], self.ledger.address, job["public_spec"]["dataset"], kept,
                           ReleasePolicy(min_cohort=min_cohort), BudgetAccountant(default_limit=0.0))
        return released, sorted(set(released.suppressed) | (withheld & set(exact)))

    def horizontal(self, job: dict, received: dict) -> dict:
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
                "owners": {p: release_report(owners.get(p)) for p in job["participants"]}}

    def vertical(self, job: dict, received: dict) -> dict:
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
                "owners": {platform: release_report(owner)}}


def fraud_query(job: dict) -> FraudSignalQuery:
    """The job's query, blinded with the job's one stored scalar (a resumed job asks, and counts, the same)."""
    private = job["private_spec"]
    return FraudSignalQuery(private["persons"], query_id=job["public_spec"]["job_id"],
                            blinder=Blinder.from_secret(bytes.fromhex(private["blinder"])))


def fraud_result(job: dict, received: dict) -> dict:
    counts = fraud_query(job).count_matches([MembershipAnswer.from_dict(received[p]) for p in job["participants"]])
    return {"kind": "fraud", "check": job["public_spec"]["check"], "members_asked": len(job["participants"]),
            "persons": counts, "flagged": sum(1 for c in counts.values() if c > 0),
            "columns": ["person", "members"], "rows": [[p, c] for p, c in counts.items()]}


def release_report(raw: Any) -> dict:
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
