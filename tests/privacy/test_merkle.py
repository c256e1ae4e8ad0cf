"""RFC 6962 Merkle trees: published vectors, a naive reference, and mostly-negative verifier tables.

The reference below is RFC 6962 §2.1 transcribed literally (recursive MTH, PATH, PROOF/SUBPROOF)
over plain lists, so the fast tree in privacy.merkle is checked against the spec text, and both
are checked against the Certificate Transparency / transparency-dev vectors in
tests/data/merkle_vectors.json.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.merkle import (
    EMPTY_ROOT,
    BadSizesError,
    InclusionProof,
    IndexOutOfRangeError,
    MalformedError,
    MerkleTree,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    proof_from_json,
    proof_to_json,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    tree_levels,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "merkle_vectors.json").read_text())
MAX_SIZE = 40  # every size 1..MAX_SIZE, every index, every pair of sizes
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string)


def flip_bit(value: bytes, byte: int = 0, mask: int = 0x08) -> bytes:
    b = bytearray(value)
    b[byte] ^= mask
    return bytes(b)


# ------------------------------------------------------------- naive reference (RFC 6962 §2.1)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*, exactly as written in RFC 6962 §2.1."""
    n = len(data)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + data[0])
    k = largest_power_of_two_below(n)
    return sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:]))


def ref_path_with_sides(m: int, data: list[bytes]) -> list[tuple[bytes, str]]:
    """PATH(m, D[n]) (RFC 6962 §2.1.1), each node tagged with the side it sits on."""
    n = len(data)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return ref_path_with_sides(m, data[:k]) + [(ref_mth(data[k:]), "right")]
    return ref_path_with_sides(m - k, data[k:]) + [(ref_mth(data[:k]), "left")]


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    return [node for node, _ in ref_path_with_sides(m, data)]


def ref_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (RFC 6962 §2.1.2)."""
    n = len(data)
    if m == n:
        return [] if b else [ref_mth(data)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return ref_subproof(m, data[:k], b) + [ref_mth(data[k:])]
    return ref_subproof(m - k, data[k:], False) + [ref_mth(data[:k])]


def ref_proof(m: int, data: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 6962 §2.1.2); empty for m == 0 (RFC 9162 leaves it undefined)."""
    return [] if m == 0 else ref_subproof(m, data, True)


# --------------------------------------------------------------------------------- fixtures

VECTOR_LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves_hex"]]
DATA = [b"claim-evidence-%d" % i for i in range(100)]  # > 95, the largest vector size
TREE = MerkleTree(leaf_hash(d) for d in DATA)
REF_ROOTS = [ref_mth(DATA[:n]) for n in range(len(DATA) + 1)]


class Inclusion(NamedTuple):
    index: int
    size: int
    leaf: bytes
    proof: list[bytes]
    root: bytes


class Consistency(NamedTuple):
    old: int
    new: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]


INCLUSIONS = [
    Inclusion(i, n, leaf_hash(DATA[i]), ref_path(i, DATA[:n]), REF_ROOTS[n])
    for n in range(1, MAX_SIZE + 1)
    for i in range(n)
]
CONSISTENCIES = [
    Consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], ref_proof(m, DATA[:n]))
    for n in range(1, MAX_SIZE + 1)
    for m in range(1, n)
]


def expect(error: type[ProofError], call: Callable[[], object]) -> ProofError:
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert info.value.reason == error.reason
    return info.value


# ------------------------------------------------------------------------ published vectors


def test_empty_tree_root_is_sha256_of_nothing():
    assert EMPTY_ROOT == sha256(b"") == h(VECTORS["empty_root"])
    assert MerkleTree().root() == EMPTY_ROOT == root_from_leaf_hashes([]) == ref_mth([])


