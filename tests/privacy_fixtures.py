"""Shared, cached Paillier keys for the privacy tests (key generation is the slow part)."""
from __future__ import annotations

import functools
import json
import re

from privacy.paillier import generate_keypair


@functools.lru_cache(maxsize=None)
def keypair(bits: int = 2048, which: int = 0):
    """One key pair per (bits, which) for the whole test session."""
    return generate_keypair(bits)


def wire(message) -> str:
    """What actually crosses the network: the message's JSON text."""
    return json.dumps(message.to_dict(), sort_keys=True)


# A needle made only of what numbers are written with (digits, hex letters, sign, point) shows up by
# chance inside the ~1,200-digit decimal and ~1,000-digit hex ciphertexts and 64-digit hex points that
# every message carries: a 7-digit amount sits somewhere in a random 1,233-digit number with probability
# ~1e-4, and the join wire test checks dozens of amounts against several such numbers (it failed ~1 run
# in 40). Such a needle is a leak when it stands as a token of its own (a JSON number or string, or a
# part of a string delimited by anything but a letter or digit), never when it is a slice of a longer
# number. Every other needle (identifiers with a letter outside a-f, a dash, ...) cannot be produced by
# a number encoding and is still searched as a plain substring.
_NUMBER_LIKE = re.compile(r"[+-]?[0-9a-fA-F.]+")


def _leaks(text: str, needle: str) -> bool:
    if _NUMBER_LIKE.fullmatch(needle):
        return re.search(r"(?<![0-9A-Za-z])" + re.escape(needle) + r"(?![0-9A-Za-z])", text) is not None
    return needle in text


def assert_not_on_wire(text: str, secrets_) -> None:
    for s in secrets_:
        needle = s if isinstance(s, str) else str(s)
        assert not _leaks(text, needle), f"{needle!r} leaked onto the wire"
