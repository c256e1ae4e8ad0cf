"""Dropout-tolerant secure aggregation: double masking with Shamir-shared seeds, no re-run.

Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
section 4 (the semi-honest protocol), on top of the packed Paillier contributions of
privacy.aggregation. A round whose spec has ``threshold = t`` finishes as long as t participants are
left; without it (privacy.aggregation) one missing participant means a re-run.

1. ``advertise``: each participant u draws a fresh X25519 masking key s_u for this round only (its
   private half may later be reconstructed by the requester, so it must never be a long-term key).
2. ``share_keys``: u draws a self-mask seed b_u and Shamir-splits (t of n) both s_u's private key and
   b_u; the share for v is encrypted with AES-GCM under a key from the long-term registered X25519 keys
   of u and v (HKDF, salted with the round id), so the requester who forwards it learns nothing.
   U1 = those whose shares arrived.
3. ``masked_input``: y_u = x_u + PRG(b_u) + sum over v in U1 of +/-PRG(s_uv), every slot modulo 2^w,
   packed and Paillier-encrypted as in privacy.aggregation. U2 = those whose contribution arrived.
4. ``unmask``: told U2, each survivor reveals, for every u in U1, the share of b_u if u is in U2 and
   the share of s_u's private key if it is not -- never both for one u, and only once per round.
5. The requester decrypts the sum, rebuilds b_u for u in U2 and s_u for u in U1 \\ U2 from t shares
   each, and subtracts the self masks of the survivors and the pair masks they shared with the dropped.

What the requester learns is the sum over U2 only. A dropped participant's pair masks are removed only
for pairs with survivors, its own input is never in the sum, and a survivor's self mask hides its single
masked vector even though its pair masks with the dropped become known. Shamir shares live in the
prime field of 2^521 - 1 (a Mersenne prime, larger than any 32-byte secret).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.aggregation import Aggregator, BucketStatistics, Contribution, HorizontalSpec, decode_vector, local_vector
from privacy.errors import DuplicateContribution, MalformedMessage, MissingParticipant, UnknownParticipant, WrongKey
from privacy.masking import expand_mask, load_public, pair_seed, public_bytes
from privacy.packing import PackedVector
from privacy.paillier import Encryptor, FixedBaseEncryptor, PrivateKey, PublicKey

PRIME = (1 << 521) - 1
SHARE_INFO = b"consortium/secagg-share/v1"
SELF_MASK_DOMAIN = b"consortium/self-mask/v1|"


# --- Shamir secret sharing over GF(2^521 - 1) ---------------------------------------------------------
def split_secret(secret: bytes, threshold: int, xs: Sequence[int]) -> dict[int, int]:
    """Shares f(x) for each x of a random degree-(threshold-1) polynomial with f(0) = the secret."""
    if len(secret) != 32:
        raise MalformedMessage("only 32-byte secrets are shared")
    if not 1 <= threshold <= len(xs) or len(set(xs)) != len(xs) or not all(0 < x < PRIME for x in xs):
        raise MalformedMessage("shares need distinct non-zero points and 1 <= threshold <= holders")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares[x] = y
    return shares


def combine_shares(shares: Mapping[int, int], threshold: int) -> bytes:
    """Lagrange interpolation at 0 from any ``threshold`` shares."""
    if len(shares) < threshold:
        raise MissingParticipant([], f"{len(shares)} shares, {threshold} needed to rebuild a secret")
    points = sorted(shares.items())[:threshold]
    secret = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * -xj % PRIME
                den = den * (xi - xj) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    if secret >> 256:
        raise MalformedMessage("shares do not interpolate to a 32-byte secret (inconsistent shares)")
    return secret.to_bytes(32, "big")


# --- messages -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyAdvert:
    participant: str
    mask_public: bytes

    def to_dict(self) -> dict:
        return {"kind": "secagg-advert", "participant": self.participant, "mask_public": self.mask_public.hex()}

    @classmethod
    def from_dict(cls, data: Any) -> "KeyAdvert":
        if not isinstance(data, dict) or data.get("kind") != "secagg-advert" or not isinstance(data.get("participant"), str):
            raise MalformedMessage("expected a secagg-advert message")
        try:
            raw = bytes.fromhex(data.get("mask_public"))
        except (TypeError, ValueError) as exc:
            raise MalformedMessage("secagg-advert: mask_public must be hex") from exc
        _check_point(raw, data["participant"])
        return cls(data["participant"], raw)


@dataclass(frozen=True)
class EncryptedShare:
    """u's shares of s_u and b_u for v, AES-GCM under the (u, v) long-term pair key; the requester forwards it."""

    sender: str
    recipient: str
    nonce: bytes
    box: bytes

    def to_dict(self) -> dict:
        return {"kind": "secagg-share", "sender": self.sender, "recipient": self.recipient,
                "nonce": self.nonce.hex(), "box": self.box.hex()}

    @classmethod
    def from_dict(cls, data: Any) -> "EncryptedShare":
        if not isinstance(data, dict) or data.get("kind") != "secagg-share":
            raise MalformedMessage("expected a secagg-share message")
        try:
            return cls(str(data["sender"]), str(data["recipient"]), bytes.fromhex(data["nonce"]), bytes.fromhex(data["box"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage("secagg-share: sender, recipient, nonce and box (hex) expected") from exc


@dataclass(frozen=True)
class UnmaskingShares:
    """A survivor's answer: shares of b_u for survivors u, of s_u's private key for dropped u."""

    participant: str
    survivors: tuple[str, ...]
    self_mask_shares: dict[str, int]
    mask_key_shares: dict[str, int]

    def to_dict(self) -> dict:
        return {"kind": "secagg-unmask", "participant": self.participant, "survivors": list(self.survivors),
                "self_mask_shares": {u: str(v) for u, v in self.self_mask_shares.items()},
                "mask_key_shares": {u: str(v) for u, v in self.mask_key_shares.items()}}

    @classmethod
    def from_dict(cls, data: Any) -> "UnmaskingShares":
        if not isinstance(data, dict) or data.get("kind") != "secagg-unmask" or not isinstance(data.get("participant"), str):
            raise MalformedMessage("expected a secagg-unmask message")
        try:
            parse = lambda d: {str(u): int(v) for u, v in d.items()}  # noqa: E731
            return cls(data["participant"], tuple(data["survivors"]), parse(data["self_mask_shares"]), parse(data["mask_key_shares"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedMessage("secagg-unmask: malformed share maps") from exc


def _check_point(raw: bytes, owner: str) -> None:
    """Refuse a masking key that is not 32 bytes or is a low-order point (every pair mask would be public)."""
    try:
        X25519PrivateKey.generate().exchange(load_public(raw, owner))
    except ValueError as exc:
        raise MalformedMessage(f"X25519 masking key of {owner} is a low-order point") from exc


def _share_key(identity: X25519PrivateKey, own: str, peer: str, peer_identity: bytes, round_id: bytes) -> bytes:
    try:
        shared = identity.exchange(load_public(peer_identity, peer))
    except ValueError as exc:
        raise MalformedMessage(f"X25519 identity key of {peer} is a low-order point") from exc
    low, high = sorted((own, peer))
    info = SHARE_INFO + b"|" + low.encode() + b"|" + high.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=round_id, info=info).derive(shared)


def _self_mask(seed: bytes, widths: Sequence[int]) -> list[int]:
    return expand_mask(hashlib.sha256(SELF_MASK_DOMAIN + seed).digest(), widths)


def _x(spec: HorizontalSpec, participant: str) -> int:
    return spec.participants.index(participant) + 1  # Shamir evaluation point: 1-based rank in the spec


# --- participant ------------------------------------------------------------------------------------------
class DropoutParticipant:
    """One participant's state for one dropout-tolerant round (fresh masking key and self-mask seed)."""

    def __init__(self, spec: HorizontalSpec, participant: str, identity_key: X25519PrivateKey,
                 registry: Mapping[str, bytes], public_key: PublicKey, encryptor: Encryptor | None = None):
        if not spec.threshold:
            raise MalformedMessage("the spec declares no dropout threshold; use privacy.aggregation")
        if participant not in spec.participants:
            raise UnknownParticipant(f"{participant} is not a participant of job {spec.job_id}")
        if public_key.fingerprint != spec.key_fingerprint:
            raise WrongKey("the job spec names another Paillier key")
        if registry.get(participant) not in (None, public_bytes(identity_key)):
            raise UnknownParticipant(f"the registry lists another X25519 key for {participant}")
        self.spec, self.name, self.public_key = spec, participant, public_key
        self.identity_key, self.registry = identity_key, registry
        self.encryptor = encryptor
        self._mask_key = X25519PrivateKey.generate()  # this round only
        self._seed = secrets.token_bytes(32)
        self._adverts: dict[str, bytes] | None = None
        self._held: dict[str, tuple[int, int]] = {}  # sender -> (share of its s, share of its b)
        self._u1: tuple[str, ...] | None = None
        self._answered: tuple[str, ...] | None = None

    def advertise(self) -> KeyAdvert:
        return KeyAdvert(self.name, public_bytes(self._mask_key))

    def share_keys(self, adverts: Mapping[str, bytes]) -> list[EncryptedShare]:
        """Shares of this round's masking key and self-mask seed, one encrypted box per advertised participant."""
        if adverts.get(self.name) != public_bytes(self._mask_key):
            raise MalformedMessage("the advertised keys do not carry this participant's masking key")
        if not set(adverts) <= set(self.spec.participants):
            raise UnknownParticipant("adverts name participants outside the spec")
        if len(adverts) < self.spec.threshold:
            raise MissingParticipant(sorted(set(self.spec.participants) - set(adverts)), "fewer advertised keys than the threshold")
        for peer, raw in adverts.items():
            _check_point(raw, peer)
        self._adverts = dict(adverts)
        holders = sorted(adverts)
        s_shares = split_secret(self._mask_key.private_bytes_raw(), self.spec.threshold, [_x(self.spec, v) for v in holders])
        b_shares = split_secret(self._seed, self.spec.threshold, [_x(self.spec, v) for v in holders])
        out = []
        for v in holders:
            x = _x(self.spec, v)
            if v == self.name:
                self._held[v] = (s_shares[x], b_shares[x])
                continue
            key = _share_key(self.identity_key, self.name, v, self.registry[v], self.spec.round_id)
            nonce = os.urandom(12)
            plain = s_shares[x].to_bytes(66, "big") + b_shares[x].to_bytes(66, "big")
            out.append(EncryptedShare(self.name, v, nonce, AESGCM(key).encrypt(nonce, plain, self._aad(self.name, v))))
        return out

    def _aad(self, sender: str, recipient: str) -> bytes:
        return json.dumps([self.spec.spec_hash, sender, recipient]).encode()

    def masked_input(self, shares: Iterable[EncryptedShare], vector: list[int] | None = None,
                     records: Iterable[tuple[str, Any]] | None = None) -> Contribution:
        """Open the shares addressed here (their senders form U1) and send the double-masked vector."""
        if self._adverts is None:
            raise MalformedMessage("share_keys must run before masked_input")
        for box in shares:
            if box.recipient != self.name or box.sender not in self._adverts or box.sender == self.name:
                raise UnknownParticipant("a share from or to someone outside this round's adverts")
            if box.sender in self._held:
                raise DuplicateContribution(f"two shares from {box.sender}")
            key = _share_key(self.identity_key, self.name, box.sender, self.registry[box.sender], self.spec.round_id)
            try:
                plain = AESGCM(key).decrypt(box.nonce, box.box, self._aad(box.sender, self.name))
            except InvalidTag as exc:
                raise MalformedMessage(f"the share from {box.sender} does not authenticate") from exc
            if len(plain) != 132:
                raise MalformedMessage("a share box must hold two 66-byte shares")
            self._held[box.sender] = (int.from_bytes(plain[:66], "big"), int.from_bytes(plain[66:], "big"))
        u1 = tuple(sorted(self._held))
        if len(u1) < self.spec.threshold:
            raise MissingParticipant(sorted(set(self._adverts) - set(u1)), "fewer shares than the threshold")
        self._u1 = u1
        if vector is None:
            vector = local_vector(self.spec, records or ())
        layout = self.spec.layout
        layout.pack(vector)  # signed range check before masking
        widths = layout.widths
        total = [v + m for v, m in zip(vector, _self_mask(self._seed, widths))]
        for peer in u1:
            if peer == self.name:
                continue
            mask = expand_mask(pair_seed(self._mask_key, self.name, peer, self._adverts[peer], self.spec.round_id), widths)
            sign = 1 if self.name < peer else -1
            total = [t + sign * m for t, m in zip(total, mask)]
        masked = [t % (1 << w) for t, w in zip(total, widths)]
        encryptor = self.encryptor or FixedBaseEncryptor(self.public_key)
        packed = PackedVector.encrypt(layout, masked, encryptor, modular=True)
        return Contribution(self.spec.job_id, self.spec.round, self.spec.spec_hash, self.name, packed)

    def unmask(self, survivors: Sequence[str]) -> UnmaskingShares:
        """Reveal b-shares of survivors and s-shares of the dropped; answers one survivor list only, once."""
        if self._u1 is None:
            raise MalformedMessage("masked_input must run before unmask")
        survivors = tuple(sorted(set(survivors)))
        if self._answered is not None:
            if survivors != self._answered:
                raise DuplicateContribution("asked to unmask twice with different survivors: refused")
        if self.name not in survivors:
            raise UnknownParticipant("this participant is not listed among the survivors")
        if not set(survivors) <= set(self._u1):
            raise UnknownParticipant("survivors must have shared their keys in this round")
        if len(survivors) < self.spec.threshold:
            raise MissingParticipant(sorted(set(self._u1) - set(survivors)), "fewer survivors than the threshold")
        self._answered = survivors
        alive = set(survivors)
        return UnmaskingShares(
            self.name,
            survivors,
            {u: self._held[u][1] for u in self._u1 if u in alive},
            {u: self._held[u][0] for u in self._u1 if u not in alive},
        )


# --- requester ------------------------------------------------------------------------------------------
class DropoutAggregator:
    """The requester's side: routes adverts and share boxes, sums contributions, unmasks with t answers."""

    def __init__(self, spec: HorizontalSpec, private_key: PrivateKey):
        if not spec.threshold:
            raise MalformedMessage("the spec declares no dropout threshold; use privacy.aggregation")
        self.spec = spec
        self._sum = Aggregator(spec, private_key)  # contribution validation and the encrypted running sum
        self.private_key = private_key
        self._adverts: dict[str, bytes] = {}
        self._boxes: dict[str, list[EncryptedShare]] = {}
        self._senders: set[str] = set()
        self._answers: dict[str, UnmaskingShares] = {}

    def add_advert(self, advert: KeyAdvert | Mapping) -> None:
        advert = advert if isinstance(advert, KeyAdvert) else KeyAdvert.from_dict(advert)
        _check_point(advert.mask_public, advert.participant)
        if advert.participant not in self.spec.participants:
            raise UnknownParticipant(f"{advert.participant} is not a participant of this round")
        if advert.participant in self._adverts:
            raise DuplicateContribution(f"{advert.participant} already advertised a key")
        self._adverts[advert.participant] = advert.mask_public

    @property
    def adverts(self) -> dict[str, bytes]:
        return dict(self._adverts)

    def add_shares(self, sender: str, boxes: Iterable[EncryptedShare]) -> None:
        boxes = list(boxes)
        if sender not in self._adverts or sender in self._senders:
            raise UnknownParticipant(f"{sender} did not advertise a key, or already sent its shares")
        if any(b.sender != sender or b.recipient not in self._adverts for b in boxes):
            raise UnknownParticipant("share boxes must come from their sender and go to advertised participants")
        if sorted(b.recipient for b in boxes) != sorted(set(self._adverts) - {sender}):
            raise MalformedMessage("a sender must send exactly one box to every other advertised participant")
        self._senders.add(sender)
        for b in boxes:
            self._boxes.setdefault(b.recipient, []).append(b)

    def shares_for(self, recipient: str) -> list[EncryptedShare]:
        """The boxes to forward to ``recipient``: from every member of U1 (those whose shares arrived)."""
        return [b for b in self._boxes.get(recipient, []) if b.sender in self._senders]

    def add(self, contribution: Contribution | Mapping) -> None:
        if isinstance(contribution, Contribution):
            participant = contribution.participant
        else:
            participant = contribution.get("participant") if isinstance(contribution, Mapping) else None
        if participant not in self._senders:
            raise UnknownParticipant(f"{participant} did not share its keys in this round")
        self._sum.add(contribution)

    @property
    def survivors(self) -> list[str]:
        """U2: whose contributions arrived. Sent to every survivor with the unmasking request."""
        return self._sum.received

    def add_unmasking(self, answer: UnmaskingShares | Mapping) -> None:
        answer = answer if isinstance(answer, UnmaskingShares) else UnmaskingShares.from_dict(answer)
        alive = set(self.survivors)
        if answer.participant not in alive:
            raise UnknownParticipant(f"{answer.participant} is not a survivor of this round")
        if answer.participant in self._answers:
            raise DuplicateContribution(f"{answer.participant} already answered")
        if set(answer.survivors) != alive:
            raise MalformedMessage("the answer was made for another survivor list")
        if set(answer.self_mask_shares) != alive or set(answer.mask_key_shares) != self._senders - alive:
            raise MalformedMessage("an answer must carry one share per member of U1, of the right kind")
        self._answers[answer.participant] = answer

    def finish(self) -> dict[str, BucketStatistics]:
        """Decrypt the survivors' sum and remove their self masks and their pair masks with the dropped."""
        t = self.spec.threshold
        alive = self.survivors
        if len(alive) < t or len(self._answers) < t:
            raise MissingParticipant(sorted(set(self._senders) - set(self._answers)),
                                     f"{len(alive)} contributions and {len(self._answers)} unmasking answers; {t} of each needed")
        assert self._sum._sum is not None
        layout = self.spec.layout
        widths = layout.widths
        totals = self._sum._sum.decrypt(self.private_key, modular=True)
        correction = [0] * len(widths)
        for u in alive:
            seed = combine_shares({_x(self.spec, a): ans.self_mask_shares[u] for a, ans in self._answers.items()}, t)
            correction = [c + m for c, m in zip(correction, _self_mask(seed, widths))]
        for v in sorted(self._senders - set(alive)):
            raw = combine_shares({_x(self.spec, a): ans.mask_key_shares[v] for a, ans in self._answers.items()}, t)
            dropped_key = X25519PrivateKey.from_private_bytes(raw)
            if public_bytes(dropped_key) != self._adverts[v]:
                raise MalformedMessage(f"the shares of {v}'s masking key do not rebuild its advertised key")
            for u in alive:
                mask = expand_mask(pair_seed(dropped_key, v, u, self._adverts[u], self.spec.round_id), widths)
                sign = 1 if u < v else -1  # as u added it
                correction = [c + sign * m for c, m in zip(correction, mask)]
        values = []
        for total, c, w in zip(totals, correction, widths):
            v = (total - c) % (1 << w)
            values.append(v - (1 << w) if v >= 1 << (w - 1) else v)
        return decode_vector(self.spec, values)
