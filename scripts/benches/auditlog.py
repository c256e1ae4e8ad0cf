"""Regulator access-log index: catch-up speed, filtered-query latency, and the same queries via eth_getLogs.

Generates ``--events`` AccessRecorded events (plus ~1% denials) on a private anvil with
recordAccessBatch (``--batch`` records per transaction, one chain block each, the chain clock moved
forward between blocks so the log spans several days). Generation is timed but is not a figure.
Then the node's indexer catches up from the deployment block (``index_events_per_s``), and a set of
typical regulator queries (first page of 100, newest first) runs against the index many times
(``p95_ms``) and once each as a client would answer it from the chain: eth_getLogs with every
usable topic filter, the indexer's fast decoder, client-side filtering and sorting (``ratio`` =
total chain time over total index time for the same queries, in the same run).
"""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

describe = "audit log: index catch-up (events/s), filtered query p95 (ms), speed-up over eth_getLogs"

OWNERS = 6
DATASETS = ["claims", "policies", "user_features", "fraud_list"]


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="access events to generate (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1500, help="records per recordAccessBatch transaction")
    parser.add_argument("--runs", type=int, default=40, help="runs of each query type against the index")
    parser.add_argument("--seconds-per-block", type=int, default=600, help="chain clock step between batches")


def _start_anvil(tmp: Path):
    from node.chain.anvil import DISK_BOUND, free_port, rpc_ready
    from node.paths import ANVIL_BINARY

    port = free_port()
    log = open(tmp / "anvil.log", "wb")
    # A larger block gas limit than anvil's default, so a batch of records fits one block with room to spare.
    proc = subprocess.Popen([str(ANVIL_BINARY), "--host", "127.0.0.1", "--port", str(port), "--accounts", "4",
                             "--balance", "1000000", "--gas-limit", "100000000", "--silent", *DISK_BOUND],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not rpc_ready(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("anvil did not start")
        time.sleep(0.05)
    return proc, url


def _generate(gw, args, progress, rng):
    from eth_account import Account

    from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
    from node.chain.ledger import Ledger, dataset_id
    from node.chain.reasons import DenialReason

    members = [Account.create() for _ in range(OWNERS)] + [Account.create()]  # the last one is the regulator
    deployer = Account.create()
    for a in [deployer, *members]:
        gw.fund(a.address, 1000)
    genesis = [GenesisMember(a.address, f"member{i}", Role.INSURER if i % 2 == 0 else Role.PLATFORM)
               for i, a in enumerate(members[:-1])] + [GenesisMember(members[-1].address, "regulator", Role.REGULATOR)]
    deployment = deploy_consortium(gw, deployer, genesis)
    ledgers = [Ledger(gw, a) for a in members[:-1]]
    now = gw.w3.eth.get_block("latest")["timestamp"]
    grants: dict[int, list[int]] = {i: [] for i in range(OWNERS)}
    for i, owner in enumerate(ledgers):
        for j in range(OWNERS):
            if i != j:
                for ds in DATASETS[:2]:
                    grants[i].append(owner.grant(members[j].address, dataset_id(ds), rng.choice(list(Purpose)),
                                                 expires_at=now + 365 * 86_400))
    first_block = gw.block_number()
    batches = (args.events + args.batch - 1) // args.batch
    task = progress.add_task("generating access events on anvil", total=batches)
    auth = gw.contract("DataUseAuthorization")
    sent = []
    gas = None
    started = time.perf_counter()
    ts = gw.w3.eth.get_block("latest")["timestamp"]
    for b in range(batches):
        i = b % OWNERS
        n = min(args.batch, args.events - b * args.batch)
        ids = [rng.choice(grants[i]) for _ in range(n)]
        fn = auth.functions.recordAccessBatch(ids, [os.urandom(32) for _ in range(n)], [rng.randint(1, 500) for _ in range(n)])
        if gas is None or n != args.batch:
            gas = int(fn.estimate_gas({"from": members[i].address}) * 1.1)
        ts += args.seconds_per_block
        gw.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
        sent.append(gw.submit(members[i], fn, gas=gas))
        if b % 40 == 39:  # ~1% denials, in their own blocks
            m = 200
            ts += 1
            gw.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
            sent.append(ledgers[i].record_denial_batch(
                [rng.choice(members).address for _ in range(m)], [dataset_id(rng.choice(DATASETS)) for _ in range(m)],
                [rng.choice(list(Purpose)) for _ in range(m)], [int(rng.choice(list(DenialReason))) for _ in range(m)],
                [os.urandom(32) for _ in range(m)]))
        progress.update(task, advance=1)
    for tx in sent:
        tx.wait(300)
    generation = time.perf_counter() - started
    progress.remove_task(task)
    return deployment, members, grants, first_block, generation


def _queries(rng, members, grants, block_ts: list[tuple[int, int]], n: int) -> list[dict]:
    """Typical regulator questions; each is (filter for our index, the chain-side equivalent)."""
    from node.chain.deployment import Purpose

    t_lo, t_hi = block_ts[0][1], block_ts[-1][1]
    out = []
    for k in range(n):
        kind = k % 6
        who = rng.choice(members[:OWNERS]).address
        start = rng.randint(t_lo, max(t_lo, t_hi - 86_400))
        if kind == 0:
            out.append({"name": "requester", "requester": who})
        elif kind == 1:
            out.append({"name": "owner+purpose", "owner": who, "purpose": rng.choice(list(Purpose)).name})
        elif kind == 2:
            out.append({"name": "dataset+day", "dataset": rng.choice(DATASETS[:2]), "since": start, "until": start + 86_400})
        elif kind == 3:
            out.append({"name": "denials", "outcome": "denial"})
        elif kind == 4:
            i = rng.randrange(OWNERS)
            out.append({"name": "grant", "grant_id": rng.choice(grants[i])})
        else:
            out.append({"name": "requester+day", "requester": who, "since": start, "until": start + 86_400})
    return out


def _chain_answer(source, q: dict, first_block: int, head: int, block_ts: list[tuple[int, int]], limit: int = 100):
    """Answer one query from the chain: eth_getLogs with every usable topic, then filter and sort locally."""
    from bisect import bisect_left

    from node.audit.decode import decode_access, decode_denial
    from node.chain.deployment import Purpose
    from node.chain.ledger import dataset_id

    def topic_address(a):
        return "0x" + "0" * 24 + a[2:].lower()

    lo, hi = first_block, head
    if "since" in q:  # the client is given the block range for free (found by timestamp bisection)
        times = [t for _, t in block_ts]
        lo = block_ts[bisect_left(times, q["since"])][0]
        hi = block_ts[max(0, bisect_left(times, q["until"]) - 1)][0]
    access, denial = source.access_topic, source.denial_topic
    kinds = [denial] if q.get("outcome") == "denial" else [access, denial]
    topics = [kinds, topic_address(q["requester"]) if "requester" in q else None,
              topic_address(q["owner"]) if "owner" in q else None,
              "0x" + int(Purpose[q["purpose"]]).to_bytes(32, "big").hex() if "purpose" in q else None]
    while topics and topics[-1] is None:
        topics.pop()
    found = []
    step = 50  # blocks per eth_getLogs call: ~75k logs
    for start in range(lo, hi + 1, step):
        raw = source._request("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(min(hi, start + step - 1)),
                                               "address": source.authorizations, "topics": topics}])
        for item in raw:
            t = item["topics"]
            if t[0] == access:
                fields = decode_access(_Log(t, item["data"]))
                ds, gid = fields[4], fields[3]
            else:
                fields = decode_denial(_Log(t, item["data"]))
                ds, gid = fields[3], None
            if "dataset" in q and ds != bytes(dataset_id(q["dataset"])):
                continue
            if "grant_id" in q and gid != q["grant_id"]:
                continue
            found.append((int(item["blockNumber"], 16), int(item["logIndex"], 16)))
    found.sort(reverse=True)
    return found[:limit]


