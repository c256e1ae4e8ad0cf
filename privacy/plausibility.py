"""Plausibility of a decrypted aggregate: every bucket within what honest inputs can produce.

Masks and encryption hide each participant's vector, so a malicious participant can put any value in
its slots (a count of 1,000,000,036, a negative sum that cancels a bucket). The spec declares bounds
before anyone contributes -- the range ``[lo, hi]`` of the value column and, through the participants'
own record counts, the largest possible count -- and the key holder checks every decrypted bucket
against them before anything is published. This catches gross tampering; a lie that stays inside
the bounds is not detectable this way (README, "Release policy and threat model").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from privacy.errors import PrivacyError


class ImplausibleResult(PrivacyError):
    """A decrypted bucket is outside what the declared bounds allow: the job fails instead of publishing."""

    reason = "implausible_result"


@dataclass(frozen=True)
class Bounds:
    """``max_count``: the most records a bucket can hold; ``lo``/``hi``: the value range (None: counts only);
    ``slack``: per statistic, how far noise may move it (0 without differential privacy)."""

    max_count: int
    lo: float | None = None
    hi: float | None = None
    slack: Mapping[str, float] | None = None


def check_buckets(buckets: Mapping[str, Mapping[str, float]], bounds: Bounds) -> None:
    """Raise ImplausibleResult naming the first bucket whose count, sum or sum of squares is impossible."""
    slack = dict(bounds.slack or {})
    for bucket, stats in buckets.items():
        count = stats.get("count")
        if count is None:
            continue
        c_slack = slack.get("count", 0.0)
        if not -c_slack <= count <= bounds.max_count + c_slack:
            raise ImplausibleResult(f"bucket {bucket!r}: count {count} outside 0 .. {bounds.max_count}")
        n = max(0.0, count + c_slack)
        if bounds.lo is None or bounds.hi is None:
            continue
        total = stats.get("sum")
        if total is not None:
            s_slack = slack.get("sum", 0.0)
            low, high = min(0.0, bounds.lo) * n - s_slack, max(0.0, bounds.hi) * n + s_slack
            if not low <= total <= high:
                raise ImplausibleResult(f"bucket {bucket!r}: sum {total} outside {low} .. {high} for {count} records "
                                        f"of values in [{bounds.lo}, {bounds.hi}]")
        squares = stats.get("sum_of_squares")
        if squares is not None:
            q_slack = slack.get("sum_of_squares", 0.0)
            high = max(bounds.lo * bounds.lo, bounds.hi * bounds.hi) * n + q_slack
            if not -q_slack <= squares <= high:
                raise ImplausibleResult(f"bucket {bucket!r}: sum of squares {squares} outside 0 .. {high}")
