"""The statistics tables of the node's store: jobs it requested, what it received, what it contributed.

``stats_jobs``          one row per job this node requested (state, specs, chain id, progress, result)
``stats_received``      contributions received for those jobs, as sent (validated against the chain)
``stats_contributed``   this node's own answers to other members' jobs: a retried request gets the
                        stored answer back, so a participant never computes or commits twice
``stats_budget``        no longer written: each owner's DP budget is the release gate's (node/access/release_gate.py,
                        ``release_budget``); kept so existing stores keep their schema
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.engine import Engine

from node.store.db import migrate

SCHEMA_VERSION = 1
metadata = MetaData()

OPEN, COLLECTING, PUBLISHED, FAILED = "OPEN", "COLLECTING", "PUBLISHED", "FAILED"

jobs = Table(
    "stats_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("public_spec", Text, nullable=False),
    Column("private_spec", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("participants", Text, nullable=False),
    Column("deadline_seconds", Integer, nullable=False),
    Column("chain_job_id", BigInteger),
    Column("deadline", BigInteger),  # chain time (unix seconds)
    Column("chain_aborted", Boolean, nullable=False, default=False),
    Column("progress", Text, nullable=False, default="{}"),
    Column("error_reason", String(64)),
    Column("error_message", Text),
    Column("missing", Text),
    Column("result", Text),
    Column("result_hash", String(64)),
    Column("rerun_of", String(40)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

received = Table(
    "stats_received", metadata,
    Column("job_id", String(40), primary_key=True),
    Column("participant", String(42), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
)

contributed = Table(
    "stats_contributed", metadata,
    Column("requester", String(42), primary_key=True),
    Column("chain_job_id", BigInteger, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

budget = Table("stats_budget", metadata, Column("id", Integer, primary_key=True), Column("state", Text, nullable=False))

_JSON_COLUMNS = ("public_spec", "private_spec", "participants", "progress", "missing", "result")


class StatsStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.RLock()  # read-modify-write of a job row's JSON (progress) happens under it
        migrate(engine, "stats", metadata, SCHEMA_VERSION)

    # ------------------------------------------------------------------ jobs

    def insert_job(self, **values: Any) -> None:
        now = time.time()
        row = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}
        with self.engine.begin() as conn:
            conn.execute(jobs.insert().values(created_at=now, updated_at=now, chain_aborted=False, **row))

    def update_job(self, job_id: str, **values: Any) -> None:
        row = {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(updated_at=time.time(), **row))

    def set_progress(self, job_id: str, **changes: Any) -> None:
        with self.lock:
            job = self.job(job_id)
            if job is not None:
                self.update_job(job_id, progress={**job["progress"], **changes})

    def set_participant_status(self, job_id: str, participant: str, status: str) -> None:
        self._set_per_participant(job_id, "participants", participant, status)

    def set_participant_release(self, job_id: str, participant: str, report: dict) -> None:
        """What a participant's release gate said about its answer (k applied, suppressed buckets, records)."""
        self._set_per_participant(job_id, "releases", participant, report)

    def _set_per_participant(self, job_id: str, key: str, participant: str, value) -> None:
        """Set ``progress[key][participant]`` of a job (read, change, write under the store's lock)."""
        with self.lock:
            job = self.job(job_id)
            if job is not None:
                entries = dict(job["progress"].get(key, {}))
                entries[participant] = value
                self.update_job(job_id, progress={**job["progress"], key: entries})

    def job(self, job_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _decode(row) if row else None

    def list_jobs(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)).all()
        return [_decode(r) for r in rows]

    def jobs_in(self, *states: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.state.in_(states)).order_by(jobs.c.created_at)).all()
        return [_decode(r) for r in rows]

    # ------------------------------------------------------------------ received contributions

    def add_received(self, job_id: str, participant: str, payload: dict, commitment: str) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(select(received.c.participant).where(received.c.job_id == job_id,
                                                                       received.c.participant == participant)).first()
            if exists is None:
                conn.execute(received.insert().values(job_id=job_id, participant=participant, payload=json.dumps(payload),
                                                      commitment=commitment, received_at=time.time()))

    def received_for(self, job_id: str) -> dict[str, dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(received).where(received.c.job_id == job_id)).all()
        return {r.participant: json.loads(r.payload) for r in rows}

    # ------------------------------------------------------------------ own contributions

    def own_contribution(self, requester: str, chain_job_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(contributed).where(contributed.c.requester == requester,
                                                         contributed.c.chain_job_id == chain_job_id)).first()
        if row is None:
            return None
        return {"kind": row.kind, "spec_hash": row.spec_hash, "payload": json.loads(row.payload),
                "commitment": row.commitment, "records": row.records}

    def save_own_contribution(self, requester: str, chain_job_id: int, kind: str, spec_hash: str, payload: dict,
                              commitment: str, records: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(contributed.insert().values(requester=requester, chain_job_id=chain_job_id, kind=kind, spec_hash=spec_hash,
                                                     payload=json.dumps(payload), commitment=commitment, records=records,
                                                     created_at=time.time()))


def _decode(row: Any) -> dict:
    out = dict(row._mapping)
    for key in _JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out