def test_leaf_and_node_hashes_are_domain_separated():
    assert leaf_hash(b"") == h(VECTORS["roots"]["1"])
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == sha256(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    # A leaf whose data looks like two children must not collide with their parent.
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots_for_sizes_1_to_8(size):
    want = h(VECTORS["roots"][str(size)])
    hashes = [leaf_hash(d) for d in VECTOR_LEAVES[:size]]
    assert ref_mth(VECTOR_LEAVES[:size]) == want
    assert MerkleTree(hashes).root() == want
    assert MerkleTree(leaf_hash(d) for d in VECTOR_LEAVES).root(size) == want
    assert root_from_leaf_hashes(hashes) == want


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['leaf_index']}of{v['tree_size']}")
def test_published_inclusion_proofs_are_produced_and_verify(vector):
    index, size = vector["leaf_index"], vector["tree_size"]
    want = [h(x) for x in vector["audit_path"]]
    tree = MerkleTree(leaf_hash(d) for d in VECTOR_LEAVES)
    root = h(VECTORS["roots"][str(size)])
    leaf = leaf_hash(VECTOR_LEAVES[index])
    assert tree.inclusion_proof(index, size) == want
    assert root_from_inclusion_proof(leaf, index, size, want) == root
    assert verify_inclusion(leaf, index, size, want, root) is None


@pytest.mark.parametrize("vector", VECTORS["consistency"], ids=lambda v: f"{v['old_size']}to{v['new_size']}")
def test_published_consistency_proofs_are_produced_and_verify(vector):
    old, new = vector["old_size"], vector["new_size"]
    want = [h(x) for x in vector["proof"]]
    tree = MerkleTree(leaf_hash(d) for d in VECTOR_LEAVES)
    assert tree.consistency_proof(old, new) == want
    assert verify_consistency(old, new, h(VECTORS["roots"][str(old)]), h(VECTORS["roots"][str(new)]), want) is None


@pytest.mark.parametrize("index, size, length", VECTORS["proof_shapes"]["inclusion"])
def test_inclusion_proof_lengths_match_transparency_dev_tables(index, size, length):
    assert inclusion_proof_length(index, size) == length
    assert len(TREE.inclusion_proof(index, size)) == length
    assert len(ref_path(index, DATA[:size])) == length


@pytest.mark.parametrize("old, new, length", VECTORS["proof_shapes"]["consistency"])
def test_consistency_proof_lengths_match_transparency_dev_tables(old, new, length):
    assert consistency_proof_length(old, new) == length
    assert len(TREE.consistency_proof(old, new)) == length
    assert len(ref_proof(old, DATA[:new])) == length


# --------------------------------------------------------------- exhaustive positive checks


def test_every_historical_root_matches_the_reference():
    for n in range(len(DATA) + 1):
        assert TREE.root(n) == REF_ROOTS[n], n
        assert root_from_leaf_hashes([leaf_hash(d) for d in DATA[:n]]) == REF_ROOTS[n], n


def test_every_inclusion_proof_up_to_40_leaves_matches_the_reference_and_verifies():
    for c in INCLUSIONS:
        assert TREE.inclusion_proof(c.index, c.size) == c.proof, (c.index, c.size)
        assert len(c.proof) == inclusion_proof_length(c.index, c.size)
        verify_inclusion(c.leaf, c.index, c.size, c.proof, c.root)
        # A tree that holds exactly `size` leaves gives the same proof as the bigger tree's history.
        assert MerkleTree(leaf_hash(d) for d in DATA[: c.size]).inclusion_proof(c.index) == c.proof


def test_every_consistency_proof_up_to_40_leaves_matches_the_reference_and_verifies():
    for c in CONSISTENCIES:
        assert TREE.consistency_proof(c.old, c.new) == c.proof, (c.old, c.new)
        assert len(c.proof) == consistency_proof_length(c.old, c.new)
        verify_consistency(c.old, c.new, c.old_root, c.new_root, c.proof)
    for n in range(0, MAX_SIZE + 1):
        # Trivial cases: from the empty tree, and to the same size, the proof is empty.
        assert TREE.consistency_proof(0, n) == [] == TREE.consistency_proof(n, n)
        verify_consistency(0, n, EMPTY_ROOT, REF_ROOTS[n], [])
        verify_consistency(n, n, REF_ROOTS[n], REF_ROOTS[n], [])


