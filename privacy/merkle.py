"""RFC 6962 Merkle trees for claim evidence: hashing, an append-only tree, proofs and verifiers.

Hashing follows RFC 6962 §2.1 (and RFC 9162 §2.1.1), with SHA-256:

* ``MTH({}) = SHA-256()``                       -- :data:`EMPTY_ROOT`
* ``MTH({d}) = SHA-256(0x00 || d)``             -- :func:`leaf_hash`
* ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``, ``k`` the largest power of two
  smaller than ``n``                            -- :func:`node_hash`

Inclusion proofs (audit paths) are RFC 6962 §2.1.1 ``PATH(m, D[n])`` and are verified with the
algorithm of RFC 9162 §2.1.3.2; consistency proofs are RFC 6962 §2.1.2 ``PROOF(m, D[n])`` and
are verified with RFC 9162 §2.1.4.2. Proof nodes are ordered from the leaf upwards, as in both RFCs,
so proofs interoperate with Certificate Transparency logs and transparency-dev/merkle.

The verifiers take only what an auditor has (leaf hash, index, tree size, proof, root), return
``None`` on success and raise a :class:`ProofError` subclass that says exactly what is wrong.

This module is pure: no file, network or chain access. The node stores trees and anchors roots.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "MerkleTree",
    "inclusion_proof_length",
    "consistency_proof_length",
    "root_from_inclusion_proof",
    "verify_inclusion",
    "verify_consistency",
    "InclusionProof",
    "proof_to_json",
    "proof_from_json",
    "ProofError",
    "MalformedError",
    "IndexOutOfRangeError",
    "BadSizesError",
    "ProofLengthError",
    "RootMismatchError",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

#: Root of the empty tree, ``MTH({}) = SHA-256()`` (RFC 6962 §2.1).
EMPTY_ROOT: bytes = _sha256(b"").digest()


# ------------------------------------------------------------------------------------------ errors


class ProofError(ValueError):
    """A proof, or the values it is checked against, does not hold. ``reason`` is machine-readable."""

    reason = "invalid_proof"


class MalformedError(ProofError):
    """A hash is not ``bytes`` of exactly 32 bytes, a size is not an int, or proof JSON is bad."""

    reason = "malformed"


class IndexOutOfRangeError(ProofError):
    """The leaf index is negative or not below the tree size."""

    reason = "index_out_of_range"


class BadSizesError(ProofError):
    """Tree sizes are impossible: negative, ``old > new``, beyond the tree, or a proof from size 0."""

    reason = "bad_sizes"


class ProofLengthError(ProofError):
    """The proof has more or fewer nodes than the index and size(s) require."""

    reason = "wrong_proof_length"

    def __init__(self, message: str, *, expected: int, actual: int):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class RootMismatchError(ProofError):
    """The root recomputed from the proof differs from the trusted root.

    ``which`` is ``"root"`` for inclusion proofs and ``"old"`` or ``"new"`` for consistency proofs.
    When the old size is a power of two the old root is itself the proof's starting node, so a
    wrong old root can only surface as ``which == "new"``.
    """

    reason = "root_mismatch"

    def __init__(self, message: str, *, which: str, expected: bytes, calculated: bytes):
        super().__init__(message)
        self.which = which
        self.expected = expected
        self.calculated = calculated


# ----------------------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (RFC 6962 §2.1)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"leaf data must be bytes, not {type(data).__name__}")
    return _sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node (RFC 6962 §2.1).

    Both children must be 32-byte hashes; anything else is a bug that would silently produce a
    root nobody else can reproduce, so it raises :class:`MalformedError`.
    """
    return _hash_children(_check_hash(left, "left child"), _check_hash(right, "right child"))


def _hash_children(left: bytes, right: bytes) -> bytes:
    # Unchecked fast path for internal use, where both inputs are already known to be 32 bytes.
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: Any, what: str) -> bytes:
    # bool/str/int/None must not slip through as "bytes-like"; bytearray is accepted and copied
    # so that a caller mutating it later cannot change what we verified or stored.
    if isinstance(value, bytes):
        h = value
    elif isinstance(value, (bytearray, memoryview)):
        h = bytes(value)
    else:
        raise MalformedError(f"{what} must be bytes, not {type(value).__name__}")
    if len(h) != HASH_SIZE:
        raise MalformedError(f"{what} must be {HASH_SIZE} bytes, got {len(h)}")
    return h


