"""Apportionment by largest remainder and the share sum tree: exact sums, proofs for everyone, tampering refused."""
from __future__ import annotations

import hashlib
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.apportion import (
    MAX_AMOUNT,
    ApportionmentError,
    ShareProof,
    ShareTree,
    SumMismatchError,
    apportion,
    apportion_equal,
    apportion_pro_rata,
    check_share_list,
    participant_ref,
    verify_share,
)
from privacy.merkle import MalformedError, ProofError, ProofLengthError, RootMismatchError, root_from_leaf_hashes

amounts = st.integers(min_value=0, max_value=10**15)
weight_lists = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=60)


def _refs(n: int, seed: int = 0) -> list[bytes]:
    return [hashlib.sha256(b"%d/%d" % (seed, i)).digest() for i in range(n)]


def _hamilton_reference(payout: int, weights: list[int]) -> list[int]:
    """A literal transcription with Fractions: floors, then one unit per largest remainder, ties to lower index."""
    quotas = [Fraction(payout * w, sum(weights)) for w in weights]
    shares = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in order[: payout - sum(shares)]:
        shares[i] += 1
    return shares


# ------------------------------------------------------------------------------- apportionment


@settings(max_examples=300, deadline=None)
@given(amounts, weight_lists)
def test_pro_rata_shares_sum_exactly_and_match_the_literal_method(payout, weights):
    shares = apportion_pro_rata(payout, weights)
    assert sum(shares) == payout
    assert shares == _hamilton_reference(payout, weights)
    for share, w in zip(shares, weights):  # every share within one unit of its exact quota
        assert abs(Fraction(share) - Fraction(payout * w, sum(weights))) < 1


@settings(max_examples=200, deadline=None)
@given(amounts, st.integers(min_value=1, max_value=500))
def test_equal_shares_are_pro_rata_with_equal_weights(payout, n):
    shares = apportion_equal(payout, n)
    assert sum(shares) == payout and max(shares) - min(shares) <= (1 if payout % n else 0)
    assert shares == apportion_pro_rata(payout, [1] * n) == apportion(payout, "equal", participants=n)


def test_the_reports_split_of_a_loss_moves_from_70_30_to_40_60():
    assert apportion_pro_rata(1_000_001, [70, 30]) == [700_001, 300_000]
    assert apportion_pro_rata(1_000_001, [40, 60]) == [400_000, 600_001]
    # 100 over three equal weights: the leftover unit goes to the first (ties to the lower position)
    assert apportion_pro_rata(100, [1, 1, 1]) == [34, 33, 33]


@pytest.mark.parametrize("call", [
    lambda: apportion_pro_rata(-1, [1]), lambda: apportion_pro_rata(1.5, [1]), lambda: apportion_pro_rata(True, [1]),
    lambda: apportion_pro_rata(10, []), lambda: apportion_pro_rata(10, [1, 0]), lambda: apportion_pro_rata(10, [1, -2]),
    lambda: apportion_pro_rata(MAX_AMOUNT + 1, [1]), lambda: apportion_equal(10, 0), lambda: apportion_equal(10, True),
    lambda: apportion(10, "by_age", participants=3), lambda: apportion(10, "pro_rata"),
    lambda: participant_ref(b"short", "p1"), lambda: participant_ref(b"s" * 16, ""),
])
def test_bad_apportionment_input_is_refused(call):
    with pytest.raises(ApportionmentError):
        call()


# ----------------------------------------------------------------------------------- share tree


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), amounts, st.booleans(), st.randoms(use_true_random=False))
def test_every_participant_of_a_random_pool_verifies_its_share(n, payout, equal, rnd):
    weights = None if equal else [rnd.randint(1, 1000) for _ in range(n)]
    shares = apportion(payout, "equal" if equal else "pro_rata", participants=n, weights=weights)
    refs = _refs(n, rnd.randint(0, 10**6))
    tree = ShareTree(refs, shares)
    assert tree.total == payout
    for i in range(n):
        verify_share(refs[i], shares[i], i, n, tree.proof(i), tree.root_hash, payout)
    check_share_list(refs, shares, tree.root_hash, payout)


def test_tree_has_rfc6962_shape_and_leaf_hashes():
    """Same leaf hashes, same split rule and proof lengths as RFC 6962; a 1-leaf tree is its leaf."""
    refs, shares = _refs(7), [5, 0, 3, 9, 1, 1, 2]
    tree = ShareTree(refs, shares)
    from privacy.merkle import MerkleTree, leaf_hash
    plain = MerkleTree([leaf_hash(r + s.to_bytes(16, "big")) for r, s in zip(refs, shares)])
    for i in range(7):
        assert tree.leaf(i)[0] == leaf_hash(refs[i] + shares[i].to_bytes(16, "big"))
        assert len(tree.proof(i)) == len(plain.inclusion_proof(i))
    one = ShareTree(refs[:1], [42])
    assert one.root_hash == leaf_hash(refs[0] + (42).to_bytes(16, "big")) and one.total == 42 and one.proof(0) == []
    assert tree.root_hash != root_from_leaf_hashes([tree.leaf(i)[0] for i in range(7)])  # the sums are bound in


def _tree(n: int = 13):
    refs = _refs(n)
    shares = apportion_pro_rata(1_000_003, list(range(1, n + 1)))
    return refs, shares, ShareTree(refs, shares)


def test_a_tampered_share_is_refused():
    refs, shares, tree = _tree()
    for i in (0, 6, 12):
        for forged in (shares[i] + 1, shares[i] - 1, 0):
            with pytest.raises(RootMismatchError):
                verify_share(refs[i], forged, i, tree.size, tree.proof(i), tree.root_hash, tree.total)


def test_tampered_proofs_and_anchors_are_refused_with_a_precise_error():
    refs, shares, tree = _tree()
    i, n, root, total = 5, tree.size, tree.root_hash, tree.total
    path = tree.proof(i)
    h0, s0 = path[0]
    cases = [
        ((refs[i], shares[i], i, n, [(h0, s0 + 1), *path[1:]], root, total), RootMismatchError),   # sibling sum moved
        ((refs[i], shares[i], i, n, [(bytes([h0[0] ^ 1]) + h0[1:], s0), *path[1:]], root, total), RootMismatchError),
        ((refs[i + 1], shares[i], i, n, path, root, total), RootMismatchError),                     # someone else's ref
        ((refs[i], shares[i], i + 1, n, path, root, total), RootMismatchError),                     # wrong index
        ((refs[i], shares[i], i, n, path, root, total + 1), SumMismatchError),                      # another total anchored
        ((refs[i], shares[i], i, n, [(h0, MAX_AMOUNT), *path[1:]], root, total), SumMismatchError),  # sums overflow
        ((refs[i], shares[i], i, n, path[:-1], root, total), ProofLengthError),
        ((refs[i], shares[i], i, n, [*path, path[0]], root, total), ProofLengthError),
        # (like RFC 6962 roots, the root does not encode the size: the size must come from the chain)
        ((refs[i], shares[i], i, 4 * n, path, root, total), ProofError),
        ((refs[i], shares[i], n, n, path, root, total), ProofError),
        ((refs[i][:31], shares[i], i, n, path, root, total), MalformedError),
        ((refs[i], -1, i, n, path, root, total), MalformedError),
        ((refs[i], shares[i], i, n, [(h0, -1), *path[1:]], root, total), MalformedError),
        ((refs[i], shares[i], i, n, [h0, *path[1:]], root, total), MalformedError),
        ((refs[i], shares[i], True, n, path, root, total), MalformedError),
    ]
    for args, error in cases:
        with pytest.raises(error):
            verify_share(*args)


def test_share_list_that_does_not_add_up_or_rebuild_is_refused():
    refs, shares, tree = _tree()
    with pytest.raises(SumMismatchError):
        check_share_list(refs, shares, tree.root_hash, tree.total + 1)
    moved = list(shares)
    moved[0], moved[1] = moved[0] + 1, moved[1] - 1   # same sum, different shares
    with pytest.raises(RootMismatchError):
        check_share_list(refs, moved, tree.root_hash, tree.total)


def test_proof_json_round_trip_and_strict_parse():
    refs, shares, tree = _tree()
    proof = ShareProof(refs[3], shares[3], 3, tree.size, tuple(tree.proof(3)), tree.root_hash, tree.total)
    again = ShareProof.from_json(proof.to_json())
    assert again == proof
    again.verify(tree.root_hash, tree.total, tree.size)
    with pytest.raises(ProofError):
        again.verify(tree.root_hash, tree.total, tree.size + 1)
    good = proof.to_json()
    for bad in ({**good, "share": 5}, {**good, "share": "-5"}, {**good, "root": "00"}, {**good, "extra": 1},
                {k: v for k, v in good.items() if k != "total"}, {**good, "audit_path": [["00" * 32]]},
                {**good, "leaf_index": -1}, "not json", [1]):
        with pytest.raises(MalformedError):
            ShareProof.from_json(bad)


def test_tree_refuses_bad_leaves():
    with pytest.raises(ApportionmentError):
        ShareTree([], [])
    with pytest.raises(ApportionmentError):
        ShareTree(_refs(2), [1])
    with pytest.raises(MalformedError):
        ShareTree([b"x" * 31], [1])
    with pytest.raises(ApportionmentError):
        ShareTree(_refs(2), [MAX_AMOUNT, 1])
    with pytest.raises(ApportionmentError):
        ShareTree(_refs(1), [-3])


def test_random_pool_of_ten_thousand_with_pro_rata_weights():
    rnd = random.Random(15)
    n = 10_000
    weights = [rnd.randint(1, 50) for _ in range(n)]
    shares = apportion_pro_rata(123_456_789, weights)
    refs = [participant_ref(b"s" * 16, f"member-{i}") for i in range(n)]
    tree = ShareTree(refs, shares)
    assert tree.total == 123_456_789
    for i in range(n):
        verify_share(refs[i], shares[i], i, n, tree.proof(i), tree.root_hash, tree.total)
