"""Secure aggregation for horizontal statistics (DESIGN.md flow 2).

Each participant turns its records into a local vector (per declared bucket: count, sum, sum of
squares of fixed-point values), adds its share of the pairwise zero-sum masks (privacy.masking,
Bonawitz et al. CCS 2017), packs the masked vector into as few Paillier plaintexts as the layout
allows (privacy.packing) and encrypts under the requester's job key. The requester multiplies the
ciphertexts of all participants, decrypts once per plaintext, reads every slot modulo its width (the
masks cancel there) and gets the exact totals; a single contribution decrypts to uniform noise.

A round closed with participants missing raises :class:`MissingParticipant`; ``spec.without(missing)``
gives the re-run spec (new round number, hence fresh masks). Contributions are validated completely
before anything is added, so a refused contribution leaves the running sum untouched.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privacy.encoding import FixedPoint
from privacy.errors import (
    DuplicateContribution,
    LayoutMismatch,
    MalformedMessage,
    MissingParticipant,
    UnknownParticipant,
    WrongKey,
)
from privacy.masking import mask_vector
from privacy.packing import PackedVector, SlotLayout
from privacy.paillier import Encryptor, FixedBaseEncryptor, PrivateKey, PublicKey

STATISTICS = ("count", "sum", "sum_of_squares")


@dataclass(frozen=True)
class HorizontalSpec:
    """What every participant and the requester agree on before a round (its hash goes on chain).

    ``count_bits``/``sum_bits``/``square_bits`` bound the *totals* across all participants, in signed
    bits of the fixed-point encoding; masks live modulo 2^bits of each slot.
    """

    job_id: str
    participants: tuple[str, ...]
    buckets: tuple[str, ...]
    key_fingerprint: str
    statistics: tuple[str, ...] = STATISTICS
    decimals: int = 2
    count_bits: int = 32
    sum_bits: int = 64
    square_bits: int = 112
    key_bits: int = 2048
    round: int = 0
    # 0: every participant must contribute (a dropout means a re-run). t > 0: the dropout-tolerant round of
    # privacy.dropout, which finishes with any t participants left (t > half of them, at least 2).
    threshold: int = 0

    def __post_init__(self):
        if not isinstance(self.job_id, str) or not self.job_id:
            raise MalformedMessage("spec: job_id must be a non-empty string")
        for name in ("participants", "buckets", "statistics"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                raise MalformedMessage(f"spec: {name} must be a tuple of non-empty strings")
            if len(set(value)) != len(value):
                raise MalformedMessage(f"spec: {name} has duplicates")
        if len(self.participants) < 2:
            raise MissingParticipant([], "secure aggregation needs at least two participants")
        if not self.buckets:
            raise MalformedMessage("spec: at least one bucket must be declared")
        if not set(self.statistics) <= set(STATISTICS) or "count" not in self.statistics:
            raise MalformedMessage(f"spec: statistics must include 'count' and be among {STATISTICS}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise MalformedMessage("spec: threshold must be an integer")
        if self.threshold and not (max(2, len(self.participants) // 2 + 1) <= self.threshold <= len(self.participants)):
            raise MalformedMessage("spec: threshold must be 0 or between a majority of the participants (at least 2) and all of them")
        object.__setattr__(self, "participants", tuple(sorted(self.participants)))
        object.__setattr__(self, "statistics", tuple(s for s in STATISTICS if s in self.statistics))

    @property
    def widths(self) -> tuple[int, ...]:
        per = {"count": self.count_bits, "sum": self.sum_bits, "sum_of_squares": self.square_bits}
        return tuple(per[s] for _ in self.buckets for s in self.statistics)

    @property
    def layout(self) -> SlotLayout:
        return SlotLayout(self.widths, max_additions=len(self.participants), key_bits=self.key_bits)

    @property
    def codec(self) -> FixedPoint:
        return FixedPoint(self.decimals, self.sum_bits)

    def to_dict(self) -> dict:
        return {
            "job_id": self.job_id,
            "participants": list(self.participants),
            "buckets": list(self.buckets),
            "key_fingerprint": self.key_fingerprint,
            "statistics": list(self.statistics),
            "decimals": self.decimals,
            "count_bits": self.count_bits,
            "sum_bits": self.sum_bits,
            "square_bits": self.square_bits,
            "key_bits": self.key_bits,
            "round": self.round,
        } | ({"threshold": self.threshold} if self.threshold else {})  # absent when 0: older hashes unchanged

    @classmethod
    def from_dict(cls, data: Any) -> "HorizontalSpec":
        if not isinstance(data, dict):
            raise MalformedMessage("spec: expected a JSON object")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as exc:
            raise MalformedMessage(f"spec: {exc}") from exc

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def round_id(self) -> bytes:
        return hashlib.sha256(b"consortium/horizontal-round/v1|" + self.spec_hash.encode()).digest()

    def without(self, missing: Iterable[str]) -> "HorizontalSpec":
        """The spec of the re-run: same job, the missing participants removed, next round number."""
        missing = set(missing)
        unknown = missing - set(self.participants)
        if unknown:
            raise UnknownParticipant(f"not in this round: {', '.join(sorted(unknown))}")
        remaining = tuple(p for p in self.participants if p not in missing)
        data = self.to_dict() | {"participants": list(remaining), "round": self.round + 1}
        return HorizontalSpec.from_dict(data)


def local_vector(spec: HorizontalSpec, records: Iterable[tuple[str, Any]]) -> list[int]:
    """A participant's plain aggregate: per bucket, count, sum and sum of squares of its encoded values."""
    codec = spec.codec
    index = {b: i for i, b in enumerate(spec.buckets)}
    stats = spec.statistics
    vector = [0] * (len(spec.buckets) * len(stats))
    for bucket, value in records:
        if bucket not in index:
            raise LayoutMismatch(f"record in undeclared bucket {bucket!r}")
        base = index[bucket] * len(stats)
        encoded = codec.encode(value) if "sum" in stats or "sum_of_squares" in stats else 0
        for offset, stat in enumerate(stats):
            vector[base + offset] += 1 if stat == "count" else encoded if stat == "sum" else encoded * encoded
    return vector


