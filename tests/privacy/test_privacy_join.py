import concurrent.futures
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.errors import DuplicateContribution, LayoutMismatch, MalformedMessage, Overflow, WrongKey
from privacy.join import (
    BucketSums,
    DoubleBlindedBuckets,
    EncryptedLabelBatch,
    FeatureOwner,
    JoinSpec,
    LabelOwner,
    PlatformBuckets,
)
from tests.privacy_fixtures import assert_not_on_wire, keypair, wire

BUCKETS = ("age-18-30", "age-31-50", "age-51+")


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


def _data(rng, n_platform, n_insurer, overlap):
    common = [f"user{rng.getrandbits(40)}" for _ in range(overlap)]
    platform = [(i, rng.choice(BUCKETS)) for i in common + [f"p-only{k}" for k in range(n_platform)]]
    insurer = [(i, rng.random() < 0.3, Fraction(rng.randint(0, 10**7), 100)) for i in common + [f"i-only{k}" for k in range(n_insurer)]]
    return platform, insurer


def _run(spec, keys, platform, insurer, wire_log=None, executor=None, **platform_kw):
    feature_owner = FeatureOwner(spec, platform, **platform_kw)
    label_owner = LabelOwner(spec, keys[1], insurer)
    m1 = PlatformBuckets.from_dict(feature_owner.blinded_buckets(executor).to_dict(), spec)
    m2 = DoubleBlindedBuckets.from_dict(label_owner.double_blind(m1, executor).to_dict(), spec)
    feature_owner.load_double_blinded(m2)
    messages = [m1, m2]
    for batch in label_owner.label_batches(7, executor):
        batch = EncryptedLabelBatch.from_dict(batch.to_dict(), spec, keys[0])
        messages.append(batch)
        feature_owner.accumulate(batch, keys[0], executor)
    m4 = BucketSums.from_dict(feature_owner.bucket_sums().to_dict(), spec, keys[0])
    messages.append(m4)
    if wire_log is not None:
        wire_log.extend(messages)
    return label_owner.decrypt(m4), feature_owner, m4


def _plain(platform, insurer, k):
    bucket_of = dict(platform)
    out = {}
    for ident, claimed, amount in insurer:
        if ident in bucket_of:
            e = out.setdefault(bucket_of[ident], [0, 0, Fraction(0), Fraction(0)])
            e[0] += 1
            e[1] += int(claimed)
            e[2] += amount
            e[3] += amount * amount
    return {b: e for b, e in out.items() if e[0] >= k}


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32), k=st.integers(1, 6), overlap=st.integers(0, 40))
def test_join_and_group_by_equals_the_plain_computation(keys, seed, k, overlap):
    rng = random.Random(seed)
    platform, insurer = _data(rng, rng.randint(0, 15), rng.randint(0, 15), overlap)
    spec = JoinSpec("job-v", BUCKETS, keys[0].fingerprint, min_cohort=k)
    results, _, sums = _run(spec, keys, platform, insurer)
    expected = _plain(platform, insurer, k)
    assert set(results) == set(expected)
    for b, (count, claimed, amount, squares) in expected.items():
        r = results[b]
        assert (r.count, r.claimed, r.amount, r.amount_squared) == (count, claimed, amount, squares)
    # suppressed buckets never appear, not even encrypted
    assert set(sums.sums) == set(expected)


def test_messages_hold_no_identifier_or_label_of_the_other_party(keys):
    rng = random.Random(3)
    platform, insurer = _data(rng, 10, 10, 30)
    spec = JoinSpec("job-w", BUCKETS, keys[0].fingerprint, min_cohort=2)
    log = []
    _run(spec, keys, platform, insurer, wire_log=log)
    text = "".join(wire(m) for m in log)
    assert_not_on_wire(text, [i for i, _ in platform] + [i for i, _, _ in insurer])
    amounts = [a for _, _, a in insurer if a > 10]
    assert_not_on_wire(text, [str(int(a * 100)) for a in amounts] + [f"{float(a):.2f}" for a in amounts])


def test_platform_padding_hides_bucket_sizes_and_keeps_results(keys):
    rng = random.Random(5)
    platform, insurer = _data(rng, 5, 5, 25)
    spec = JoinSpec("job-p", BUCKETS, keys[0].fingerprint, min_cohort=1)
    log = []
    results, _, _ = _run(spec, keys, platform, insurer, wire_log=log, pad_to=40)
    assert {len(p) for p in log[0].buckets.values()} == {40}
    assert {b: r.count for b, r in results.items()} == {b: e[0] for b, e in _plain(platform, insurer, 1).items()}


