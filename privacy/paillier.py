"""Paillier keys, ciphertexts, serialization and fast encryption paths.

Paillier, "Public-Key Cryptosystems Based on Composite Degree Residuosity Classes", EUROCRYPT 1999.
We use g = n + 1 (as python-paillier does), so g^m = 1 + n*m mod n^2 and encryption costs one
"obfuscator" r^n mod n^2 plus a multiplication. Every fast path below changes only how that
obfuscator is produced:

``PheEncryptor``        plain phe (``raw_encrypt``): r random in Z_n*, full 2048/3072-bit exponent. Baseline.
``CrtEncryptor``        the key holder computes r^n mod p^2 and mod q^2 and recombines (CRT), ~2x faster.
``FixedBaseEncryptor``  Damgard, Jurik, Nielsen, "A generalization of Paillier's public-key system with
                        applications to electronic voting", IJIS 2010, section 4.2: obfuscator = h^x with h a
                        fixed random n-th residue and x a *short* random exponent, evaluated from a
                        precomputed fixed-base window table (a few dozen multiplications mod n^2).
                        Extra assumption: h^x for short x is indistinguishable from a uniformly random
                        n-th residue (a short-exponent variant of decisional composite residuosity).
                        ``strict=True`` drops the assumption and draws a full-size random r every time.
``CrtFixedBaseEncryptor`` the key holder's fixed-base path: the same h^x, evaluated modulo p^2 and q^2 (half-size
                        moduli, ~2.5x cheaper multiplications) from two window tables and recombined (CRT).
                        Bit-for-bit the ciphertext ``FixedBaseEncryptor`` would produce with the same h and x.
``ObfuscatorPool``      obfuscators computed offline (by any of the above), each used once, so the online
                        cost of an encryption is one multiplication.
``parallel_encrypt``    any of the above over all cores: the shared worker pool of :mod:`privacy.workers`.

Serialization is JSON-friendly and readable by plain phe: a public key is ``{"n": "<decimal>"}``
(``phe.PaillierPublicKey(n=int(d["n"]))``), a private key adds ``"p"`` and ``"q"``
(``phe.PaillierPrivateKey(public, int(d["p"]), int(d["q"]))``) and a ciphertext is
``{"ciphertext": "<decimal>", "exponent": 0, "key": fingerprint}``
(``phe.EncryptedNumber(public, int(d["ciphertext"]), d["exponent"])``).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import phe
from phe import paillier as phe_paillier

from privacy import workers
from privacy.errors import KeyTooSmall, MalformedMessage, Overflow, PoolExhausted, WrongKey
from privacy.gmp import crt_pair, gcd, invert, mpz, powmod
from privacy.workers import default_processes

MIN_KEY_BITS = 2048
SUPPORTED_KEY_BITS = (2048, 3072)

# NIST SP 800-57 strength of the modulus; the short exponent is twice that (DJN 2010 suggest a
# length of about 2k for k-bit security so that generic square-root attacks on x cost 2^k).
_SECURITY_BITS = {2048: 112, 3072: 128}


def _parse_int(value: Any, what: str) -> int:
    """Accept a JSON integer or a decimal string; refuse bools, floats and anything else."""
    if isinstance(value, bool):
        raise MalformedMessage(f"{what}: expected an integer or decimal string, got a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 4000:
        return int(value)
    raise MalformedMessage(f"{what}: expected an integer or decimal string, got {type(value).__name__}")


def _require_dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


class PublicKey:
    """A Paillier public key (n, g = n + 1) with a fingerprint that names it in messages."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int):
            raise MalformedMessage(f"Paillier modulus: expected int, got {type(n).__name__}")
        if n.bit_length() < MIN_KEY_BITS:
            raise KeyTooSmall(f"Paillier modulus has {n.bit_length()} bits; at least {MIN_KEY_BITS} are required")
        if n % 2 == 0:
            raise MalformedMessage("Paillier modulus must be odd")
        self.n = n
        self.nsquare = n * n
        self.g = n + 1
        # phe's convention: plaintexts in [n - max_int, n) decode as negative numbers.
        self.max_int = n // 3 - 1
        self._n_mpz = mpz(n)
        self._nsquare_mpz = mpz(self.nsquare)
        self.fingerprint = hashlib.sha256(b"paillier-n:" + n.to_bytes((n.bit_length() + 7) // 8, "big")).hexdigest()

    @property
    def bits(self) -> int:
        return self.n.bit_length()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.n)

    def __repr__(self) -> str:
        return f"PublicKey(bits={self.bits}, fingerprint={self.fingerprint[:16]}...)"

    # -- plaintexts -------------------------------------------------------------------------------
    def plaintext_residue(self, m: int) -> int:
        """Map a signed plaintext to [0, n); refuse values that would wrap (|m| > max_int)."""
        if isinstance(m, bool) or not isinstance(m, int):
            raise TypeError(f"plaintext must be int, got {type(m).__name__}")
        if not -self.max_int <= m <= self.max_int:
            raise Overflow(f"plaintext of {m.bit_length()} bits does not fit the {self.bits}-bit key without wrapping")
        return m % self.n

    def nude(self, m: int) -> int:
        """g^m mod n^2 for a signed m; with g = n + 1, (n+1)^m = 1 + n*m mod n^2."""
        return (self._n_mpz * self.plaintext_residue(m) + 1) % self._nsquare_mpz

    def encrypt_with(self, m: int, obfuscator: int) -> "Ciphertext":
        return Ciphertext(self, int(self.nude(m) * obfuscator % self._nsquare_mpz), _trusted=True)

    def random_unit(self) -> int:
        """A uniformly random r in Z_n* (the chance of hitting a factor of n is negligible, still checked)."""
        while True:
            r = secrets.randbelow(self.n - 1) + 1
            if gcd(r, self.n) == 1:
                return r

    # -- ciphertexts ------------------------------------------------------------------------------
    def ciphertext(self, value: Any) -> "Ciphertext":
        """Validate a raw ciphertext received from elsewhere: an integer unit modulo n^2."""
        c = _parse_int(value, "ciphertext")
        if not 0 < c < self.nsquare:
            raise MalformedMessage("ciphertext out of range: expected 0 < c < n^2")
        if gcd(c, self.n) != 1:
            raise MalformedMessage("ciphertext is not a unit modulo n^2")
        return Ciphertext(self, c, _trusted=True)

    def encrypt_zero_sum(self, ciphertexts: Iterable["Ciphertext"]) -> "Ciphertext":
        total = Ciphertext(self, 1, _trusted=True)  # 1 = Enc(0) with obfuscator 1
        for c in ciphertexts:
            total = total + c
        return total

    # -- serialization ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": "paillier-public-key", "n": str(self.n), "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Any) -> "PublicKey":
        data = _require_dict(data, "public key")
        if "n" not in data:
            raise MalformedMessage("public key: missing 'n'")
        key = cls(_parse_int(data["n"], "public key n"))
        if "fingerprint" in data and data["fingerprint"] != key.fingerprint:
            raise MalformedMessage("public key: fingerprint does not match n")
        return key

    def to_phe(self) -> phe.PaillierPublicKey:
        return phe.PaillierPublicKey(n=self.n)

    @classmethod
    def from_phe(cls, key: phe.PaillierPublicKey) -> "PublicKey":
        return cls(int(key.n))


class PrivateKey:
    """The key holder's p, q; decrypts with CRT (Paillier 1999, section 7)."""

    def __init__(self, public_key: PublicKey, p: int, q: int):
        for name, v in (("p", p), ("q", q)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedMessage(f"private key {name}: expected int")
        if p * q != public_key.n or p == q or p < 3 or q < 3:
            raise MalformedMessage("private key: p * q does not equal n (or p == q)")
        if q < p:
            p, q = q, p
        self.public_key = public_key
        self.p, self.q = p, q
        self.psquare, self.qsquare = mpz(p * p), mpz(q * q)
        self._p, self._q = mpz(p), mpz(q)
        self._p_inverse = invert(self._p, self._q)
        self._psquare_inverse = invert(self.psquare, self.qsquare)
        # h_p = L_p(g^(p-1) mod p^2)^-1 mod p, as in phe; L_p(x) = (x - 1) / p.
        self._hp = invert((powmod(public_key.g, p - 1, self.psquare) - 1) // p, p)
        self._hq = invert((powmod(public_key.g, q - 1, self.qsquare) - 1) // q, q)

    def __repr__(self) -> str:
        return f"PrivateKey(for {self.public_key!r})"

    def decrypt_raw(self, c: int) -> int:
        """The plaintext residue in [0, n)."""
        mp = (powmod(c, self._p - 1, self.psquare) - 1) // self._p * self._hp % self._p
        mq = (powmod(c, self._q - 1, self.qsquare) - 1) // self._q * self._hq % self._q
        return int(crt_pair(mp, mq, self._p, self._q, self._p_inverse))

    def decrypt(self, ciphertext: "Ciphertext") -> int:
        """Signed plaintext, phe's convention: residues in [n - max_int, n) are negative."""
        if not isinstance(ciphertext, Ciphertext):
            raise TypeError(f"expected Ciphertext, got {type(ciphertext).__name__}")
        if ciphertext.public_key != self.public_key:
            raise WrongKey("ciphertext was made under another Paillier key")
        m = self.decrypt_raw(ciphertext.value)
        n = self.public_key.n
        if m >= n - self.public_key.max_int:
            return m - n
        if m > self.public_key.max_int:
            raise Overflow("decrypted value lies in the overflow band; an addition wrapped")
        return m

    def decrypt_centered(self, ciphertext: "Ciphertext") -> int:
        """Signed plaintext in (-n/2, n/2]: used for packed vectors, whose headroom is managed by the layout."""
        if ciphertext.public_key != self.public_key:
            raise WrongKey("ciphertext was made under another Paillier key")
        m = self.decrypt_raw(ciphertext.value)
        return m - self.public_key.n if m > self.public_key.n // 2 else m

    def n_th_power_crt(self, r: int) -> int:
        """r^n mod n^2 computed modulo p^2 and q^2 (each a half-size modulus) and recombined."""
        xp = powmod(r % self.psquare, self.public_key.n, self.psquare)
        xq = powmod(r % self.qsquare, self.public_key.n, self.qsquare)
        return crt_pair(xp, xq, self.psquare, self.qsquare, self._psquare_inverse)

    def to_dict(self) -> dict:
        return {
            "kind": "paillier-private-key",
            "n": str(self.public_key.n),
            "p": str(self.p),
            "q": str(self.q),
            "fingerprint": self.public_key.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "PrivateKey":
        data = _require_dict(data, "private key")
        for field in ("p", "q"):
            if field not in data:
                raise MalformedMessage(f"private key: missing '{field}'")
        p, q = _parse_int(data["p"], "private key p"), _parse_int(data["q"], "private key q")
        public = PublicKey.from_dict(data) if "n" in data else PublicKey(p * q)
        return cls(public, p, q)

    def to_phe(self) -> phe.PaillierPrivateKey:
        return phe.PaillierPrivateKey(self.public_key.to_phe(), self.p, self.q)

    @classmethod
    def from_phe(cls, key: phe.PaillierPrivateKey) -> "PrivateKey":
        return cls(PublicKey.from_phe(key.public_key), int(key.p), int(key.q))


class Ciphertext:
    """One Paillier ciphertext. ``a + b`` multiplies modulo n^2, i.e. adds the plaintexts."""

    __slots__ = ("public_key", "value")

    def __init__(self, public_key: PublicKey, value: int, _trusted: bool = False):
        if not _trusted:
            value = public_key.ciphertext(value).value
        self.public_key = public_key
        self.value = value

    def __add__(self, other: "Ciphertext") -> "Ciphertext":
        if not isinstance(other, Ciphertext):
            return NotImplemented
        if other.public_key != self.public_key:
            raise WrongKey("cannot add ciphertexts made under different Paillier keys")
        return Ciphertext(self.public_key, int(mpz(self.value) * other.value % self.public_key._nsquare_mpz), _trusted=True)

    def rerandomized(self, obfuscator: int) -> "Ciphertext":
        """Same plaintext, fresh randomness: hides which ciphertexts were combined into this one."""
        return Ciphertext(self.public_key, int(mpz(self.value) * obfuscator % self.public_key._nsquare_mpz), _trusted=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ciphertext) and other.public_key == self.public_key and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def to_dict(self) -> dict:
        return {"ciphertext": str(self.value), "exponent": 0, "key": self.public_key.fingerprint}

    @classmethod
    def from_dict(cls, data: Any, public_key: PublicKey) -> "Ciphertext":
        data = _require_dict(data, "ciphertext")
        if data.get("key") not in (None, public_key.fingerprint):
            raise WrongKey("ciphertext names another Paillier key fingerprint")
        if data.get("exponent", 0) != 0:
            raise MalformedMessage("ciphertext: only exponent 0 (integer encoding) is accepted")
        if "ciphertext" not in data:
            raise MalformedMessage("ciphertext: missing 'ciphertext'")
        return public_key.ciphertext(data["ciphertext"])

    def to_phe(self) -> phe.EncryptedNumber:
        return phe.EncryptedNumber(self.public_key.to_phe(), self.value, 0)

    @classmethod
    def from_phe(cls, number: phe.EncryptedNumber, public_key: PublicKey | None = None) -> "Ciphertext":
        key = public_key or PublicKey.from_phe(number.public_key)
        if key.n != number.public_key.n:
            raise WrongKey("phe number was made under another key")
        if number.exponent != 0:
            # phe stores floats as mantissa * BASE^exponent; we only exchange integers.
            number = number.decrease_exponent_to(0) if number.exponent > 0 else None
            if number is None:
                raise MalformedMessage("phe number has a negative exponent; encode as an integer first")
        return key.ciphertext(number.ciphertext(be_secure=False))


def generate_keypair(bits: int = 2048) -> tuple[PublicKey, PrivateKey]:
    """A fresh Paillier key pair with an exactly ``bits``-bit modulus (phe's generator, gmpy2 primes)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError("bits must be an int")
    if bits < MIN_KEY_BITS:
        raise KeyTooSmall(f"refusing a {bits}-bit Paillier key; the consortium minimum is {MIN_KEY_BITS}")
    public, private = phe_paillier.generate_paillier_keypair(n_length=bits)
    return PrivateKey.from_phe(private).public_key, PrivateKey.from_phe(private)


# --- encryptors -------------------------------------------------------------------------------------


class Encryptor:
    """Common interface: ``obfuscator()`` draws a fresh r^n-like mask, ``encrypt(m)`` uses it once."""

    name = "abstract"
    public_key: PublicKey
    build_seconds = 0.0  # what building it cost (its tables): a worker pays that before its first chunk

    def obfuscator(self) -> int:
        raise NotImplementedError

    def encrypt(self, m: int) -> Ciphertext:
        return self.public_key.encrypt_with(m, self.obfuscator())

    def encrypt_many(self, plaintexts: Iterable[int]) -> list[Ciphertext]:
        return [self.encrypt(m) for m in plaintexts]

    def spec(self) -> "EncryptorSpec":
        """A picklable recipe to rebuild an equivalent encryptor in a worker process."""
        raise NotImplementedError


@dataclass(frozen=True)
class EncryptorSpec:
    method: str
    n: int
    params: tuple = ()

    def build(self) -> Encryptor:
        public = PublicKey(self.n)
        if self.method == "phe":
            return PheEncryptor(public)
        if self.method == "crt":
            p, q = self.params
            return CrtEncryptor(PrivateKey(public, p, q))
        if self.method == "fixed-base":
            base, exponent_bits, window_bits, strict = self.params
            return FixedBaseEncryptor(public, exponent_bits=exponent_bits, window_bits=window_bits, strict=strict, base=base)
        if self.method == "crt-fixed-base":
            p, q, base, exponent_bits, window_bits = self.params
            return CrtFixedBaseEncryptor(PrivateKey(public, p, q), exponent_bits=exponent_bits, window_bits=window_bits, base=base)
        raise MalformedMessage(f"unknown encryption method {self.method!r}")


class PheEncryptor(Encryptor):
    """Plain python-paillier: a full-size random r and r^n mod n^2 each time (the baseline)."""

    name = "phe"

    def __init__(self, public_key: PublicKey):
        self.public_key = public_key
        self._phe = public_key.to_phe()

    def obfuscator(self) -> int:
        return powmod(self.public_key.random_unit(), self.public_key.n, self.public_key.nsquare)

    def encrypt(self, m: int) -> Ciphertext:
        return Ciphertext(self.public_key, int(self._phe.raw_encrypt(self.public_key.plaintext_residue(m))), _trusted=True)

    def spec(self) -> EncryptorSpec:
        return EncryptorSpec("phe", self.public_key.n)


class CrtEncryptor(Encryptor):
    """Key-holder encryption: r^n via CRT modulo p^2 and q^2 (two half-size exponentiations)."""

    name = "crt"

    def __init__(self, private_key: PrivateKey):
        self.private_key = private_key
        self.public_key = private_key.public_key

    def obfuscator(self) -> int:
        return self.private_key.n_th_power_crt(self.public_key.random_unit())

    def spec(self) -> EncryptorSpec:
        return EncryptorSpec("crt", self.public_key.n, (self.private_key.p, self.private_key.q))


class FixedBaseEncryptor(Encryptor):
    """DJN-style short-exponent obfuscators h^x from a fixed-base window table.

    h = r0^n mod n^2 for a random r0 is a random n-th residue; so is every power of it, hence h^x is a
    valid Paillier obfuscator. With ``window_bits = w`` the table holds h^(d * 2^(w*i)) for every digit d
    and window i, so h^x is the product of one table entry per window: ceil(exponent_bits / w)
    multiplications instead of a full exponentiation. Security rests on x being long enough that h^x is
    indistinguishable from a random n-th residue (see the module docstring); ``strict=True`` ignores the
    table and uses a full-size random r.
    """

    name = "fixed-base"

    def __init__(
        self,
        public_key: PublicKey,
        exponent_bits: int | None = None,
        window_bits: int = 10,
        strict: bool = False,
        base: int | None = None,
    ):
        self.public_key = public_key
        self.exponent_bits = _short_exponent_bits(public_key, exponent_bits)
        if not 1 <= window_bits <= 12:
            raise ValueError("window_bits must be between 1 and 12")
        self.window_bits = window_bits
        self.strict = strict
        nsq = public_key._nsquare_mpz
        start = time.thread_time()  # CPU time, like the probe in parallel_encrypt
        self.base = int(base) if base is not None else int(powmod(public_key.random_unit(), public_key.n, nsq))
        self._table: list[list[int]] = [] if strict else _window_table(self.base, nsq, self.exponent_bits, window_bits)
        self.build_seconds = time.thread_time() - start
        self.name = "fixed-base-strict" if strict else "fixed-base"

    def obfuscator(self) -> int:
        if self.strict:
            return powmod(self.public_key.random_unit(), self.public_key.n, self.public_key.nsquare)
        return self._power(secrets.randbits(self.exponent_bits))

    def _power(self, x: int):
        """h^x mod n^2 from the table (x < 2^exponent_bits)."""
        nsq = self.public_key._nsquare_mpz
        mask = (1 << self.window_bits) - 1
        w = self.window_bits
        result = mpz(1)
        for row in self._table:
            digit = x & mask
            if digit:
                result = result * row[digit] % nsq
            x >>= w
        return result

    def spec(self) -> EncryptorSpec:
        return EncryptorSpec("fixed-base", self.public_key.n, (self.base, self.exponent_bits, self.window_bits, self.strict))


def _short_exponent_bits(public_key: PublicKey, exponent_bits: int | None) -> int:
    security = _SECURITY_BITS.get(public_key.bits, 128 if public_key.bits > 2048 else 112)
    bits = exponent_bits or 2 * security
    if bits < 2 * 112:
        raise ValueError("short exponents under 224 bits are refused (generic attacks cost 2^(bits/2))")
    return bits


def _window_table(base: int, modulus, exponent_bits: int, window_bits: int) -> list[list]:
    """Row i holds base^(d * 2^(w*i)) mod modulus for every w-bit digit d (row[0] = 1, unused)."""
    table = []
    step = mpz(base) % modulus
    for _ in range(-(-exponent_bits // window_bits)):
        row = [mpz(1), step]
        for _ in range(2, 1 << window_bits):
            row.append(row[-1] * step % modulus)
        table.append(row)
        step = row[-1] * step % modulus  # base^(2^w) relative to this window's base
    return table


def best_window_bits(encryptions: int, exponent_bits: int = 224, halves: int = 1) -> int:
    """The window size that minimises table building plus ``encryptions`` evaluations (each window costs one
    multiplication per evaluation; a table costs one per entry), capped at 12 bits (~20 MB per 2048-bit half)."""
    def cost(w: int) -> int:
        windows = -(-exponent_bits // w)
        return halves * windows * ((1 << w) + max(1, encryptions))
    return min(range(2, 13), key=cost)


class CrtFixedBaseEncryptor(Encryptor):
    """The key holder's fixed-base encryption: h^x modulo p^2 and modulo q^2, recombined by CRT.

    Same h (a random n-th residue mod n^2), same short random x and hence the same distribution and the
    same security argument as :class:`FixedBaseEncryptor`; only the arithmetic changes. A multiplication
    modulo a 2048-bit p^2 costs ~2.1 us against ~5.2 us modulo the 4096-bit n^2, so two half-size tables
    beat one full-size table by ~20%, and the plaintext factor (1 + m*n) is applied in the halves too.
    Needs p and q: only the job key's owner (the insurer in the vertical join) can use it.
    """

    name = "crt-fixed-base"

    def __init__(self, private_key: PrivateKey, exponent_bits: int | None = None, window_bits: int = 10, base: int | None = None):
        if not 1 <= window_bits <= 12:
            raise ValueError("window_bits must be between 1 and 12")
        self.private_key = private_key
        self.public_key = public = private_key.public_key
        self.exponent_bits = _short_exponent_bits(public, exponent_bits)
        self.window_bits = window_bits
        start = time.thread_time()  # CPU time, like the probe in parallel_encrypt
        self.base = int(base) if base is not None else int(private_key.n_th_power_crt(public.random_unit()))
        if not 0 < self.base < public.nsquare:
            raise MalformedMessage("fixed base out of range")
        k = private_key
        self._p, self._q, self._p2, self._q2 = k._p, k._q, k.psquare, k.qsquare
        self._q_mod_p, self._p_mod_q = mpz(k.q) % k._p, mpz(k.p) % k._q
        self._table_p = _window_table(self.base, self._p2, self.exponent_bits, window_bits)
        self._table_q = _window_table(self.base, self._q2, self.exponent_bits, window_bits)
        self._inverse = k._psquare_inverse
        self.build_seconds = time.thread_time() - start

    def _powers(self, x: int | None = None) -> tuple:
        """(h^x mod p^2, h^x mod q^2), for a fresh random short x unless one is given (tests)."""
        if x is None:
            x = secrets.randbits(self.exponent_bits)
        mask, w = (1 << self.window_bits) - 1, self.window_bits
        p2, q2 = self._p2, self._q2
        rp = rq = mpz(1)
        for row_p, row_q in zip(self._table_p, self._table_q):
            digit = x & mask
            if digit:
                rp = rp * row_p[digit] % p2
                rq = rq * row_q[digit] % q2
            x >>= w
        return rp, rq

    def obfuscator(self) -> int:
        rp, rq = self._powers()
        return int(crt_pair(rp, rq, self._p2, self._q2, self._inverse))

    def encrypt(self, m: int) -> Ciphertext:
        residue = self.public_key.plaintext_residue(m)
        rp, rq = self._powers()
        # (1 + m*n) mod p^2 = 1 + p * (m*q mod p), since n = p*q; likewise modulo q^2
        cp = (1 + self._p * (residue * self._q_mod_p % self._p)) * rp % self._p2
        cq = (1 + self._q * (residue * self._p_mod_q % self._q)) * rq % self._q2
        return Ciphertext(self.public_key, int(crt_pair(cp, cq, self._p2, self._q2, self._inverse)), _trusted=True)

    def spec(self) -> EncryptorSpec:
        k = self.private_key
        return EncryptorSpec("crt-fixed-base", self.public_key.n, (k.p, k.q, self.base, self.exponent_bits, self.window_bits))


class ObfuscatorPool(Encryptor):
    """Obfuscators precomputed offline by ``source``; each is popped and used exactly once.

    ``fill()`` runs while the node is idle; online, ``encrypt`` costs one multiplication mod n^2. When the
    pool is empty it either computes online (``fallback=True``, counted in ``misses``) or raises
    :class:`PoolExhausted`.
    """

    name = "pool"

    def __init__(self, source: Encryptor, fallback: bool = True):
        self.source = source
        self.public_key = source.public_key
        self.fallback = fallback
        self._pool: list[int] = []
        self.misses = 0

    def fill(self, count: int, processes: int = 1) -> None:
        if processes > 1:
            self._pool.extend(parallel_obfuscators(self.source.spec(), count, processes, local=self.source))
        else:
            self._pool.extend(self.source.obfuscator() for _ in range(count))

    @property
    def remaining(self) -> int:
        return len(self._pool)

    def obfuscator(self) -> int:
        if self._pool:
            return self._pool.pop()  # pop: the value leaves the pool, so it can never be reused
        if not self.fallback:
            raise PoolExhausted("obfuscator pool is empty; fill() it or enable fallback")
        self.misses += 1
        return self.source.obfuscator()

    def spec(self) -> EncryptorSpec:
        return self.source.spec()


# --- multi-process -----------------------------------------------------------------------------------

# Each worker keeps the last encryptors it built, by spec: a fixed-base table takes ~0.3 s (and up to
# ~40 MB) to build, more than a chunk takes to encrypt. Two: a job key in use and the one before it.
_WORKER_ENCRYPTORS: dict[EncryptorSpec, Encryptor] = {}
_WORKER_CACHE_SIZE = 2

# The caller times its own first encryptions (at least one, for about this long): the one-core cost of this
# encryptor, here and now, decides whether the rest goes to the workers and how big their chunks are.
PROBE_SECONDS = 0.002
# Chunks of at most this much one-core work, and at least this many per process: a worker that finishes
# last leaves the others idle for less than a chunk, and the caller redoing a chunk loses little.
MAX_CHUNK_SECONDS = 0.05
CHUNKS_PER_PROCESS = 4
# ... and of at least this many pool round trips, so that handing a chunk over costs little next to it.
MIN_CHUNK_ROUND_TRIPS = 4


def worker_encryptor(spec: EncryptorSpec) -> Encryptor:
    """The encryptor ``spec`` describes, built once per worker process and reused by later chunks."""
    enc = _WORKER_ENCRYPTORS.get(spec)
    if enc is None:
        while len(_WORKER_ENCRYPTORS) >= _WORKER_CACHE_SIZE:  # drop old tables before building new ones
            _WORKER_ENCRYPTORS.pop(next(iter(_WORKER_ENCRYPTORS)))
        enc = _WORKER_ENCRYPTORS[spec] = spec.build()
    return enc


def prepare_workers(encryptor: Encryptor | EncryptorSpec, processes: int | None = None) -> float:
    """Build ``encryptor``'s tables in every worker of the shared pool now, and start the pool if needed.

    For a process that knows which key it is about to use (a node choosing a job key, a benchmark before
    its timed runs): parallel calls then find every worker ready. Returns the seconds it took.
    """
    spec = encryptor if isinstance(encryptor, EncryptorSpec) else encryptor.spec()
    seconds = 0.0 if workers.running(processes) else workers.warm(processes, wait=True)
    return seconds + workers.run_everywhere(worker_encryptor, spec, processes, key=spec, keep=_WORKER_CACHE_SIZE)


def ciphertext_width(public_key: PublicKey) -> int:
    """Bytes of a ciphertext (an integer below n^2) in fixed-width form."""
    return (public_key.nsquare.bit_length() + 7) // 8


def _packed(values: Iterable, width: int) -> bytes:
    # one bytes object crosses the process boundary instead of a list of pickled big ints
    return b"".join(int(v).to_bytes(width, "little") for v in values)


def _unpacked(blob: bytes, width: int) -> list[int]:
    return [int.from_bytes(blob[i : i + width], "little") for i in range(0, len(blob), width)]


def _encrypt_task(job: tuple[EncryptorSpec, Sequence[int]]) -> tuple[int, bytes]:
    spec, plaintexts = job
    enc = worker_encryptor(spec)
    return os.getpid(), _packed((enc.encrypt(m).value for m in plaintexts), ciphertext_width(enc.public_key))


def _obfuscator_task(job: tuple[EncryptorSpec, int]) -> tuple[int, bytes]:
    spec, count = job
    enc = worker_encryptor(spec)
    return os.getpid(), _packed((enc.obfuscator() for _ in range(count)), ciphertext_width(enc.public_key))


def _probe(make_one, count: int) -> tuple[list[int], float]:
    """The caller's own first values, and the seconds per value they took on one core.

    Measured in this thread's CPU time: on a busy machine wall time also counts the moments the scheduler
    ran someone else, which would make the values look many times dearer than they are.
    """
    out: list[int] = []
    start = time.thread_time()
    while len(out) < count and (not out or time.thread_time() - start < PROBE_SECONDS):
        out.append(int(make_one(len(out))))
    return out, (time.thread_time() - start) / max(1, len(out))


def _chunking(spec: EncryptorSpec, local: Encryptor, count: int, per_value: float, processes: int,
              chunk_size: int | None) -> tuple[int, float] | None:
    """(values per chunk, one-core seconds per chunk) for the workers, or None: the caller does it alone.

    The pool's rule (:func:`privacy.workers.worth_parallel`) decides on the one-core time of the work;
    workers that have not built this encryptor's tables yet spend ``build_seconds`` on that first, so
    then the work must also outweigh twice that.
    """
    one_core = count * per_value
    setup = 0.0 if workers.ready_everywhere(spec) else local.build_seconds
    if count == 0 or not workers.worth_parallel(one_core - 2 * setup, processes):
        return None
    round_trip = workers.round_trip_seconds() or 0.0
    chunk_seconds = max(MIN_CHUNK_ROUND_TRIPS * round_trip, min(MAX_CHUNK_SECONDS, one_core / (CHUNKS_PER_PROCESS * processes)))
    size = chunk_size or max(1, round(chunk_seconds / max(per_value, 1e-9)))
    return size, size * per_value


def _gathered(results: list[tuple[int, Any]], spec: EncryptorSpec, width: int) -> list[int]:
    out: list[int] = []
    for pid, values in results:
        if pid:  # a worker's answer: it now holds this encryptor's tables
            workers.mark_ready(spec, pid, _WORKER_CACHE_SIZE)
            out.extend(_unpacked(values, width))
        else:
            out.extend(values)
    return out


def parallel_encrypt(
    encryptor: Encryptor | EncryptorSpec,
    plaintexts: Sequence[int],
    processes: int | None = None,
    chunk_size: int | None = None,
    stats: dict | None = None,
) -> list[Ciphertext]:
    """Encrypt ``plaintexts`` on the shared worker pool (default: all cores), in order.

    The caller encrypts alone when the work is not worth the pool (see :func:`_chunking`) and steps in
    for workers that fall behind, so this is never slower than ``encrypt_many`` on one core by more than
    about one chunk. ``stats`` (a dict, optional) receives who did how many chunks.
    """
    spec = encryptor if isinstance(encryptor, EncryptorSpec) else encryptor.spec()
    public = PublicKey(spec.n)
    processes = processes or default_processes()
    for m in plaintexts:  # refuse before any work starts: nothing half-encrypted
        public.plaintext_residue(m)
    local = encryptor if isinstance(encryptor, Encryptor) else spec.build()
    out, per_value = _probe(lambda i: local.encrypt(plaintexts[i]).value, len(plaintexts))
    rest = plaintexts[len(out):]
    plan = _chunking(spec, local, len(rest), per_value, processes, chunk_size)
    if plan is None:
        out.extend(local.encrypt(m).value for m in rest)
    else:
        size, chunk_seconds = plan
        chunks = [(spec, rest[i : i + size]) for i in range(0, len(rest), size)]
        results = workers.map_helping(_encrypt_task, chunks, lambda job: (0, [local.encrypt(m).value for m in job[1]]),
                                      processes, chunk_seconds, stats)
        out.extend(_gathered(results, spec, ciphertext_width(public)))
    return [Ciphertext(public, v, _trusted=True) for v in out]


def parallel_obfuscators(spec: EncryptorSpec, count: int, processes: int | None = None, stats: dict | None = None,
                         local: Encryptor | None = None) -> list[int]:
    """``count`` fresh obfuscators for ``spec`` on the shared worker pool, by the same rules as :func:`parallel_encrypt`."""
    processes = processes or default_processes()
    local = local or spec.build()
    out, per_value = _probe(lambda _: local.obfuscator(), count)
    rest = count - len(out)
    plan = _chunking(spec, local, rest, per_value, processes, None)
    if plan is None:
        out.extend(int(local.obfuscator()) for _ in range(rest))
    else:
        size, chunk_seconds = plan
        chunks = [(spec, min(size, rest - i)) for i in range(0, rest, size)]
        results = workers.map_helping(_obfuscator_task, chunks, lambda job: (0, [int(local.obfuscator()) for _ in range(job[1])]),
                                      processes, chunk_seconds, stats)
        out.extend(_gathered(results, spec, ciphertext_width(PublicKey(spec.n))))
    return out
