"""Release controls: minimum cohort k, differential-privacy noise and a per-requester epsilon budget.

Noise: the Laplace mechanism (Dwork, McSherry, Nissim, Smith 2006) with scale sensitivity/epsilon, or
the Gaussian mechanism with sigma = sensitivity * sqrt(2 ln(1.25/delta)) / epsilon (Dwork & Roth 2014,
theorem A.1). Buckets are disjoint, so one epsilon covers all buckets of a release (parallel
composition); it is split evenly across the statistics released per bucket.

Suppression decisions use the exact counts, before noise. Totals are computed only over released
buckets, and a job can be released once (``AlreadyReleased`` after that), so a suppressed bucket can
never be recovered as the difference of two releases of the same job.

The accountant is pure: its state is a plain dict the node persists (``to_dict``/``from_dict``).
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

from privacy.errors import AlreadyReleased, BudgetExhausted, MalformedMessage

_RNG = secrets.SystemRandom()


def laplace_noise(scale: float, rng=_RNG) -> float:
    """Laplace(0, scale) by inverse CDF from a cryptographic source."""
    u = rng.random() - 0.5
    while u == -0.5:
        u = rng.random() - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1 - 2 * abs(u))


def gaussian_noise(sigma: float, rng=_RNG) -> float:
    return rng.gauss(0.0, sigma)


@dataclass(frozen=True)
class ReleasePolicy:
    """``min_cohort`` k; ``mechanism`` None, "laplace" or "gaussian"; sensitivities per statistic."""

    min_cohort: int = 10
    mechanism: str | None = None
    epsilon: float = 0.0
    delta: float = 1e-6
    sensitivities: tuple[tuple[str, float], ...] = (("count", 1.0),)

    def __post_init__(self):
        if isinstance(self.min_cohort, bool) or not isinstance(self.min_cohort, int) or self.min_cohort < 1:
            raise MalformedMessage("min_cohort must be a positive integer")
        if self.mechanism not in (None, "laplace", "gaussian"):
            raise MalformedMessage("mechanism must be None, 'laplace' or 'gaussian'")
        if self.mechanism and not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise MalformedMessage("a noise mechanism needs a positive finite epsilon")
        if self.mechanism == "gaussian" and not 0 < self.delta < 1:
            raise MalformedMessage("the Gaussian mechanism needs 0 < delta < 1")


@dataclass
class BudgetAccountant:
    """Epsilon spent per (requester, dataset) and jobs already released. Plain state, no I/O."""

    limits: dict[str, float] = field(default_factory=dict)  # dataset -> epsilon budget per requester
    default_limit: float = 1.0
    spent: dict[str, float] = field(default_factory=dict)  # "requester|dataset" -> epsilon
    released_jobs: dict[str, str] = field(default_factory=dict)  # job id -> requester

    @staticmethod
    def _key(requester: str, dataset: str) -> str:
        return f"{requester}|{dataset}"

    def remaining(self, requester: str, dataset: str) -> float:
        return self.limits.get(dataset, self.default_limit) - self.spent.get(self._key(requester, dataset), 0.0)

    def check(self, requester: str, dataset: str, epsilon: float) -> None:
        if epsilon < 0 or not math.isfinite(epsilon):
            raise MalformedMessage("epsilon must be a finite non-negative number")
        if epsilon > self.remaining(requester, dataset) + 1e-12:
            raise BudgetExhausted(
                f"{requester} has {max(0.0, self.remaining(requester, dataset)):.4g} epsilon left on {dataset}; "
                f"this release needs {epsilon:.4g}"
            )

    def charge(self, requester: str, dataset: str, epsilon: float) -> None:
        self.check(requester, dataset, epsilon)
        key = self._key(requester, dataset)
        self.spent[key] = self.spent.get(key, 0.0) + epsilon

    def to_dict(self) -> dict:
        return {"limits": dict(self.limits), "default_limit": self.default_limit, "spent": dict(self.spent), "released_jobs": dict(self.released_jobs)}

    @classmethod
    def from_dict(cls, data: Any) -> "BudgetAccountant":
        if not isinstance(data, dict):
            raise MalformedMessage("accountant state must be an object")
        return cls(dict(data.get("limits", {})), float(data.get("default_limit", 1.0)), dict(data.get("spent", {})), dict(data.get("released_jobs", {})))


@dataclass(frozen=True)
class Release:
    job_id: str
    buckets: dict[str, dict[str, float]]
    suppressed: list[str]
    totals: dict[str, float]
    epsilon: float

    def to_dict(self) -> dict:
        return {"job_id": self.job_id, "buckets": self.buckets, "suppressed": self.suppressed, "totals": self.totals, "epsilon": self.epsilon}


def release(
    job_id: str,
    requester: str,
    dataset: str,
    buckets: Mapping[str, Mapping[str, float]],
    policy: ReleasePolicy,
    accountant: BudgetAccountant,
    count_key: str = "count",
    rng=_RNG,
) -> Release:
    """Apply k-suppression and optional noise to exact per-bucket statistics, charging the budget.

    ``buckets`` maps a bucket to its exact statistics (must include ``count_key``). Statistics named
    in ``policy.sensitivities`` get noise; others (e.g. derived means) are recomputed by the caller.
    Refuses (BudgetExhausted / AlreadyReleased) before any number is produced.
    """
    if job_id in accountant.released_jobs:
        raise AlreadyReleased(f"job {job_id} was already released; serve the stored release instead")
    epsilon = policy.epsilon if policy.mechanism else 0.0
    accountant.check(requester, dataset, epsilon)
    sensitivities = dict(policy.sensitivities)
    noisy_stats = [s for s in sensitivities]
    per_stat_epsilon = epsilon / max(1, len(noisy_stats))
    released, suppressed = {}, []
    for bucket, stats in buckets.items():
        if count_key not in stats:
            raise MalformedMessage(f"bucket {bucket!r} has no {count_key!r}")
        if stats[count_key] < policy.min_cohort:
            suppressed.append(bucket)  # decided on the exact count, before any noise
            continue
        out = dict(stats)
        if policy.mechanism:
            for stat in noisy_stats:
                if stat in out and out[stat] is not None:
                    sens = sensitivities[stat]
                    if policy.mechanism == "laplace":
                        out[stat] = out[stat] + laplace_noise(sens / per_stat_epsilon, rng)
                    else:
                        sigma = sens * math.sqrt(2 * math.log(1.25 / policy.delta)) / per_stat_epsilon
                        out[stat] = out[stat] + gaussian_noise(sigma, rng)
        released[bucket] = out
    totals: dict[str, float] = {}
    for stats in released.values():  # only released buckets: no total exposes a suppressed one
        for name, value in stats.items():
            if name in sensitivities or name == count_key:
                totals[name] = totals.get(name, 0) + value
    accountant.charge(requester, dataset, epsilon)
    accountant.released_jobs[job_id] = requester
    return Release(job_id, released, sorted(suppressed), totals, epsilon)


def integer_noise_vector(length_by_stat: Mapping[str, float], epsilon: float, rng=_RNG) -> dict[str, int]:
    """Rounded Laplace noise per statistic (scale = sensitivity / epsilon), for encrypted noise in the join."""
    if epsilon <= 0:
        raise MalformedMessage("epsilon must be positive")
    return {name: round(laplace_noise(sens / epsilon, rng)) for name, sens in length_by_stat.items()}


def effective_min_cohort(owner_floor: int, job_min_cohort: int) -> int:
    """The k a data owner applies: its own floor, raised (never lowered) by the job's k."""
    for value in (owner_floor, job_min_cohort):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MalformedMessage("min_cohort must be a positive integer")
    return max(owner_floor, job_min_cohort)
