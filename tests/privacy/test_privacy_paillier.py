import functools
import json
import secrets

import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy import workers
from privacy.errors import KeyTooSmall, MalformedMessage, Overflow, PoolExhausted, WrongKey
from privacy.paillier import (
    Ciphertext,
    CrtEncryptor,
    CrtFixedBaseEncryptor,
    FixedBaseEncryptor,
    ObfuscatorPool,
    PheEncryptor,
    PrivateKey,
    PublicKey,
    best_window_bits,
    generate_keypair,
    parallel_encrypt,
    prepare_workers,
)
from tests.privacy_fixtures import keypair

SIGNED = st.integers(min_value=-(2**200), max_value=2**200)


@functools.lru_cache(maxsize=None)
def crt_encryptor(private):
    return CrtFixedBaseEncryptor(private)


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


@pytest.fixture(scope="module")
def encryptors(keys):
    public, private = keys
    return [PheEncryptor(public), CrtEncryptor(private), FixedBaseEncryptor(public), FixedBaseEncryptor(public, strict=True),
            crt_encryptor(private)]


@pytest.fixture
def pool(monkeypatch):
    """A warm two-worker pool that takes any amount of work (the threshold has its own tests), stopped after."""
    monkeypatch.setattr(workers, "PAYOFF_ROUND_TRIPS", 0)
    workers.warm(2, wait=True)
    yield
    workers.shutdown()


@pytest.mark.parametrize("bits", [512, 1024, 2047])
def test_keys_under_2048_bits_are_refused(bits):
    with pytest.raises(KeyTooSmall):
        generate_keypair(bits)


def test_loading_a_small_modulus_is_refused():
    small_public, small_private = phe.generate_paillier_keypair(n_length=1024)
    with pytest.raises(KeyTooSmall):
        PublicKey.from_phe(small_public)
    with pytest.raises(KeyTooSmall):
        PrivateKey.from_dict({"p": str(small_private.p), "q": str(small_private.q)})


def test_3072_bit_keys_work():
    public, private = keypair(3072)
    assert public.bits == 3072
    enc = FixedBaseEncryptor(public)
    assert enc.exponent_bits == 256
    assert private.decrypt(enc.encrypt(-12345) + enc.encrypt(5)) == -12340


@settings(max_examples=15, deadline=None)
@given(values=st.lists(SIGNED, min_size=1, max_size=6), path=st.integers(0, 4))
def test_sum_of_encryptions_decrypts_to_plain_sum(keys, encryptors, values, path):
    public, private = keys
    enc = encryptors[path]
    total = enc.encrypt(values[0])
    for v in values[1:]:
        total = total + enc.encrypt(v)
    assert private.decrypt(total) == sum(values)


@settings(max_examples=10, deadline=None)
@given(value=SIGNED)
def test_ours_decrypts_with_plain_phe_and_back(keys, encryptors, value):
    public, private = keys
    phe_public, phe_private = public.to_phe(), private.to_phe()
    for enc in encryptors:
        ct = enc.encrypt(value)
        # through the serialized form only, read with plain phe
        data = json.loads(json.dumps({"public_key": public.to_dict(), "ct": ct.to_dict()}))
        plain_public = phe.PaillierPublicKey(n=int(data["public_key"]["n"]))
        number = phe.EncryptedNumber(plain_public, int(data["ct"]["ciphertext"]), data["ct"]["exponent"])
        assert phe_private.decrypt(number) == value
    theirs = phe_public.encrypt(value)
    assert private.decrypt(Ciphertext.from_phe(theirs)) == value
    assert private.decrypt(Ciphertext.from_dict({"ciphertext": str(theirs.ciphertext()), "exponent": 0}, public)) == value


def test_private_key_round_trips_through_plain_phe(keys):
    public, private = keys
    data = json.loads(json.dumps(private.to_dict()))
    phe_private = phe.PaillierPrivateKey(phe.PaillierPublicKey(int(data["n"])), int(data["p"]), int(data["q"]))
    again = PrivateKey.from_phe(phe_private)
    assert again.public_key == public
    assert PrivateKey.from_dict(data).decrypt(FixedBaseEncryptor(public).encrypt(7)) == 7


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"n": "abc"},
        {"n": 12.5},
        {"n": True},
        {"n": "-5"},
        {"n": str(2**2048 + 2)},  # even
    ],
)
def test_malformed_public_keys_are_refused(data):
    with pytest.raises(MalformedMessage):
        PublicKey.from_dict(data)


def test_public_key_with_a_wrong_fingerprint_is_refused(keys):
    public, _ = keys
    data = public.to_dict() | {"fingerprint": "0" * 64}
    with pytest.raises(MalformedMessage):
        PublicKey.from_dict(data)


@pytest.mark.parametrize("data", [{"p": "3"}, {"p": "x", "q": "5"}, {"p": "3", "q": "5", "n": str(2**2048 + 1)}])
def test_malformed_private_keys_are_refused(data):
    with pytest.raises(MalformedMessage):
        PrivateKey.from_dict(data)


