"""Each filter of the access-log query returns exactly the chain's matching events, across pages and exports."""
from __future__ import annotations

import csv
import io
import json
import os
import random

import pytest
from audit_fixtures import DATASETS, MEMBERS, chain_events
from web3 import Web3

from node.audit.indexer import AuditIndexer
from node.audit.queries import AuditQueries, AuditQueryError, LogFilter
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason
from node.store.db import create_store_engine


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


# ---------------------------------------------------------------------- aggregates for the dashboard (issue 16)


def _plain_summary(events, f: LogFilter, group_by, as_of=None) -> dict:
    """The same grouping computed by hand from the chain's own events (the test's ground truth)."""
    from datetime import datetime, timezone

    from node.audit.queries import DATASET_NAMES

    keep = set(_expected(events, f))
    out: dict = {}
    for e in events:
        if (e["block"], e["log_index"]) not in keep or (as_of is not None and e["block"] > as_of):
            continue
        a = e["args"]
        access = e["event"] == "AccessRecorded"
        value = {"day": datetime.fromtimestamp(e["ts"], timezone.utc).strftime("%Y-%m-%d"), "requester": a["requester"],
                 "owner": a["owner"], "purpose": Purpose(a["purpose"]).name, "outcome": "access" if access else "denial",
                 "dataset": DATASET_NAMES.get(bytes.fromhex(a["datasetId"][2:]), a["datasetId"]),
                 "grant_id": a.get("grantId") if access else None}
        key = tuple(value[g] for g in group_by)
        events_rows = out.setdefault(key, [0, 0])
        events_rows[0] += 1
        events_rows[1] += a.get("rows", 0) if access else 0
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("group_by", [("day", "outcome"), ("owner", "requester", "outcome"), ("requester", "purpose"),
                                      ("requester", "purpose", "grant_id", "outcome"), ("dataset",), ("day", "purpose")])
def test_summaries_match_a_plain_count_of_the_events(history, group_by):
    queries, events = history["queries"], history["events"]
    for f in [LogFilter(), *_random_filters(history, 6, seed=len(group_by))]:
        result = queries.summarize_logs(f, group_by=group_by)
        got = {tuple(g[k] for k in group_by): (g["events"], g["rows"]) for g in result["groups"]}
        assert got == _plain_summary(events, f, group_by), (f, group_by)
    assert sum(g["events"] for g in queries.summarize_logs(LogFilter(), group_by=group_by)["groups"]) == len(events)


def test_summaries_are_pinned_to_the_block_asked_for(history):
    queries, events = history["queries"], history["events"]
    middle = sorted(e["block"] for e in events)[len(events) // 2]
    result = queries.summarize_logs(LogFilter(), group_by=("requester", "outcome"), as_of=middle)
    assert result["as_of_block"] == middle
    got = {(g["requester"], g["outcome"]): (g["events"], g["rows"]) for g in result["groups"]}
    assert got == _plain_summary(events, LogFilter(), ("requester", "outcome"), as_of=middle)
    assert sum(v[0] for v in got.values()) < len(events)


def test_summary_refuses_unknown_groupings(history):
    for bad in ((), ("tx_hash",), ("day", "query_hash")):
        with pytest.raises(AuditQueryError):
            history["queries"].summarize_logs(LogFilter(), group_by=bad)


def test_grants_of_a_member_are_exactly_those_it_gave_and_received(history):
    c, queries, grants = history["consortium"], history["queries"], history["grants"]
    for name in MEMBERS:
        me = c.accounts[name].address
        result = queries.grants_of(me)
        assert sorted(g["grant_id"] for g in result["given"]) == sorted(g for (o, _, _), g in grants.items() if o == name)
        assert sorted(g["grant_id"] for g in result["received"]) == sorted(g for (_, r, _), g in grants.items() if r == name)
        assert all(g["owner"] == me for g in result["given"]) and all(g["grantee"] == me for g in result["received"])
        for g in result["given"]:
            chain = c[name].get_grant(g["grant_id"])
            assert (g["purpose"], g["expires_at"], g["not_before"]) == (chain.purpose.name, chain.expires_at, chain.not_before)
    assert queries.grants_of(c.accounts["outsider"].address) == {"as_of_block": result["as_of_block"], "given": [],
                                                                   "received": []}