def _check_proof(proof: Any, what: str) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise MalformedError(f"{what} must be a list of 32-byte hashes, not {type(proof).__name__}")
    return [_check_hash(node, f"{what} node {i}") for i, node in enumerate(proof)]


def _check_count(value: Any, what: str) -> int:
    # bool is an int subclass in Python; a JSON `true` must not be read as size 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedError(f"{what} must be an int, not {type(value).__name__}")
    return value


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes in one pass, without keeping the tree (RFC 6962 §2.1).

    Pairs nodes level by level and promotes an unpaired last node unchanged; that yields exactly
    the RFC's "largest power of two smaller than n" split, and is faster than building a tree.
    """
    hashes = [_check_hash(h, f"leaf hash {i}") for i, h in enumerate(leaf_hashes)]
    if not hashes:
        return EMPTY_ROOT
    level = b"".join(hashes)
    while len(level) > HASH_SIZE:
        level = _pair_level(memoryview(level))
    return bytes(level)


def tree_levels(joined_leaf_hashes: bytes) -> list[bytes]:
    """Every stored level of the tree over the concatenated 32-byte leaf hashes, the leaves first: the work of
    building a batch's tree, handed to a worker process whole (:meth:`MerkleTree.from_levels` takes it back)."""
    if len(joined_leaf_hashes) % HASH_SIZE:
        raise ValueError("leaf hashes must be whole 32-byte hashes")
    tree = MerkleTree()
    tree._extend_joined(bytes(joined_leaf_hashes))
    return [bytes(level) for level in tree._levels]


def _pair_level(level: memoryview) -> bytes:
    """Hash adjacent pairs of a packed level; an unpaired last node is carried up as is."""
    out = bytearray()
    sha, prefix = _sha256, _NODE_PREFIX  # locals: this loop runs once per node
    paired = len(level) - len(level) % (2 * HASH_SIZE)
    for off in range(0, paired, 2 * HASH_SIZE):
        out += sha(prefix + level[off : off + 2 * HASH_SIZE]).digest()
    out += level[paired:]
    return bytes(out)


# ------------------------------------------------------------------------------------------ tree


