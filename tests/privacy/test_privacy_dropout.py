import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.aggregation import HorizontalSpec, local_vector
from privacy.dropout import (
    DropoutAggregator,
    DropoutParticipant,
    EncryptedShare,
    KeyAdvert,
    UnmaskingShares,
    combine_shares,
    split_secret,
)
from privacy.errors import DuplicateContribution, MalformedMessage, MissingParticipant, UnknownParticipant
from privacy.masking import generate_masking_key, public_bytes
from privacy.paillier import FixedBaseEncryptor
from tests.privacy_fixtures import assert_not_on_wire, keypair, wire

NAMES = [f"m{i}" for i in range(5)]


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


@pytest.fixture(scope="module")
def identities():
    private = {n: generate_masking_key() for n in NAMES}
    return private, {n: public_bytes(k) for n, k in private.items()}


@pytest.fixture(scope="module")
def encryptor(keys):
    return FixedBaseEncryptor(keys[0])


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), holders=st.integers(2, 9), data=st.data())
def test_any_threshold_many_shares_rebuild_the_secret(secret, holders, data):
    t = data.draw(st.integers(1, holders))
    shares = split_secret(secret, t, list(range(1, holders + 1)))
    subset = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=t, max_size=holders, unique=True))
    assert combine_shares({x: shares[x] for x in subset}, t) == secret
    if t > 1:
        with pytest.raises(MissingParticipant):
            combine_shares({x: shares[x] for x in subset[: t - 1]}, t)


def _records(seed):
    rng = random.Random(seed)
    return [(rng.choice("abc"), Fraction(rng.randint(-100_000, 100_000), 100)) for _ in range(rng.randint(0, 12))]


def _round(keys, identities, encryptor, threshold=3, drop_before_shares=(), drop_before_input=(), seed=1, wire_log=None):
    """One dropout-tolerant round over JSON messages; returns (result, expected survivors' records)."""
    private, registry = identities
    spec = HorizontalSpec("job-d", tuple(NAMES), ("a", "b", "c"), keys[0].fingerprint, threshold=threshold)
    agg = DropoutAggregator(spec, keys[1])
    parts = {n: DropoutParticipant(spec, n, private[n], registry, keys[0], encryptor) for n in NAMES}
    log = wire_log if wire_log is not None else []
    for p in parts.values():
        advert = p.advertise().to_dict()
        log.append(advert)
        agg.add_advert(advert)
    for n, p in parts.items():
        boxes = p.share_keys(agg.adverts)
        if n in drop_before_shares:
            continue
        log.extend(b.to_dict() for b in boxes)
        agg.add_shares(n, [EncryptedShare.from_dict(b.to_dict()) for b in boxes])
    data = {n: _records(seed + i) for i, n in enumerate(NAMES)}
    for n, p in parts.items():
        if n in drop_before_shares or n in drop_before_input:
            continue
        contribution = p.masked_input(agg.shares_for(n), records=data[n]).to_dict()
        log.append(contribution)
        agg.add(contribution)
    for n in agg.survivors:
        answer = parts[n].unmask(agg.survivors).to_dict()
        log.append(answer)
        agg.add_unmasking(UnmaskingShares.from_dict(answer))
    survivors = [r for n in agg.survivors for r in data[n]]
    return agg.finish(), survivors, parts, agg, data


def _check(result, records):
    for bucket in "abc":
        values = [v for b, v in records if b == bucket]
        assert result[bucket].count == len(values)
        assert result[bucket].sum == sum(values, Fraction(0))
        assert result[bucket].sum_of_squares == sum((v * v for v in values), Fraction(0))


def test_a_round_without_dropouts_gives_the_exact_statistics(keys, identities, encryptor):
    result, records, *_ = _round(keys, identities, encryptor)
    _check(result, records)


