"""Slot packing: several signed integers in one Paillier plaintext, with headroom for additions.

A vector v_0..v_{k-1} becomes the integer P = sum v_i * 2^(i*w) (w = ``slot_bits``). Adding two packed
plaintexts adds every slot at once, as long as no slot leaves (-2^(w-1), 2^(w-1)): the balanced digits
of P are then unique and ``unpack`` recovers each slot sum exactly, negative values included, without
knowing how many vectors were added. The layout reserves ceil(log2(max_additions)) + 1 bits above
``value_bits`` per slot, and every packed vector counts its additions, so exceeding ``max_additions``
raises :class:`Overflow` instead of silently carrying into the next slot. The top of the plaintext
keeps two spare bits so |P| < n/2 and the sign of the whole integer survives decryption.

Masked (modular) vectors, used by secure aggregation, hold values in [0, 2^value_bits) and are read
modulo 2^value_bits (``unpack_modular``), which is where pairwise masks cancel.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

from privacy.errors import LayoutMismatch, MalformedMessage, Overflow, WrongKey
from privacy.paillier import Ciphertext, Encryptor, PrivateKey, PublicKey, parallel_encrypt


@dataclass(frozen=True)
class SlotLayout:
    """How a vector of ``length`` signed ``value_bits``-bit integers is packed under a ``key_bits`` key."""

    length: int
    value_bits: int
    max_additions: int
    key_bits: int = 2048

    def __post_init__(self):
        for name in ("length", "value_bits", "max_additions", "key_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedMessage(f"slot layout: {name} must be a positive integer")
        if self.value_bits < 2:
            raise MalformedMessage("slot layout: value_bits must be at least 2")
        if self.slot_bits > self.key_bits - 2:
            raise Overflow("slot layout: one slot does not fit in a plaintext; lower value_bits or max_additions")

    @property
    def headroom_bits(self) -> int:
        return max(0, (self.max_additions - 1).bit_length()) + 1

    @property
    def slot_bits(self) -> int:
        return self.value_bits + self.headroom_bits

    @property
    def slots_per_plaintext(self) -> int:
        return (self.key_bits - 2) // self.slot_bits

    @property
    def plaintext_count(self) -> int:
        return -(-self.length // self.slots_per_plaintext)

    @property
    def value_limit(self) -> int:
        return 1 << (self.value_bits - 1)

    def to_dict(self) -> dict:
        return {"length": self.length, "value_bits": self.value_bits, "max_additions": self.max_additions, "key_bits": self.key_bits}

    @classmethod
    def from_dict(cls, data: Any) -> "SlotLayout":
        if not isinstance(data, dict) or set(data) != {"length", "value_bits", "max_additions", "key_bits"}:
            raise MalformedMessage("slot layout: expected length, value_bits, max_additions, key_bits")
        return cls(**data)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    # -- signed packing ---------------------------------------------------------------------------
    def pack(self, values: Sequence[int]) -> list[int]:
        """Signed values (each in [-2^(value_bits-1), 2^(value_bits-1))) to packed plaintext integers."""
        self._check_length(values)
        limit = self.value_limit
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedMessage(f"packed values must be int, got {type(v).__name__}")
            if not -limit <= v < limit:
                raise Overflow(f"value {v} does not fit in {self.value_bits} signed bits")
        return self._pack_unchecked(values)

    def _pack_unchecked(self, values: Sequence[int]) -> list[int]:
        w, per = self.slot_bits, self.slots_per_plaintext
        out = []
        for start in range(0, self.length, per):
            p = 0
            for v in reversed(values[start : start + per]):
                p = (p << w) + v
            out.append(p)
        return out

    def unpack(self, plaintexts: Sequence[int]) -> list[int]:
        """Balanced-digit decomposition of signed packed plaintexts back to slot values."""
        self._check_plaintexts(plaintexts)
        w, per = self.slot_bits, self.slots_per_plaintext
        full, half = 1 << w, 1 << (w - 1)
        out: list[int] = []
        for index, p in enumerate(plaintexts):
            count = min(per, self.length - index * per)
            for _ in range(count):
                digit = p & (full - 1)  # Python's & on negative ints is two's complement: still exact
                if digit >= half:
                    digit -= full
                out.append(digit)
                p = (p - digit) >> w
            if p != 0:
                raise Overflow("packed plaintext has bits above its last slot: an addition overflowed")
        return out

    # -- modular packing (masked vectors) ---------------------------------------------------------
    def pack_modular(self, values: Sequence[int]) -> list[int]:
        """Values already reduced modulo 2^value_bits (masked), so every slot starts non-negative."""
        self._check_length(values)
        modulus = 1 << self.value_bits
        for v in values:
            if not 0 <= v < modulus:
                raise Overflow("masked value outside [0, 2^value_bits)")
        return self._pack_unchecked(values)

    def unpack_modular(self, plaintexts: Sequence[int]) -> list[int]:
        """Each slot modulo 2^value_bits, read back as a signed value (where masks cancel)."""
        self._check_plaintexts(plaintexts)
        w, per, vb = self.slot_bits, self.slots_per_plaintext, self.value_bits
        out: list[int] = []
        for index, p in enumerate(plaintexts):
            if p < 0:
                raise Overflow("a sum of non-negative masked slots decrypted as negative: overflow")
            count = min(per, self.length - index * per)
            for _ in range(count):
                v = (p & ((1 << w) - 1)) & ((1 << vb) - 1)
                out.append(v - (1 << vb) if v >= 1 << (vb - 1) else v)
                p >>= w
            if p:
                raise Overflow("packed plaintext has bits above its last slot: an addition overflowed")
        return out

    def _check_length(self, values: Sequence[int]) -> None:
        if len(values) != self.length:
            raise LayoutMismatch(f"vector has {len(values)} values; the layout declares {self.length}")

    def _check_plaintexts(self, plaintexts: Sequence[int]) -> None:
        if len(plaintexts) != self.plaintext_count:
            raise LayoutMismatch(f"{len(plaintexts)} plaintexts; the layout needs {self.plaintext_count}")


class PackedVector:
    """A packed, encrypted vector: its layout, its ciphertexts and how many vectors were added into it."""

    __slots__ = ("layout", "ciphertexts", "additions")

    def __init__(self, layout: SlotLayout, ciphertexts: Sequence[Ciphertext], additions: int = 1):
        if len(ciphertexts) != layout.plaintext_count:
            raise LayoutMismatch(f"{len(ciphertexts)} ciphertexts; the layout needs {layout.plaintext_count}")
        if ciphertexts and ciphertexts[0].public_key.bits != layout.key_bits:
            raise LayoutMismatch("layout key size differs from the ciphertexts' key")
        if additions > layout.max_additions:
            raise Overflow(f"{additions} additions exceed the layout's headroom of {layout.max_additions}")
        self.layout = layout
        self.ciphertexts = list(ciphertexts)
        self.additions = additions

    @property
    def public_key(self) -> PublicKey:
        return self.ciphertexts[0].public_key

    @classmethod
    def encrypt(cls, layout: SlotLayout, values: Sequence[int], encryptor: Encryptor, modular: bool = False) -> "PackedVector":
        plaintexts = layout.pack_modular(values) if modular else layout.pack(values)
        if encryptor.public_key.bits != layout.key_bits:
            raise LayoutMismatch("layout key size differs from the encryptor's key")
        return cls(layout, [encryptor.encrypt(p) for p in plaintexts])

    def __add__(self, other: "PackedVector") -> "PackedVector":
        if not isinstance(other, PackedVector):
            return NotImplemented
        if other.layout != self.layout:
            raise LayoutMismatch("cannot add packed vectors with different layouts")
        if other.public_key != self.public_key:
            raise WrongKey("cannot add packed vectors under different Paillier keys")
        additions = self.additions + other.additions
        if additions > self.layout.max_additions:
            raise Overflow(f"{additions} additions exceed the layout's headroom of {self.layout.max_additions}")
        return PackedVector(self.layout, [a + b for a, b in zip(self.ciphertexts, other.ciphertexts)], additions)

    def decrypt(self, private_key: PrivateKey, modular: bool = False) -> list[int]:
        plaintexts = [private_key.decrypt_centered(c) for c in self.ciphertexts]
        return self.layout.unpack_modular(plaintexts) if modular else self.layout.unpack(plaintexts)

    def to_dict(self) -> dict:
        return {
            "layout": self.layout.to_dict(),
            "key": self.public_key.fingerprint,
            "additions": self.additions,
            "ciphertexts": [str(c.value) for c in self.ciphertexts],
        }

    @classmethod
    def from_dict(cls, data: Any, public_key: PublicKey, layout: SlotLayout | None = None) -> "PackedVector":
        if not isinstance(data, dict):
            raise MalformedMessage("packed vector: expected a JSON object")
        if data.get("key") != public_key.fingerprint:
            raise WrongKey("packed vector was encrypted under another Paillier key")
        got = SlotLayout.from_dict(data.get("layout"))
        if layout is not None and got != layout:
            raise LayoutMismatch("packed vector layout differs from the declared layout")
        additions = data.get("additions")
        if isinstance(additions, bool) or not isinstance(additions, int) or additions < 1:
            raise MalformedMessage("packed vector: additions must be a positive integer")
        raw = data.get("ciphertexts")
        if not isinstance(raw, list):
            raise MalformedMessage("packed vector: ciphertexts must be a list")
        return cls(got, [public_key.ciphertext(c) for c in raw], additions)


def encrypt_packed_many(layout: SlotLayout, vectors: Sequence[Sequence[int]], encryptor: Encryptor, processes: int | None = None) -> list[PackedVector]:
    """Pack and encrypt many vectors over all cores (one plaintext per vector when it fits one)."""
    plaintexts = [p for v in vectors for p in layout.pack(v)]
    cts = parallel_encrypt(encryptor, plaintexts, processes=processes)
    k = layout.plaintext_count
    return [PackedVector(layout, cts[i : i + k]) for i in range(0, len(cts), k)]
