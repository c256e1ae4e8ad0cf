"""The statement function: exact sums (largest remainder) and agreement with a plain computation on random usage."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.settlement.apportion import largest_remainder
from node.settlement.formula import CertificateUsage, DeclaredFigure, Formula, Source, StatementInputs, compute_statement

PROVIDERS = ("0xP1", "0xP2", "0xP3", "0xP4")


def test_largest_remainder_gives_the_unit_to_the_largest_remainder_then_the_lower_index():
    assert largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert largest_remainder(10, [1, 2, 3, 4]) == [1, 2, 3, 4]
    assert largest_remainder(7, [3, 3, 1]) == [3, 3, 1]
    assert largest_remainder(5, [0, 1, 1]) == [0, 3, 2]
    assert largest_remainder(5, [0, 0]) == [0, 0]
    assert largest_remainder(2, [Fraction(1, 3), Fraction(2, 3)]) == [1, 1]
    # naive per-part rounding would lose or invent a unit here: 3 * round(10/3) = 9, 3 * ceil = 12
    assert sum(largest_remainder(10, [1, 1, 1])) == 10
    with pytest.raises(ValueError):
        largest_remainder(-1, [1])
    with pytest.raises(ValueError):
        largest_remainder(1, [-1, 2])


@given(st.integers(0, 10**15), st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_largest_remainder_sums_exactly_and_stays_within_one_unit_of_the_quota(total, weights):
    parts = largest_remainder(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, w in zip(parts, weights):
        quota = Fraction(total * w, sum(weights))
        assert quota - 1 < part < quota + 1


def plain_apportion(total, nums, den):
    """Largest remainder with integer cross-multiplication only (quota_i = total * nums_i / den)."""
    if den == 0 or total == 0:
        return [0] * len(nums)
    floors = [total * n // den for n in nums]
    rema = [total * n % den for n in nums]
    order = sorted(range(len(nums)), key=lambda i: (-rema[i], i))
    for i in order[:total - sum(floors)]:
        floors[i] += 1
    return floors


def plain_statement(providers, formula, certs, figures):
    """The README's formula written out directly: no Fraction, no shared helpers."""
    n = len(providers)
    premium = [figures.get(p, {}).get("PREMIUM", 0) for p in providers]
    charges = [sum(c["fee"] + c["pa"] * c["acc"] + c["pr"] * c["rows"] + c["pc"] * c["con"] for c in certs if c["p"] == p)
               for p in providers]
    base = plain_apportion(sum(premium) * formula.base_commission_bps // 10000, premium, sum(premium))

    def inputs(source, declared):
        if source == Source.DECLARED:
            return [figures.get(p, {}).get(declared, 0) for p in providers]
        key = {Source.ACCESSES: "acc", Source.ROWS: "rows", Source.CONTRIBUTIONS: "con"}[source]
        return [sum(c[key] for c in certs if c["p"] == p) for p in providers]

    parts = [(formula.traffic_weight_bps, inputs(formula.traffic_source, "TRAFFIC")),
             (formula.value_weight_bps, inputs(formula.value_source, "VALUE")),
             (formula.cost_weight_bps, inputs(formula.cost_source, "COST"))]
    # score_i = sum_k w_k * x_ki / X_k over a common denominator D = n * prod(X_k or 1)
    dens = [sum(xs) or 1 for _, xs in parts]
    common = n * dens[0] * dens[1] * dens[2]
    nums = [0] * n
    for k, (w, xs) in enumerate(parts):
        other = common // dens[k]
        for i in range(n):
            nums[i] += w * xs[i] * other if sum(xs) else w * (common // n)
    share = plain_apportion(sum(premium) * formula.data_value_share_bps // 10000, nums, sum(nums))
    return [charges[i] + base[i] + share[i] for i in range(n)]


weights = st.integers(0, 10000).flatmap(lambda t: st.integers(0, 10000 - t).map(lambda v: (t, v, 10000 - t - v)))
formulas = st.builds(lambda b, d, w, s1, s2, s3: Formula(b, d, w[0], w[1], w[2], s1, s2, s3),
                     st.integers(0, 10000), st.integers(0, 10000), weights,
                     st.sampled_from(Source), st.sampled_from(Source), st.sampled_from(Source))
cert = st.fixed_dictionaries({"p": st.sampled_from(PROVIDERS[:3]), "fee": st.integers(0, 10**6), "pa": st.integers(0, 100),
                              "pr": st.integers(0, 10), "pc": st.integers(0, 1000), "acc": st.integers(0, 10**6),
                              "rows": st.integers(0, 10**8), "con": st.integers(0, 50)})
figure_values = st.dictionaries(st.sampled_from(["PREMIUM", "TRAFFIC", "VALUE", "COST"]), st.integers(0, 10**12))


@settings(max_examples=300, deadline=None)
@given(formulas, st.lists(cert, max_size=12), st.dictionaries(st.sampled_from(PROVIDERS[:3]), figure_values),
       st.integers(1, 3))
def test_statement_matches_a_plain_computation_on_random_usage(formula, certs, figures, extra):
    providers = PROVIDERS[:3] + PROVIDERS[3:3 + extra - 1]
    usage = tuple(CertificateUsage(i + 1, c["p"], c["fee"], c["pa"], c["pr"], c["pc"], c["acc"], c["rows"], c["con"])
                  for i, c in enumerate(certs))
    declared = {p: {k: DeclaredFigure(v) for k, v in f.items()} for p, f in figures.items()}
    inputs = StatementInputs(providers, formula, usage, declared)
    lines = compute_statement(inputs)
    assert [line.total for line in lines] == plain_statement(providers, formula, certs, figures)
    premium_total = sum(figures.get(p, {}).get("PREMIUM", 0) for p in providers)
    # each apportioned part sums exactly to its total
    assert sum(line.base_commission for line in lines) == premium_total * formula.base_commission_bps // 10000
    assert sum(line.data_value_share for line in lines) == premium_total * formula.data_value_share_bps // 10000
    assert sum(line.certificate_charges for line in lines) == sum(u.charge for u in usage)


def test_worked_example_from_the_readme():
    formula = Formula(500, 2000, 5000, 3000, 2000, Source.ACCESSES, Source.DECLARED, Source.DECLARED)
    usage = (CertificateUsage(1, "0xP1", 1000, 2, 0, 0, accesses=300), CertificateUsage(2, "0xP2", 1000, 2, 0, 0, accesses=100))
    figures = {"0xP1": {"PREMIUM": DeclaredFigure(600_000), "VALUE": DeclaredFigure(1), "COST": DeclaredFigure(3)},
               "0xP2": {"PREMIUM": DeclaredFigure(400_001), "VALUE": DeclaredFigure(2), "COST": DeclaredFigure(1)}}
    lines = compute_statement(StatementInputs(("0xP1", "0xP2"), formula, usage, figures))
    assert [(ln.certificate_charges, ln.base_commission, ln.data_value_share) for ln in lines] == \
        [(1600, 30000, 125000), (1200, 20000, 75000)]


def test_inputs_hash_changes_with_any_input():
    formula = Formula(500, 2000, 5000, 3000, 2000)
    a = StatementInputs(("0xP1",), formula, (CertificateUsage(1, "0xP1", 1, 1, 1, 1, accesses=5),))
    b = StatementInputs(("0xP1",), formula, (CertificateUsage(1, "0xP1", 1, 1, 1, 1, accesses=6),))
    assert a.inputs_hash() != b.inputs_hash() and a.inputs_hash() == StatementInputs(a.providers, formula, a.certificates).inputs_hash()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        Formula(500, 2000, 5000, 3000, 1000)
    with pytest.raises(ValueError):
        compute_statement(StatementInputs(("0xP1",), Formula(0, 0, 10000, 0, 0), (CertificateUsage(1, "0xP9", 1, 1, 1, 1),)))
