"""Mutual-aid apportionment at scale: apportion and commit a payout, proof size, per-participant verification."""
from __future__ import annotations

import hashlib
import json
import random
import time

describe = ("mutual aid: apportion_seconds (shares + sum tree) and proof_bytes for N participants, verify_us per proof; "
            "baseline: checking the total from the full share list")


def add_arguments(parser) -> None:
    parser.add_argument("--participants", type=int, default=1_000_000)
    parser.add_argument("--rule", choices=("equal", "pro_rata"), default="pro_rata",
                        help="pro_rata uses random weights 1..100 (every remainder differs: the sort is exercised)")
    parser.add_argument("--payout", type=int, default=300_000_000_01, help="smallest currency unit")
    parser.add_argument("--verify", type=int, default=2_000, help="random participants whose proofs are timed")
    parser.add_argument("--seed", type=int, default=15)


def run(args, progress) -> dict:
    from privacy.apportion import NODE_BYTES, ShareProof, ShareTree, apportion, check_share_list, verify_share
    from privacy.merkle import MerkleTree, leaf_hash, verify_inclusion

    n, rnd = args.participants, random.Random(args.seed)
    task = progress.add_task(f"{n:,} participants: references and weights", total=None)
    refs = [hashlib.sha256(b"participant %d" % i).digest() for i in range(n)]
    weights = [rnd.randint(1, 100) for _ in range(n)] if args.rule == "pro_rata" else None
    progress.remove_task(task)

    task = progress.add_task("apportion (largest remainder)", total=None)
    t0 = time.perf_counter()
    shares = apportion(args.payout, args.rule, participants=n, weights=weights)
    t1 = time.perf_counter()
    progress.remove_task(task)
    task = progress.add_task("sum tree", total=None)
    tree = ShareTree(refs, shares)
    t2 = time.perf_counter()
    progress.remove_task(task)
    assert sum(shares) == args.payout == tree.total

    sample = [rnd.randrange(n) for _ in range(args.verify)]
    proofs = [tree.proof(i) for i in sample]
    task = progress.add_task(f"verify {args.verify} participants' proofs", total=None)
    t3 = time.perf_counter()
    for i, proof in zip(sample, proofs):
        verify_share(refs[i], shares[i], i, n, proof, tree.root_hash, tree.total)
    verify_us = (time.perf_counter() - t3) / args.verify * 1e6
    progress.remove_task(task)
    middle = n // 2 + 1
    proof = tree.proof(middle)
    json_bytes = len(json.dumps(ShareProof(refs[middle], shares[middle], middle, n, tuple(proof), tree.root_hash,
                                    tree.total).to_json()).encode())

    # Same run, same data: a plain RFC 6962 tree over the same leaves proves inclusion but not the total; checking
    # the total without sums means fetching and re-hashing the whole share list.
    task = progress.add_task("baselines: plain RFC 6962 proof; full-list sum check", total=None)
    plain = MerkleTree([leaf_hash(r + s.to_bytes(16, "big")) for r, s in zip(refs, shares)])
    leaf = leaf_hash(refs[middle] + shares[middle].to_bytes(16, "big"))
    plain_proof, plain_root = plain.inclusion_proof(middle), plain.root()
    t4 = time.perf_counter()
    for _ in range(args.verify):
        verify_inclusion(leaf, middle, n, plain_proof, plain_root)
    plain_verify_us = (time.perf_counter() - t4) / args.verify * 1e6
    t5 = time.perf_counter()
    check_share_list(refs, shares, tree.root_hash, tree.total)
    full_check_s = time.perf_counter() - t5
    progress.remove_task(task)
    return {
        "participants": n, "rule": args.rule, "payout": args.payout,
        "apportion_seconds": round(t2 - t0, 3), "shares_seconds": round(t1 - t0, 3), "sum_tree_seconds": round(t2 - t1, 3),
        "proof_nodes": len(proof), "proof_bytes": len(proof) * NODE_BYTES, "proof_json_bytes": json_bytes,
        "verify_us": round(verify_us, 1),
        "baseline_rfc6962_proof_bytes": 32 * len(plain_proof), "baseline_rfc6962_verify_us": round(plain_verify_us, 1),
        "baseline_full_list_bytes": n * NODE_BYTES, "baseline_full_list_check_seconds": round(full_check_s, 3),
        "shares_min_max": [min(shares), max(shares)],
    }
