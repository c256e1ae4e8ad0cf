"""Each filter of the access-log query returns exactly the chain's matching events, across pages and exports."""
from __future__ import annotations

import csv
import io
import json
import os
import random

import pytest
from web3 import Web3

from node.audit.indexer import AuditIndexer
from node.audit.queries import AuditQueries, AuditQueryError, LogFilter
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason
from node.store.db import create_store_engine

from audit_fixtures import DATASETS, MEMBERS, chain_events


@pytest.fixture(scope="module")
def history(anvil, artifacts, tmp_path_factory):
    """Grants, accesses and denials spread over three chain days, indexed."""
    from conftest import build_consortium
    from node.chain.gateway import ChainGateway

    c = build_consortium(ChainGateway.connect(anvil.url, artifacts))
    rng = random.Random(21)
    grants = {}
    for owner in MEMBERS:
        for grantee in MEMBERS:
            if owner != grantee:
                for ds in DATASETS[:2]:
                    purpose = rng.choice(list(Purpose))
                    grants[(owner, grantee, ds)] = c[owner].grant(c.accounts[grantee].address, dataset_id(ds), purpose,
                                                                  expires_at=c.now() + 10 * 86_400)
    for day in range(3):
        for owner in MEMBERS:
            mine = [g for (o, _, _), g in grants.items() if o == owner]
            ids = [rng.choice(mine) for _ in range(rng.randint(5, 25))]
            c[owner].record_access_batch(ids, [os.urandom(32) for _ in ids], [rng.randint(1, 99) for _ in ids]).wait()
            n = rng.randint(1, 6)
            c[owner].record_denial_batch([c.accounts[rng.choice(MEMBERS + ["outsider"])].address for _ in range(n)],
                                         [dataset_id(rng.choice(DATASETS)) for _ in range(n)],
                                         [rng.choice(list(Purpose)) for _ in range(n)],
                                         [int(DenialReason.NO_GRANT)] * n, [os.urandom(32) for _ in range(n)]).wait()
        c.advance(86_400)
    engine = create_store_engine(f"sqlite:///{tmp_path_factory.mktemp('q') / 'audit.db'}")
    AuditIndexer(engine, c.gateway, c.deployment).sync()
    events = [e for e in chain_events(c) if e["event"] in ("AccessRecorded", "DenialRecorded")]
    return {"consortium": c, "queries": AuditQueries(engine), "events": events, "grants": grants}


def _expected(events, f: LogFilter) -> list[tuple[int, int]]:
    out = []
    for e in events:
        a = e["args"]
        if f.requester and a["requester"] != f.requester or f.owner and a["owner"] != f.owner:
            continue
        if f.purpose is not None and a["purpose"] != f.purpose:
            continue
        if f.dataset is not None and a["datasetId"] != "0x" + f.dataset.hex():
            continue
        if f.outcome is not None and (e["event"] == "AccessRecorded") != (f.outcome == 1):
            continue
        if f.grant_id is not None and a.get("grantId") != f.grant_id:
            continue
        if f.since is not None and e["ts"] < f.since or f.until is not None and e["ts"] >= f.until:
            continue
        out.append((e["block"], e["log_index"]))
    return sorted(out, reverse=True)