class MerkleTree:
    """An append-only RFC 6962 tree over leaf hashes, with roots and proofs for any past size.

    Storage: one packed ``bytearray`` per level; level ``l`` holds the hashes of the complete
    (perfect) subtrees of ``2**l`` leaves, left to right. That is ~64 bytes per leaf in total,
    appending is amortised O(1) (one leaf hash, and on average one node hash), and every root or
    proof needs O(log n) stored nodes plus at most O(log n) hashes for the ragged right edge of
    a tree whose size is not a power of two (RFC 6962's "missing" nodes are never stored).
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()):
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append one 32-byte leaf hash (see :func:`leaf_hash`) and return its index."""
        h = _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        index = self._size
        levels[0] += h
        self._size = n = index + 1
        level = 0
        # Each trailing zero bit of the new size is a subtree that just became complete.
        while not n & 1:
            below = levels[level]
            if level + 1 == len(levels):
                levels.append(bytearray())
            levels[level + 1] += _sha256(_NODE_PREFIX + below[-2 * HASH_SIZE :]).digest()
            n >>= 1
            level += 1
        return index

    @classmethod
    def from_levels(cls, levels: Sequence[bytes]) -> "MerkleTree":
        """The tree whose stored levels are ``levels`` (from :func:`tree_levels`, e.g. built in a worker process)."""
        if not levels or any(len(level) % HASH_SIZE for level in levels):
            raise ValueError("tree levels must be whole 32-byte hashes, the leaves first")
        tree = cls()
        tree._levels = [bytearray(level) for level in levels]
        tree._size = len(levels[0]) // HASH_SIZE
        return tree

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes; faster than repeated :meth:`append`. All-or-nothing on bad input."""
        hashes = [_check_hash(h, f"leaf hash {i}") for i, h in enumerate(leaf_hashes)]
        if hashes:
            self._extend_joined(b"".join(hashes))

    def _extend_joined(self, joined: bytes) -> None:
        levels = self._levels
        levels[0] += joined
        self._size += len(joined) // HASH_SIZE
        # Fill each level up to floor(count below / 2), continuing where the level stopped.
        level = 0
        while len(levels[level]) >= 2 * HASH_SIZE:
            if level + 1 == len(levels):
                levels.append(bytearray())
            below, above = levels[level], levels[level + 1]
            start = len(above) * 2  # bytes: two children per stored parent
            stop = len(below) - len(below) % (2 * HASH_SIZE)
            if start < stop:
                above += _pair_level(memoryview(below)[start:stop])
            level += 1

    # -- internals ---------------------------------------------------------------------------

    def _node(self, level: int, index: int) -> bytes:
        """The stored hash of the perfect subtree at ``level`` covering leaves ``index * 2**level ...``."""
        off = index * HASH_SIZE
        return bytes(self._levels[level][off : off + HASH_SIZE])

    def _right_edge(self, size: int, top_level: int) -> bytes:
        """MTH of the last ``size mod 2**top_level`` leaves of a tree of ``size`` (must be > 0).

        Those leaves split into perfect subtrees, one per set bit of ``size`` below ``top_level``;
        folding them from the right is exactly RFC 6962's recursive split of that range.
        """
        acc = None
        s = size
        for level in range(top_level):
            if s & 1:
                node = self._node(level, s - 1)
                acc = node if acc is None else _hash_children(node, acc)
            s >>= 1
        assert acc is not None, "empty right edge"
        return acc

    def _subtree(self, level: int, index: int, size: int) -> bytes:
        """MTH of the node at (level, index) in the tree of ``size`` leaves, ragged or not."""
        if (index + 1) << level <= size:
            return self._node(level, index)
        return self._right_edge(size, level)

    def _path(self, level: int, index: int, size: int) -> list[bytes]:
        """Audit path from the node at (level, index) to the root of the tree of ``size`` leaves."""
        proof = []
        last = (size - 1) >> level  # the right-most node at this level
        while last:
            if index != last:
                proof.append(self._subtree(level, index ^ 1, size))
            elif index & 1:
                proof.append(self._node(level, index - 1))
            # else: the right-most node has no sibling and is promoted unchanged (RFC 6962 §2.1).
            index >>= 1
            last >>= 1
            level += 1
        return proof

    def _check_size(self, size: int | None, what: str) -> int:
        if size is None:
            return self._size
        _check_count(size, what)
        if not 0 <= size <= self._size:
            raise BadSizesError(f"{what} {size} is outside 0..{self._size} (the tree's size)")
        return size

    # -- public ------------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """``MTH`` of the first ``size`` leaves (default: all), i.e. any historical root."""
        size = self._check_size(size, "size")
        if size == 0:
            return EMPTY_ROOT
        return self._right_edge(size, size.bit_length())

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path ``PATH(index, D[size])`` (RFC 6962 §2.1.1, RFC 9162 §2.1.3.1)."""
        size = self._check_size(size, "size")
        _check_count(index, "leaf index")
        if not 0 <= index < size:
            raise IndexOutOfRangeError(f"leaf index {index} is not below tree size {size}")
        return self._path(0, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """``PROOF(old_size, D[new_size])`` (RFC 6962 §2.1.2, RFC 9162 §2.1.4.1).

        Empty when ``old_size`` is 0 or equals ``new_size``: there is nothing to prove.
        """
        new_size = self._check_size(new_size, "new size")
        old_size = self._check_size(old_size, "old size")
        if old_size > new_size:
            raise BadSizesError(f"old size {old_size} is larger than new size {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        # The old tree's last leaf sits in a perfect subtree of 2**shift leaves ending at old_size;
        # the proof is that subtree's hash (unless it is the whole old tree, which the verifier
        # already has as old_root) followed by its audit path in the new tree.
        shift = (old_size & -old_size).bit_length() - 1
        index = (old_size - 1) >> shift
        proof = self._path(shift, index, new_size)
        if old_size != 1 << shift:
            proof.insert(0, self._node(shift, index))
        return proof


# ------------------------------------------------------------------------------------ verification


def inclusion_proof_length(index: int, size: int) -> int:
    """Exact number of nodes in the audit path of ``index`` in a tree of ``size`` (0 <= index < size).

    Below the level where the paths to ``index`` and to the last leaf ``size - 1`` meet, every
    level contributes a sibling; above it, only levels where the path turns right (a set bit of
    ``index``) have a left sibling, because right-edge nodes without a sibling are promoted.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """Exact number of nodes in ``PROOF(old_size, D[new_size])``; 0 when old is 0 or equal to new."""
    if old_size == 0 or old_size == new_size:
        return 0
    # It is the audit path of the old tree's last perfect subtree (height `shift`), plus that
    # subtree's own hash unless it is the entire old tree.
    shift = (old_size & -old_size).bit_length() - 1
    path = inclusion_proof_length(old_size - 1, new_size) - shift
    return path + (0 if old_size == 1 << shift else 1)


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root that an audit path leads to (RFC 9162 §2.1.3.2, steps 1-5).

    Raises :class:`MalformedError`, :class:`IndexOutOfRangeError`, :class:`BadSizesError` or
    :class:`ProofLengthError`; it does not compare against any root.
    """
    index = _check_count(index, "leaf index")
    size = _check_count(size, "tree size")
    if size < 0:
        raise BadSizesError(f"tree size {size} is negative")
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"leaf index {index} is not below tree size {size}")
    r = _check_hash(leaf_hash, "leaf hash")
    nodes = _check_proof(proof, "inclusion proof")
    expected = inclusion_proof_length(index, size)
    if len(nodes) != expected:
        raise ProofLengthError(
            f"inclusion proof for leaf {index} in a tree of {size} needs {expected} nodes, got {len(nodes)}",
            expected=expected,
            actual=len(nodes),
        )
    fn, sn = index, size - 1
    for node in nodes:
        if fn & 1 or fn == sn:
            # The node is a left sibling: either we are a right child, or we are on the right
            # edge; in the latter case first climb past levels where we were promoted unpaired.
            r = _hash_children(node, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = _hash_children(r, node)
        fn >>= 1
        sn >>= 1
    # The exact length check above guarantees the walk ends at the root.
    assert sn == 0, "inclusion proof walk did not reach the root"
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``.

    RFC 9162 §2.1.3.2. Returns ``None``; raises a :class:`ProofError` subclass on any failure.
    ``size`` and ``root`` must come from the trusted source (the anchored batch), never from the
    prover: RFC 6962 roots do not encode the size, so a proof may verify under a wrong claimed size.
    """
    root = _check_hash(root, "root")
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != root:
        raise RootMismatchError(
            f"inclusion proof for leaf {index} in a tree of {size} leads to root {calculated.hex()}, "
            f"not the trusted root {root.hex()}",
            which="root",
            expected=root,
            calculated=calculated,
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` leaves with ``new_root`` extends the one of ``old_size``.

    RFC 9162 §2.1.4.2. Returns ``None``; raises a :class:`ProofError` subclass on any failure.
    Edge cases: ``old_size == new_size`` needs an empty proof and equal roots; ``old_size == 0``
    needs an empty proof and ``old_root == EMPTY_ROOT`` (every tree extends the empty tree, so
    ``new_root`` is only checked when ``new_size`` is 0 too).
    """
    old_size = _check_count(old_size, "old size")
    new_size = _check_count(new_size, "new size")
    old_root = _check_hash(old_root, "old root")
    new_root = _check_hash(new_root, "new root")
    nodes = _check_proof(proof, "consistency proof")
    if old_size < 0 or new_size < 0:
        raise BadSizesError(f"tree sizes must not be negative (old {old_size}, new {new_size})")
    if old_size > new_size:
        raise BadSizesError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        if nodes:
            raise BadSizesError(f"there is no consistency proof from the empty tree; got {len(nodes)} nodes")
        _match(EMPTY_ROOT, old_root, "old", "the empty tree's root is SHA-256('')")
        if new_size == 0:
            _match(EMPTY_ROOT, new_root, "new", "the empty tree's root is SHA-256('')")
        return
    expected = consistency_proof_length(old_size, new_size)
    if len(nodes) != expected:
        raise ProofLengthError(
            f"consistency proof from size {old_size} to {new_size} needs {expected} nodes, got {len(nodes)}",
            expected=expected,
            actual=len(nodes),
        )
    if old_size == new_size:
        _match(new_root, old_root, "new", "equal sizes need equal roots")
        return

    # RFC 9162 §2.1.4.2 step 2: when the old tree is itself a perfect subtree, the proof omits it.
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Skip the levels inside the old tree's last perfect subtree: its hash is nodes[0].
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if fn & 1 or fn == sn:
            # A left sibling is part of both the old and the new tree.
            fr = _hash_children(node, fr)
            sr = _hash_children(node, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            # A right sibling lies beyond the old tree: only the new root includes it.
            sr = _hash_children(sr, node)
        fn >>= 1
        sn >>= 1
    assert sn == 0, "consistency proof walk did not reach the root"
    _match(fr, old_root, "old", f"from size {old_size} to {new_size}")
    _match(sr, new_root, "new", f"from size {old_size} to {new_size}")


def _match(calculated: bytes, trusted: bytes, which: str, context: str) -> None:
    if calculated != trusted:
        raise RootMismatchError(
            f"consistency proof {context}: calculated {which} root {calculated.hex()} "
            f"differs from the given {which} root {trusted.hex()}",
            which=which,
            expected=trusted,
            calculated=calculated,
        )


# -------------------------------------------------------------------------------------------- JSON

_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")
_JSON_KEYS = frozenset({"leaf_index", "tree_size", "leaf_hash", "audit_path", "root"})


@dataclass(frozen=True)
class InclusionProof:
    """Everything an auditor needs besides the document: where the leaf is and how to reach the root."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: tuple[bytes, ...]
    root: bytes

    def verify(self, trusted_root: bytes | None = None, trusted_size: int | None = None) -> None:
        """Verify; pass the anchored root and size so the proof's own claims are not trusted."""
        if trusted_size is not None and trusted_size != self.tree_size:
            raise BadSizesError(f"proof is for tree size {self.tree_size}, the anchored size is {trusted_size}")
        root = self.root if trusted_root is None else trusted_root
        verify_inclusion(self.leaf_hash, self.leaf_index, self.tree_size, self.audit_path, root)


def proof_to_json(
    leaf_index: int, tree_size: int, leaf_hash: bytes, audit_path: Sequence[bytes], root: bytes
) -> dict[str, Any]:
    """A JSON-ready inclusion proof: ``{"leaf_index", "tree_size", "leaf_hash", "audit_path", "root"}``."""
    leaf_index = _check_count(leaf_index, "leaf_index")
    tree_size = _check_count(tree_size, "tree_size")
    return {
        "leaf_index": leaf_index,
        "tree_size": tree_size,
        "leaf_hash": _check_hash(leaf_hash, "leaf_hash").hex(),
        "audit_path": [h.hex() for h in _check_proof(audit_path, "audit_path")],
        "root": _check_hash(root, "root").hex(),
    }


def proof_from_json(obj: dict[str, Any] | str | bytes) -> InclusionProof:
    """Parse :func:`proof_to_json` output (a dict or JSON text) strictly into an :class:`InclusionProof`.

    Unknown or missing keys, non-integer or negative numbers, and anything but 64 hex digits per
    hash raise :class:`MalformedError`. It does not verify the proof; call ``.verify(...)``.
    """
    if isinstance(obj, (str, bytes, bytearray)):
        try:
            obj = json.loads(obj)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedError(f"inclusion proof is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedError(f"inclusion proof must be a JSON object, not {type(obj).__name__}")
    keys = set(obj)
    if keys != _JSON_KEYS:
        missing, extra = sorted(_JSON_KEYS - keys), sorted(map(str, keys - _JSON_KEYS))
        raise MalformedError(f"inclusion proof keys are wrong: missing {missing}, unexpected {extra}")
    numbers = {}
    for key in ("leaf_index", "tree_size"):
        value = _check_count(obj[key], key)
        if value < 0:
            raise MalformedError(f"{key} must not be negative, got {value}")
        numbers[key] = value
    path = obj["audit_path"]
    if not isinstance(path, list):
        raise MalformedError(f"audit_path must be a list of hex strings, not {type(path).__name__}")
    return InclusionProof(
        leaf_index=numbers["leaf_index"],
        tree_size=numbers["tree_size"],
        leaf_hash=_hash_from_hex(obj["leaf_hash"], "leaf_hash"),
        audit_path=tuple(_hash_from_hex(h, f"audit_path[{i}]") for i, h in enumerate(path)),
        root=_hash_from_hex(obj["root"], "root"),
    )


def _hash_from_hex(value: Any, what: str) -> bytes:
    # bytes.fromhex would accept spaces and odd lengths of other hashes; demand exactly 64 digits.
    if not isinstance(value, str):
        raise MalformedError(f"{what} must be a hex string, not {type(value).__name__}")
    if not _HEX_HASH.fullmatch(value):
        raise MalformedError(f"{what} must be exactly 64 hex digits (32 bytes), got {value[:80]!r}")
    return bytes.fromhex(value)