def test_bucket_sums_are_rerandomized_so_the_insurer_cannot_spot_its_ciphertexts(keys):
    spec = JoinSpec("job-r", BUCKETS, keys[0].fingerprint, min_cohort=1)
    platform = [("only-match", BUCKETS[0])]
    insurer = [("only-match", True, 12)]
    log = []
    _run(spec, keys, platform, insurer, wire_log=log)
    sent = {c for m in log if isinstance(m, EncryptedLabelBatch) for c in m.ciphertexts}
    returned = {c.value for v in log[-1].sums.values() for c in v.ciphertexts}
    assert not sent & returned


def test_parallel_run_matches(keys):
    rng = random.Random(9)
    platform, insurer = _data(rng, 20, 20, 60)
    spec = JoinSpec("job-x", BUCKETS, keys[0].fingerprint, min_cohort=1)
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        results, _, _ = _run(spec, keys, platform, insurer, executor=ex)
    assert {b: r.count for b, r in results.items()} == {b: e[0] for b, e in _plain(platform, insurer, 1).items()}


def test_bad_batches_are_refused_and_nothing_is_half_added(keys):
    spec = JoinSpec("job-b", BUCKETS, keys[0].fingerprint, min_cohort=1)
    platform = [(f"u{i}", BUCKETS[i % 3]) for i in range(9)]
    insurer = [(f"u{i}", i % 2, i) for i in range(9)]
    feature_owner = FeatureOwner(spec, platform)
    label_owner = LabelOwner(spec, keys[1], insurer)
    feature_owner.load_double_blinded(label_owner.double_blind(feature_owner.blinded_buckets()))
    (batch,) = list(label_owner.label_batches(100))
    data = batch.to_dict()
    with pytest.raises(WrongKey):
        EncryptedLabelBatch.from_dict(data | {"key": "0" * 64}, spec, keys[0])
    with pytest.raises(MalformedMessage):
        EncryptedLabelBatch.from_dict(data | {"ciphertexts": data["ciphertexts"][:-1] + ["0"]}, spec, keys[0])
    with pytest.raises(MalformedMessage):
        EncryptedLabelBatch.from_dict(data | {"ciphertexts": data["ciphertexts"][:-1] + ["xyz"]}, spec, keys[0])
    with pytest.raises(WrongKey):
        feature_owner.accumulate(batch, keypair(2048, which=1)[0])
    bad = EncryptedLabelBatch(batch.job_id, batch.key_fingerprint, batch.points, batch.ciphertexts[:-1] + [keys[0].nsquare])
    with pytest.raises(MalformedMessage):
        feature_owner.accumulate(bad, keys[0])
    assert sum(feature_owner.matched_counts.values()) == 0
    feature_owner.accumulate(batch, keys[0])
    with pytest.raises(DuplicateContribution):
        feature_owner.accumulate(batch, keys[0])
    results = label_owner.decrypt(feature_owner.bucket_sums())
    assert sum(r.count for r in results.values()) == 9


def test_mismatched_bucket_layouts_and_duplicates_are_refused(keys):
    spec = JoinSpec("job-m", BUCKETS, keys[0].fingerprint)
    with pytest.raises(LayoutMismatch):
        FeatureOwner(spec, [("a", "no-such-bucket")])
    with pytest.raises(DuplicateContribution):
        FeatureOwner(spec, [("a", BUCKETS[0]), ("a", BUCKETS[1])])
    with pytest.raises(DuplicateContribution):
        LabelOwner(spec, keys[1], [("a", 1, 2), ("a", 0, 3)])
    feature_owner = FeatureOwner(spec, [("a", BUCKETS[0])])
    message = feature_owner.blinded_buckets().to_dict()
    message["buckets"]["extra"] = []
    with pytest.raises(LayoutMismatch):
        PlatformBuckets.from_dict(message, spec)
    with pytest.raises(WrongKey):
        LabelOwner(spec, keypair(2048, which=1)[1], [])


def test_platform_noise_is_added_under_encryption(keys):
    spec = JoinSpec("job-n", BUCKETS, keys[0].fingerprint, min_cohort=1)
    platform = [(f"u{i}", BUCKETS[0]) for i in range(5)]
    insurer = [(f"u{i}", 1, 10) for i in range(5)]
    feature_owner = FeatureOwner(spec, platform)
    label_owner = LabelOwner(spec, keys[1], insurer)
    feature_owner.load_double_blinded(label_owner.double_blind(feature_owner.blinded_buckets()))
    for batch in label_owner.label_batches():
        feature_owner.accumulate(batch, keys[0])
    noise = spec.laplace_noise_vector(1.0, amount_bound=100)
    result = label_owner.decrypt(feature_owner.bucket_sums(noise={BUCKETS[0]: [2, -1, 150, 0]}))[BUCKETS[0]]
    assert (result.count, result.claimed, result.amount) == (7, 4, Fraction(5150, 100))
    assert len(noise) == 4 and all(isinstance(v, int) for v in noise)