@dataclass
class Contribution:
    """What a participant sends the requester (and whose hash it commits on chain)."""

    job_id: str
    round: int
    spec_hash: str
    participant: str
    vector: PackedVector

    def to_dict(self) -> dict:
        return {
            "kind": "horizontal-contribution",
            "job_id": self.job_id,
            "round": self.round,
            "spec_hash": self.spec_hash,
            "participant": self.participant,
            "vector": self.vector.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def commitment(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, spec: HorizontalSpec, public_key: PublicKey) -> "Contribution":
        if not isinstance(data, dict) or data.get("kind") != "horizontal-contribution":
            raise MalformedMessage("expected a horizontal-contribution object")
        for name, expected in (("job_id", spec.job_id), ("round", spec.round), ("spec_hash", spec.spec_hash)):
            if data.get(name) != expected:
                raise LayoutMismatch(f"contribution {name} differs from this round's spec")
        participant = data.get("participant")
        if not isinstance(participant, str):
            raise MalformedMessage("contribution: participant must be a string")
        vector = PackedVector.from_dict(data.get("vector"), public_key, spec.layout)
        return cls(spec.job_id, spec.round, spec.spec_hash, participant, vector)


def contribute(
    spec: HorizontalSpec,
    participant: str,
    masking_key: X25519PrivateKey,
    peer_keys: Mapping[str, bytes],
    public_key: PublicKey,
    vector: list[int] | None = None,
    records: Iterable[tuple[str, Any]] | None = None,
    encryptor: Encryptor | None = None,
) -> Contribution:
    """Mask, pack and encrypt one participant's local vector (give ``vector`` or ``records``).

    ``peer_keys`` maps every other participant of the round to its registered X25519 public key.
    """
    if participant not in spec.participants:
        raise UnknownParticipant(f"{participant} is not a participant of job {spec.job_id}")
    if public_key.fingerprint != spec.key_fingerprint:
        raise WrongKey("the job spec names another Paillier key")
    missing = set(spec.participants) - {participant} - set(peer_keys)
    if missing:
        raise MissingParticipant(sorted(missing), f"no X25519 key for {', '.join(sorted(missing))}")
    if vector is None:
        vector = local_vector(spec, records or ())
    layout = spec.layout
    layout.pack(vector)  # range check in signed form first: a too-large total must not wrap silently
    peers = {p: peer_keys[p] for p in spec.participants if p != participant}
    masked = mask_vector(vector, masking_key, participant, peers, spec.round_id, layout.widths)
    encryptor = encryptor or FixedBaseEncryptor(public_key)
    if encryptor.public_key != public_key:
        raise WrongKey("encryptor uses another Paillier key")
    packed = PackedVector.encrypt(layout, masked, encryptor, modular=True)
    return Contribution(spec.job_id, spec.round, spec.spec_hash, participant, packed)


@dataclass(frozen=True)
class BucketStatistics:
    """Exact totals of one bucket (values decoded from fixed point) and what follows from them."""

    count: int
    sum: Fraction | None = None
    sum_of_squares: Fraction | None = None

    @property
    def mean(self) -> float | None:
        if self.sum is None or self.count == 0:
            return None
        return float(self.sum / self.count)

    @property
    def variance(self) -> float | None:
        """Population variance E[x^2] - E[x]^2 from the two sums."""
        if self.sum is None or self.sum_of_squares is None or self.count == 0:
            return None
        return float(max(Fraction(0), self.sum_of_squares / self.count - (self.sum / self.count) ** 2))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"count": self.count}
        if self.sum is not None:
            out |= {"sum": float(self.sum), "mean": self.mean}
        if self.sum_of_squares is not None:
            out |= {"sum_of_squares": float(self.sum_of_squares), "variance": self.variance,
                    "stddev": math.sqrt(self.variance) if self.variance is not None else None}
        return out