def test_append_and_extend_in_any_chunks_build_the_same_tree():
    hashes = [leaf_hash(d) for d in DATA]
    rng = random.Random(6962)
    for _ in range(20):
        tree, pos = MerkleTree(), 0
        while pos < len(hashes):
            step = rng.choice([1, 1, 2, 3, 7, 16])
            if step == 1:
                assert tree.append(hashes[pos]) == pos
            else:
                tree.extend(hashes[pos : pos + step])
            pos = min(pos + step, len(hashes))
            assert tree.size == len(tree) == pos
            assert tree.root() == REF_ROOTS[pos]
        assert tree._levels == TREE._levels


# ------------------------------------------------------------------ inclusion: negative table

Mutation = Callable[[Inclusion], "dict | None"]


def _inc(c: Inclusion, **changes) -> dict:
    args = dict(leaf_hash=c.leaf, index=c.index, size=c.size, proof=list(c.proof), root=c.root)
    args.update(changes)
    return args


def _expected_for_claimed_position(c: Inclusion, index: int, size: int) -> type[ProofError]:
    """What a verifier must say when the proof is presented with another index or size."""
    if not 0 <= index < size:
        return IndexOutOfRangeError
    if len(ref_path(index, [b""] * size)) != len(c.proof):
        return ProofLengthError
    return RootMismatchError


