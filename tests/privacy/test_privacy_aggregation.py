import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.aggregation import Aggregator, HorizontalSpec, contribute, local_vector
from privacy.errors import (
    DuplicateContribution,
    LayoutMismatch,
    MalformedMessage,
    MissingParticipant,
    UnknownParticipant,
    WrongKey,
)
from privacy.masking import apply_mask, generate_masking_key, public_bytes, zero_sum_mask
from privacy.paillier import FixedBaseEncryptor
from tests.privacy_fixtures import assert_not_on_wire, keypair, wire


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


@pytest.fixture(scope="module")
def members():
    names = [f"m{i}" for i in range(6)]
    private = {n: generate_masking_key() for n in names}
    return private, {n: public_bytes(k) for n, k in private.items()}


@settings(max_examples=30, deadline=None)
@given(
    parties=st.integers(2, 8),
    widths=st.lists(st.integers(2, 128), min_size=1, max_size=12),
    seed=st.binary(min_size=8, max_size=8),
)
def test_masks_cancel_for_any_number_of_parties(parties, widths, seed):
    names = [f"p{i}" for i in range(parties)]
    keys = {n: generate_masking_key() for n in names}
    pubs = {n: public_bytes(k) for n, k in keys.items()}
    masks = [zero_sum_mask(keys[n], n, {m: pubs[m] for m in names if m != n}, seed, widths) for n in names]
    for i, w in enumerate(widths):
        assert sum(m[i] for m in masks) % (1 << w) == 0


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.integers(0, 2**63 - 1), min_size=8, max_size=8))
def test_a_single_masked_contribution_differs_from_its_values(members, values):
    private, public = members
    widths = [64] * 8
    masked = apply_mask(values, zero_sum_mask(private["m0"], "m0", {"m1": public["m1"]}, b"round", widths), widths)
    assert masked != values


def _records(rng, buckets, n):
    return [(rng.choice(buckets), Fraction(rng.randint(-500_000, 500_000), 100)) for _ in range(n)]


def _spec(keys, participants, buckets=("a", "b", "c"), **kw):
    return HorizontalSpec("job-1", tuple(participants), tuple(buckets), keys[0].fingerprint, **kw)


def _contribution(spec, keys, members, name, records, encryptor=None):
    private, public = members
    return contribute(spec, name, private[name], {p: public[p] for p in spec.participants if p != name}, keys[0], records=records, encryptor=encryptor)


@settings(max_examples=6, deadline=None)
@given(parties=st.integers(2, 5), seed=st.integers(0, 2**32))
def test_sum_of_contributions_decrypts_to_the_true_statistics(keys, members, parties, seed):
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(parties)]
    spec = _spec(keys, names)
    enc = FixedBaseEncryptor(keys[0])
    data = {n: _records(rng, spec.buckets, rng.randint(0, 30)) for n in names}
    agg = Aggregator(spec, keys[1])
    for n in names:
        agg.add(_contribution(spec, keys, members, n, data[n], enc).to_dict())
    result = agg.finish()
    everything = [r for n in names for r in data[n]]
    for bucket in spec.buckets:
        values = [v for b, v in everything if b == bucket]
        got = result[bucket]
        assert got.count == len(values)
        assert got.sum == sum(values, Fraction(0))
        assert got.sum_of_squares == sum((v * v for v in values), Fraction(0))
        if values:
            mean = sum(values, Fraction(0)) / len(values)
            assert got.mean == pytest.approx(float(mean))
            assert got.variance == pytest.approx(float(sum((v - mean) ** 2 for v in values) / len(values)), rel=1e-9, abs=1e-9)


def test_a_single_contribution_decrypts_to_noise(keys, members):
    spec = _spec(keys, ["m0", "m1", "m2"])
    c = _contribution(spec, keys, members, "m0", [("a", 5), ("b", 7)])
    alone = c.vector.decrypt(keys[1], modular=True)
    assert alone != local_vector(spec, [("a", 5), ("b", 7)])


def test_contribution_wire_holds_no_plain_value(keys, members):
    spec = _spec(keys, ["m0", "m1"])
    records = [("a", Fraction(123457, 100)), ("b", Fraction(-98765, 100))]
    text = wire(_contribution(spec, keys, members, "m0", records))
    plain = [v for v in local_vector(spec, records) if abs(v) > 9]
    assert_not_on_wire(text, plain + ["1234.57", "-987.65"])


def test_missing_participant_is_reported_and_the_round_reruns_without_it(keys, members):
    spec = _spec(keys, ["m0", "m1", "m2"])
    agg = Aggregator(spec, keys[1])
    agg.add(_contribution(spec, keys, members, "m0", [("a", 1)]))
    agg.add(_contribution(spec, keys, members, "m1", [("a", 2)]))
    with pytest.raises(MissingParticipant) as info:
        agg.finish()
    assert info.value.missing == ["m2"]
    rerun = spec.without(info.value.missing)
    assert rerun.round == 1 and rerun.round_id != spec.round_id
    agg2 = Aggregator(rerun, keys[1])
    agg2.add(_contribution(rerun, keys, members, "m0", [("a", 1)]))
    agg2.add(_contribution(rerun, keys, members, "m1", [("a", 2)]))
    assert agg2.finish()["a"].sum == 3


def test_refused_contributions_leave_the_sum_untouched(keys, members):
    spec = _spec(keys, ["m0", "m1"])
    agg = Aggregator(spec, keys[1])
    good = _contribution(spec, keys, members, "m0", [("a", 4)])
    agg.add(good)
    with pytest.raises(DuplicateContribution):
        agg.add(good)
    replay = good.to_dict() | {"participant": "m1"}
    with pytest.raises(DuplicateContribution):
        agg.add(replay)
    other_key = keypair(2048, which=1)
    foreign = contribute(spec, "m1", members[0]["m1"], {"m0": members[1]["m0"]}, keys[0], records=[("a", 1)],
                         encryptor=FixedBaseEncryptor(keys[0]))
    data = foreign.to_dict()
    data["vector"]["key"] = other_key[0].fingerprint
    with pytest.raises(WrongKey):
        agg.add(data)
    other_spec = _spec(keys, ["m0", "m1"], buckets=("a", "b"))
    with pytest.raises(LayoutMismatch):
        agg.add(_contribution(other_spec, keys, members, "m1", [("a", 1)]).to_dict())
    broken = foreign.to_dict()
    broken["vector"]["ciphertexts"][0] = "-7"
    with pytest.raises(MalformedMessage):
        agg.add(broken)
    with pytest.raises(UnknownParticipant):
        agg.add(foreign.to_dict() | {"participant": "m9"})
    assert agg.received == ["m0"]
    agg.add(foreign)
    assert agg.finish()["a"].sum == 5


def test_records_in_undeclared_buckets_and_wrong_keys_are_refused(keys, members):
    spec = _spec(keys, ["m0", "m1"])
    with pytest.raises(LayoutMismatch):
        _contribution(spec, keys, members, "m0", [("zzz", 1)])
    with pytest.raises(WrongKey):
        Aggregator(spec, keypair(2048, which=1)[1])
    with pytest.raises(MissingParticipant):
        HorizontalSpec("j", ("only",), ("a",), keys[0].fingerprint)