class _Log:
    __slots__ = ("topics", "data")

    def __init__(self, topics, data):
        self.topics, self.data = topics, data


def run(args, progress) -> dict:
    from sqlalchemy import select

    from node.audit import schema as s
    from node.audit.decode import ConsortiumLogs
    from node.audit.indexer import AuditIndexer
    from node.audit.queries import AuditQueries, LogFilter
    from node.chain.compiler import compile_contracts
    from node.chain.gateway import ChainGateway
    from node.store.db import create_store_engine

    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc, url = _start_anvil(tmp)
        try:
            gw = ChainGateway.connect(url, compile_contracts())  # a benchmark deploys: it compiles (cached)
            deployment, members, grants, first_block, generation = _generate(gw, args, progress, rng)
            head = gw.block_number()

            engine = create_store_engine(f"sqlite:///{tmp / 'audit.db'}")
            indexer = AuditIndexer(engine, gw, deployment)
            task = progress.add_task("indexing", total=head - deployment.deployment_block + 1)
            report = indexer.sync(progress=lambda done, target: progress.update(
                task, completed=done - deployment.deployment_block + 1))
            progress.remove_task(task)
            queries = AuditQueries(engine)
            status = queries.status()

            with engine.connect() as conn:
                block_ts = [(b, t) for b, t in conn.execute(select(s.blocks.c.block_number, s.blocks.c.ts)
                                                            .order_by(s.blocks.c.block_number))]
            plan = _queries(rng, members, grants, block_ts, 6 * args.runs)
            latencies: dict[str, list[float]] = {}
            answers = {}
            task = progress.add_task("index queries", total=len(plan))
            for q in plan:
                f = LogFilter.parse(**{k: v for k, v in q.items() if k != "name"})
                t0 = time.perf_counter()
                page = queries.search_logs(f, limit=100)
                latencies.setdefault(q["name"], []).append((time.perf_counter() - t0) * 1000)
                answers[id(q)] = [(i["block"], i["log_index"]) for i in page.items]
                progress.update(task, advance=1)
            progress.remove_task(task)
            all_ms = sorted(x for v in latencies.values() for x in v)
            p95 = all_ms[int(0.95 * (len(all_ms) - 1))]

            # The same queries from the chain: one of each type per round, a few rounds.
            source = ConsortiumLogs(gw)
            sample = plan[:12]
            ours_total, chain_total = 0.0, 0.0
            task = progress.add_task("eth_getLogs baseline", total=len(sample))
            for q in sample:
                t0 = time.perf_counter()
                expected = _chain_answer(source, q, first_block, head, block_ts)
                chain_total += time.perf_counter() - t0
                f = LogFilter.parse(**{k: v for k, v in q.items() if k != "name"})
                runs = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    page = queries.search_logs(f, limit=100)
                    runs.append(time.perf_counter() - t0)
                ours_total += statistics.median(runs)
                got = [(i["block"], i["log_index"]) for i in page.items]
                if got != expected:
                    raise AssertionError(f"index and chain disagree on {q}: {got[:3]} vs {expected[:3]}")
                progress.update(task, advance=1)
            progress.remove_task(task)
            db_mb = (tmp / "audit.db").stat().st_size / 1e6
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "events": status["access_events"],
        "p95_ms": round(p95, 3),
        "ratio": round(chain_total / ours_total, 1),
        "index_events_per_s": round(report.events_per_second),
        "denial_events": status["denial_events"],
        "blocks": head - deployment.deployment_block + 1,
        "index_seconds": round(report.seconds, 1),
        "p50_ms": round(statistics.median(all_ms), 3),
        "p95_ms_by_query": {k: round(sorted(v)[int(0.95 * (len(v) - 1))], 3) for k, v in latencies.items()},
        "eth_getlogs_ms_mean": round(chain_total / len(sample) * 1000, 1),
        "index_ms_mean_same_queries": round(ours_total / len(sample) * 1000, 3),
        "db_mb": round(db_mb, 1),
        "generation_seconds": round(generation, 1),
    }
