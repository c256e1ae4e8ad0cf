import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.differencing import Footprint, find_conflict
from privacy.errors import AlreadyReleased, BudgetExhausted, MalformedMessage
from privacy.plausibility import Bounds, ImplausibleResult, check_buckets
from privacy.release import BudgetAccountant, ReleasePolicy, effective_min_cohort, laplace_noise, release

COUNTS = st.dictionaries(st.sampled_from([f"b{i}" for i in range(12)]), st.integers(0, 40), min_size=1)


@settings(max_examples=60, deadline=None)
@given(counts=COUNTS, k=st.integers(1, 30), noisy=st.booleans())
def test_buckets_under_k_never_appear_in_a_release(counts, k, noisy):
    buckets = {b: {"count": c, "sum": 10.0 * c} for b, c in counts.items()}
    policy = ReleasePolicy(min_cohort=k, mechanism="laplace" if noisy else None, epsilon=0.5,
                           sensitivities=(("count", 1.0), ("sum", 100.0)))
    out = release("job", "req", "ds", buckets, policy, BudgetAccountant(default_limit=10))
    small = {b for b, c in counts.items() if c < k}
    assert not small & set(out.buckets)
    assert set(out.suppressed) == small
    if not noisy:
        # totals cover released buckets only: no suppressed bucket is a difference of published numbers
        assert out.totals.get("count", 0) == sum(c for c in counts.values() if c >= k)


def test_a_job_is_released_once_so_differences_cannot_expose_suppressed_buckets():
    acc = BudgetAccountant(default_limit=10)
    buckets = {"a": {"count": 50}, "b": {"count": 3}}
    release("job-1", "req", "ds", buckets, ReleasePolicy(min_cohort=5), acc)
    with pytest.raises(AlreadyReleased):
        release("job-1", "req", "ds", {"a+b": {"count": 53}}, ReleasePolicy(min_cohort=5), acc)


def test_an_exhausted_budget_refuses_and_state_round_trips():
    acc = BudgetAccountant(limits={"claims": 1.0})
    policy = ReleasePolicy(min_cohort=1, mechanism="laplace", epsilon=0.4)
    release("j1", "insurer-a", "claims", {"x": {"count": 10}}, policy, acc)
    release("j2", "insurer-a", "claims", {"x": {"count": 10}}, policy, acc)
    acc = BudgetAccountant.from_dict(acc.to_dict())
    with pytest.raises(BudgetExhausted):
        release("j3", "insurer-a", "claims", {"x": {"count": 10}}, policy, acc)
    assert "j3" not in acc.released_jobs
    assert acc.remaining("insurer-a", "claims") == pytest.approx(0.2)
    # another requester has its own budget
    release("j4", "insurer-b", "claims", {"x": {"count": 10}}, policy, acc)


@settings(max_examples=20, deadline=None)
@given(spends=st.lists(st.floats(0.01, 0.5), min_size=1, max_size=20))
def test_budget_never_overspends(spends):
    acc = BudgetAccountant(default_limit=1.0)
    for eps in spends:
        try:
            acc.charge("r", "d", eps)
        except BudgetExhausted:
            pass
    assert acc.spent.get("r|d", 0) <= 1.0 + 1e-9


def test_gaussian_and_laplace_noise_have_the_expected_spread():
    rng = random.Random(1)
    samples = [laplace_noise(2.0, rng) for _ in range(20000)]
    assert abs(sum(samples) / len(samples)) < 0.1
    assert sum(abs(s) for s in samples) / len(samples) == pytest.approx(2.0, rel=0.05)
    out = release("g", "r", "d", {"x": {"count": 1000}}, ReleasePolicy(1, "gaussian", 1.0, 1e-5), BudgetAccountant(), rng=rng)
    assert out.buckets["x"]["count"] != 1000


@pytest.mark.parametrize("kwargs", [{"min_cohort": 0}, {"mechanism": "magic"}, {"mechanism": "laplace", "epsilon": 0}, {"mechanism": "gaussian", "epsilon": 1, "delta": 0}])
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(MalformedMessage):
        ReleasePolicy(**kwargs)


# ------------------------------------------------------------------------------------------ owner's gate, pure parts

PEOPLE = [f"p{i}" for i in range(100)]


@pytest.mark.parametrize("earlier,new,conflict", [
    ({"all": PEOPLE}, {"all": PEOPLE[:-1]}, 1),                             # N vs N-1
    ({"all": PEOPLE[:50]}, {"all": PEOPLE[3:53]}, 6),                       # a window moved by 3
    ({"lo": PEOPLE[:30], "hi": PEOPLE[30:]}, {"lo": PEOPLE[:31], "hi": PEOPLE[31:]}, 1),  # a bin edge moved by one
    ({"x": PEOPLE[:40]}, {"y": PEOPLE[:45]}, 5),                            # another bucket name, nearly the same persons
    ({"all": PEOPLE}, {"all": PEOPLE}, None),                               # identical: nothing new
    ({"all": PEOPLE[:50]}, {"all": PEOPLE[50:]}, None),                     # disjoint halves
    ({"all": PEOPLE[:50]}, {"all": PEOPLE[:60]}, None),                     # differs by k = 10: allowed
])
def test_differencing_finds_buckets_differing_by_fewer_than_k_persons(earlier, new, conflict):
    found = find_conflict(Footprint.from_persons(new), [("r1", Footprint.from_persons(earlier))], min_cohort=10)
    assert (found.persons if found else None) == conflict


def test_footprint_round_trips_and_counts_distinct_persons():
    fp = Footprint.from_persons({"a": ["p1", "p1", "p2"], "b": []})
    assert fp.sizes() == {"a": 2, "b": 0}
    assert Footprint.from_bytes(fp.to_bytes()).buckets == fp.buckets


@pytest.mark.parametrize("floor,job,k", [(10, 3, 10), (10, 25, 25), (1, 1, 1)])
def test_owner_floor_raises_and_never_lowers_k(floor, job, k):
    assert effective_min_cohort(floor, job) == k


@pytest.mark.parametrize("buckets,ok", [
    ({"a": {"count": 10, "sum": 500.0, "sum_of_squares": 30000.0}}, True),
    ({"a": {"count": 1_000_000_036, "sum": 1.0}}, False),        # more records than the participants hold
    ({"a": {"count": -3, "sum": 0.0}}, False),                    # a negative input made a bucket vanish
    ({"a": {"count": 10, "sum": 1001.0}}, False),                 # above hi * count
    ({"a": {"count": 10, "sum": -1.0}}, False),                   # below lo * count
    ({"a": {"count": 10, "sum": 50.0, "sum_of_squares": 10001.0 * 10}}, False),
])
def test_plausibility_bounds_catch_impossible_buckets(buckets, ok):
    bounds = Bounds(max_count=1000, lo=0.0, hi=100.0)
    if ok:
        check_buckets(buckets, bounds)
    else:
        with pytest.raises(ImplausibleResult):
            check_buckets(buckets, bounds)
