"""Shared, cached Paillier keys for the privacy tests (key generation is the slow part)."""
from __future__ import annotations

import functools
import json

from privacy.paillier import generate_keypair


@functools.lru_cache(maxsize=None)
def keypair(bits: int = 2048, which: int = 0):
    """One key pair per (bits, which) for the whole test session."""
    return generate_keypair(bits)


def wire(message) -> str:
    """What actually crosses the network: the message's JSON text."""
    return json.dumps(message.to_dict(), sort_keys=True)


def assert_not_on_wire(text: str, secrets_) -> None:
    for s in secrets_:
        needle = s if isinstance(s, str) else str(s)
        assert needle not in text, f"{needle!r} leaked onto the wire"
