"""Private join-and-group-by: vertical statistics without revealing who is in the intersection.

Private intersection-sum with groups, after Ion et al., "On Deploying Secure Computing: Private
Intersection-Sum-with-Cardinality", EuroS&P 2020, with Paillier (1999) as the additive scheme and
X25519 commutative blinding (privacy.psi). DESIGN.md flow 3:

1. platform -> insurer  ``PlatformBuckets``: per platform bucket, a(H(v)) for its ids, shuffled
   (optionally padded with blinded dummies so bucket sizes are hidden too).
2. insurer -> platform  ``DoubleBlindedBuckets``: per bucket, b(a(H(v))), shuffled within the bucket:
   the platform can map a doubly-blinded id to a bucket, never to one of its rows.
3. insurer -> platform  ``EncryptedLabelBatch`` (streamed): (b(H(w)), Enc(count=1, claimed, amount,
   amount^2) packed in one plaintext), rows shuffled.
4. platform: a(b(H(w))) matched against step 2, ciphertexts multiplied per bucket; buckets with fewer
   than k matches are dropped; optional encrypted noise; every sum re-randomized (otherwise the
   insurer could test which of its own ciphertexts a sum is made of) -> ``BucketSums``.
5. insurer decrypts per bucket and again suppresses anything under k.

The platform learns the intersection size per bucket; the insurer learns the per-bucket sums and the
platform's bucket sizes (unless padded). Neither learns which individuals matched.
"""
from __future__ import annotations

import concurrent.futures
import secrets
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Iterator, Mapping, Sequence

from privacy.encoding import FixedPoint
from privacy.gmp import mpz
from privacy.errors import DuplicateContribution, LayoutMismatch, MalformedMessage, Overflow, WrongKey
from privacy.packing import PackedVector, SlotLayout
from privacy.paillier import Ciphertext, Encryptor, EncryptorSpec, FixedBaseEncryptor, PrivateKey, PublicKey
from privacy.psi import Blinder, blind_many, normalize_identifier, points_from_hex, points_to_hex, shuffled

LABELS = ("count", "claimed", "amount", "amount_squared")


@dataclass(frozen=True)
class JoinSpec:
    """Agreed before the job: buckets, key, encoding and the minimum cohort k."""

    job_id: str
    buckets: tuple[str, ...]
    key_fingerprint: str
    min_cohort: int = 10
    decimals: int = 2
    count_bits: int = 40
    amount_bits: int = 64
    square_bits: int = 128
    max_rows: int = 1 << 24
    key_bits: int = 2048
    include_squares: bool = True

    def __post_init__(self):
        if not isinstance(self.buckets, tuple) or not self.buckets or len(set(self.buckets)) != len(self.buckets):
            raise MalformedMessage("join spec: buckets must be a non-empty tuple of distinct names")
        if isinstance(self.min_cohort, bool) or not isinstance(self.min_cohort, int) or self.min_cohort < 1:
            raise MalformedMessage("join spec: min_cohort must be a positive integer")

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS if self.include_squares else LABELS[:3]

    @property
    def layout(self) -> SlotLayout:
        widths = (self.count_bits, self.count_bits, self.amount_bits, self.square_bits)[: len(self.labels)]
        # one extra addition for the platform's optional encrypted noise
        return SlotLayout(widths, max_additions=self.max_rows + 1, key_bits=self.key_bits)

    @property
    def codec(self) -> FixedPoint:
        return FixedPoint(self.decimals, self.amount_bits)

    def laplace_noise_vector(self, epsilon: float, amount_bound: Any) -> list[int]:
        """Integer Laplace noise for one bucket's slots (count, claimed, amount, amount^2), for the platform
        to add encrypted in ``FeatureOwner.bucket_sums(noise=...)``. One person changes count and claimed
        by 1, amount by at most ``amount_bound`` (in encoded units) and amount^2 by its square; epsilon is
        split evenly across the slots."""
        from privacy.release import laplace_noise  # release is pure too; imported here to keep layers flat

        bound = abs(self.codec.encode(amount_bound))
        sensitivities = (1, 1, bound, bound * bound)[: len(self.labels)]
        per_slot = epsilon / len(sensitivities)
        return [round(laplace_noise(s / per_slot)) for s in sensitivities]

    def label_vector(self, claimed: Any, amount: Any) -> list[int]:
        if claimed not in (0, 1, True, False):
            raise MalformedMessage("claimed flag must be 0 or 1")
        encoded = self.codec.encode(amount)
        vector = [1, int(claimed), encoded, encoded * encoded]
        return vector[: len(self.labels)]


