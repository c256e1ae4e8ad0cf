"""Apportioning a payout across participants, exactly, and committing the shares in a sum tree.

Two things live here, both pure (no I/O, no chain):

**Apportionment by largest remainder (Hamilton's method).** A payout ``P`` (an integer in the smallest
currency unit) is split by weights ``w_i`` (all 1 for equal shares): each participant first gets
``floor(P * w_i / W)`` with ``W = sum(w)``; the ``P - sum(floors)`` units left over (fewer than the
number of participants) go one each to the participants with the largest remainders
``(P * w_i) mod W``, ties broken by the lower position in the list. The shares always sum to ``P``
exactly, every share is within one unit of its exact quota, and the result depends only on the
ordered inputs, so anyone can recompute it. The risk pool splits a loss between members by their
agreed ratio with the same rule (contracts/RiskPool.sol does it on chain, identically).

**The share tree: RFC 6962 with a sum in every node (a Merkle sum tree).** The apportionment is
anchored as one root and the total. Each participant must be able to check its own share with a
short proof, and anyone must be able to check that the shares sum to the payout. A plain RFC 6962
root commits to the leaves but says nothing about their sum: checking it would need all leaves.
So every node here carries the sum of the shares below it, and its hash covers its children's sums:

* leaf   ``(h, s)``: ``h = SHA-256(0x00 || ref || s)`` -- RFC 6962's leaf hash (``privacy.merkle.leaf_hash``)
  of the 48-byte leaf ``ref`` (32-byte participant reference) ``||`` share (16 bytes, big-endian)
* node   ``(h, s)``: ``h = SHA-256(0x01 || h_L || s_L || h_R || s_R)``, ``s = s_L + s_R``

The tree's shape is RFC 6962's (split at the largest power of two below ``n``; an unpaired right-edge
node is promoted), leaves and nodes are domain-separated by the same 0x00/0x01 prefixes, and the
audit path is RFC 6962's ``PATH(m, D[n])`` with each node's sum next to its hash (48 bytes a node),
walked as in RFC 9162 §2.1.3.2. The root is ``(root_hash, total)``; the chain records both.

What a proof shows: recomputing the path from one's own leaf reproduces the anchored root hash
*and* the anchored total, so that share is counted in that total and every node on the path adds
up. Shares are unsigned, so no hidden negative share can offset an inflated one. A node off the path
is taken as given by that verifier, but it lies on the path of the participants below it: when every
participant checks its own proof, every node is checked and the shares sum to the anchored total.
Anyone holding the published share list checks it in one pass (:func:`check_share_list`).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from privacy.errors import PrivacyError
from privacy.merkle import (
    IndexOutOfRangeError,
    MalformedError,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    inclusion_proof_length,
    leaf_hash,
)

__all__ = [
    "AMOUNT_BYTES",
    "MAX_AMOUNT",
    "NODE_BYTES",
    "ApportionmentError",
    "SumMismatchError",
    "apportion",
    "apportion_equal",
    "apportion_pro_rata",
    "participant_ref",
    "share_leaf",
    "ShareTree",
    "ShareProof",
    "root_from_share_proof",
    "verify_share",
    "check_share_list",
]

AMOUNT_BYTES = 16
#: Shares and totals are unsigned 128-bit integers (the contract stores a uint128).
MAX_AMOUNT = (1 << (8 * AMOUNT_BYTES)) - 1
HASH_SIZE = 32
NODE_BYTES = HASH_SIZE + AMOUNT_BYTES
_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"


class ApportionmentError(PrivacyError):
    """The payout, the weights or the participants cannot be apportioned as asked."""

    reason = "invalid_apportionment"


class SumMismatchError(ProofError):
    """The shares, or the sum a proof leads to, differ from the anchored total."""

    reason = "sum_mismatch"


# ------------------------------------------------------------------------------------ apportionment


def _check_amount(value: Any, what: str) -> int:
    # bool is an int in Python; a JSON `true` must not be read as 1 unit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApportionmentError(f"{what} must be an integer number of smallest currency units, not {type(value).__name__}")
    if not 0 <= value <= MAX_AMOUNT:
        raise ApportionmentError(f"{what} must be between 0 and 2**128 - 1, got {value}")
    return value


def apportion_pro_rata(payout: int, weights: Sequence[int]) -> list[int]:
    """Split ``payout`` by integer ``weights`` (largest remainder, ties to the lower index); sums to ``payout``."""
    payout = _check_amount(payout, "payout")
    if not weights:
        raise ApportionmentError("at least one participant is needed")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
            raise ApportionmentError(f"weight {i} must be a positive integer, got {w!r}")
    total_weight = sum(weights)
    exact = [payout * w for w in weights]
    shares = [e // total_weight for e in exact]
    left = payout - sum(shares)  # < len(weights): each remainder is < W, so their sum is < n * W
    if left:
        remainders = [e % total_weight for e in exact]
        # Python's sort is stable also with reverse=True, so equal remainders keep their order: ties go
        # to the lower position, as stated above.
        for i in sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)[:left]:
            shares[i] += 1
    return shares


def apportion_equal(payout: int, participants: int) -> list[int]:
    """Equal shares of ``payout`` among ``participants``: the first ``payout mod n`` get one unit more.

    That is :func:`apportion_pro_rata` with all weights 1 (every remainder ties), computed directly.
    """
    payout = _check_amount(payout, "payout")
    if isinstance(participants, bool) or not isinstance(participants, int) or participants <= 0:
        raise ApportionmentError(f"the number of participants must be a positive integer, got {participants!r}")
    base, left = divmod(payout, participants)
    return [base + 1] * left + [base] * (participants - left)


def apportion(payout: int, rule: str, *, participants: int | None = None, weights: Sequence[int] | None = None) -> list[int]:
    """``rule`` is ``"equal"`` (needs ``participants``) or ``"pro_rata"`` (needs ``weights``)."""
    if rule == "equal":
        if participants is None:
            raise ApportionmentError("equal shares need the number of participants")
        return apportion_equal(payout, participants)
    if rule == "pro_rata":
        if weights is None:
            raise ApportionmentError("pro rata shares need one weight per participant")
        return apportion_pro_rata(payout, weights)
    raise ApportionmentError(f"unknown apportionment rule {rule!r}; use 'equal' or 'pro_rata'")


# ------------------------------------------------------------------------------------------ leaves


def participant_ref(salt: bytes, participant_id: str) -> bytes:
    """A participant's 32-byte reference in the tree: ``SHA-256(salt || UTF-8 id)``.

    The salt is the apportionment's own (kept by the organiser, given to each participant with the
    proof), so the published share list does not reveal who took part.
    """
    if not isinstance(salt, bytes) or len(salt) < 16:
        raise ApportionmentError("the participant salt must be at least 16 random bytes")
    if not isinstance(participant_id, str) or not participant_id:
        raise ApportionmentError("a participant id must be a non-empty string")
    return _sha256(salt + participant_id.encode()).digest()


def share_leaf(ref: bytes, share: int) -> bytes:
    """The 48-byte leaf: participant reference (32 bytes) || share (16 bytes, big-endian)."""
    if not isinstance(ref, bytes) or len(ref) != HASH_SIZE:
        raise MalformedError("a participant reference must be 32 bytes")
    return ref + _check_amount(share, "share").to_bytes(AMOUNT_BYTES, "big")


def _leaf_node(ref: bytes, share: int) -> bytes:
    # A packed node: hash || sum. The leaf's hash is RFC 6962's (0x00 prefix) over the 48-byte leaf.
    return leaf_hash(share_leaf(ref, share)) + share.to_bytes(AMOUNT_BYTES, "big")


# -------------------------------------------------------------------------------------------- tree


class ShareTree:
    """The sum tree over ``(ref, share)`` leaves; every level kept packed (48 bytes a node) for proofs."""

    __slots__ = ("_levels", "_size")

    def __init__(self, refs: Sequence[bytes], shares: Sequence[int]):
        if len(refs) != len(shares):
            raise ApportionmentError(f"{len(refs)} participant references for {len(shares)} shares")
        if not refs:
            raise ApportionmentError("an apportionment needs at least one participant")
        if sum(shares) > MAX_AMOUNT:
            raise ApportionmentError("the shares sum to more than 2**128 - 1")
        for i, (ref, share) in enumerate(zip(refs, shares)):
            if not isinstance(ref, bytes) or len(ref) != HASH_SIZE:
                raise MalformedError(f"participant reference {i} must be 32 bytes")
            _check_amount(share, f"share {i}")
        # Leaves inline (the checks are done above): SHA-256(0x00 || ref || share) || share, as _leaf_node.
        sha, size = _sha256, AMOUNT_BYTES
        level = bytearray()
        for ref, share in zip(refs, shares):
            amount = share.to_bytes(size, "big")
            level += sha(b"\x00" + ref + amount).digest()
            level += amount
        self._size = len(refs)
        self._levels = [bytes(level)]
        sha, prefix, step = _sha256, _NODE_PREFIX, 2 * NODE_BYTES
        while len(level) > NODE_BYTES:
            out = bytearray()
            view = memoryview(level)
            paired = len(level) - len(level) % step
            # Sums were bounded above (total <= MAX_AMOUNT), so no partial sum can overflow here.
            for off in range(0, paired, step):
                total = (int.from_bytes(view[off + HASH_SIZE : off + NODE_BYTES], "big")
                         + int.from_bytes(view[off + NODE_BYTES + HASH_SIZE : off + step], "big"))
                out += sha(prefix + view[off : off + step]).digest()
                out += total.to_bytes(AMOUNT_BYTES, "big")
            out += view[paired:]  # an unpaired right-edge node is promoted unchanged (RFC 6962 shape)
            level = out
            self._levels.append(bytes(level))

    @property
    def size(self) -> int:
        return self._size

    @property
    def root_hash(self) -> bytes:
        return self._levels[-1][:HASH_SIZE]

    @property
    def total(self) -> int:
        return int.from_bytes(self._levels[-1][HASH_SIZE:NODE_BYTES], "big")

    def leaf(self, index: int) -> tuple[bytes, int]:
        """``(leaf hash, share)`` of leaf ``index``."""
        node = self._node(0, self._check_index(index))
        return node[:HASH_SIZE], int.from_bytes(node[HASH_SIZE:], "big")

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self._size:
            raise IndexOutOfRangeError(f"leaf index {index!r} is not below the tree size {self._size}")
        return index

    def _node(self, level: int, index: int) -> bytes:
        off = index * NODE_BYTES
        return self._levels[level][off : off + NODE_BYTES]

    def proof(self, index: int) -> list[tuple[bytes, int]]:
        """The audit path of leaf ``index``: ``(sibling hash, sibling sum)`` pairs from the leaf upwards."""
        index = self._check_index(index)
        path = []
        for level in range(len(self._levels) - 1):
            count = len(self._levels[level]) // NODE_BYTES
            sibling = index ^ 1
            if sibling < count:  # the last node of an odd level has no sibling: it was promoted
                node = self._node(level, sibling)
                path.append((node[:HASH_SIZE], int.from_bytes(node[HASH_SIZE:], "big")))
            index >>= 1
        return path


# ----------------------------------------------------------------------------------- verification


def root_from_share_proof(ref: bytes, share: int, index: int, size: int,
                          proof: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    """The ``(root hash, total)`` an audit path leads to from leaf ``(ref, share)`` (RFC 9162 §2.1.3.2 walk)."""
    for value, what in ((index, "leaf index"), (size, "tree size")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"leaf index {index} is not below tree size {size}")
    try:
        node = _leaf_node(ref, share)
    except ApportionmentError as exc:
        raise MalformedError(str(exc)) from None
    nodes = []
    for i, pair in enumerate(proof):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise MalformedError(f"proof node {i} must be a (hash, sum) pair")
        h, s = pair
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise MalformedError(f"proof node {i}'s hash must be 32 bytes")
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_AMOUNT:
            raise MalformedError(f"proof node {i}'s sum must be an integer in 0..2**128 - 1")
        nodes.append((h, s))
    expected = inclusion_proof_length(index, size)
    if len(nodes) != expected:
        raise ProofLengthError(f"share proof for leaf {index} of {size} needs {expected} nodes, got {len(nodes)}",
                               expected=expected, actual=len(nodes))
    fn, sn = index, size - 1
    sha, prefix, width = _sha256, _NODE_PREFIX, AMOUNT_BYTES
    node_hash, node_sum = node[:HASH_SIZE], share
    # The walk keeps hash and sum apart (sums as ints): a node is SHA-256(0x01 || hL || sL || hR || sR), sL + sR.
    for sibling_hash, sibling_sum in nodes:
        if fn & 1 or fn == sn:
            node_hash = sha(prefix + sibling_hash + sibling_sum.to_bytes(width, "big") + node_hash
                            + node_sum.to_bytes(width, "big")).digest()
            while not fn & 1 and fn:  # climb past levels where this node was promoted unpaired
                fn >>= 1
                sn >>= 1
        else:
            node_hash = sha(prefix + node_hash + node_sum.to_bytes(width, "big") + sibling_hash
                            + sibling_sum.to_bytes(width, "big")).digest()
        node_sum += sibling_sum
        if node_sum > MAX_AMOUNT:
            raise SumMismatchError("a subtree's sum exceeds 2**128 - 1")
        fn >>= 1
        sn >>= 1
    assert sn == 0, "share proof walk did not reach the root"
    return node_hash, node_sum


def verify_share(ref: bytes, share: int, index: int, size: int, proof: Sequence[tuple[bytes, int]],
                 root_hash: bytes, total: int) -> None:
    """Check that ``share`` of participant ``ref`` is leaf ``index`` of the anchored ``(root_hash, total)``.

    ``size``, ``root_hash`` and ``total`` must come from the chain, never from the organiser. Returns
    ``None``; raises :class:`RootMismatchError` (a tampered share, reference or path),
    :class:`SumMismatchError` (the path adds up to another total) or another :class:`ProofError`.
    """
    calculated, calculated_total = root_from_share_proof(ref, share, index, size, proof)
    if calculated != root_hash:
        raise RootMismatchError(f"share proof for leaf {index} leads to root {calculated.hex()}, not the anchored "
                                f"{root_hash.hex() if isinstance(root_hash, bytes) else root_hash!r}",
                                which="root", expected=root_hash, calculated=calculated)
    if calculated_total != total:
        raise SumMismatchError(f"share proof for leaf {index} adds up to {calculated_total}, the anchored total is {total}")


def check_share_list(refs: Sequence[bytes], shares: Sequence[int], root_hash: bytes, total: int) -> None:
    """Anyone with the published share list: the shares sum to ``total`` and rebuild ``root_hash``."""
    if sum(shares) != total:
        raise SumMismatchError(f"the shares sum to {sum(shares)}, the anchored total is {total}")
    tree = ShareTree(refs, shares)
    if tree.root_hash != root_hash:
        raise RootMismatchError("the share list does not rebuild the anchored root", which="root",
                                expected=root_hash, calculated=tree.root_hash)


# -------------------------------------------------------------------------------------------- JSON

_HEX32 = re.compile(r"[0-9a-f]{64}")
_PROOF_KEYS = frozenset({"participant_ref", "share", "leaf_index", "tree_size", "audit_path", "root", "total"})


@dataclass(frozen=True)
class ShareProof:
    """What one participant receives: its reference, share, place in the tree and audit path."""

    participant_ref: bytes
    share: int
    leaf_index: int
    tree_size: int
    audit_path: tuple[tuple[bytes, int], ...]
    root: bytes
    total: int

    def verify(self, anchored_root: bytes, anchored_total: int, anchored_size: int) -> None:
        """Verify against what the chain holds; the proof's own root, total and size are not trusted."""
        if anchored_size != self.tree_size:
            raise ProofError(f"proof is for {self.tree_size} participants, the anchored count is {anchored_size}")
        verify_share(self.participant_ref, self.share, self.leaf_index, anchored_size, self.audit_path,
                     anchored_root, anchored_total)

    def to_json(self) -> dict[str, Any]:
        # Amounts as decimal strings: JSON numbers beyond 2**53 lose precision in many readers.
        return {"participant_ref": self.participant_ref.hex(), "share": str(self.share), "leaf_index": self.leaf_index,
                "tree_size": self.tree_size, "audit_path": [[h.hex(), str(s)] for h, s in self.audit_path],
                "root": self.root.hex(), "total": str(self.total)}

    @classmethod
    def from_json(cls, obj: dict | str | bytes) -> "ShareProof":
        """Strict parse of :meth:`to_json`; any deviation raises :class:`MalformedError`."""
        if isinstance(obj, (str, bytes, bytearray)):
            try:
                obj = json.loads(obj)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedError(f"share proof is not valid JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) != _PROOF_KEYS:
            raise MalformedError(f"share proof must be an object with exactly the keys {sorted(_PROOF_KEYS)}")
        path = obj["audit_path"]
        if not isinstance(path, list) or not all(isinstance(p, list) and len(p) == 2 for p in path):
            raise MalformedError("audit_path must be a list of [hash hex, sum] pairs")
        return cls(_hex32(obj["participant_ref"], "participant_ref"), _amount(obj["share"], "share"),
                   _count(obj["leaf_index"], "leaf_index"), _count(obj["tree_size"], "tree_size"),
                   tuple((_hex32(h, f"audit_path[{i}] hash"), _amount(s, f"audit_path[{i}] sum")) for i, (h, s) in enumerate(path)),
                   _hex32(obj["root"], "root"), _amount(obj["total"], "total"))


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise MalformedError(f"{what} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


def _amount(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.isdigit() or not value.isascii() or int(value) > MAX_AMOUNT:
        raise MalformedError(f"{what} must be a decimal string of a whole amount below 2**128")
    return int(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedError(f"{what} must be a non-negative integer")
    return value