@pytest.mark.parametrize("before_shares,before_input", [((), ("m1", "m4")), (("m0",), ("m3",)), (("m2", "m3"), ())])
def test_the_round_finishes_without_a_rerun_when_participants_drop(keys, identities, encryptor, before_shares, before_input):
    result, records, parts, agg, data = _round(keys, identities, encryptor, drop_before_shares=before_shares, drop_before_input=before_input)
    assert set(agg.survivors) == set(NAMES) - set(before_shares) - set(before_input)
    _check(result, records)


def test_too_many_dropouts_are_refused_not_guessed(keys, identities, encryptor):
    with pytest.raises(MissingParticipant):
        _round(keys, identities, encryptor, drop_before_input=("m0", "m1", "m2"))


def test_a_survivor_never_reveals_both_shares_of_anyone(keys, identities, encryptor):
    _, _, parts, agg, _ = _round(keys, identities, encryptor, drop_before_input=("m4",))
    alive = agg.survivors
    answer = parts[alive[0]].unmask(alive)  # the same question again gets the same answer
    assert set(answer.self_mask_shares) == set(alive) and set(answer.mask_key_shares) == {"m4"}
    with pytest.raises(DuplicateContribution):
        parts[alive[0]].unmask(alive[:-1])  # a second list would give both shares of alive[-1]
    with pytest.raises(DuplicateContribution):
        parts["m0"].unmask(["m0", "m1", "m3"])


def test_shares_travel_encrypted_and_a_lone_contribution_stays_masked(keys, identities, encryptor):
    log = []
    _, _, parts, agg, data = _round(keys, identities, encryptor, drop_before_input=("m2",), wire_log=log)
    text = "".join(wire(type("M", (), {"to_dict": lambda self, d=d: d})()) for d in log if d.get("kind") in ("secagg-share", "secagg-advert"))
    held = [s for p in parts.values() for pair in p._held.values() for s in pair]
    assert_not_on_wire(text, [str(s) for s in held] + [format(s, "x") for s in held])
    # even with m2's masking key rebuilt, m0's vector keeps its self mask
    alone = agg._sum._contributions["m0"].vector.decrypt(keys[1], modular=True)
    assert alone != local_vector(agg.spec, data["m0"])


def test_tampered_or_misrouted_boxes_are_refused(keys, identities, encryptor):
    private, registry = identities
    spec = HorizontalSpec("job-t", tuple(NAMES), ("a",), keys[0].fingerprint, threshold=3)
    parts = {n: DropoutParticipant(spec, n, private[n], registry, keys[0], encryptor) for n in NAMES}
    adverts = {n: p.advertise().mask_public for n, p in parts.items()}
    boxes = parts["m0"].share_keys(adverts)
    box = next(b for b in boxes if b.recipient == "m1")
    parts["m1"].share_keys(adverts)
    flipped = EncryptedShare(box.sender, box.recipient, box.nonce, bytes([box.box[0] ^ 1]) + box.box[1:])
    with pytest.raises(MalformedMessage):
        parts["m1"].masked_input([flipped], vector=[0] * spec.layout.length)
    parts["m2"].share_keys(adverts)
    with pytest.raises(UnknownParticipant):
        parts["m2"].masked_input([box], vector=[0] * spec.layout.length)
    with pytest.raises(MalformedMessage):
        KeyAdvert.from_dict({"kind": "secagg-advert", "participant": "m0", "mask_public": "00" * 32})


def test_thresholds_must_be_a_majority(keys):
    with pytest.raises(MalformedMessage):
        HorizontalSpec("j", tuple(NAMES), ("a",), keys[0].fingerprint, threshold=2)
    with pytest.raises(MalformedMessage):
        HorizontalSpec("j", tuple(NAMES), ("a",), keys[0].fingerprint, threshold=6)
    plain = HorizontalSpec("j", tuple(NAMES), ("a",), keys[0].fingerprint)
    assert "threshold" not in plain.to_dict()  # specs without dropout tolerance hash as before
