"""Vertical statistics between two node processes, chain included, vs a per-value phe loop on a sample.

An insurer node and a platform node (real processes, real anvil) hold the same ``--rows`` persons;
the insurer's job is submitted through its API and timed until the result is published on chain.
The baseline is the straightforward python-paillier (with gmpy2) loop: encrypt each person's claimed
flag and amount, add per bucket; timed per row on ``--baseline-rows`` rows in the same run.
"""
from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.chain.deployment import Role

describe = "vertical job across two node processes (insurer x platform), chain included, vs a per-value phe loop"

AGE_BANDS = ("18-29", "30-39", "40-49", "50-59", "60+")
CHANNELS = ("app", "web", "mini-program")
SEGMENTS = ("low", "mid", "high")


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=100_000, help="persons held by both parties (1000000 is opt-in: several minutes)")
    parser.add_argument("--baseline-rows", type=int, default=200, help="sample size for the phe baseline")
    parser.add_argument("--claim-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="keep the nodes' folders here (default: a temporary folder)")


# ---------------------------------------------------------------------------------------------- a network


class BenchNetwork:
    """anvil + member keys + deployment + node processes, with each node's SQLite filled before start."""

    def __init__(self, home: Path, members: dict[str, "Role"]):
        from node.chain.anvil import free_port
        from node.network.devnet import dev_passphrase, start_dev_consortium

        self.home = home
        self.ports = {name: free_port() for name in members}
        self.endpoints = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.dev = start_dev_consortium(home, members=tuple(members.items()), endpoints=self.endpoints)
        self.passphrase = dev_passphrase(home)
        self.nodes: dict = {}

    def db(self, name: str) -> Path:
        return self.home / "nodes" / name / "node.db"

    def load(self, name: str, tables: dict[str, tuple[list[str], list[tuple]]]) -> None:
        """Create the node's dataset tables and bulk-insert rows (one transaction per table)."""
        from node.store.datasets import init_datasets
        from node.store.db import create_store_engine

        engine = create_store_engine(f"sqlite:///{self.db(name).resolve()}")
        init_datasets(engine)
        engine.dispose()
        conn = sqlite3.connect(self.db(name))
        for dataset, (columns, rows) in tables.items():
            marks = ",".join("?" * len(columns))
            conn.execute(f"DELETE FROM ds_{dataset}")
            conn.executemany(f"INSERT INTO ds_{dataset} ({','.join(columns)}) VALUES ({marks})", rows)
            conn.commit()
        conn.close()

    def start(self, names) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from node.network.devnet import spawn_node

        def one(name):
            return name, spawn_node(self.home / "nodes" / name, name, self.home / "members" / name, self.dev.gateway.rpc_url,
                                    self.dev.deployment_path, self.passphrase, port=self.ports[name], log_flush_seconds=0.5,
                                    timeout=120)

        with ThreadPoolExecutor(len(names)) as pool:
            self.nodes.update(dict(pool.map(one, names)))

    def client(self, caller: str, target: str | None = None):
        from node.client import NodeClient

        target = target or caller
        return NodeClient(self.endpoints[target], self.dev.keys[caller].account, self.dev.keys[target].address,
                          self.dev.gateway.chain_id, timeout=60)

    def grant(self, owner: str, grantee: str, dataset: str, purpose: str) -> None:
        now = self.dev.gateway.w3.eth.get_block("latest")["timestamp"]
        r = self.client(owner).request("POST", "/grants", {"grantee": self.dev.keys[grantee].address, "dataset": dataset,
                                                           "purpose": purpose, "expires_at": now + 86400,
                                                           "consent_ref": "0x" + "00" * 32})  # the member's own basis
        assert r.status_code == 201, r.text

    def run_job(self, requester: str, spec: dict, progress=None, label: str = "job", timeout: float = 7200) -> tuple[dict, float]:
        """Submit a job through the requester's API; returns the finished job and seconds from submission."""
        client = self.client(requester)
        deadline = time.monotonic() + 180
        while True:  # each node generates its 2048-bit Paillier key in the background on first start
            r = client.request("POST", "/stats/jobs", spec)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if r.status_code != 202:
            raise RuntimeError(f"job refused: {r.text}")
        start = time.perf_counter()
        job = r.json()
        task = progress.add_task(label, total=None) if progress else None
        while job["state"] not in ("PUBLISHED", "FAILED"):
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"job not finished after {timeout} s: {job['progress']}")
            time.sleep(0.2)
            job = client.request("GET", f"/stats/jobs/{job['id']}").json()
            p = job["progress"] or {}
            if task is not None and p.get("batches_total"):
                progress.update(task, total=p["batches_total"], completed=p.get("batches", 0), description=f"{label}: {p.get('phase')}")
        seconds = time.perf_counter() - start
        if job["state"] != "PUBLISHED":
            raise RuntimeError(f"job failed: {job['error']}")
        return job, seconds

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.dev.stop()