INCLUSION_PROBES: list[tuple[str, Mutation, type[ProofError] | None]] = [
    # (description, mutation or None when it does not apply, expected error; None = computed)
    ("index - 1", lambda c: _inc(c, index=c.index - 1), None),
    ("index + 1", lambda c: _inc(c, index=c.index + 1), None),
    ("index ^ 2", lambda c: _inc(c, index=c.index ^ 2), None),
    ("index = size", lambda c: _inc(c, index=c.size), IndexOutOfRangeError),
    ("negative index", lambda c: _inc(c, index=-1), IndexOutOfRangeError),
    ("size * 2", lambda c: _inc(c, size=c.size * 2), None),
    ("size // 2", lambda c: _inc(c, size=c.size // 2), None),
    ("size 0", lambda c: _inc(c, size=0), IndexOutOfRangeError),
    ("negative size", lambda c: _inc(c, size=-c.size), BadSizesError),
    ("tampered leaf", lambda c: _inc(c, leaf_hash=leaf_hash(b"forged document")), RootMismatchError),
    ("leaf with a flipped bit", lambda c: _inc(c, leaf_hash=flip_bit(c.leaf, 31, 1)), RootMismatchError),
    ("leaf data instead of leaf hash", lambda c: _inc(c, leaf_hash=b"WrongLeaf"), MalformedError),
    ("31-byte leaf hash", lambda c: _inc(c, leaf_hash=c.leaf[:31]), MalformedError),
    ("empty-tree root", lambda c: _inc(c, root=EMPTY_ROOT), RootMismatchError),
    ("random root", lambda c: _inc(c, root=SOME_HASH), RootMismatchError),
    ("root with a flipped bit", lambda c: _inc(c, root=flip_bit(c.root)), RootMismatchError),
    ("31-byte root", lambda c: _inc(c, root=c.root[:31]), MalformedError),
    ("hex string root", lambda c: _inc(c, root=c.root.hex()), MalformedError),
    ("trailing root", lambda c: _inc(c, proof=c.proof + [c.root]), ProofLengthError),
    ("trailing random node", lambda c: _inc(c, proof=c.proof + [SOME_HASH]), ProofLengthError),
    ("preceding root", lambda c: _inc(c, proof=[c.root] + c.proof), ProofLengthError),
    ("preceding leaf", lambda c: _inc(c, proof=[c.leaf] + c.proof), ProofLengthError),
    ("trailing empty node", lambda c: _inc(c, proof=c.proof + [b""]), MalformedError),
    ("preceding empty node", lambda c: _inc(c, proof=[b""] + c.proof), MalformedError),
    ("inserted node", lambda c: c.proof and _inc(c, proof=c.proof[:1] + [SOME_HASH] + c.proof[1:]), ProofLengthError),
    ("last node removed", lambda c: c.proof and _inc(c, proof=c.proof[:-1]), ProofLengthError),
    ("first node removed", lambda c: c.proof and _inc(c, proof=c.proof[1:]), ProofLengthError),
    ("empty proof", lambda c: c.proof and _inc(c, proof=[]), ProofLengthError),
    ("nodes swapped", lambda c: len(c.proof) > 1 and _inc(c, proof=c.proof[::-1]), RootMismatchError),
    ("proof is one bytes blob", lambda c: c.proof and _inc(c, proof=b"".join(c.proof)), MalformedError),
    ("proof of hex strings", lambda c: c.proof and _inc(c, proof=[x.hex() for x in c.proof]), MalformedError),
]
# One probe per proof position: a single flipped bit, or the node cut to 31 bytes.
for _pos in range(max(len(c.proof) for c in INCLUSIONS)):
    INCLUSION_PROBES += [
        (
            f"proof[{_pos}] bit flipped",
            lambda c, p=_pos: p < len(c.proof) and _inc(c, proof=c.proof[:p] + [flip_bit(c.proof[p])] + c.proof[p + 1 :]),
            RootMismatchError,
        ),
        (
            f"proof[{_pos}] truncated to 31 bytes",
            lambda c, p=_pos: p < len(c.proof) and _inc(c, proof=c.proof[:p] + [c.proof[p][:31]] + c.proof[p + 1 :]),
            MalformedError,
        ),
    ]


@pytest.mark.parametrize("desc, mutate, error", INCLUSION_PROBES, ids=[p[0] for p in INCLUSION_PROBES])
def test_corrupted_inclusion_proof_is_refused_with_a_precise_error(desc, mutate, error):
    applied = 0
    for c in INCLUSIONS:
        args = mutate(c)
        if not args:
            continue
        if args["size"] == c.size and args["index"] == c.index and args["proof"] == c.proof \
                and args["leaf_hash"] == c.leaf and args["root"] == c.root:
            continue  # e.g. index ^ 2 where that is the same leaf
        want = error or _expected_for_claimed_position(c, args["index"], args["size"])
        err = expect(want, lambda: verify_inclusion(**args))
        if want is RootMismatchError:
            assert err.which == "root" and err.expected == args["root"]
        applied += 1
    assert applied > 0, f"probe {desc!r} never applied"


def test_inclusion_verification_of_degenerate_trees():
    # After transparency-dev TestVerifyInclusion: sizes 0 and 1 with an empty proof.
    for index, size in [(0, 0), (1, 0), (2, 1)]:
        expect(IndexOutOfRangeError, lambda: verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT))
    # The one-leaf tree's root is the leaf hash itself, with an empty proof.
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    expect(RootMismatchError, lambda: verify_inclusion(leaf, 0, 1, [], EMPTY_ROOT))
    expect(MalformedError, lambda: verify_inclusion(b"", 0, 1, [], leaf))
    expect(MalformedError, lambda: verify_inclusion(leaf, 0, 1, [], b""))
    expect(MalformedError, lambda: verify_inclusion(leaf, "0", 1, [], leaf))
    expect(MalformedError, lambda: verify_inclusion(leaf, True, 2, [leaf], leaf))
    expect(MalformedError, lambda: verify_inclusion(leaf, 0, 1.0, [], leaf))
    expect(MalformedError, lambda: verify_inclusion(leaf, 0, 1, None, leaf))


def test_proof_length_error_reports_expected_and_actual_lengths():
    c = next(c for c in INCLUSIONS if c.size == 37 and c.index == 5)
    err = expect(ProofLengthError, lambda: verify_inclusion(c.leaf, 5, 37, c.proof + [SOME_HASH], c.root))
    assert (err.expected, err.actual) == (len(c.proof), len(c.proof) + 1)
    assert "needs %d nodes, got %d" % (len(c.proof), len(c.proof) + 1) in str(err)


def test_claimed_size_is_bound_only_by_the_anchored_root():
    """RFC 6962 roots do not encode the size: a proof can verify under another claimed size when
    the path has the same shape (e.g. leaf 0 of 5 vs of 6). It can never verify against the real
    root of that other size, so auditors must take (size, root) together from the anchor."""
    same_shape_seen = 0
    for c in INCLUSIONS:
        for claimed in {c.size - 1, c.size + 1, c.size * 2, c.size // 2} - {c.size}:
            want = _expected_for_claimed_position(c, c.index, claimed)
            shape = [side for _, side in ref_path_with_sides(c.index, DATA[: c.size])]
            try:
                verify_inclusion(c.leaf, c.index, claimed, c.proof, c.root)
            except want:
                pass
            else:
                assert want is RootMismatchError
                assert [s for _, s in ref_path_with_sides(c.index, [b""] * claimed)] == shape
                same_shape_seen += 1
            if claimed <= len(DATA) and claimed > c.index:
                expect(want, lambda: verify_inclusion(c.leaf, c.index, claimed, c.proof, REF_ROOTS[claimed]))
    assert same_shape_seen > 0  # the property is real, hence this test


# ---------------------------------------------------------------- consistency: negative table


def _con(c: Consistency, **changes) -> dict:
    args = dict(old_size=c.old, new_size=c.new, old_root=c.old_root, new_root=c.new_root, proof=list(c.proof))
    args.update(changes)
    return args


def _expected_for_claimed_sizes(c: Consistency, old: int, new: int) -> type[ProofError]:
    if old < 0 or new < 0 or old > new or old == 0:
        return BadSizesError
    if len(ref_proof(old, [b""] * new)) != len(c.proof):
        return ProofLengthError
    return RootMismatchError


CONSISTENCY_PROBES: list[tuple[str, Callable[[Consistency], "dict | None"], type[ProofError] | None]] = [
    ("old - 1", lambda c: _con(c, old_size=c.old - 1), None),
    ("old + 1", lambda c: _con(c, old_size=c.old + 1), None),
    ("old ^ 2", lambda c: _con(c, old_size=c.old ^ 2), None),
    ("new * 2", lambda c: _con(c, new_size=c.new * 2), None),
    ("new // 2", lambda c: _con(c, new_size=c.new // 2), None),
    ("old 0", lambda c: _con(c, old_size=0), BadSizesError),
    ("old > new", lambda c: _con(c, old_size=c.new, new_size=c.old), BadSizesError),
    ("negative old", lambda c: _con(c, old_size=-c.old), BadSizesError),
    ("wrong old root", lambda c: _con(c, old_root=SOME_HASH), RootMismatchError),
    ("wrong new root", lambda c: _con(c, new_root=SOME_HASH), RootMismatchError),
    ("old root bit flipped", lambda c: _con(c, old_root=flip_bit(c.old_root)), RootMismatchError),
    ("new root bit flipped", lambda c: _con(c, new_root=flip_bit(c.new_root)), RootMismatchError),
    ("swapped roots", lambda c: _con(c, old_root=c.new_root, new_root=c.old_root), RootMismatchError),
    ("empty-tree old root", lambda c: _con(c, old_root=EMPTY_ROOT), RootMismatchError),
    ("old root of 9 bytes", lambda c: _con(c, old_root=b"WrongRoot"), MalformedError),
    ("new root of 31 bytes", lambda c: _con(c, new_root=c.new_root[:31]), MalformedError),
    ("empty proof", lambda c: _con(c, proof=[]), ProofLengthError),
    ("trailing old root", lambda c: _con(c, proof=c.proof + [c.old_root]), ProofLengthError),
    ("trailing new root", lambda c: _con(c, proof=c.proof + [c.new_root]), ProofLengthError),
    ("preceding old root", lambda c: _con(c, proof=[c.old_root] + c.proof), ProofLengthError),
    ("preceding new root", lambda c: _con(c, proof=[c.new_root] + c.proof), ProofLengthError),
    ("preceding proof[0]", lambda c: _con(c, proof=c.proof[:1] + c.proof), ProofLengthError),
    ("trailing empty node", lambda c: _con(c, proof=c.proof + [b""]), MalformedError),
    ("preceding empty node", lambda c: _con(c, proof=[b""] + c.proof), MalformedError),
    ("last node removed", lambda c: _con(c, proof=c.proof[:-1]), ProofLengthError),
    ("first node removed", lambda c: _con(c, proof=c.proof[1:]), ProofLengthError),
    ("nodes swapped", lambda c: len(c.proof) > 1 and _con(c, proof=c.proof[::-1]), RootMismatchError),
    ("proof of hex strings", lambda c: _con(c, proof=[x.hex() for x in c.proof]), MalformedError),
]
for _pos in range(max(len(c.proof) for c in CONSISTENCIES)):
    CONSISTENCY_PROBES += [
        (
            f"proof[{_pos}] bit flipped",
            lambda c, p=_pos: p < len(c.proof) and _con(c, proof=c.proof[:p] + [flip_bit(c.proof[p], 0, 0x10)] + c.proof[p + 1 :]),
            RootMismatchError,
        ),
        (
            f"proof[{_pos}] truncated to 31 bytes",
            lambda c, p=_pos: p < len(c.proof) and _con(c, proof=c.proof[:p] + [c.proof[p][:31]] + c.proof[p + 1 :]),
            MalformedError,
        ),
    ]


@pytest.mark.parametrize("desc, mutate, error", CONSISTENCY_PROBES, ids=[p[0] for p in CONSISTENCY_PROBES])
def test_corrupted_consistency_proof_is_refused_with_a_precise_error(desc, mutate, error):
    applied = 0
    for c in CONSISTENCIES:
        args = mutate(c)
        if not args or args == _con(c):
            continue
        want = error or _expected_for_claimed_sizes(c, args["old_size"], args["new_size"])
        err = expect(want, lambda: verify_consistency(**args))
        if want is RootMismatchError and desc.startswith("wrong old"):
            # A power-of-two old tree is the proof's seed, so only the new root can disagree.
            assert err.which == ("new" if c.old & (c.old - 1) == 0 else "old")
        if want is RootMismatchError and desc.startswith("wrong new"):
            assert err.which == "new"
        applied += 1
    assert applied > 0, f"probe {desc!r} never applied"


def test_consistency_verification_edge_cases():
    # After transparency-dev TestVerifyConsistency, with real 32-byte roots.
    r1, r2 = leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2")
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 1, EMPTY_ROOT, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    expect(RootMismatchError, lambda: verify_consistency(0, 0, r1, r2, []))
    expect(RootMismatchError, lambda: verify_consistency(0, 0, EMPTY_ROOT, r2, []))
    expect(RootMismatchError, lambda: verify_consistency(0, 1, r1, r2, []))  # old root must be MTH({})
    expect(RootMismatchError, lambda: verify_consistency(1, 1, r1, r2, []))
    expect(BadSizesError, lambda: verify_consistency(1, 0, r1, r2, []))
    expect(BadSizesError, lambda: verify_consistency(2, 1, r1, r2, []))
    expect(ProofLengthError, lambda: verify_consistency(1, 2, r1, r2, []))
    expect(BadSizesError, lambda: verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]))
    expect(BadSizesError, lambda: verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]))
    expect(ProofLengthError, lambda: verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]))
    expect(MalformedError, lambda: verify_consistency("1", 2, r1, r2, [r1]))
    expect(MalformedError, lambda: verify_consistency(1, 2, r1, r2, r1))