def _bucket_points_to_dict(buckets: Mapping[str, Sequence[bytes]]) -> dict:
    return {b: points_to_hex(p) for b, p in buckets.items()}


def _bucket_points_from_dict(data: Any, spec: JoinSpec, what: str) -> dict[str, list[bytes]]:
    if not isinstance(data, dict) or set(data) != set(spec.buckets):
        raise LayoutMismatch(f"{what}: buckets differ from the job's declared buckets")
    return {b: points_from_hex(data[b], what) for b in spec.buckets}


@dataclass
class PlatformBuckets:
    job_id: str
    buckets: dict[str, list[bytes]]

    def to_dict(self) -> dict:
        return {"kind": "join-platform-buckets", "job_id": self.job_id, "buckets": _bucket_points_to_dict(self.buckets)}

    @classmethod
    def from_dict(cls, data: Any, spec: JoinSpec) -> "PlatformBuckets":
        if not isinstance(data, dict) or data.get("kind") != "join-platform-buckets" or data.get("job_id") != spec.job_id:
            raise MalformedMessage("expected a join-platform-buckets message for this job")
        return cls(spec.job_id, _bucket_points_from_dict(data.get("buckets"), spec, "join-platform-buckets"))


@dataclass
class DoubleBlindedBuckets:
    job_id: str
    buckets: dict[str, list[bytes]]

    def to_dict(self) -> dict:
        return {"kind": "join-double-blinded", "job_id": self.job_id, "buckets": _bucket_points_to_dict(self.buckets)}

    @classmethod
    def from_dict(cls, data: Any, spec: JoinSpec) -> "DoubleBlindedBuckets":
        if not isinstance(data, dict) or data.get("kind") != "join-double-blinded" or data.get("job_id") != spec.job_id:
            raise MalformedMessage("expected a join-double-blinded message for this job")
        return cls(spec.job_id, _bucket_points_from_dict(data.get("buckets"), spec, "join-double-blinded"))


@dataclass
class EncryptedLabelBatch:
    """A slice of the insurer's rows: blinded id and one packed ciphertext each (hex on the wire)."""

    job_id: str
    key_fingerprint: str
    points: list[bytes]
    ciphertexts: list[int]

    def to_dict(self) -> dict:
        return {
            "kind": "join-label-batch",
            "job_id": self.job_id,
            "key": self.key_fingerprint,
            "points": points_to_hex(self.points),
            "ciphertexts": [format(c, "x") for c in self.ciphertexts],
        }

    @classmethod
    def from_dict(cls, data: Any, spec: JoinSpec, public_key: PublicKey) -> "EncryptedLabelBatch":
        if not isinstance(data, dict) or data.get("kind") != "join-label-batch" or data.get("job_id") != spec.job_id:
            raise MalformedMessage("expected a join-label-batch message for this job")
        if data.get("key") != public_key.fingerprint or public_key.fingerprint != spec.key_fingerprint:
            raise WrongKey("label batch is encrypted under another Paillier key")
        points = points_from_hex(data.get("points"), "join-label-batch")
        raw = data.get("ciphertexts")
        if not isinstance(raw, list) or len(raw) != len(points):
            raise MalformedMessage("join-label-batch: one ciphertext per point expected")
        values = []
        for item in raw:
            try:
                values.append(public_key.ciphertext(int(item, 16)).value)
            except (TypeError, ValueError) as exc:
                raise MalformedMessage("join-label-batch: ciphertexts must be hex integers") from exc
        return cls(spec.job_id, public_key.fingerprint, points, values)


