import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.encoding import FixedPoint
from privacy.errors import LayoutMismatch, MalformedMessage, Overflow, WrongKey
from privacy.packing import PackedVector, SlotLayout
from privacy.paillier import FixedBaseEncryptor
from tests.privacy_fixtures import keypair


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


@pytest.fixture(scope="module")
def encryptor(keys):
    return FixedBaseEncryptor(keys[0])


@st.composite
def layouts_and_vectors(draw):
    widths = tuple(draw(st.lists(st.integers(2, 130), min_size=1, max_size=40)))
    additions = draw(st.integers(1, 6))
    layout = SlotLayout(widths, max_additions=additions + draw(st.integers(0, 3)))
    vectors = [
        [draw(st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1)) for w in widths] for _ in range(additions)
    ]
    return layout, vectors


@settings(max_examples=40, deadline=None)
@given(case=layouts_and_vectors())
def test_packing_is_exact_for_sums_of_signed_values_without_encryption(case):
    layout, vectors = case
    packed = [layout.pack(v) for v in vectors]
    sums = [sum(p[i] for p in packed) for i in range(layout.plaintext_count)]
    assert layout.unpack(sums) == [sum(col) for col in zip(*vectors)]


@settings(max_examples=12, deadline=None)
@given(case=layouts_and_vectors())
def test_decrypting_a_sum_of_packed_encryptions_gives_the_plain_sums(keys, encryptor, case):
    layout, vectors = case
    public, private = keys
    total = PackedVector.encrypt(layout, vectors[0], encryptor)
    for v in vectors[1:]:
        total = total + PackedVector.encrypt(layout, v, encryptor)
    assert total.decrypt(private) == [sum(col) for col in zip(*vectors)]


@settings(max_examples=30, deadline=None)
@given(width=st.integers(2, 100), excess=st.integers(0, 2**20), negative=st.booleans())
def test_a_value_outside_its_slot_raises_overflow(width, excess, negative):
    layout = SlotLayout((width, width), max_additions=4)
    value = -(1 << (width - 1)) - 1 - excess if negative else (1 << (width - 1)) + excess
    with pytest.raises(Overflow):
        layout.pack([0, value])


def test_more_additions_than_the_headroom_raise_overflow(keys, encryptor):
    layout = SlotLayout.uniform(3, 16, max_additions=2)
    v = PackedVector.encrypt(layout, [1, 2, 3], encryptor)
    two = v + v
    with pytest.raises(Overflow):
        two + v


def test_overflowed_plaintext_is_detected_on_unpack():
    layout = SlotLayout.uniform(2, 8, max_additions=1)
    too_big = 1 << (2 * (8 + layout.headroom_bits) + 1)
    with pytest.raises(Overflow):
        layout.unpack([too_big])


def test_mixed_layouts_and_wrong_keys_are_refused(keys, encryptor):
    a = PackedVector.encrypt(SlotLayout.uniform(2, 16, 4), [1, 2], encryptor)
    b = PackedVector.encrypt(SlotLayout.uniform(2, 17, 4), [1, 2], encryptor)
    with pytest.raises(LayoutMismatch):
        a + b
    other = FixedBaseEncryptor(keypair(2048, which=1)[0])
    c = PackedVector.encrypt(SlotLayout.uniform(2, 16, 4), [1, 2], other)
    with pytest.raises(WrongKey):
        a + c
    with pytest.raises(LayoutMismatch):
        SlotLayout.uniform(2, 16, 4).pack([1, 2, 3])


def test_packing_many_values_needs_few_plaintexts():
    layout = SlotLayout.uniform(128, 60, max_additions=5)
    assert layout.plaintext_count == 5  # 2046 // 64 = 31 slots per plaintext


def test_packed_vector_serialization_round_trip_and_refusals(keys, encryptor):
    public, private = keys
    layout = SlotLayout.uniform(3, 20, 3)
    v = PackedVector.encrypt(layout, [-5, 0, 7], encryptor)
    again = PackedVector.from_dict(v.to_dict(), public, layout)
    assert again.decrypt(private) == [-5, 0, 7]
    with pytest.raises(LayoutMismatch):
        PackedVector.from_dict(v.to_dict(), public, SlotLayout.uniform(3, 21, 3))
    with pytest.raises(WrongKey):
        PackedVector.from_dict(v.to_dict(), keypair(2048, which=1)[0])
    with pytest.raises(MalformedMessage):
        PackedVector.from_dict(v.to_dict() | {"ciphertexts": ["nope"]}, public)
    with pytest.raises(LayoutMismatch):
        PackedVector.from_dict(v.to_dict() | {"ciphertexts": []}, public)


@settings(max_examples=50, deadline=None)
@given(value=st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_fixed_point_round_trips_two_decimals(value):
    codec = FixedPoint(2, 48)
    assert codec.decode_exact(codec.encode(value)) == value


def test_fixed_point_refuses_wide_and_non_finite_values():
    codec = FixedPoint(2, 16)
    with pytest.raises(Overflow):
        codec.encode(1000)
    with pytest.raises(MalformedMessage):
        codec.encode(float("nan"))
    with pytest.raises(MalformedMessage):
        codec.encode("abc")


def test_the_wire_check_finds_tokens_not_slices_of_random_numbers():
    from tests.privacy_fixtures import assert_not_on_wire

    text = json.dumps({"ciphertext": "98123457001", "points": ["ab12cd"], "amount": 123457, "note": "paid 77.5|x"})
    assert_not_on_wire(text, ["12345", "2cd", "7001"])  # slices of longer numbers are not leaks
    for leaked in ("123457", "77.5", "98123457001", "ab12cd", "paid"):
        with pytest.raises(AssertionError):
            assert_not_on_wire(text, [leaked])


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e13, max_value=1e13),
                       st.integers(-10**9, 10**9).map(lambda c: c / 100)))
def test_fixed_point_fast_float_path_agrees_with_decimal_rounding(value):
    from decimal import ROUND_HALF_EVEN, Decimal

    codec = FixedPoint(2, 48)
    exact = int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    if -(1 << 47) <= exact < 1 << 47:
        assert codec.encode(value) == exact
    else:
        with pytest.raises(Overflow):
            codec.encode(value)