def test_ciphertexts_under_another_key_are_refused(keys):
    public, private = keys
    other_public, other_private = keypair(2048, which=1)
    foreign = FixedBaseEncryptor(other_public).encrypt(3)
    with pytest.raises(WrongKey):
        private.decrypt(foreign)
    with pytest.raises(WrongKey):
        FixedBaseEncryptor(public).encrypt(1) + foreign
    with pytest.raises(WrongKey):
        Ciphertext.from_dict(foreign.to_dict(), public)


@pytest.mark.parametrize("bad", [0, -1, "0x10", 1.5, True, None, [1], "12a"])
def test_out_of_range_or_non_integer_ciphertexts_are_refused(keys, bad):
    public, _ = keys
    with pytest.raises(MalformedMessage):
        Ciphertext.from_dict({"ciphertext": bad, "exponent": 0}, public)


def test_ciphertext_at_or_above_n_squared_or_sharing_a_factor_is_refused(keys):
    public, private = keys
    for bad in (public.nsquare, public.nsquare + 5, private.p, private.q * 7):
        with pytest.raises(MalformedMessage):
            public.ciphertext(bad)


def test_plaintext_that_would_wrap_raises_overflow(keys):
    public, _ = keys
    with pytest.raises(Overflow):
        FixedBaseEncryptor(public).encrypt(public.n)
    with pytest.raises(Overflow):
        FixedBaseEncryptor(public).encrypt(-public.n // 2)


def test_short_exponents_below_the_floor_are_refused(keys):
    with pytest.raises(ValueError):
        FixedBaseEncryptor(keys[0], exponent_bits=64)


def test_pool_uses_each_obfuscator_once_then_refuses(keys):
    public, private = keys
    pool = ObfuscatorPool(FixedBaseEncryptor(public), fallback=False)
    pool.fill(5)
    cts = [pool.encrypt(9) for _ in range(5)]
    assert len({c.value for c in cts}) == 5
    assert all(private.decrypt(c) == 9 for c in cts)
    with pytest.raises(PoolExhausted):
        pool.encrypt(1)


def test_pool_falls_back_to_online_encryption_when_allowed(keys):
    public, private = keys
    pool = ObfuscatorPool(FixedBaseEncryptor(public))
    assert private.decrypt(pool.encrypt(4)) == 4 and pool.misses == 1


def test_parallel_encryption_matches_and_preserves_order(keys, pool):
    public, private = keys
    values = list(range(-300, 300, 3))
    enc = FixedBaseEncryptor(public)
    prepare_workers(enc, processes=2)
    stats: dict = {}
    cts = parallel_encrypt(enc, values, processes=2, chunk_size=50, stats=stats)
    assert [private.decrypt(c) for c in cts] == values and stats["chunks"] > 1


def test_parallel_encryption_refuses_before_any_work_on_overflow(keys):
    public, _ = keys
    with pytest.raises(Overflow):
        parallel_encrypt(FixedBaseEncryptor(public), [1, 2, public.n], processes=2)


def test_crt_fixed_base_computes_exactly_the_fixed_base_obfuscator(keys):
    public, private = keys
    plain = FixedBaseEncryptor(public, window_bits=6)
    crt = CrtFixedBaseEncryptor(private, window_bits=9, base=plain.base)  # other windows, same h
    for x in (0, 1, 2**224 - 1, secrets.randbits(224), secrets.randbits(224)):
        rp, rq = crt._powers(x)
        full = plain._power(x)
        assert (int(rp), int(rq)) == (int(full) % int(private.psquare), int(full) % int(private.qsquare))


@settings(max_examples=10, deadline=None)
@given(value=st.one_of(SIGNED, st.sampled_from(["max", "-max", "zero"])))
def test_crt_fixed_base_ciphertexts_are_ordinary_paillier_ciphertexts(keys, value):
    public, private = keys
    value = {"max": public.max_int, "-max": -public.max_int, "zero": 0}.get(value, value)
    enc = crt_encryptor(private)
    ct = enc.encrypt(value)
    assert private.decrypt(ct) == value
    assert private.to_phe().decrypt(ct.to_phe()) == value
    # the obfuscator is an n-th residue: its order divides phi(n), as r^n's does
    obfuscator = enc.obfuscator()
    assert pow(obfuscator, (private.p - 1) * (private.q - 1), public.nsquare) == 1


def test_crt_fixed_base_rebuilds_from_its_spec_in_workers(keys, pool):
    public, private = keys
    enc = crt_encryptor(private)
    prepare_workers(enc, processes=2)  # every worker rebuilds it from its spec
    assert workers.ready_everywhere(enc.spec())
    values = list(range(-40, 40, 3))
    stats: dict = {}
    cts = parallel_encrypt(enc, values, processes=2, chunk_size=5, stats=stats)
    assert [private.decrypt(c) for c in cts] == values and stats["chunks"] > 1
    assert enc.spec().build().base == enc.base
    with pytest.raises(Overflow):
        enc.encrypt(public.max_int + 1)


def test_window_size_follows_the_amount_of_work():
    sizes = [best_window_bits(n, halves=2) for n in (1, 100, 10_000, 1_000_000)]
    assert sizes == sorted(sizes) and sizes[0] <= 3 and sizes[-1] == 12
