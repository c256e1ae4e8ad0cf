"""The access-log index equals the chain: after random operations, after a crash mid-sync, after re-delivery."""
from __future__ import annotations

import random

import pytest
from audit_fixtures import chain_events, random_activity
from sqlalchemy import func, select, update

from node.audit import schema as s
from node.audit.indexer import AuditIndexer
from node.audit.queries import AuditQueries, LogFilter
from node.audit.verify import verify_index
from node.store.db import create_store_engine


def _engine(tmp_path, name="audit.db"):
    return create_store_engine(f"sqlite:///{tmp_path / name}")


def _index_counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        logs = conn.execute(select(func.count()).select_from(s.log)).scalar()
        others = conn.execute(select(func.count()).select_from(s.events)).scalar()
        rolled = conn.execute(select(func.coalesce(func.sum(s.daily.c.events), 0))).scalar()
    return logs, others, rolled


def _assert_index_equals_chain(engine, consortium):
    expected = chain_events(consortium)
    report = verify_index(engine, consortium.gateway, consortium.deployment.deployment_block)
    assert report.matches, report.to_json()
    assert report.chain_events == report.index_events == len(expected)
    logs, others, rolled = _index_counts(engine)
    hot = sum(1 for e in expected if e["event"] in ("AccessRecorded", "DenialRecorded"))
    assert (logs, others, rolled) == (hot, len(expected) - hot, hot)  # the daily rollup counts each event once


def test_index_equals_chain_after_random_operations_with_syncs_in_between(consortium, tmp_path):
    engine = _engine(tmp_path)
    indexer = AuditIndexer(engine, consortium.gateway, consortium.deployment, chunk_blocks=7)
    rng = random.Random(7)
    random_activity(consortium, rng, 40, on_step=lambda step: indexer.sync() if rng.random() < 0.3 else None)
    report = indexer.sync()
    assert indexer.indexed_block() == consortium.gateway.block_number()
    assert report.to_block == consortium.gateway.block_number()
    _assert_index_equals_chain(engine, consortium)


def test_crash_in_the_middle_of_a_sync_resumes_without_loss_or_double_count(consortium, tmp_path):
    random_activity(consortium, random.Random(11), 30)
    engine = _engine(tmp_path)
    first = AuditIndexer(engine, consortium.gateway, consortium.deployment, chunk_blocks=3)
    chunks = []

    def crash_on_fifth_chunk(lo, hi):
        chunks.append((lo, hi))
        if len(chunks) == 5:
            raise RuntimeError("simulated crash before commit")

    first.before_commit = crash_on_fifth_chunk
    with pytest.raises(RuntimeError):
        first.sync()
    stopped_at = first.indexed_block()
    assert stopped_at == chunks[3][1]  # four chunks committed, the fifth rolled back with its cursor
    engine.dispose()

    engine = _engine(tmp_path)  # a "restarted node": new engine, new indexer, same store
    AuditIndexer(engine, consortium.gateway, consortium.deployment).sync()
    _assert_index_equals_chain(engine, consortium)


def test_redelivered_logs_are_ignored(consortium, tmp_path):
    random_activity(consortium, random.Random(3), 15)
    engine = _engine(tmp_path)
    indexer = AuditIndexer(engine, consortium.gateway, consortium.deployment)
    indexer.sync()
    before = _index_counts(engine)
    with engine.begin() as conn:  # an operator moves the cursor back: every log is delivered again
        conn.execute(update(s.cursor).values(last_block=consortium.deployment.deployment_block - 1))
    indexer.sync()
    assert _index_counts(engine) == before
    # and a second indexer on the same store (the CLI while the node runs) adds nothing either
    AuditIndexer(engine, consortium.gateway, consortium.deployment).sync()
    assert _index_counts(engine) == before
    _assert_index_equals_chain(engine, consortium)


def test_verification_reports_a_tampered_a_missing_and_an_extra_row(consortium, tmp_path):
    random_activity(consortium, random.Random(5), 12)
    engine = _engine(tmp_path)
    AuditIndexer(engine, consortium.gateway, consortium.deployment).sync()
    with engine.begin() as conn:
        positions = list(conn.execute(select(s.log.c.pos).where(s.log.c.kind == s.KIND_ACCESS).order_by(s.log.c.pos)).scalars())
        conn.execute(update(s.log).where(s.log.c.pos == positions[0]).values(rows=999_999))
        conn.execute(s.log.delete().where(s.log.c.pos == positions[1]))
        row = conn.execute(select(s.log).where(s.log.c.pos == positions[2])).first()._asdict()
        conn.execute(s.log.insert().values({**row, "pos": positions[2] + 1_000}))
    report = verify_index(engine, consortium.gateway, consortium.deployment.deployment_block)
    assert not report.matches
    assert report.counts == {"missing": 1, "extra": 1, "different": 1}
    assert report.different[0]["chain"]["args"]["rows"] != 999_999 and report.different[0]["index"]["args"]["rows"] == 999_999


def test_every_answer_states_its_block_and_ignores_rows_above_it(consortium, tmp_path):
    random_activity(consortium, random.Random(9), 10)
    engine = _engine(tmp_path)
    indexer = AuditIndexer(engine, consortium.gateway, consortium.deployment)
    indexer.sync()
    queries = AuditQueries(engine)
    page = queries.search_logs(LogFilter(), limit=1000)
    assert page.as_of_block == indexer.indexed_block() and page.items
    older = page.items[len(page.items) // 2]["block"]
    pinned = queries.search_logs(LogFilter(), limit=1000, as_of=older)
    assert pinned.as_of_block == older
    assert pinned.items == [i for i in page.items if i["block"] <= older]
