"""Fixed-point encoding of signed real values as integers.

Paillier encrypts integers modulo n. A value x with ``decimals`` digits after the point is carried as
round(x * 10^decimals); a sum of encodings decodes by dividing by 10^decimals and a sum of squares
of encodings by 10^(2*decimals). Decimal scaling (not binary, as in phe) keeps money exact in cents.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from numbers import Real

from privacy.errors import MalformedMessage, Overflow


class FixedPoint:
    """Signed fixed-point codec: ``encode`` refuses values whose encoding needs more than ``value_bits``."""

    def __init__(self, decimals: int = 2, value_bits: int = 48):
        if not 0 <= decimals <= 18:
            raise ValueError("decimals must be between 0 and 18")
        if not 2 <= value_bits <= 512:
            raise ValueError("value_bits must be between 2 and 512")
        self.decimals = decimals
        self.value_bits = value_bits
        self.scale = 10**decimals
        self.limit = 1 << (value_bits - 1)  # encodings lie in [-limit, limit)

    def __repr__(self) -> str:
        return f"FixedPoint(decimals={self.decimals}, value_bits={self.value_bits})"

    def encode(self, value: Real | Decimal | str) -> int:
        if isinstance(value, bool):
            value = int(value)
        if type(value) is float and math.isfinite(value):
            # Fast path, same result as the Decimal route below: a float's shortest repr with at most
            # ``decimals`` digits after the point is already exact at this scale (no rounding involved).
            text = repr(value)
            if "e" not in text:
                whole, _, fraction = text.partition(".")
                if len(fraction) <= self.decimals:
                    magnitude = int(whole.lstrip("-") + fraction.ljust(self.decimals, "0"))
                    return self.check(-magnitude if whole.startswith("-") else magnitude)
        try:
            if isinstance(value, int):
                encoded = value * self.scale
            elif isinstance(value, Fraction):
                encoded = round(value * self.scale)
            else:
                d = Decimal(str(value)) if not isinstance(value, Decimal) else value
                if not d.is_finite():
                    raise MalformedMessage(f"cannot encode non-finite value {value!r}")
                encoded = int((d * self.scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        except (InvalidOperation, ValueError, TypeError) as exc:
            raise MalformedMessage(f"cannot encode {value!r} as a fixed-point number") from exc
        self.check(encoded)
        return encoded

    def check(self, encoded: int) -> int:
        if not -self.limit <= encoded < self.limit:
            raise Overflow(
                f"encoded value {encoded} needs more than {self.value_bits} signed bits; declare a wider layout"
            )
        return encoded

    def decode(self, encoded: int, power: int = 1) -> float:
        """Decode a sum of encodings (power=1) or of products of two encodings (power=2)."""
        return float(Fraction(encoded, self.scale**power))

    def decode_exact(self, encoded: int, power: int = 1) -> Fraction:
        return Fraction(encoded, self.scale**power)