# ----------------------------------------------------------------------- tree API and errors


def test_tree_refuses_bad_leaves_and_impossible_requests():
    tree = MerkleTree(leaf_hash(d) for d in DATA[:5])
    expect(MalformedError, lambda: tree.append(b"x" * 31))
    expect(MalformedError, lambda: tree.append("a" * 32))
    expect(MalformedError, lambda: tree.extend([leaf_hash(b"ok"), b"short"]))
    assert tree.size == 5 and tree.root() == REF_ROOTS[5]  # a failed extend leaves the tree as it was
    expect(IndexOutOfRangeError, lambda: tree.inclusion_proof(5))
    expect(IndexOutOfRangeError, lambda: tree.inclusion_proof(3, 3))
    expect(IndexOutOfRangeError, lambda: tree.inclusion_proof(-1))
    expect(BadSizesError, lambda: tree.inclusion_proof(0, 6))
    expect(BadSizesError, lambda: tree.root(6))
    expect(BadSizesError, lambda: tree.root(-1))
    expect(BadSizesError, lambda: tree.consistency_proof(4, 3))
    expect(BadSizesError, lambda: tree.consistency_proof(3, 6))
    expect(MalformedError, lambda: tree.root(2.0))
    expect(MalformedError, lambda: node_hash(b"a", leaf_hash(b"b")))
    expect(MalformedError, lambda: leaf_hash("text, not bytes"))
    expect(MalformedError, lambda: root_from_leaf_hashes([leaf_hash(b"a"), b"b"]))