def decode_vector(spec: HorizontalSpec, vector: list[int]) -> dict[str, BucketStatistics]:
    codec, stats = spec.codec, spec.statistics
    out = {}
    for i, bucket in enumerate(spec.buckets):
        values = dict(zip(stats, vector[i * len(stats) : (i + 1) * len(stats)]))
        out[bucket] = BucketStatistics(
            count=values["count"],
            sum=codec.decode_exact(values["sum"]) if "sum" in values else None,
            sum_of_squares=codec.decode_exact(values["sum_of_squares"], 2) if "sum_of_squares" in values else None,
        )
    return out


class Aggregator:
    """The requester's side of one round: collects contributions, sums them, decrypts once."""

    def __init__(self, spec: HorizontalSpec, private_key: PrivateKey):
        if private_key.public_key.fingerprint != spec.key_fingerprint:
            raise WrongKey("this private key is not the job key named in the spec")
        self.spec = spec
        self.private_key = private_key
        self._contributions: dict[str, Contribution] = {}
        self._seen_ciphertexts: set[int] = set()
        self._sum: PackedVector | None = None

    @property
    def received(self) -> list[str]:
        return sorted(self._contributions)

    @property
    def missing(self) -> list[str]:
        return [p for p in self.spec.participants if p not in self._contributions]

    def add(self, contribution: Contribution | Mapping) -> None:
        """Validate fully, then add. Any refusal leaves the running sum exactly as it was."""
        if not isinstance(contribution, Contribution):
            contribution = Contribution.from_dict(contribution, self.spec, self.private_key.public_key)
        c = contribution
        if (c.job_id, c.round, c.spec_hash) != (self.spec.job_id, self.spec.round, self.spec.spec_hash):
            raise LayoutMismatch("contribution belongs to another job, round or spec")
        if c.participant not in self.spec.participants:
            raise UnknownParticipant(f"{c.participant} is not a participant of this round")
        if c.participant in self._contributions:
            raise DuplicateContribution(f"{c.participant} already contributed to this round")
        if c.vector.layout != self.spec.layout:
            raise LayoutMismatch("contribution layout differs from the spec's bucket layout")
        if c.vector.public_key != self.private_key.public_key:
            raise WrongKey("contribution is encrypted under another Paillier key")
        if c.vector.additions != 1:
            raise MalformedMessage("a contribution must be one participant's single vector")
        values = {ct.value for ct in c.vector.ciphertexts}
        if values & self._seen_ciphertexts:
            raise DuplicateContribution("contribution replays ciphertexts already received")
        new_sum = c.vector if self._sum is None else self._sum + c.vector
        # effects only after every check passed
        self._sum = new_sum
        self._seen_ciphertexts |= values
        self._contributions[c.participant] = c

    def finish(self) -> dict[str, BucketStatistics]:
        """Decrypt the total; raise MissingParticipant (with the list) if anyone has not contributed."""
        if self.missing:
            raise MissingParticipant(self.missing)
        assert self._sum is not None
        totals = self._sum.decrypt(self.private_key, modular=True)
        return decode_vector(self.spec, totals)