@dataclass
class BucketSums:
    """Platform -> insurer: only re-randomized per-bucket sums of buckets with >= k matches."""

    job_id: str
    sums: dict[str, PackedVector]
    suppressed: list[str]

    def to_dict(self) -> dict:
        return {
            "kind": "join-bucket-sums",
            "job_id": self.job_id,
            "sums": {b: v.to_dict() for b, v in self.sums.items()},
            "suppressed": list(self.suppressed),
        }

    @classmethod
    def from_dict(cls, data: Any, spec: JoinSpec, public_key: PublicKey) -> "BucketSums":
        if not isinstance(data, dict) or data.get("kind") != "join-bucket-sums" or data.get("job_id") != spec.job_id:
            raise MalformedMessage("expected a join-bucket-sums message for this job")
        sums, suppressed = data.get("sums"), data.get("suppressed")
        if not isinstance(sums, dict) or not isinstance(suppressed, list) or not set(sums) <= set(spec.buckets):
            raise LayoutMismatch("join-bucket-sums: buckets differ from the job's declared buckets")
        return cls(spec.job_id, {b: PackedVector.from_dict(v, public_key, spec.layout) for b, v in sums.items()}, suppressed)


# --- worker processes -----------------------------------------------------------------------------------
_ENCRYPTORS: dict[EncryptorSpec, Encryptor] = {}


def _label_task(secret: bytes, spec: EncryptorSpec, rows: Sequence[tuple[bytes, int]]) -> tuple[list[bytes], list[int]]:
    encryptor = _ENCRYPTORS.get(spec)
    if encryptor is None:
        encryptor = _ENCRYPTORS[spec] = spec.build()  # table built once per worker process
    blinder = Blinder.from_secret(secret)
    points = blinder.blind_identifiers([identifier for identifier, _ in rows])
    return points, [int(encryptor.encrypt(plaintext).value) for _, plaintext in rows]


class FeatureOwner:
    """The platform: ids with a bucket each. Learns per-bucket intersection sizes, never labels."""

    def __init__(self, spec: JoinSpec, rows: Iterable[tuple[str | bytes, str]], blinder: Blinder | None = None, pad_to: int | None = None):
        self.spec = spec
        self.blinder = blinder or Blinder()
        self.pad_to = pad_to
        self.rows: dict[bytes, str] = {}
        for identifier, bucket in rows:
            key = normalize_identifier(identifier)
            if bucket not in spec.buckets:
                raise LayoutMismatch(f"row in undeclared bucket {bucket!r}")
            if key in self.rows:
                raise DuplicateContribution("platform rows repeat an identifier")
            self.rows[key] = bucket
        self._sent_sizes: dict[str, int] = {}
        self._lookup: dict[bytes, int] | None = None
        self._sums: list[list[Any]] | None = None
        self._counts = [0] * len(spec.buckets)
        self._seen: set[bytes] = set()
        self._public_key: PublicKey | None = None

    def blinded_buckets(self, executor: concurrent.futures.Executor | None = None) -> PlatformBuckets:
        by_bucket: dict[str, list[bytes]] = {b: [] for b in self.spec.buckets}
        for identifier, bucket in self.rows.items():
            by_bucket[bucket].append(identifier)
        if self.pad_to is not None:
            # dummies are blindings of random ids: indistinguishable from real ones, never matched
            for bucket, ids in by_bucket.items():
                ids.extend(secrets.token_bytes(32) for _ in range(max(0, self.pad_to - len(ids))))
        flat = [(b, i) for b, ids in by_bucket.items() for i in ids]
        points = blind_many(self.blinder, [i for _, i in flat], False, executor)
        out: dict[str, list[bytes]] = {b: [] for b in self.spec.buckets}
        for (bucket, _), point in zip(flat, points):
            out[bucket].append(point)
        self._sent_sizes = {b: len(p) for b, p in out.items()}
        return PlatformBuckets(self.spec.job_id, {b: shuffled(p) for b, p in out.items()})

    def load_double_blinded(self, message: DoubleBlindedBuckets) -> None:
        if message.job_id != self.spec.job_id:
            raise MalformedMessage("double-blinded buckets belong to another job")
        lookup: dict[bytes, int] = {}
        for index, bucket in enumerate(self.spec.buckets):
            points = message.buckets.get(bucket, [])
            if len(points) != self._sent_sizes.get(bucket, -1):
                raise LayoutMismatch(f"bucket {bucket!r} came back with a different number of points")
            for p in points:
                if p in lookup:
                    raise DuplicateContribution("double-blinded points repeat")
                lookup[p] = index
        self._lookup = lookup

    def accumulate(self, batch: EncryptedLabelBatch, public_key: PublicKey, executor: concurrent.futures.Executor | None = None) -> int:
        """Add a batch's matching ciphertexts to their buckets; returns how many rows matched.

        The batch is checked whole (key, sizes, ranges, repeats) before any sum changes.
        """
        if self._lookup is None:
            raise MalformedMessage("load the double-blinded buckets before label batches")
        if batch.job_id != self.spec.job_id:
            raise MalformedMessage("label batch belongs to another job")
        if batch.key_fingerprint != public_key.fingerprint or public_key.fingerprint != self.spec.key_fingerprint:
            raise WrongKey("label batch is encrypted under another Paillier key")
        if self._public_key is None:
            self._public_key = public_key
        if len(batch.points) != len(batch.ciphertexts):
            raise MalformedMessage("label batch: one ciphertext per point expected")
        nsq = public_key.nsquare
        for c in batch.ciphertexts:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 < c < nsq:
                raise MalformedMessage("label batch: ciphertext out of range")
        batch_points = set(batch.points)
        if len(batch_points) != len(batch.points) or batch_points & self._seen:
            raise DuplicateContribution("label batch repeats a blinded id")
        if self.spec.layout.plaintext_count != 1:
            raise LayoutMismatch("label layout must fit one plaintext per row")
        matched = blind_many(self.blinder, batch.points, True, executor)
        hits = [(self._lookup[m], c) for m, c in zip(matched, batch.ciphertexts) if m in self._lookup]
        counts = list(self._counts)
        for index, _ in hits:
            counts[index] += 1
        if max(counts, default=0) > self.spec.max_rows:
            raise Overflow("more matched rows in a bucket than the layout's max_rows headroom")
        # effects: only now touch the running sums
        if self._sums is None:
            self._sums = [[mpz(1)] for _ in self.spec.buckets]
        nsq_m = public_key._nsquare_mpz
        for index, c in hits:
            self._sums[index][0] = self._sums[index][0] * c % nsq_m
        self._counts = counts
        self._seen |= batch_points
        return len(hits)

    @property
    def matched_counts(self) -> dict[str, int]:
        """What the platform learns: matches per bucket."""
        return dict(zip(self.spec.buckets, self._counts))

    def bucket_sums(self, noise: Mapping[str, Sequence[int]] | None = None, encryptor: Encryptor | None = None) -> BucketSums:
        """Suppress buckets under k, add optional encrypted noise, re-randomize every released sum."""
        if self._lookup is None:
            raise MalformedMessage("load the double-blinded buckets before asking for bucket sums")
        public_key = self._public_key
        if public_key is None or self._sums is None:
            # The insurer sent no batch (it holds no rows): every bucket matched 0 < k rows, so all are
            # suppressed. An empty intersection is a result, not a protocol error.
            return BucketSums(self.spec.job_id, {}, list(self.spec.buckets))
        encryptor = encryptor or FixedBaseEncryptor(public_key)
        layout = self.spec.layout
        sums, suppressed = {}, []
        for index, bucket in enumerate(self.spec.buckets):
            if self._counts[index] < self.spec.min_cohort:
                suppressed.append(bucket)
                continue
            values = list(noise.get(bucket, [0] * layout.length)) if noise else [0] * layout.length
            # Enc(noise) with fresh randomness: adds the noise and re-randomizes in one step
            fresh = PackedVector.encrypt(layout, values, encryptor)
            total = PackedVector(layout, [Ciphertext(public_key, int(self._sums[index][0]), _trusted=True)], additions=self._counts[index])
            sums[bucket] = total + fresh
        return BucketSums(self.spec.job_id, sums, suppressed)


@dataclass(frozen=True)
class JoinBucketResult:
    count: int
    claimed: int
    amount: Fraction
    amount_squared: Fraction | None

    @property
    def claim_rate(self) -> float:
        return self.claimed / self.count if self.count else 0.0

    @property
    def average_loss(self) -> float | None:
        return float(self.amount / self.claimed) if self.claimed else None

    def to_dict(self) -> dict:
        out = {"count": self.count, "claimed": self.claimed, "claim_rate": self.claim_rate,
               "amount": float(self.amount), "average_loss": self.average_loss}
        if self.amount_squared is not None:
            out["amount_squared"] = float(self.amount_squared)
        return out


class LabelOwner:
    """The insurer: ids with (claimed, amount) labels and the Paillier private key of the job."""

    def __init__(self, spec: JoinSpec, private_key: PrivateKey, rows: Iterable[tuple[str | bytes, Any, Any]], blinder: Blinder | None = None):
        if private_key.public_key.fingerprint != spec.key_fingerprint:
            raise WrongKey("this private key is not the job key named in the spec")
        if private_key.public_key.bits != spec.key_bits:
            raise LayoutMismatch("job key size differs from the spec's key_bits")
        self.spec = spec
        self.private_key = private_key
        self.public_key = private_key.public_key
        self.blinder = blinder or Blinder()
        layout = spec.layout
        self.rows: list[tuple[bytes, int]] = []
        seen: set[bytes] = set()
        for identifier, claimed, amount in rows:
            key = normalize_identifier(identifier)
            if key in seen:
                raise DuplicateContribution("insurer rows repeat an identifier")
            seen.add(key)
            (plaintext,) = layout.pack(spec.label_vector(claimed, amount))
            self.rows.append((key, plaintext))

    def double_blind(self, message: PlatformBuckets, executor: concurrent.futures.Executor | None = None) -> DoubleBlindedBuckets:
        if message.job_id != self.spec.job_id:
            raise MalformedMessage("platform buckets belong to another job")
        flat = [(b, p) for b in self.spec.buckets for p in message.buckets[b]]
        if len({p for _, p in flat}) != len(flat):
            raise DuplicateContribution("platform buckets repeat a blinded id")
        points = blind_many(self.blinder, [p for _, p in flat], True, executor)
        out: dict[str, list[bytes]] = {b: [] for b in self.spec.buckets}
        for (bucket, _), point in zip(flat, points):
            out[bucket].append(point)
        return DoubleBlindedBuckets(self.spec.job_id, {b: shuffled(p) for b, p in out.items()})

    def label_batches(
        self,
        batch_size: int = 5000,
        executor: concurrent.futures.Executor | None = None,
        encryptor: Encryptor | None = None,
    ) -> Iterator[EncryptedLabelBatch]:
        """Blind ids and encrypt packed labels, streamed in shuffled batches (bounded memory)."""
        encryptor = encryptor or FixedBaseEncryptor(self.public_key)
        order = shuffled(range(len(self.rows)))
        slices = [[self.rows[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
        if executor is None:
            for rows in slices:
                points = self.blinder.blind_identifiers([i for i, _ in rows])
                yield EncryptedLabelBatch(self.spec.job_id, self.public_key.fingerprint, points, [encryptor.encrypt(p).value for _, p in rows])
            return
        secret, spec = self.blinder.secret(), encryptor.spec()
        for points, ciphertexts in executor.map(_label_task, [secret] * len(slices), [spec] * len(slices), slices):
            yield EncryptedLabelBatch(self.spec.job_id, self.public_key.fingerprint, points, ciphertexts)

    def decrypt(self, message: BucketSums) -> dict[str, JoinBucketResult]:
        """Per-bucket results; buckets under k (after the platform's own check) are dropped here too."""
        if message.job_id != self.spec.job_id:
            raise MalformedMessage("bucket sums belong to another job")
        codec = self.spec.codec
        out = {}
        for bucket in self.spec.buckets:
            if bucket not in message.sums:
                continue
            vector = message.sums[bucket]
            if vector.public_key != self.public_key:
                raise WrongKey("bucket sum is encrypted under another Paillier key")
            values = dict(zip(self.spec.labels, vector.decrypt(self.private_key)))
            if values["count"] < self.spec.min_cohort:
                continue
            out[bucket] = JoinBucketResult(
                count=values["count"],
                claimed=values["claimed"],
                amount=codec.decode_exact(values["amount"]),
                amount_squared=codec.decode_exact(values["amount_squared"], 2) if "amount_squared" in values else None,
            )
        return out