def test_stored_leaf_cannot_be_changed_through_the_callers_buffer():
    buf = bytearray(leaf_hash(b"doc"))
    tree = MerkleTree()
    tree.append(buf)
    buf[0] ^= 1
    assert tree.root() == leaf_hash(b"doc")


# ---------------------------------------------------------------------------------- JSON form


def _json_case() -> dict:
    c = next(c for c in INCLUSIONS if c.size == 21 and c.index == 13)
    return proof_to_json(c.index, c.size, c.leaf, c.proof, c.root)


def test_json_proof_round_trips_and_verifies():
    obj = _json_case()
    assert set(obj) == {"leaf_index", "tree_size", "leaf_hash", "audit_path", "root"}
    text = json.dumps(obj)
    for parsed in (proof_from_json(obj), proof_from_json(text), proof_from_json(text.encode())):
        assert isinstance(parsed, InclusionProof)
        parsed.verify()
        parsed.verify(trusted_root=REF_ROOTS[21], trusted_size=21)
        assert proof_to_json(parsed.leaf_index, parsed.tree_size, parsed.leaf_hash, parsed.audit_path, parsed.root) == obj
    upper = dict(obj, root=obj["root"].upper())
    proof_from_json(upper).verify()


def test_json_proof_checked_against_the_anchor_not_its_own_claims():
    parsed = proof_from_json(_json_case())
    expect(RootMismatchError, lambda: parsed.verify(trusted_root=REF_ROOTS[20]))
    expect(BadSizesError, lambda: parsed.verify(trusted_root=REF_ROOTS[21], trusted_size=22))