# ---------------------------------------------------------------------------------------------- the bench


def _data(rows: int, claim_rate: float, seed: int):
    rng = random.Random(seed)
    persons = [f"person-{rng.getrandbits(48):012x}-{i}" for i in range(rows)]
    features = [(p, rng.choice(AGE_BANDS), rng.choice(CHANNELS), rng.choice(SEGMENTS)) for p in persons]
    policies = [(f"pol{i}", p, "flight-delay", 10.0, "2026-01-01", "east") for i, p in enumerate(persons)]
    claims = [(f"c{i}", p, f"pol{i}", round(rng.uniform(10, 20_000), 2), "2026-03-01", "paid")
              for i, p in enumerate(persons) if rng.random() < claim_rate]
    return features, policies, claims


def _baseline(public_key, features, claims, sample: int, progress) -> float:
    """Seconds per row of the phe loop: two encryptions per person, added into its bucket."""
    import phe

    key = phe.PaillierPublicKey(n=public_key.n)
    amount_of = {c[1]: c[3] for c in claims}
    task = progress.add_task("baseline: phe per value", total=sample)
    sums: dict[str, list] = {}
    start = time.perf_counter()
    for person, age, channel, segment in features[:sample]:
        amount = amount_of.get(person, 0.0)
        enc = [key.encrypt(int(amount > 0)), key.encrypt(int(round(amount * 100)))]
        bucket = f"{age}|{channel}|{segment}"
        sums[bucket] = [a + b for a, b in zip(sums[bucket], enc)] if bucket in sums else enc
        progress.advance(task)
    return (time.perf_counter() - start) / sample