def _all_pages(queries, f, limit):
    items, cursor = [], None
    while True:
        page = queries.search_logs(f, limit=limit, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        assert len(page.items) == limit
        cursor = page.next_cursor


def _random_filters(history, n, seed):
    c, rng = history["consortium"], random.Random(seed)
    times = sorted(e["ts"] for e in history["events"])
    for _ in range(n):
        kw = {}
        for key in rng.sample(["requester", "owner", "purpose", "dataset", "outcome", "since", "until", "grant_id"],
                              rng.randint(1, 3)):
            if key in ("requester", "owner"):
                kw[key] = c.accounts[rng.choice(MEMBERS + ["outsider"])].address
            elif key == "purpose":
                kw[key] = rng.choice(list(Purpose)).name
            elif key == "dataset":
                kw[key] = rng.choice(DATASETS)
            elif key == "outcome":
                kw[key] = rng.choice(["access", "denial"])
            elif key in ("since", "until"):
                kw[key] = rng.choice(times) + rng.choice([0, 1])
            else:
                kw[key] = rng.choice(list(history["grants"].values()))
        yield LogFilter.parse(**kw)


def test_each_single_filter_returns_exactly_the_matching_events(history):
    c, queries, events = history["consortium"], history["queries"], history["events"]
    times = sorted(e["ts"] for e in events)
    singles = [LogFilter.parse(requester=c.accounts["platform"].address), LogFilter.parse(owner=c.accounts["insurer_b"].address),
               LogFilter.parse(purpose="CLAIMS"), LogFilter.parse(dataset="claims"), LogFilter.parse(outcome="denial"),
               LogFilter.parse(outcome="access"), LogFilter.parse(since=times[len(times) // 2]),
               LogFilter.parse(until=times[len(times) // 2]), LogFilter.parse(grant_id=next(iter(history["grants"].values()))),
               LogFilter.parse(requester=c.accounts["outsider"].address, outcome="denial"), LogFilter()]
    for f in singles:
        expected = _expected(events, f)
        got = [(i["block"], i["log_index"]) for i in _all_pages(queries, f, 1000)]
        assert got == expected, f
    assert any(_expected(events, f) for f in singles[:-1])


def test_random_filter_combinations_across_pages(history):
    for f in _random_filters(history, 40, seed=4):
        got = [(i["block"], i["log_index"]) for i in _all_pages(history["queries"], f, 7)]
        assert got == _expected(history["events"], f), f


def test_exports_hold_the_same_rows_as_the_pages(history):
    queries, c = history["queries"], history["consortium"]
    f = LogFilter.parse(owner=c.accounts["insurer_a"].address)
    items = _all_pages(queries, f, 1000)
    block, lines = queries.export_csv(f)
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert [(int(r["block"]), int(r["log_index"]), r["tx_hash"], r["requester"]) for r in rows] == \
           [(i["block"], i["log_index"], i["tx_hash"], i["requester"]) for i in items]
    _, pieces = queries.export_json(f)
    doc = json.loads("".join(pieces))
    assert doc["as_of_block"] == block and doc["items"] == items


def test_daily_aggregate_matches_the_events(history):
    queries, events = history["queries"], history["events"]
    result = queries.daily_counts(LogFilter.parse(outcome="access"), group_by=("day", "requester", "purpose"))
    expected: dict = {}
    from datetime import datetime, timezone
    for e in events:
        if e["event"] == "AccessRecorded":
            key = (datetime.fromtimestamp(e["ts"], timezone.utc).strftime("%Y-%m-%d"), e["args"]["requester"],
                   Purpose(e["args"]["purpose"]).name)
            expected[key] = expected.get(key, 0) + 1
    assert {(g["day"], g["requester"], g["purpose"]): g["events"] for g in result["groups"]} == expected
    assert len({g["day"] for g in result["groups"]}) >= 3


@pytest.mark.parametrize("kwargs", [{"purpose": "GAMBLING"}, {"outcome": "maybe"}, {"requester": "0x12"},
                                    {"since": "yesterday"}, {"dataset": "0xabc"}, {"grant_id": "one"}])
def test_bad_filters_are_refused_with_what_was_expected(kwargs):
    with pytest.raises(AuditQueryError) as err:
        LogFilter.parse(**kwargs)
    assert err.value.hint


def test_unknown_member_or_dataset_matches_nothing(history):
    queries = history["queries"]
    assert queries.search_logs(LogFilter.parse(requester=Web3.to_checksum_address("0x" + "11" * 20))).items == []
    assert queries.search_logs(LogFilter.parse(dataset="no_such_dataset")).items == []
