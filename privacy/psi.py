"""Private set intersection (cardinality) by commutative blinding on X25519.

Diffie-Hellman PSI (Meadows 1986; Huberman, Franklin, Hogg 1999), the building block of private
intersection-sum (Ion et al., "On Deploying Secure Computing: Private Intersection-Sum-with-Cardinality",
EuroS&P 2020). An identifier x is hashed with domain separation to 32 bytes, read as a Montgomery
u-coordinate H(x), and each party multiplies by its secret scalar: a*(b*H(x)) = b*(a*H(x)).
X25519 clamps scalars (clears the 3 low bits, sets bit 254); clamped multiplication is still
multiplication by a fixed integer, so it commutes, and the cofactor is cleared on both the curve and
its twist (a hashed u lands on either). Security: decisional Diffie-Hellman on Curve25519 and its
twist, with the hash modelled as a random oracle. Outputs are shuffled so a party cannot link a
doubly-blinded value back to its own row.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from privacy.errors import MalformedMessage

ID_DOMAIN = b"consortium/psi-identifier/v1"


def normalize_identifier(identifier: str | bytes) -> bytes:
    if isinstance(identifier, str):
        return identifier.encode("utf-8")
    if isinstance(identifier, (bytes, bytearray)):
        return bytes(identifier)
    raise MalformedMessage(f"identifier must be str or bytes, got {type(identifier).__name__}")


def hash_identifier(identifier: str | bytes, domain: bytes = ID_DOMAIN) -> bytes:
    """H(x): SHA-256 over a length-prefixed domain tag and the identifier, used as a u-coordinate."""
    return hashlib.sha256(len(domain).to_bytes(2, "big") + domain + normalize_identifier(identifier)).digest()


def shuffled(items: Iterable) -> list:
    """A uniformly random permutation (Fisher-Yates) driven by the OS CSPRNG.

    The randomness is drawn in one call (8 bytes per position) instead of one ``SystemRandom`` call per
    position: ~0.5 s instead of ~1.9 s for a million items. Each index is exactly uniform (a 64-bit draw
    in the biased tail of ``2^64 mod m`` is rejected and redrawn), so the permutation is exactly uniform.
    """
    out = list(items)
    count = len(out)
    if count < 2:
        return out
    draws = memoryview(secrets.token_bytes(8 * count)).cast("Q").tolist()
    top = 1 << 64
    for i in range(count - 1, 0, -1):
        r, m = draws[i], i + 1
        while r >= top - top % m:
            r = secrets.randbits(64)
        j = r % m
        out[i], out[j] = out[j], out[i]
    return out


def _multiply(key: X25519PrivateKey, point: bytes) -> bytes:
    if not isinstance(point, bytes) or len(point) != 32:
        raise MalformedMessage("blinded identifier must be 32 bytes")
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(point))
    except ValueError as exc:  # all-zero result: a low-order point was sent
        raise MalformedMessage("blinded identifier is a low-order point") from exc


class Blinder:
    """One party's secret scalar for one session; never reuse across sessions (it links them)."""

    def __init__(self, key: X25519PrivateKey | None = None):
        self.key = key or X25519PrivateKey.generate()

    @classmethod
    def from_secret(cls, secret: bytes) -> "Blinder":
        return cls(X25519PrivateKey.from_private_bytes(secret))

    def secret(self) -> bytes:
        """Raw scalar, only to hand to this party's own worker processes."""
        return self.key.private_bytes_raw()

    def blind_identifiers(self, identifiers: Iterable[str | bytes]) -> list[bytes]:
        return [_multiply(self.key, hash_identifier(i)) for i in identifiers]

    def blind_points(self, points: Iterable[bytes]) -> list[bytes]:
        """Re-blind points another party blinded (the second layer of the commutative pair)."""
        return [_multiply(self.key, p) for p in points]


# --- worker processes: blinding over all cores ---------------------------------------------------------
# Points cross process boundaries as one bytes blob of 32-byte points (one copy, no per-item pickling).
def join_points(points: Sequence[bytes]) -> bytes:
    return b"".join(points)


def split_points(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _blind_identifiers_task(secret: bytes, identifiers: Sequence[str | bytes]) -> bytes:
    return join_points(Blinder.from_secret(secret).blind_identifiers(identifiers))


def _blind_points_task(secret: bytes, points: bytes) -> bytes:
    return join_points(Blinder.from_secret(secret).blind_points(split_points(points)))


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def blind_many(
    blinder: Blinder,
    items: Sequence,
    hashed: bool,
    executor: concurrent.futures.Executor | None = None,
    chunk_size: int = 5000,
) -> list[bytes]:
    """Blind identifiers (``hashed=False``: hash first) or points, over an executor when given."""
    if executor is None or len(items) <= chunk_size:
        return blinder.blind_points(items) if hashed else blinder.blind_identifiers(items)
    return split_points(b"".join(submit_blinding(blinder, items, hashed, executor, chunk_size)))


def submit_blinding(
    blinder: Blinder,
    items: Sequence,
    hashed: bool,
    executor: concurrent.futures.Executor,
    chunk_size: int = 5000,
) -> Iterator[bytes]:
    """Blind over the executor, yielding one blob per chunk in order (all chunks are queued at once)."""
    secret = blinder.secret()
    if hashed:
        for p in items:
            if not isinstance(p, bytes) or len(p) != 32:
                raise MalformedMessage("blinded identifier must be 32 bytes")
        parts = [join_points(c) for c in _chunks(items, chunk_size)]
        return executor.map(_blind_points_task, [secret] * len(parts), parts)
    parts = _chunks(items, chunk_size)
    return executor.map(_blind_identifiers_task, [secret] * len(parts), parts)


# --- messages ------------------------------------------------------------------------------------------
def points_to_hex(points: Sequence[bytes]) -> list[str]:
    return [p.hex() for p in points]


def points_from_hex(data: Any, what: str) -> list[bytes]:
    if not isinstance(data, list):
        raise MalformedMessage(f"{what}: expected a list of hex strings")
    out = []
    for item in data:
        try:
            raw = bytes.fromhex(item)
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"{what}: not a hex string") from exc
        if len(raw) != 32:
            raise MalformedMessage(f"{what}: each point must be 32 bytes")
        out.append(raw)
    return out


