"""Regulator dashboard and member view: time to build every figure over a large access-log index.

The index is filled directly in its own tables (``node/audit/schema.py``) with ``--events`` synthetic
accesses and ~2% denials over ``--days`` chain days (no chain: this measures the pages' queries, not
indexing, which the ``auditlog`` bench covers). Then, in the same run and on the same store:

- ``dashboard_<N>d_ms``: all regulator figures (``regulator_figures`` incl. the anomaly checks) for a
  window of N days, median of ``--runs``;
- ``member_7d_ms``: one member's figures and its uses table for 7 days;
- baselines: the access-log page the dashboard links to (first 50 rows, same window) and the existing
  rollup aggregate (``daily_counts`` per day, requester, purpose) for the same window.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

describe = "dashboard: time to build every regulator figure / member figure over a large index, vs the table page"

MEMBERS = 6
OUTSIDERS = 2
DAY = 86_400


def add_arguments(parser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="log entries in the synthetic index")
    parser.add_argument("--days", type=int, default=120, help="chain days the entries span")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (median reported)")


def _fill(engine, args, rng: random.Random, progress) -> tuple[list[str], int]:
    from web3 import Web3

    from node.audit import schema as s
    from node.chain.deployment import Purpose

    addresses = [Web3.to_checksum_address(f"0x{i + 1:040x}") for i in range(MEMBERS + OUTSIDERS)]
    start = 1_780_000_000 - 1_780_000_000 % DAY
    per_block = 50
    blocks = max(1, args.events // per_block)
    step = max(1, args.days * DAY // blocks)
    purposes = [int(p) for p in Purpose]
    daily: dict[tuple, list[int]] = {}
    task = progress.add_task("filling the index", total=blocks)
    with engine.begin() as conn:
        conn.execute(s.accounts.insert(), [{"id": i + 1, "address": a} for i, a in enumerate(addresses)])
        conn.execute(s.datasets.insert(), [{"id": i + 1, "dataset_id": bytes([i + 1]) * 32} for i in range(4)])
        conn.execute(s.grants.insert(), [{"grant_id": o * 100 + r, "owner": o, "grantee": r, "dataset": 1, "purpose": 4,
                                          "not_before": 0, "expires_at": start + 10 * args.days * DAY,
                                          "granted_pos": s.pos_of(1, o * 100 + r)}
                                         for o in range(1, MEMBERS + 1) for r in range(1, MEMBERS + 1) if o != r])
        for b in range(blocks):
            number, ts = b + 10, start + b * step
            conn.execute(s.transactions.insert().values(id=b + 1, tx_hash=rng.randbytes(32)))
            conn.execute(s.blocks.insert().values(block_number=number, ts=ts))
            rows = []
            for i in range(per_block):
                owner = rng.randint(1, MEMBERS)
                denial = rng.random() < 0.02
                requester = rng.randint(1, MEMBERS + OUTSIDERS) if denial else rng.choice(
                    [m for m in range(1, MEMBERS + 1) if m != owner])
                purpose = rng.choice(purposes)
                used = 0 if denial else rng.randint(1, 200)
                kind = s.KIND_DENIAL if denial else s.KIND_ACCESS
                rows.append({"pos": s.pos_of(number, i), "kind": kind, "ts": ts, "requester": requester, "owner": owner,
                             "purpose": purpose, "dataset": rng.randint(1, 4),
                             "grant_id": None if denial else owner * 100 + requester, "reason": 1 if denial else None,
                             "rows": None if denial else used, "query_hash": rng.randbytes(32), "tx": b + 1, "flag": 0})
                d = daily.setdefault((ts // DAY, requester, owner, purpose, kind), [0, 0])
                d[0] += 1
                d[1] += used
            conn.execute(s.log.insert(), rows)
            if b % 200 == 0:
                progress.update(task, completed=b)
        conn.execute(s.daily.insert(), [{"day": k[0], "requester": k[1], "owner": k[2], "purpose": k[3], "kind": k[4],
                                         "events": v[0], "rows": v[1]} for k, v in daily.items()])
        conn.execute(s.cursor.insert().values(id=1, last_block=blocks + 9, updated_at=int(time.time())))
    progress.remove_task(task)
    return addresses, start + (blocks - 1) * step


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def run(args, progress) -> dict:
    from node.audit import schema as s
    from node.audit.anomalies import AnomalyDetector
    from node.audit.queries import AuditQueries, LogFilter
    from node.store.db import create_store_engine
    from node.web.figures import Names, Window, member_figures, member_uses, regulator_figures

    rng = random.Random(16)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        s.init_audit_store(engine)
        t0 = time.perf_counter()
        addresses, end_ts = _fill(engine, args, rng, progress)
        fill_s = time.perf_counter() - t0
        queries, detector = AuditQueries(engine), AnomalyDetector(engine)
        as_of = queries.pinned_block()
        names = Names({a: f"member_{i}" for i, a in enumerate(addresses[:MEMBERS])})
        out: dict = {"events": args.events, "days": args.days, "fill_s": round(fill_s, 1)}
        for days in (7, 90):
            w = Window(as_of, end_ts, days)

            def dashboard(w=w):
                return regulator_figures(queries, detector.find(since=w.since, until=w.until), names, w)

            figures, _ = dashboard()
            in_window = sum(int(r[2]) for r in next(f for f in figures if f.key == "daily").data_rows)
            out[f"dashboard_{days}d_ms"] = _median_ms(dashboard, args.runs)
            out[f"events_in_{days}d"] = in_window
            f = LogFilter(since=w.since, until=w.until)
            out[f"baseline_table_page_{days}d_ms"] = _median_ms(lambda f=f: queries.search_logs(f, limit=50), args.runs)
            out[f"baseline_rollup_{days}d_ms"] = _median_ms(
                lambda f=f: queries.daily_counts(f, group_by=("day", "requester", "purpose")), args.runs)
        w = Window(as_of, end_ts, 7)
        out["member_7d_ms"] = _median_ms(lambda: (member_figures(queries, addresses[0], names, w),
                                                  member_uses(queries, addresses[0], names, w)), args.runs)
        return out
