"""Pairwise zero-sum masks from X25519 key agreement and HKDF.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
section 4 (the "masking with one-time pads" step). Each pair of participants (u, v) agrees on a seed
s_uv = HKDF(X25519(u, v), salt = round id, info = both ids); both expand it to the same vector m_uv.
The one with the smaller id adds m_uv, the other subtracts it, every slot modulo 2^width. Summed over
all participants the masks cancel exactly; each single masked vector is uniformly random to anyone
without the pair seeds (the requester holds none of them).

The round id is part of the seed, so a re-run without a dropped participant uses fresh masks and the
two runs cannot be subtracted from each other.
"""
from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.errors import MalformedMessage, UnknownParticipant

MASK_INFO = b"consortium/pairwise-mask/v1"


def generate_masking_key() -> X25519PrivateKey:
    """A participant's X25519 key; its public half is what the registry publishes."""
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def load_public(raw: bytes, owner: str = "peer") -> X25519PublicKey:
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
        raise MalformedMessage(f"X25519 public key of {owner}: expected 32 bytes")
    return X25519PublicKey.from_public_bytes(bytes(raw))


def pair_seed(own_key: X25519PrivateKey, own_id: str, peer_id: str, peer_public: bytes, round_id: bytes) -> bytes:
    """The 32-byte seed both members of a pair derive; ids are ordered so both sides agree."""
    if own_id == peer_id:
        raise MalformedMessage("a participant cannot mask against itself")
    try:
        shared = own_key.exchange(load_public(peer_public, peer_id))
    except ValueError as exc:  # all-zero output: a low-order public key, refused
        raise MalformedMessage(f"X25519 public key of {peer_id} is a low-order point") from exc
    low, high = sorted((own_id, peer_id))
    info = MASK_INFO + b"|" + low.encode() + b"|" + high.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=round_id, info=info).derive(shared)


def expand_mask(seed: bytes, widths: Sequence[int]) -> list[int]:
    """Expand a seed (SHAKE-256 as the PRG) into one uniform value modulo 2^w per slot."""
    sizes = [(w + 7) // 8 for w in widths]
    stream = hashlib.shake_256(seed).digest(sum(sizes))
    out, pos = [], 0
    for w, size in zip(widths, sizes):
        out.append(int.from_bytes(stream[pos : pos + size], "little") & ((1 << w) - 1))
        pos += size
    return out


def zero_sum_mask(
    own_key: X25519PrivateKey,
    own_id: str,
    peers: Mapping[str, bytes],
    round_id: bytes,
    widths: Sequence[int],
) -> list[int]:
    """This participant's share of the zero-sum mask: sum of +/- m_uv over its peers, modulo 2^w."""
    total = [0] * len(widths)
    for peer_id, peer_public in peers.items():
        if peer_id == own_id:
            continue
        mask = expand_mask(pair_seed(own_key, own_id, peer_id, peer_public, round_id), widths)
        sign = 1 if own_id < peer_id else -1  # the pair's masks cancel: +m for one side, -m for the other
        total = [t + sign * m for t, m in zip(total, mask)]
    return [t % (1 << w) for t, w in zip(total, widths)]


def apply_mask(values: Sequence[int], mask: Sequence[int], widths: Sequence[int]) -> list[int]:
    """(value + mask) mod 2^w per slot; signed values wrap into the modular range on purpose."""
    if not len(values) == len(mask) == len(widths):
        raise MalformedMessage("values, mask and widths must have the same length")
    return [(v + m) % (1 << w) for v, m, w in zip(values, mask, widths)]


def mask_vector(
    values: Sequence[int],
    own_key: X25519PrivateKey,
    own_id: str,
    peers: Mapping[str, bytes],
    round_id: bytes,
    widths: Sequence[int],
) -> list[int]:
    """The masked vector a participant packs and encrypts."""
    if own_id in peers and peers[own_id] != public_bytes(own_key):
        raise UnknownParticipant(f"the registry lists another X25519 key for {own_id}")
    return apply_mask(values, zero_sum_mask(own_key, own_id, peers, round_id, widths), widths)
