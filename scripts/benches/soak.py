"""Soak: mixed signed traffic against a real node for N seconds, then every answer checked against the chain.

Traffic (4 client threads): served queries (a grantee with a STATISTICS grant), refused queries (a
member without a grant, and a non-member), evidence hashes (the operator), statistics job listings
(the operator). Afterwards the node's access log is drained and the chain is read: every served
query must be one AccessRecorded and every refused one a DenialRecorded, exactly.

Memory: ``rss_idle_mb`` before any traffic, ``rss_start_mb`` after ``--warmup`` seconds of the same traffic
(first-use imports, pools and the replay window filling up), ``rss_end_mb`` at the end; ``rss_drift_pct``
is end against start, ``rss_warm_growth_pct`` the warm-up's own growth, both reported.
"""
from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

describe = ("soak: mixed signed traffic for --warmup then --seconds; rps, p95, errors, RSS drift after the warm-up, "
            "served = logged, refused = denials")


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds of the same mixed traffic before the RSS baseline (first-use imports, caches, "
                             "pools, the replay window filling); counted in served/refused and errors, not in rps/p95")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run(args, progress) -> dict:
    from benches.fuzz import Network
    from node.chain.events import EventReader

    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        net = Network.start(Path(tmp), node_names=("insurer-east",), timeout=300)  # start-up on a loaded machine
        try:
            return _soak(net, args, progress, EventReader)
        finally:
            net.stop()


def _soak(net, args, progress, EventReader) -> dict:
    node = "insurer-east"
    owner = net.dev.keys[node].address
    net.import_claims(node, rows=500)
    operator = net.client("operator", node)
    grantee = net.dev.keys["insurer-west"].address
    r = operator.request("POST", "/grants", {"grantee": grantee, "dataset": "claims", "purpose": "STATISTICS",
                                             "expires_at": int(time.time()) + 7 * 86400,
                                             "consent_ref": "0x" + hashlib.sha256(b"soak: legal basis").hexdigest()})
    assert r.status_code == 201, r.text
    start_block = net.dev.gateway.block_number()
    pid = net.nodes[node].process.pid

    from node.client import NodeClient

    def client(name: str) -> NodeClient:
        account = net.outsider if name == "outsider" else net.dev.keys[name].account
        return NodeClient(net.nodes[node].url, account, owner, net.dev.gateway.chain_id)

    counts: Counter = Counter()
    rss_idle = _rss_mb(pid)  # before any soak traffic
    unanswered = 0
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    task = progress.add_task("soak", total=args.warmup + args.seconds)

    def worker(index: int, stop_at: float, timed: bool) -> None:
        nonlocal unanswered
        clients = {n: client(n) for n in ("insurer-west", "shop-platform", "outsider", node)}
        n = index
        try:
            while time.monotonic() < stop_at:
                n += 1
                kind = ("served", "served", "served", "refused_member", "refused_outsider", "evidence", "stats")[n % 7]
                t0 = time.perf_counter()
                with lock:
                    counts["attempts"] += 1
                try:
                    if kind == "served":
                        r = clients["insurer-west"].query("claims", "STATISTICS", metric="sum", column="amount",
                                                          group_by="age_band")
                        ok = r.status_code == 200
                    elif kind.startswith("refused"):
                        who = "shop-platform" if kind == "refused_member" else "outsider"
                        r = clients[who].query("claims", "CLAIMS")
                        ok = r.status_code == 403
                    elif kind == "evidence":
                        digest = hashlib.sha256(os.urandom(16)).hexdigest()
                        r = clients[node].request("POST", "/evidence/hashes", {"sha256": digest, "claim_id": f"SOAK-{n % 50}",
                                                                              "doc_type": "invoice"})
                        ok = r.status_code == 200
                    else:
                        r = clients[node].request("GET", "/stats/jobs")
                        ok = r.status_code == 200
                except Exception as exc:  # a dropped connection or a timeout is an error of the run, not a crash
                    with lock:
                        unanswered += 1
                        errors.append(f"{kind}: {type(exc).__name__}")
                    continue
                elapsed = time.perf_counter() - t0
                with lock:
                    if timed:
                        latencies.append(elapsed)
                    if ok:
                        counts["refused" if kind.startswith("refused") else kind] += 1
                    else:
                        errors.append(f"{kind}: {r.status_code} {r.text[:120]}")
        finally:
            for c in clients.values():
                c.close()

    def phase(seconds: float, timed: bool, done_before: float) -> float:
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=worker, args=(i, stop_at, timed)) for i in range(args.threads)]
        started = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            progress.update(task, completed=done_before + min(seconds, time.monotonic() - started))
        return time.monotonic() - started

    # Warm-up: the same traffic, so first-use costs (imports on the first refusal, connection pools, the
    # replay window filling up) are not counted as drift. Its growth is reported too (rss_warm_growth_pct).
    if args.warmup > 0:
        phase(args.warmup, False, 0.0)
    rss_start = _rss_mb(pid)
    warm_requests = counts["attempts"]
    duration = phase(args.seconds, True, args.warmup)
    rss_end = _rss_mb(pid)

    # Drain: the node's queue of access and denial records must reach the chain.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        queue = operator.request("GET", "/ready").json().get("access_log") or {"pending": 1}  # not ready yet: wait
        if queue.get("pending", 0) == 0 and queue.get("sent", 0) == 0:
            break
        time.sleep(0.5)
    events = EventReader(net.dev.gateway).read(start_block + 1)
    on_chain = Counter(e.event for e in events if e.args.get("owner") == owner)
    return {
        "seconds": round(duration, 1), "threads": args.threads, "warmup_seconds": args.warmup,
        "warmup_requests": warm_requests, "requests": counts["attempts"],
        "rps": round(len(latencies) / duration, 1),
        "p95_ms": round(statistics.quantiles(latencies, n=20)[18] * 1000, 1) if len(latencies) >= 20 else None,
        "errors": len(errors), "first_errors": errors[:5],
        # drift: from the end of the warm-up to the end; the warm-up's own growth is reported beside it
        "rss_idle_mb": rss_idle, "rss_start_mb": rss_start, "rss_end_mb": rss_end,
        "rss_drift_pct": round(100 * (rss_end - rss_start) / rss_start, 1) if rss_start else None,
        "rss_warm_growth_pct": round(100 * (rss_start - rss_idle) / rss_idle, 1) if rss_idle else None,
        "served": counts["served"], "logged_on_chain": on_chain["AccessRecorded"],
        "refused": counts["refused"], "denials_on_chain": on_chain["DenialRecorded"],
        "evidence_accepted": counts["evidence"], "stats_calls": counts["stats"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