@pytest.mark.parametrize("n_platform,n_insurer", [(0, 0), (6, 0), (0, 6)])
def test_empty_sets_on_either_side_give_an_all_suppressed_result(keys, n_platform, n_insurer):
    # the property test draws overlap=0 with an empty insurer set in about 1 run of 130: pin it down
    rng = random.Random(15)
    platform, insurer = _data(rng, n_platform, n_insurer, 0)
    spec = JoinSpec("job-e", BUCKETS, keys[0].fingerprint, min_cohort=1)
    results, feature_owner, sums = _run(spec, keys, platform, insurer)
    assert results == {} and sums.sums == {} and sorted(sums.suppressed) == sorted(BUCKETS)
    assert set(feature_owner.matched_counts.values()) == {0}


def test_bucket_sums_before_the_double_blinded_buckets_are_refused(keys):
    spec = JoinSpec("job-o", BUCKETS, keys[0].fingerprint)
    with pytest.raises(MalformedMessage):
        FeatureOwner(spec, [("a", BUCKETS[0])]).bucket_sums()


def _prepared(spec, keys, platform, insurer, executor=None):
    feature_owner = FeatureOwner(spec, platform)
    label_owner = LabelOwner(spec, keys[1], insurer)
    feature_owner.load_double_blinded(label_owner.double_blind(feature_owner.blinded_buckets(executor), executor))
    return feature_owner, label_owner


def test_streamed_pipeline_matches_the_plain_computation_and_stays_bounded(keys):
    rng = random.Random(21)
    platform, insurer = _data(rng, 15, 15, 70)
    spec = JoinSpec("job-s", BUCKETS, keys[0].fingerprint, min_cohort=1)
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        feature_owner, label_owner = _prepared(spec, keys, platform, insurer, ex)
        handed_out = []

        def watched(batches):
            for batch in batches:
                handed_out.append(len(batch.points))
                yield batch

        matched = feature_owner.accumulate_stream(watched(label_owner.label_batches(9, ex, in_flight=2)), keys[0], ex, in_flight=1)
    assert matched == 70 and sum(handed_out) == 85 and max(handed_out) == 9
    results = label_owner.decrypt(feature_owner.bucket_sums())
    expected = _plain(platform, insurer, 1)
    assert {b: (r.count, r.claimed, r.amount) for b, r in results.items()} == {b: tuple(e[:3]) for b, e in expected.items()}


def test_a_row_replayed_in_a_later_batch_is_refused_in_the_stream_too(keys):
    spec = JoinSpec("job-d", BUCKETS, keys[0].fingerprint, min_cohort=1)
    platform = [(f"u{i}", BUCKETS[i % 3]) for i in range(8)]
    insurer = [(f"u{i}", 1, i) for i in range(8)]
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        feature_owner, label_owner = _prepared(spec, keys, platform, insurer)
        first, second = list(label_owner.label_batches(4))
        replay = EncryptedLabelBatch(second.job_id, second.key_fingerprint, second.points[:1] + first.points[:1],
                                     second.ciphertexts[:1] + first.ciphertexts[:1])
        with pytest.raises(DuplicateContribution):
            feature_owner.accumulate_stream(iter([first, replay]), keys[0], ex)
    # the refused batch changed nothing: only the first batch's rows count
    assert sum(feature_owner.matched_counts.values()) == 4
    feature_owner.accumulate(second, keys[0])
    assert sum(r.count for r in label_owner.decrypt(feature_owner.bucket_sums()).values()) == 8


def test_label_packing_refuses_what_the_layout_cannot_hold(keys):
    spec = JoinSpec("job-l", BUCKETS, keys[0].fingerprint, amount_bits=20, square_bits=30)
    with pytest.raises(Overflow):
        LabelOwner(spec, keys[1], [("a", 1, 6000)])  # 600000 needs 21 signed bits
    with pytest.raises(Overflow):
        LabelOwner(spec, keys[1], [("a", 1, 400)])  # 40000^2 needs 32 signed bits
    with pytest.raises(MalformedMessage):
        LabelOwner(spec, keys[1], [("a", 2, 1)])
    owner = LabelOwner(spec, keys[1], [("a", True, "-12.34")])
    assert spec.layout.unpack([owner.rows[0][1]]) == [1, 1, -1234, 1234 * 1234]
