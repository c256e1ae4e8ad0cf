"""The requester's collecting of one-answer jobs, without a network: what is stored, and in which order."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from node.stats.collect import HorizontalRunner
from node.stats.store import StatsStore
from node.store.db import create_store_engine

OWNERS = ("0x" + "bb" * 20, "0x" + "cc" * 20)
COMMITMENT = "ab" * 32


class _Peer:
    def __init__(self, records: int):
        self.records = records

    def post_json(self, path, body, max_bytes):
        return {"contribution": {"from": "owner"}, "release": {"records": self.records, "min_cohort": 5,
                                                              "suppressed": ["2026-12"]}}

    def close(self):
        pass


def test_an_answer_is_stored_only_after_its_owner_s_release_report(tmp_path, monkeypatch):
    """The job goes on as soon as every answer is stored, and then bounds its plausibility check by the owners'
    record counts and withholds their suppressed buckets again: an answer seen before its owner's report made a run
    fail with `implausible_result` (count 218 outside 0 .. 109, one owner's 109 records missing)."""
    store = StatsStore(create_store_engine(f"sqlite:///{tmp_path / 'stats.db'}"))
    store.insert_job(id="job-1", kind="horizontal", name="claims", state="COLLECTING", public_spec={}, private_spec={},
                     spec_hash="00" * 32, participants=list(OWNERS), deadline_seconds=60, chain_job_id=7,
                     deadline=2**40, progress={"participants": {p: "pending" for p in OWNERS}})
    deps = SimpleNamespace(store=store, stop=threading.Event(),
                           ledger=SimpleNamespace(commitment_of=lambda chain_job, who: bytes.fromhex(COMMITMENT)),
                           clock=SimpleNamespace(now=lambda: 0),
                           peers=SimpleNamespace(answer_limit=lambda job, route: 1 << 20,
                                                 client=lambda who: _Peer(109 if who == OWNERS[0] else 110)))
    runner = HorizontalRunner(deps)
    monkeypatch.setattr(runner, "commitment", lambda job, who, payload: COMMITMENT)
    reports_when_stored = []
    add_received = store.add_received

    def watching(job_id, participant, payload, commitment):
        reports_when_stored.append((store.job(job_id)["progress"].get("releases") or {}).get(participant))
        add_received(job_id, participant, payload, commitment)

    monkeypatch.setattr(store, "add_received", watching)
    assert runner.run(store.job("job-1"), threading.Event()) is True
    assert len(reports_when_stored) == 2 and None not in reports_when_stored  # no answer before its report
    assert sorted(r["records"] for r in reports_when_stored) == [109, 110]  # every report was there before its answer
    assert all(r["suppressed"] == ["2026-12"] and r["min_cohort"] == 5 for r in reports_when_stored)
    assert set(store.received_for("job-1")) == set(OWNERS)
