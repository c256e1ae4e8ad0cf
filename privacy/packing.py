"""Slot packing: several signed integers in one Paillier plaintext, with headroom for additions.

A vector v_0..v_{k-1} becomes the integer P = sum v_i * 2^(offset_i), each slot w_i + headroom bits wide. Adding two packed
plaintexts adds every slot at once, as long as no slot leaves its signed range: the balanced digits
of P are then unique and ``unpack`` recovers each slot sum exactly, negative values included, without
knowing how many vectors were added. The layout reserves ceil(log2(max_additions)) + 1 bits above
each slot's width, and every packed vector counts its additions, so exceeding ``max_additions``
raises :class:`Overflow` instead of silently carrying into the next slot. The top of the plaintext
keeps two spare bits so |P| < n/2 and the sign of the whole integer survives decryption.

Masked (modular) vectors, used by secure aggregation, hold values in [0, 2^w_i) and are read
modulo 2^w_i (``unpack_modular``), which is where pairwise masks cancel.
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
    """How a vector of signed integers is packed under a ``key_bits`` key.

    ``widths[i]`` is the number of signed bits value i may use (mixed widths let a 32-bit count sit next
    to a 64-bit sum); every slot gets the same headroom for ``max_additions`` additions. Slots are
    placed in order, a new plaintext starting when the next slot would not fit.
    """

    widths: tuple[int, ...]
    max_additions: int
    key_bits: int = 2048

    def __post_init__(self):
        for name in ("max_additions", "key_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedMessage(f"slot layout: {name} must be a positive integer")
        if not isinstance(self.widths, tuple) or not self.widths:
            raise MalformedMessage("slot layout: widths must be a non-empty tuple")
        for w in self.widths:
            if isinstance(w, bool) or not isinstance(w, int) or not 2 <= w <= 1024:
                raise MalformedMessage("slot layout: each width must be an integer between 2 and 1024")
        if max(self.widths) + self.headroom_bits > self.key_bits - 2:
            raise Overflow("slot layout: one slot does not fit in a plaintext; lower the widths or max_additions")
        placement, index, used = [], 0, 0
        for w in self.widths:
            bits = w + self.headroom_bits
            if used + bits > self.key_bits - 2:  # two spare top bits keep |P| < n/2
                index, used = index + 1, 0
            placement.append((index, used))
            used += bits
        object.__setattr__(self, "_placement", tuple(placement))

    @classmethod
    def uniform(cls, length: int, value_bits: int, max_additions: int, key_bits: int = 2048) -> "SlotLayout":
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise MalformedMessage("slot layout: length must be a positive integer")
        return cls((value_bits,) * length, max_additions, key_bits)

    @property
    def length(self) -> int:
        return len(self.widths)

    @property
    def headroom_bits(self) -> int:
        return max(0, (self.max_additions - 1).bit_length()) + 1

    @property
    def plaintext_count(self) -> int:
        return self._placement[-1][0] + 1

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "max_additions": self.max_additions, "key_bits": self.key_bits}

    @classmethod
    def from_dict(cls, data: Any) -> "SlotLayout":
        if not isinstance(data, dict) or set(data) != {"widths", "max_additions", "key_bits"}:
            raise MalformedMessage("slot layout: expected widths, max_additions, key_bits")
        if not isinstance(data["widths"], list):
            raise MalformedMessage("slot layout: widths must be a list")
        return cls(tuple(data["widths"]), data["max_additions"], data["key_bits"])

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    # -- signed packing ---------------------------------------------------------------------------
    def pack(self, values: Sequence[int]) -> list[int]:
        """Signed values (value i in [-2^(widths[i]-1), 2^(widths[i]-1))) to packed plaintext integers."""
        self._check_length(values)
        for v, w in zip(values, self.widths):
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedMessage(f"packed values must be int, got {type(v).__name__}")
            if not -(1 << (w - 1)) <= v < 1 << (w - 1):
                raise Overflow(f"value {v} does not fit in {w} signed bits")
        return self._pack_unchecked(values)

    def _pack_unchecked(self, values: Sequence[int]) -> list[int]:
        out = [0] * self.plaintext_count
        for v, (index, offset) in zip(values, self._placement):
            out[index] += v << offset
        return out

    def unpack(self, plaintexts: Sequence[int]) -> list[int]:
        """Balanced-digit decomposition of signed packed plaintexts back to slot values."""
        self._check_plaintexts(plaintexts)
        h = self.headroom_bits
        remaining = list(plaintexts)
        out: list[int] = []
        for w, (index, _) in zip(self.widths, self._placement):
            bits = w + h
            p = remaining[index]
            digit = p & ((1 << bits) - 1)  # & on negative ints is two's complement: still exact
            if digit >= 1 << (bits - 1):
                digit -= 1 << bits
            out.append(digit)
            remaining[index] = (p - digit) >> bits
        if any(remaining):
            raise Overflow("packed plaintext has bits above its last slot: an addition overflowed")
        return out

    # -- modular packing (masked vectors) ---------------------------------------------------------
    def pack_modular(self, values: Sequence[int]) -> list[int]:
        """Values already reduced modulo 2^widths[i] (masked), so every slot starts non-negative."""
        self._check_length(values)
        for v, w in zip(values, self.widths):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << w:
                raise Overflow("masked value outside [0, 2^width)")
        return self._pack_unchecked(values)

    def unpack_modular(self, plaintexts: Sequence[int]) -> list[int]:
        """Each slot modulo 2^widths[i], read back as a signed value (this is where masks cancel)."""
        self._check_plaintexts(plaintexts)
        if any(p < 0 for p in plaintexts):
            raise Overflow("a sum of non-negative masked slots decrypted as negative: overflow")
        h = self.headroom_bits
        remaining = list(plaintexts)
        out: list[int] = []
        for w, (index, _) in zip(self.widths, self._placement):
            p = remaining[index]
            v = p & ((1 << w) - 1)
            out.append(v - (1 << w) if v >= 1 << (w - 1) else v)
            remaining[index] = p >> (w + h)
        if any(remaining):
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
