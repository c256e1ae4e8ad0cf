"""Horizontal statistics across node processes: a 64-bucket histogram plus sums, chain included.

Four participant nodes each hold ``--records`` claims; a fifth node (the requester, e.g. a regulator,
holding no claims) submits the job through its API. Timed from submission to the result published on
chain: each participant's SQL aggregate, masking, packing and encryption, its commitment on chain, the
requester's checks, aggregation, decryption and release. ``bytes_per_node`` is what one participant
exchanges with the requester (the signed request with the spec, and its contribution).
"""
from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from benches.stats_vertical import BenchNetwork

describe = "horizontal job: 4 participant nodes x N claims each, 64-bucket amount histogram + sums, chain included"

PARTICIPANTS = ("insurer-1", "insurer-2", "insurer-3", "insurer-4")


def add_arguments(parser):
    parser.add_argument("--records", type=int, default=1_000_000, help="claims per participant node")
    parser.add_argument("--buckets", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", help="keep the nodes' folders here (default: a temporary folder)")


def _claims(rng: random.Random, prefix: str, records: int, top: float):
    # cents drawn as integers: the plaintext check below is then exact
    return [(f"{prefix}-c{i}", f"{prefix}-p{i}", None, rng.randrange(int(top * 100)) / 100, "2026-03-01", "paid")
            for i in range(records)]


def run(args, progress):
    from node.chain.deployment import Role

    owned = tempfile.TemporaryDirectory(prefix="bench-stats-horizontal-") if not args.keep else None
    home = Path(owned.name if owned else args.keep)
    width = 80
    top = width * args.buckets
    t = progress.add_task("start anvil, deploy, generate and load data", total=len(PARTICIPANTS) + 1)
    members = {name: Role.INSURER for name in PARTICIPANTS} | {"regulator": Role.REGULATOR}
    net = BenchNetwork(home, members)
    try:
        rng = random.Random(args.seed)
        expected = [[0, 0] for _ in range(args.buckets)]
        for name in PARTICIPANTS:
            rows = _claims(rng, name, args.records, top)
            for row in rows:
                cents = round(row[3] * 100)
                e = expected[cents // (width * 100)]
                e[0] += 1
                e[1] += cents
            net.load(name, {"claims": (["claim_id", "person_id", "policy_id", "amount", "claim_date", "status"], rows)})
            del rows
            progress.advance(t)
        net.start(list(members))
        for name in PARTICIPANTS:
            net.grant(name, "regulator", "claims", "STATISTICS")
        progress.advance(t)
        spec = {"kind": "horizontal", "dataset": "claims", "value": "amount", "statistics": ["count", "sum"],
                "participants": list(PARTICIPANTS), "min_cohort": 10, "deadline_seconds": 3600,
                "group_by": [{"column": "amount", "edges": [i * width for i in range(args.buckets + 1)]}]}
        job, seconds = net.run_job("regulator", spec, progress, "horizontal job")

        got = job["result"]["buckets"]
        labels = list(got)
        correct = len(got) == args.buckets and all(
            (got[b]["count"], round(got[b]["sum"] * 100)) == tuple(e) for b, e in zip(labels, expected))

        conn = sqlite3.connect(net.db("regulator"))
        (public_raw,) = conn.execute("SELECT public_spec FROM stats_jobs WHERE id = ?", (job["id"],)).fetchone()
        sizes = {}
        for participant, payload, commitment in conn.execute(
                "SELECT participant, payload, commitment FROM stats_received WHERE job_id = ?", (job["id"],)):
            request = json.dumps({"chain_job_id": job["chain_job_id"], "spec": json.loads(public_raw)})
            response = json.dumps({"contribution": json.loads(payload), "commitment": commitment})
            sizes[participant] = len(request) + len(response)
        conn.close()
        ciphertexts = len(json.loads(payload)["vector"]["ciphertexts"])
        gate = _gate_cost(net.db(PARTICIPANTS[0]), json.loads(public_raw), home)
        return {
            "seconds": round(seconds, 2),
            "bytes_per_node": round(sum(sizes.values()) / len(sizes)),
            "records_per_node": args.records,
            "participants": len(PARTICIPANTS),
            "buckets": args.buckets,
            "ciphertexts_per_node": ciphertexts,
            "correct": correct,
            "records_per_second": round(args.records * len(PARTICIPANTS) / seconds),
            "includes": "5 node processes over HTTP, openJob, 4 commitContribution, publishResult, access logs",
            **gate,
        }
    finally:
        net.stop()
        if owned is not None:
            owned.cleanup()


def _gate_cost(db: Path, public: dict, home: Path) -> dict:
    """What the owner's release gate costs one participant per release, measured on its own data in this process:
    the one-pass query with persons against the plain SQL GROUP BY aggregate the node ran before the gate, the footprint (one digest per person), the differencing check against an identical
    earlier release (the worst case: every bucket is compared set-wise) and the recorded history."""
    from node.access.release_gate import ReleaseGate, Request
    from node.chain.deployment import Purpose
    from node.stats import local
    from node.store.db import create_store_engine

    engine = create_store_engine(f"sqlite:///{db}")
    store = create_store_engine(f"sqlite:///{home / 'gate-bench.db'}")
    try:
        t0 = time.perf_counter()
        _sql_aggregate(engine, public)
        aggregate_only = time.perf_counter() - t0
        t0 = time.perf_counter()
        totals, persons = local.horizontal_buckets(engine, public)
        with_persons = time.perf_counter() - t0
        gate = ReleaseGate(store, None, None, floor=10)
        req = Request("0x" + "11" * 20, public["dataset"], Purpose.STATISTICS, b"\0" * 32, "bench")
        t0 = time.perf_counter()
        gate.release(req, persons, public["min_cohort"])  # first release: footprint and history only
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        gate.release(req, persons, public["min_cohort"])  # the same again: compared bucket by bucket with the first
        second = time.perf_counter() - t0
    finally:
        engine.dispose()
        store.dispose()
    return {"gate_sql_aggregate_seconds": round(aggregate_only, 3), "gate_query_extra_seconds": round(with_persons - aggregate_only, 3),
            "gate_release_first_seconds": round(first, 3), "gate_release_compared_seconds": round(second, 3),
            "gate_seconds_per_release": round(with_persons - aggregate_only + second, 3),
            "gate_persons": sum(len(p) for p in persons.values())}


def _sql_aggregate(engine, public: dict) -> list:
    """The participant's local aggregate without the gate: one SQL GROUP BY per bucket, no persons (the baseline)."""
    from sqlalchemy import func, select

    from node.stats.local import _axis_expression, _scaled, where_clauses
    from node.stats.spec import Axis
    from node.store.datasets import TABLES

    table = TABLES[public["dataset"]]
    axes = [Axis(a["column"], tuple(a.get("values", ())), tuple(a.get("edges", ()))) for a in public["group_by"]]
    keys = [_axis_expression(table, a).label(f"k{i}") for i, a in enumerate(axes)]
    scaled = _scaled(table.c[public["value"]], public["decimals"])
    stmt = (select(*keys, func.count(), func.sum(scaled), func.sum(scaled * scaled)).select_from(table)
            .where(*where_clauses(public["dataset"], public["filters"])).group_by(*[k.element for k in keys]))
    with engine.connect() as conn:
        return conn.execute(stmt).all()
