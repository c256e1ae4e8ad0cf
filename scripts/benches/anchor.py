"""Claim-evidence anchoring throughput against one transaction per hash, on a real anvil."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

describe = "evidence: hashes/s accepted, anchored and provable vs one anchor tx per hash; proof size/time at 1M leaves"


def add_arguments(parser) -> None:
    parser.add_argument("--hashes", type=int, default=1_000_000, help="hashes to accept and anchor")
    parser.add_argument("--request", type=int, default=50_000, help="hashes per intake call (one HTTP request's worth)")
    parser.add_argument("--batch", type=int, default=100_000, help="max leaves per anchored batch")
    parser.add_argument("--clients", type=int, default=2, help="concurrent intake callers (like concurrent HTTP requests)")
    parser.add_argument("--baseline", type=int, default=200, help="single-hash transactions timed for the baseline")


def _proof_figures(progress) -> dict:
    from privacy.merkle import MerkleTree, proof_to_json, verify_inclusion

    task = progress.add_task("1M-leaf tree for proof size and verification time", total=None)
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(1_000_000)]
    t0 = time.perf_counter()
    tree = MerkleTree(leaves)
    build_s = time.perf_counter() - t0
    root = tree.root()
    index = 765_432
    path = tree.inclusion_proof(index)
    rounds = 2000
    t0 = time.perf_counter()
    for _ in range(rounds):
        verify_inclusion(leaves[index], index, len(leaves), path, root)
    verify_us = (time.perf_counter() - t0) / rounds * 1e6
    progress.remove_task(task)
    return {"proof_nodes_1m": len(path), "proof_bytes_1m": 32 * len(path),
            "proof_json_bytes_1m": len(json.dumps(proof_to_json(index, len(leaves), leaves[index], path, root))),
            "verify_us_1m": round(verify_us, 1), "tree_build_s_1m": round(build_s, 2)}


def run(args, progress) -> dict:
    from eth_account import Account

    from benches.machine import core_speed_ms
    from node.chain.anvil import AnvilNode
    from node.chain.compiler import compile_contracts
    from node.chain.deployment import GenesisMember, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger
    from node.evidence.service import EvidenceService, EvidenceSettings
    from node.evidence.store import create_store_engine

    result: dict = {}
    with AnvilNode() as anvil, tempfile.TemporaryDirectory() as tmp:
        gateway = ChainGateway.connect(anvil.url, compile_contracts())  # a benchmark deploys: it compiles (cached)
        member, deployer = Account.create(), Account.create()
        for a in (member, deployer):
            gateway.fund(a.address)
        deploy_consortium(gateway, deployer, [GenesisMember(member.address, "insurer_bench", Role.INSURER)])
        ledger = Ledger(gateway, member)

        # Baseline: one anchorBatch transaction per hash (a batch of one), sent and mined one by one.
        task = progress.add_task("baseline: one transaction per hash", total=args.baseline)
        t0 = time.perf_counter()
        for i in range(args.baseline):
            leaf = hashlib.sha256(b"baseline %d" % i).digest()
            ledger.anchor_batch(leaf, 1, hashlib.sha256(b"batch %d" % i).digest())
            progress.advance(task)
        baseline_s = (time.perf_counter() - t0) / args.baseline
        progress.remove_task(task)

        # Ours: the durable outbox with the background anchorer; the clock stops when every hash is
        # accepted (committed), anchored (mined) and its batch's proofs can be exported.
        settings = EvidenceSettings(max_batch_size=args.batch, max_batch_age=2.0, max_hashes_per_request=args.request)
        service = EvidenceService(create_store_engine(os.path.join(tmp, "evidence.db")), ledger, settings)
        # Claim ids grow over time and each claim has a few documents, as in a real intake stream.
        items = [(hashlib.sha256(i.to_bytes(8, "big")).digest(), f"CLM-{i // 4:010d}", "invoice") for i in range(args.hashes)]
        task = progress.add_task("accept, anchor, prove", total=args.hashes)
        speed = core_speed_ms()  # this VM's cores change speed from minute to minute: say which one ran
        service.start()
        t0 = time.perf_counter()
        chunks = [items[start:start + args.request] for start in range(0, args.hashes, args.request)]

        def client(k: int) -> None:
            for chunk in chunks[k::args.clients]:
                service.accept_bulk(chunk)
                progress.advance(task, len(chunk))

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        accepted_s = time.perf_counter() - t0
        service.close_open_batch()  # the tail would otherwise wait out max_batch_age
        service._wake.set()
        if not service.wait_until_anchored(timeout=600):
            raise RuntimeError(f"not all anchored: {service.status()}")
        last_claim = items[-1][1]
        proofs = service.proofs(last_claim)
        assert all("proof" in p for p in proofs)
        elapsed = time.perf_counter() - t0
        service.stop()
        progress.remove_task(task)
        batches = [b for b in service.store.batches() if b["size"]]
        ours_s = elapsed / args.hashes
        result.update({
            "hashes_per_s": round(args.hashes / elapsed),
            "core_speed_ms": speed,
            "ratio": round(baseline_s / ours_s),
            "hashes": args.hashes,
            "batches": len(batches),
            "elapsed_s": round(elapsed, 2),
            "intake_only_hashes_per_s": round(args.hashes / accepted_s),
            "baseline_tx_per_s": round(1 / baseline_s, 1),
            "anchor_gas_per_batch": gateway.w3.eth.get_transaction_receipt(batches[-1]["tx_hash"])["gasUsed"]
            if batches[-1]["tx_hash"] else None,
        })
    result.update(_proof_figures(progress))
    return result