JSON_BREAKAGES = [
    ("not JSON", lambda o: "{not json"),
    ("a list", lambda o: [o]),
    ("missing root", lambda o: {k: v for k, v in o.items() if k != "root"}),
    ("extra key", lambda o: dict(o, note="x")),
    ("index as string", lambda o: dict(o, leaf_index="13")),
    ("index as bool", lambda o: dict(o, leaf_index=True)),
    ("size as float", lambda o: dict(o, tree_size=21.0)),
    ("negative size", lambda o: dict(o, tree_size=-21)),
    ("non-hex leaf", lambda o: dict(o, leaf_hash="zz" + o["leaf_hash"][2:])),
    ("63-digit leaf", lambda o: dict(o, leaf_hash=o["leaf_hash"][:63])),
    ("66-digit root", lambda o: dict(o, root=o["root"] + "00")),
    ("0x-prefixed root", lambda o: dict(o, root="0x" + o["root"][2:])),
    ("spaced root", lambda o: dict(o, root=o["root"][:32] + " " + o["root"][33:])),
    ("bytes root", lambda o: dict(o, root=bytes.fromhex(o["root"]))),
    ("path not a list", lambda o: dict(o, audit_path=",".join(o["audit_path"]))),
    ("short path node", lambda o: dict(o, audit_path=o["audit_path"][:-1] + [o["audit_path"][-1][:62]])),
    ("null path node", lambda o: dict(o, audit_path=o["audit_path"] + [None])),
]


