"""Exact apportionment of an integer amount by weights (Hamilton's largest-remainder method).

Every amount in a statement is an integer in the smallest currency unit; splitting one by weights
must give integers that sum exactly to it. Each part first gets the floor of its exact quota
``total * w_i / sum(w)``; the units left over (fewer than the number of parts) go one each to the
parts with the largest fractional remainders, ties to the lower index (the agreement's provider order).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Sequence


def largest_remainder(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Split ``total`` (>= 0) in proportion to ``weights`` (each >= 0); the parts sum to ``total``.

    With no positive weight nothing can be apportioned: every part is 0 (the caller decides whether
    an amount without a basis is an error; here it is simply not paid).
    """
    if not isinstance(total, int) or total < 0:
        raise ValueError(f"total must be a non-negative integer, got {total!r}")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights, Fraction(0))
    if weight_sum == 0 or total == 0:
        return [0] * len(weights)
    quotas = [Fraction(total) * w / weight_sum for w in weights]
    parts = [q.numerator // q.denominator for q in quotas]
    left = total - sum(parts)
    # sort by remainder descending, then index ascending: the rule stated above, deterministic
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts
