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

import collections
import concurrent.futures
import secrets
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Iterator, Mapping, Sequence

from privacy.encoding import FixedPoint
from privacy.errors import DuplicateContribution, LayoutMismatch, MalformedMessage, Overflow, WrongKey
from privacy.gmp import mpz
from privacy.packing import PackedVector, SlotLayout
from privacy.paillier import (
    Ciphertext,
    CrtFixedBaseEncryptor,
    Encryptor,
    EncryptorSpec,
    FixedBaseEncryptor,
    PrivateKey,
    PublicKey,
    best_window_bits,
    ciphertext_width,
    default_processes,
    worker_encryptor,
)
from privacy.psi import (
    Blinder,
    _blind_points_task,
    blind_many,
    join_points,
    normalize_identifier,
    points_from_hex,
    points_to_hex,
    shuffled,
    split_points,
)

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
# Workers reuse the encryptors they built (paillier.worker_encryptor), and every batch crosses the
# process boundary as two bytes blobs: 32-byte points and fixed-width ciphertexts.


def _workers(executor: concurrent.futures.Executor) -> int:
    return getattr(executor, "_max_workers", None) or default_processes()


def _label_task(secret: bytes, spec: EncryptorSpec, rows: Sequence[tuple[bytes, int]]) -> tuple[bytes, bytes]:
    """Insurer worker: blind the ids and encrypt the packed labels of one batch."""
    encryptor = worker_encryptor(spec)
    points = Blinder.from_secret(secret).blind_identifiers([identifier for identifier, _ in rows])
    width = ciphertext_width(encryptor.public_key)
    ciphertexts = b"".join(int(encryptor.encrypt(plaintext).value).to_bytes(width, "little") for _, plaintext in rows)
    return join_points(points), ciphertexts


def _split_ciphertexts(blob: bytes, width: int) -> list[int]:
    return [int.from_bytes(blob[i : i + width], "little") for i in range(0, len(blob), width)]


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
        self._lookup = lookup  # value: bucket index, flipped to ~index (< 0) once a label row matched it

    def accumulate(self, batch: EncryptedLabelBatch, public_key: PublicKey, executor: concurrent.futures.Executor | None = None) -> int:
        """Add a batch's matching ciphertexts to their buckets; returns how many rows matched.

        The batch is checked whole (key, sizes, ranges, repeats) before any sum changes.
        """
        self._check_batch(batch, public_key)
        chunk = max(1, -(-len(batch.points) // _workers(executor))) if executor is not None else len(batch.points)
        return self._commit(batch, blind_many(self.blinder, batch.points, True, executor, chunk_size=chunk))

    def accumulate_stream(
        self,
        batches: Iterable[EncryptedLabelBatch],
        public_key: PublicKey,
        executor: concurrent.futures.Executor,
        in_flight: int | None = None,
    ) -> int:
        """``accumulate`` over a stream of batches, re-blinding on the executor while the next batches arrive.

        At most ``in_flight`` batches (default: twice the workers) wait for their re-blinding, so memory stays
        bounded and the main process only validates, matches and multiplies. Each batch is still checked
        whole before it touches the sums; a refused batch stops the stream (earlier batches stay added).
        """
        in_flight = in_flight or 2 * _workers(executor)
        secret = self.blinder.secret()
        pending: collections.deque = collections.deque()
        matched = 0
        for batch in batches:
            self._check_batch(batch, public_key)
            pending.append((batch, executor.submit(_blind_points_task, secret, join_points(batch.points))))
            while pending and (len(pending) > in_flight or pending[0][1].done()):
                done, future = pending.popleft()
                matched += self._commit(done, split_points(future.result()))
        while pending:
            done, future = pending.popleft()
            matched += self._commit(done, split_points(future.result()))
        return matched

    def _check_batch(self, batch: EncryptedLabelBatch, public_key: PublicKey) -> None:
        if self._lookup is None:
            raise MalformedMessage("load the double-blinded buckets before label batches")
        if batch.job_id != self.spec.job_id:
            raise MalformedMessage("label batch belongs to another job")
        if batch.key_fingerprint != public_key.fingerprint or public_key.fingerprint != self.spec.key_fingerprint:
            raise WrongKey("label batch is encrypted under another Paillier key")
        if self._public_key is not None and public_key != self._public_key:
            raise WrongKey("label batches of one job must use one Paillier key")
        if len(batch.points) != len(batch.ciphertexts):
            raise MalformedMessage("label batch: one ciphertext per point expected")
        for p in batch.points:
            if not isinstance(p, bytes) or len(p) != 32:
                raise MalformedMessage("label batch: blinded ids must be 32 bytes")
        nsq = public_key.nsquare
        for c in batch.ciphertexts:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 < c < nsq:
                raise MalformedMessage("label batch: ciphertext out of range")
        if len(set(batch.points)) != len(batch.points):
            raise DuplicateContribution("label batch repeats a blinded id")
        if self.spec.layout.plaintext_count != 1:
            raise LayoutMismatch("label layout must fit one plaintext per row")
        if self._public_key is None:
            self._public_key = public_key

    def _commit(self, batch: EncryptedLabelBatch, matched: Sequence[bytes]) -> int:
        """Match the re-blinded points and multiply the hits into their buckets (after every check passed).

        A doubly-blinded id can match once per job: a repeat (the same row in two batches, or two points
        of one batch that the platform's scalar maps to one value) is refused before anything changes.
        """
        lookup = self._lookup
        hits, keys = [], []
        for m, c in zip(matched, batch.ciphertexts):
            index = lookup.get(m)
            if index is None:
                continue
            if index < 0:
                raise DuplicateContribution("label batch repeats a blinded id that already matched")
            hits.append((index, c))
            keys.append(m)
        if len(set(keys)) != len(keys):
            raise DuplicateContribution("label batch repeats a blinded id")
        counts = list(self._counts)
        for index, _ in hits:
            counts[index] += 1
        if max(counts, default=0) > self.spec.max_rows:
            raise Overflow("more matched rows in a bucket than the layout's max_rows headroom")
        # effects: only now touch the running sums
        if self._sums is None:
            self._sums = [[mpz(1)] for _ in self.spec.buckets]
        nsq_m = self._public_key._nsquare_mpz
        sums = self._sums
        for index, c in hits:
            sums[index][0] = sums[index][0] * c % nsq_m
        for m, (index, _) in zip(keys, hits):
            lookup[m] = ~index
        self._counts = counts
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
        self._encryptors: dict[int, CrtFixedBaseEncryptor] = {}
        self._base: int | None = None
        layout, codec = spec.layout, spec.codec
        if layout.plaintext_count != 1:
            raise LayoutMismatch("label layout must fit one plaintext per row")
        # what layout.pack(spec.label_vector(...)) does, unrolled: a million rows are packed in the main process
        offsets = [offset for _, offset in layout._placement]
        square_limit = 1 << (spec.square_bits - 1)
        squares = spec.include_squares
        self.rows: list[tuple[bytes, int]] = []
        seen: set[bytes] = set()
        for identifier, claimed, amount in rows:
            key = normalize_identifier(identifier)
            if key in seen:
                raise DuplicateContribution("insurer rows repeat an identifier")
            seen.add(key)
            if claimed not in (0, 1, True, False):
                raise MalformedMessage("claimed flag must be 0 or 1")
            encoded = codec.encode(amount)  # refuses anything outside amount_bits
            plaintext = (1 << offsets[0]) + (int(claimed) << offsets[1]) + (encoded << offsets[2])
            if squares:
                square = encoded * encoded
                if square >= square_limit:
                    raise Overflow(f"amount squared does not fit in {spec.square_bits} signed bits")
                plaintext += square << offsets[3]
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

    def _fixed_base(self) -> int:
        """One random n-th residue h per job (one CRT exponentiation), shared by every window size."""
        if self._base is None:
            self._base = int(self.private_key.n_th_power_crt(self.public_key.random_unit()))
        return self._base

    def encryptor_spec(self, rows_per_process: int) -> EncryptorSpec:
        """The recipe of the key holder's fastest path (fixed-base modulo p^2 and q^2), its window sized to
        the work, for worker processes: the main process builds no table it would not use."""
        k = self.private_key
        window = best_window_bits(rows_per_process, halves=2)
        return EncryptorSpec("crt-fixed-base", self.public_key.n, (k.p, k.q, self._fixed_base(), None, window))

    def encryptor_for(self, rows_per_process: int) -> CrtFixedBaseEncryptor:
        """The same encryptor, built here (cached per window size)."""
        window = best_window_bits(rows_per_process, halves=2)
        cached = self._encryptors.get(window)
        if cached is None:
            cached = self._encryptors[window] = CrtFixedBaseEncryptor(self.private_key, window_bits=window, base=self._fixed_base())
        return cached

    def label_batches(
        self,
        batch_size: int = 5000,
        executor: concurrent.futures.Executor | None = None,
        encryptor: Encryptor | None = None,
        in_flight: int | None = None,
    ) -> Iterator[EncryptedLabelBatch]:
        """Blind ids and encrypt packed labels, streamed in shuffled batches.

        With an executor, at most ``in_flight`` batches (default: twice the workers) are queued or finished
        but not yet consumed, and the next batch is queued before one is handed out, so the workers keep
        busy while the consumer works and memory stays bounded however many rows there are.
        """
        order = shuffled(range(len(self.rows)))
        starts = range(0, len(order), batch_size)

        def rows_at(start: int) -> list[tuple[bytes, int]]:
            return [self.rows[i] for i in order[start : start + batch_size]]

        fingerprint = self.public_key.fingerprint
        if executor is None:
            encryptor = encryptor or self.encryptor_for(len(self.rows))
            for start in starts:
                rows = rows_at(start)
                points = self.blinder.blind_identifiers([i for i, _ in rows])
                yield EncryptedLabelBatch(self.spec.job_id, fingerprint, points, [encryptor.encrypt(p).value for _, p in rows])
            return
        workers = _workers(executor)
        spec = encryptor.spec() if encryptor is not None else self.encryptor_spec(-(-len(self.rows) // workers))
        secret, width = self.blinder.secret(), ciphertext_width(self.public_key)
        in_flight = in_flight or 2 * workers
        pending: collections.deque = collections.deque()
        upcoming = iter(starts)
        for start in upcoming:
            pending.append(executor.submit(_label_task, secret, spec, rows_at(start)))
            if len(pending) >= in_flight:
                break
        while pending:
            points, ciphertexts = pending.popleft().result()
            start = next(upcoming, None)
            if start is not None:  # keep the queue full before handing the batch out
                pending.append(executor.submit(_label_task, secret, spec, rows_at(start)))
            yield EncryptedLabelBatch(self.spec.job_id, fingerprint, split_points(points), _split_ciphertexts(ciphertexts, width))

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
