"""The revenue-share statement of one agreement and period: one deterministic, pure function.

A provider's amount for the period is the sum of three parts (integers, smallest currency unit):

1. certificate charges, at the prices of the offers behind the certificates the payer holds from it:
   ``period_fee`` for each certificate valid at some time in the period, plus ``per_access_price`` per
   access record, ``per_row_price`` per row served, ``per_contribution_price`` per statistics contribution;
2. base commission: ``floor(sum(premium) * base_commission_bps / 10000)``, apportioned by each
   provider's attributable premium (the payer's declared figure);
3. data-value share: ``floor(sum(premium) * data_value_share_bps / 10000)``, apportioned by the score
   ``sum_k weight_k * x_k,i / sum_j x_k,j`` over k in (traffic, value, cost), where each x comes from the
   source the agreement names (metered accesses, rows or contributions, or the declared figure). An input
   that is zero for every provider distinguishes nobody: its weight is shared equally.

Parts 2 and 3 use the largest-remainder rule (node/settlement/apportion.py), so each sums exactly.
No I/O here: node/settlement/metering.py reads the chain and builds the inputs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Mapping, Sequence

from eth_utils import keccak

from node.settlement.apportion import largest_remainder

BPS = 10_000


class Source(IntEnum):
    """Where a weighted input comes from (Settlement.Source)."""

    ACCESSES = 0
    ROWS = 1
    CONTRIBUTIONS = 2
    DECLARED = 3


class Figure(IntEnum):
    """Figures declared per period and provider (Settlement.Figure)."""

    PREMIUM = 0
    TRAFFIC = 1
    VALUE = 2
    COST = 3


@dataclass(frozen=True)
class Formula:
    base_commission_bps: int
    data_value_share_bps: int
    traffic_weight_bps: int
    value_weight_bps: int
    cost_weight_bps: int
    traffic_source: Source = Source.ACCESSES
    value_source: Source = Source.DECLARED
    cost_source: Source = Source.DECLARED

    def __post_init__(self) -> None:
        for name in ("base_commission_bps", "data_value_share_bps", "traffic_weight_bps", "value_weight_bps", "cost_weight_bps"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= BPS:
                raise ValueError(f"{name} must be an integer number of basis points in 0..10000, got {value!r}")
        if self.traffic_weight_bps + self.value_weight_bps + self.cost_weight_bps != BPS:
            raise ValueError("the traffic, value and cost weights must sum to 10000 basis points")

    def as_tuple(self) -> tuple:
        return (self.base_commission_bps, self.data_value_share_bps, self.traffic_weight_bps, self.value_weight_bps,
                self.cost_weight_bps, int(self.traffic_source), int(self.value_source), int(self.cost_source))


@dataclass(frozen=True)
class CertificateUsage:
    """One certificate the payer holds from a provider, its offer's prices and its metered use in the period."""

    certificate_id: int
    provider: str
    period_fee: int
    per_access_price: int
    per_row_price: int
    per_contribution_price: int
    accesses: int = 0
    rows: int = 0
    contributions: int = 0

    @property
    def charge(self) -> int:
        return (self.period_fee + self.per_access_price * self.accesses + self.per_row_price * self.rows
                + self.per_contribution_price * self.contributions)


@dataclass(frozen=True)
class DeclaredFigure:
    value: int
    evidence_hash: str = "0x" + "00" * 32


@dataclass(frozen=True)
class StatementInputs:
    providers: tuple[str, ...]
    formula: Formula
    certificates: tuple[CertificateUsage, ...] = ()
    # provider -> figure name (PREMIUM, TRAFFIC, VALUE, COST) -> declared figure
    figures: Mapping[str, Mapping[str, DeclaredFigure]] = field(default_factory=dict)
    context: Mapping[str, object] = field(default_factory=dict)  # agreement id, period, window, block range

    def declared(self, provider: str, figure: Figure) -> int:
        found = self.figures.get(provider, {}).get(figure.name)
        return 0 if found is None else found.value

    def document(self) -> dict:
        """The canonical document whose hash goes on chain with the statement."""
        return {"context": dict(self.context), "providers": list(self.providers), "formula": asdict(self.formula),
                "certificates": [asdict(c) for c in sorted(self.certificates, key=lambda c: c.certificate_id)],
                "figures": {p: {k: asdict(v) for k, v in sorted(f.items())} for p, f in sorted(self.figures.items())}}

    def inputs_hash(self) -> bytes:
        canonical = json.dumps(self.document(), sort_keys=True, separators=(",", ":"), default=int)
        return keccak(canonical.encode())


@dataclass(frozen=True)
class StatementLine:
    provider: str
    certificate_charges: int
    base_commission: int
    data_value_share: int

    @property
    def total(self) -> int:
        return self.certificate_charges + self.base_commission + self.data_value_share


def _metered(inputs: StatementInputs, provider: str, source: Source, declared: Figure) -> int:
    if source == Source.DECLARED:
        return inputs.declared(provider, declared)
    attribute = {Source.ACCESSES: "accesses", Source.ROWS: "rows", Source.CONTRIBUTIONS: "contributions"}[source]
    return sum(getattr(c, attribute) for c in inputs.certificates if c.provider == provider)


def scores(inputs: StatementInputs) -> list[Fraction]:
    """Each provider's weighted score (they sum to 10000 when there is at least one provider)."""
    f, providers = inputs.formula, inputs.providers
    score = [Fraction(0)] * len(providers)
    for weight, source, declared in ((f.traffic_weight_bps, f.traffic_source, Figure.TRAFFIC),
                                     (f.value_weight_bps, f.value_source, Figure.VALUE),
                                     (f.cost_weight_bps, f.cost_source, Figure.COST)):
        xs = [_metered(inputs, p, source, declared) for p in providers]
        total = sum(xs)
        for i, x in enumerate(xs):
            score[i] += Fraction(weight * x, total) if total else Fraction(weight, len(providers))
    return score


def compute_statement(inputs: StatementInputs) -> list[StatementLine]:
    """The statement: one line per provider, in the agreement's provider order."""
    providers = inputs.providers
    if len(set(providers)) != len(providers) or not providers:
        raise ValueError("providers must be a non-empty list of distinct addresses")
    unknown = {c.provider for c in inputs.certificates} - set(providers)
    if unknown:
        raise ValueError(f"certificates of providers outside the agreement: {sorted(unknown)}")
    for c in inputs.certificates:
        if min(c.period_fee, c.per_access_price, c.per_row_price, c.per_contribution_price, c.accesses, c.rows, c.contributions) < 0:
            raise ValueError(f"certificate {c.certificate_id}: prices and usage must be non-negative")
    premiums = [inputs.declared(p, Figure.PREMIUM) for p in providers]
    if min(premiums) < 0:
        raise ValueError("premiums must be non-negative")
    premium_total = sum(premiums)
    base = largest_remainder(premium_total * inputs.formula.base_commission_bps // BPS, premiums)
    share = largest_remainder(premium_total * inputs.formula.data_value_share_bps // BPS, scores(inputs))
    charges = [sum(c.charge for c in inputs.certificates if c.provider == p) for p in providers]
    return [StatementLine(p, charges[i], base[i], share[i]) for i, p in enumerate(providers)]


def amounts(lines: Sequence[StatementLine]) -> list[int]:
    return [line.total for line in lines]