@pytest.mark.parametrize("desc, breakage", JSON_BREAKAGES, ids=[b[0] for b in JSON_BREAKAGES])
def test_malformed_json_proof_is_refused(desc, breakage):
    err = expect(MalformedError, lambda: proof_from_json(breakage(_json_case())))
    assert err.reason == "malformed"


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(leaves=st.lists(st.binary(max_size=12), min_size=1, max_size=300), data=st.data())
def test_any_tree_agrees_with_the_reference_and_rejects_any_flipped_bit(leaves, data):
    tree = MerkleTree(leaf_hash(x) for x in leaves)
    n = len(leaves)
    root = ref_mth(leaves)
    assert tree.root() == root == root_from_leaf_hashes([leaf_hash(x) for x in leaves])

    index = data.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(index)
    verify_inclusion(leaf_hash(leaves[index]), index, n, proof, root)

    old = data.draw(st.integers(0, n), label="old size")
    old_root = tree.root(old)
    assert old_root == ref_mth(leaves[:old])
    cproof = tree.consistency_proof(old)
    verify_consistency(old, n, old_root, root, cproof)

    for p in (proof, cproof):
        if p:
            pos = data.draw(st.integers(0, len(p) - 1), label="node")
            bit = data.draw(st.integers(0, 255), label="bit")
            bad = p[:pos] + [flip_bit(p[pos], bit // 8, 1 << (bit % 8))] + p[pos + 1 :]
            if p is proof:
                expect(RootMismatchError, lambda: verify_inclusion(leaf_hash(leaves[index]), index, n, bad, root))
            else:
                expect(RootMismatchError, lambda: verify_consistency(old, n, old_root, root, bad))


# ------------------------------------------------------------------------------------- scale


def test_hundred_thousand_leaves_build_and_prove():
    n = 100_000
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree()
    for x in hashes:
        tree.append(x)
    root = tree.root()
    assert root == root_from_leaf_hashes(hashes) == MerkleTree(hashes).root()
    rng = random.Random(9162)
    for index in [0, 1, n // 2, n - 2, n - 1] + rng.sample(range(n), 20):
        proof = tree.inclusion_proof(index)
        assert len(proof) == inclusion_proof_length(index, n) <= 17
        verify_inclusion(hashes[index], index, n, proof, root)
        expect(RootMismatchError, lambda: verify_inclusion(hashes[index], index, n, [flip_bit(proof[0])] + proof[1:], root))
    for old in [1, 2, 65_536, 65_537, n - 1] + rng.sample(range(1, n), 10):
        verify_consistency(old, n, tree.root(old), root, tree.consistency_proof(old))


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1025])
def test_a_tree_rebuilt_from_its_levels_is_the_same_tree(n):
    """tree_levels is what a worker process builds; from_levels takes it back: same root, same proofs."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    direct = MerkleTree(leaves)
    rebuilt = MerkleTree.from_levels(tree_levels(b"".join(leaves)))
    assert rebuilt.size == n and rebuilt.root() == direct.root()
    for i in {0, n // 2, n - 1}:
        assert rebuilt.inclusion_proof(i) == direct.inclusion_proof(i)


def test_levels_that_are_not_whole_hashes_are_refused():
    with pytest.raises(ValueError):
        tree_levels(b"\x00" * 33)
    with pytest.raises(ValueError):
        MerkleTree.from_levels([b"\x00" * 32, b"\x00" * 31])
    with pytest.raises(ValueError):
        MerkleTree.from_levels([])