def run(args, progress):
    from node.chain.deployment import Role

    owned = tempfile.TemporaryDirectory(prefix="bench-stats-vertical-") if not args.keep else None
    home = Path(owned.name if owned else args.keep)
    t = progress.add_task("start anvil, deploy, generate and load data", total=None)
    net = BenchNetwork(home, {"insurer": Role.INSURER, "platform": Role.PLATFORM})
    try:
        features, policies, claims = _data(args.rows, args.claim_rate, args.seed)
        net.load("platform", {"user_features": (["person_id", "age_band", "channel", "activity_segment"], features)})
        net.load("insurer", {"policies": (["policy_id", "person_id", "product", "premium", "start_date", "region"], policies),
                             "claims": (["claim_id", "person_id", "policy_id", "amount", "claim_date", "status"], claims)})
        net.start(["insurer", "platform"])
        net.grant("platform", "insurer", "user_features", "STATISTICS")
        progress.update(t, total=1, completed=1)
        spec = {"kind": "vertical", "platform": "platform", "min_cohort": 10, "deadline_seconds": 7200,
                "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}, {"column": "channel", "values": list(CHANNELS)},
                             {"column": "activity_segment", "values": list(SEGMENTS)}]}
        job, seconds = net.run_job("insurer", spec, progress, "vertical job")

        # correctness against the plain join (both sides hold the same persons here)
        amount_of = {c[1]: round(c[3] * 100) for c in claims}
        expected: dict[str, list] = {}
        for person, age, channel, segment in features:
            e = expected.setdefault(f"{age}|{channel}|{segment}", [0, 0, 0])
            e[0] += 1
            e[1] += person in amount_of
            e[2] += amount_of.get(person, 0)
        got = job["result"]["buckets"]
        correct = all((got[b]["persons"], got[b]["claimants"], round(got[b]["claim_amount"] * 100)) == tuple(e)
                      for b, e in expected.items() if e[0] >= 10) and len(got) == sum(1 for e in expected.values() if e[0] >= 10)

        from privacy.paillier import PublicKey

        public_key = PublicKey(int(_modulus(net, job)))  # the baseline encrypts under the same job key
        baseline_per_row = _baseline(public_key, features, claims, min(args.baseline_rows, args.rows), progress)
        ours_per_row = seconds / args.rows
        gate = _gate_cost(net, job, home)
        return {
            "ratio": round(baseline_per_row / ours_per_row, 1),
            "rows": args.rows,
            "seconds": round(seconds, 2),
            "correct": correct,
            "buckets": len(job["result"]["buckets"]),
            "baseline_us_per_row": round(baseline_per_row * 1e6, 1),
            "ours_us_per_row": round(ours_per_row * 1e6, 1),
            "baseline_extrapolated_seconds": round(baseline_per_row * args.rows, 1),
            "baseline_sample_rows": min(args.baseline_rows, args.rows),
            "chain_job_id": job["chain_job_id"],
            "includes": "HTTP between 2 node processes, openJob, commitContribution, publishResult, access log",
            **gate,
        }
    finally:
        net.stop()
        if owned is not None:
            owned.cleanup()


def _modulus(net: BenchNetwork, job: dict) -> str:
    """The job key's modulus from the insurer's store (the API shows only its fingerprint)."""
    import json

    conn = sqlite3.connect(net.db("insurer"))
    (raw,) = conn.execute("SELECT public_spec FROM stats_jobs WHERE id = ?", (job["id"],)).fetchone()
    conn.close()
    return json.loads(raw)["public_key"]["n"]


def _gate_cost(net: BenchNetwork, job: dict, home: Path) -> dict:
    """What the platform's release gate costs per vertical release, on its own rows in this process: the footprint of
    its bucket membership (one digest per user), the differencing check against an identical earlier release and the
    recorded history. (Included in ``seconds`` above already: this is its share.)"""
    import json
    import time

    from node.access.release_gate import ReleaseGate, Request
    from node.chain.deployment import Purpose
    from node.stats import local
    from node.store.db import create_store_engine

    conn = sqlite3.connect(net.db("insurer"))
    (raw,) = conn.execute("SELECT public_spec FROM stats_jobs WHERE id = ?", (job["id"],)).fetchone()
    conn.close()
    public = json.loads(raw)
    engine = create_store_engine(f"sqlite:///{net.db('platform')}")
    store = create_store_engine(f"sqlite:///{home / 'gate-bench.db'}")
    try:
        rows = local.platform_rows(engine, public)
        persons: dict[str, list[str]] = {b: [] for b in public["buckets"]}
        for person, bucket in rows:
            persons[bucket].append(person)
        gate = ReleaseGate(store, None, None, floor=10)
        req = Request("0x" + "11" * 20, "user_features", Purpose.STATISTICS, b"\0" * 32, "bench")
        t0 = time.perf_counter()
        gate.release(req, persons, public["min_cohort"])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        gate.release(req, persons, public["min_cohort"])
        second = time.perf_counter() - t0
    finally:
        engine.dispose()
        store.dispose()
    return {"gate_release_first_seconds": round(first, 3), "gate_release_compared_seconds": round(second, 3),
            "gate_persons": len(rows)}