@dataclass
class BlindedSet:
    """Initiator -> responder: the initiator's identifiers, blinded once, shuffled."""

    session: str
    points: list[bytes]

    def to_dict(self) -> dict:
        return {"kind": "psi-blinded-set", "session": self.session, "points": points_to_hex(self.points)}

    @classmethod
    def from_dict(cls, data: Any) -> "BlindedSet":
        if not isinstance(data, dict) or data.get("kind") != "psi-blinded-set" or not isinstance(data.get("session"), str):
            raise MalformedMessage("expected a psi-blinded-set message")
        return cls(data["session"], points_from_hex(data.get("points"), "psi-blinded-set"))


@dataclass
class PsiReply:
    """Responder -> initiator: the initiator's points blinded again, and the responder's own, both shuffled."""

    session: str
    double_blinded: list[bytes]
    responder_blinded: list[bytes]

    def to_dict(self) -> dict:
        return {
            "kind": "psi-reply",
            "session": self.session,
            "double_blinded": points_to_hex(self.double_blinded),
            "responder_blinded": points_to_hex(self.responder_blinded),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "PsiReply":
        if not isinstance(data, dict) or data.get("kind") != "psi-reply" or not isinstance(data.get("session"), str):
            raise MalformedMessage("expected a psi-reply message")
        return cls(
            data["session"],
            points_from_hex(data.get("double_blinded"), "psi-reply"),
            points_from_hex(data.get("responder_blinded"), "psi-reply"),
        )


@dataclass
class PsiSize:
    """Initiator -> responder: the intersection size, so both sides learn it (semi-honest model)."""

    session: str
    size: int

    def to_dict(self) -> dict:
        return {"kind": "psi-size", "session": self.session, "size": self.size}

    @classmethod
    def from_dict(cls, data: Any) -> "PsiSize":
        if not isinstance(data, dict) or data.get("kind") != "psi-size" or isinstance(data.get("size"), bool) or not isinstance(data.get("size"), int):
            raise MalformedMessage("expected a psi-size message")
        return cls(data["session"], data["size"])


class PsiInitiator:
    """Holds set X; learns |X ∩ Y| and the size of Y, nothing else."""

    def __init__(self, identifiers: Iterable[str | bytes], session: str | None = None, blinder: Blinder | None = None):
        self.identifiers = list(dict.fromkeys(normalize_identifier(i) for i in identifiers))
        self.session = session or secrets.token_hex(16)
        self.blinder = blinder or Blinder()

    def request(self, executor: concurrent.futures.Executor | None = None) -> BlindedSet:
        return BlindedSet(self.session, shuffled(blind_many(self.blinder, self.identifiers, False, executor)))

    def intersection_size(self, reply: PsiReply, executor: concurrent.futures.Executor | None = None) -> PsiSize:
        if reply.session != self.session:
            raise MalformedMessage("reply belongs to another PSI session")
        if len(reply.double_blinded) != len(self.identifiers):
            raise MalformedMessage("reply does not carry one double-blinded point per requested identifier")
        theirs = set(blind_many(self.blinder, reply.responder_blinded, True, executor))
        return PsiSize(self.session, sum(1 for p in reply.double_blinded if p in theirs))


class PsiResponder:
    """Holds set Y; learns |X| and, when the initiator shares it, |X ∩ Y|."""

    def __init__(self, identifiers: Iterable[str | bytes], blinder: Blinder | None = None):
        self.identifiers = list(dict.fromkeys(normalize_identifier(i) for i in identifiers))
        self.blinder = blinder or Blinder()
        self.learned_size: int | None = None

    def reply(self, request: BlindedSet, executor: concurrent.futures.Executor | None = None) -> PsiReply:
        if len(set(request.points)) != len(request.points):
            raise MalformedMessage("request repeats a blinded point")
        return PsiReply(
            request.session,
            shuffled(blind_many(self.blinder, request.points, True, executor)),
            shuffled(blind_many(self.blinder, self.identifiers, False, executor)),
        )

    def accept_size(self, message: PsiSize) -> int:
        self.learned_size = message.size
        return message.size
