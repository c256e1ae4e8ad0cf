"""The event indexer: follows the chain from the deployment block into the audit tables.

Each chunk of blocks is written in one store transaction together with the cursor, so a crash leaves
either the whole chunk and the advanced cursor, or neither: a restart resumes at the cursor and never
loses or double-counts an event. The transaction starts by touching the cursor row, which takes the
store's write lock first: two indexers on one store (the node's thread and `consortium audit sync`)
then take turns, and the second re-reads the cursor and skips what the first has done. Rows are
inserted with INSERT OR IGNORE on their chain position, so a re-delivered log is a no-op.

Finality: a permissioned QBFT network finalizes every block, and anvil never reorganizes, so blocks are
indexed as soon as they exist. Clique can reorganize: the indexer lags ``confirmations`` blocks (the
gateway's setting by default) and, for blocks near the head, keeps their hashes with the cursor. Each
sync first checks that the cursor's block is still canonical; if not, it finds the newest stored block
that is, rolls back every row after it (log, events, grants, revocations, jobs, the daily rollup) in
one transaction, moves the cursor there, and indexes the canonical blocks again.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, delete, select, update
from sqlalchemy.engine import Connection, Engine
from web3 import Web3

from node.audit import schema as s
from node.audit.decode import CATEGORIES, ConsortiumLogs, RawLog, canonical_json, decode_access, decode_denial
from node.chain.deployment import Deployment
from node.chain.errors import ChainError
from node.chain.gateway import ChainGateway
from node.store.db import migrate
from node.worker import BackgroundLoop

log = logging.getLogger("consortium.audit")

DAY = 86_400
# A node serves a request while its grant is valid and logs it on chain up to a flush interval later:
# a use logged this many seconds after expiry or revocation is not flagged.
DEFAULT_GRACE_SECONDS = 30
# Blocks this close to the head have their hashes kept, to detect a reorg (Clique's are a few blocks deep).
REORG_WINDOW = 256

_reorg_metadata = MetaData()
block_hashes = Table("audit_block_hashes", _reorg_metadata,
                     Column("block_number", BigInteger, primary_key=True, autoincrement=False),
                     Column("hash", LargeBinary(32), nullable=False))


class ChainReorganized(ChainError):
    """The chain changed under a chunk being indexed; the next pass detects and rolls back."""


@dataclass
class SyncReport:
    from_block: int
    to_block: int
    blocks: int = 0
    events: int = 0
    access_events: int = 0
    seconds: float = 0.0
    chunks: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Grant:
    owner: int
    grantee: int
    not_before: int
    expires_at: int
    revoked_pos: int | None = None
    revoked_ts: int | None = None


@dataclass
class _Chunk:
    """What one chunk writes, gathered before the transaction so the transaction stays short."""

    log_rows: list[tuple] = field(default_factory=list)
    event_rows: list[dict] = field(default_factory=list)
    grant_rows: list[dict] = field(default_factory=list)
    revocations: list[tuple[int, int, int]] = field(default_factory=list)  # grant_id, pos, ts
    job_rows: list[dict] = field(default_factory=list)
    job_states: list[tuple[int, str]] = field(default_factory=list)
    daily: dict[tuple, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    blocks: dict[int, int] = field(default_factory=dict)
    tx_hashes: set[str] = field(default_factory=set)


class AuditIndexer(BackgroundLoop):
    thread_name = "audit-indexer"

    def __init__(self, engine: Engine, gateway: ChainGateway, deployment: Deployment, *, chunk_blocks: int = 2000,
                 target_logs: int = 20_000, confirmations: int | None = None, poll_seconds: float = 1.0,
                 grace_seconds: int = DEFAULT_GRACE_SECONDS):
        self.engine = engine
        self.gateway = gateway
        self.start_block = deployment.deployment_block
        self.source = ConsortiumLogs(gateway)
        self.max_chunk = chunk_blocks
        self.target_logs = target_logs
        self.confirmations = gateway.confirmations if confirmations is None else confirmations
        self.poll_seconds = poll_seconds
        self.grace = grace_seconds
        self.last_error: str | None = None
        self._chunk_blocks = min(chunk_blocks, 16)  # grows towards target_logs per answer
        self._init_loop()
        self._sync_lock = threading.Lock()
        self._sqlite = engine.dialect.name == "sqlite"
        self.before_commit: Callable[[int, int], None] | None = None  # test hook: (from_block, to_block)
        s.init_audit_store(engine)
        migrate(engine, "audit_reorg", _reorg_metadata, 1)
        self.rollbacks = 0  # reorgs detected and rolled back (for tests and status)
        with engine.begin() as conn:
            if conn.execute(select(s.cursor.c.last_block)).scalar() is None:
                conn.execute(s.cursor.insert().values(id=1, last_block=self.start_block - 1, updated_at=int(time.time())))
        self._reset_caches()

    # ------------------------------------------------------------------ state

    def indexed_block(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(s.cursor.c.last_block)).scalar_one()

    def _reset_caches(self) -> None:
        with self.engine.connect() as conn:
            self._accounts = {a.lower(): i for i, a in conn.execute(select(s.accounts.c.id, s.accounts.c.address))}
            self._datasets = {bytes(d): i for i, d in conn.execute(select(s.datasets.c.id, s.datasets.c.dataset_id))}
        self._grants: dict[int, _Grant] = {}
        self._last_cursor: int | None = None

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync(stop=self._stop)
                self.last_error = None
            except Exception as exc:  # chain down, store busy: keep the thread alive and retry
                if self.last_error != str(exc):
                    log.warning("audit indexer: %s; retrying", exc)
                self.last_error = str(exc)
            self._pause(self.poll_seconds)

    # ------------------------------------------------------------------ sync

    def sync(self, to_block: int | None = None, *, stop: threading.Event | None = None,
             progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Index every block after the cursor up to ``to_block`` (default: the head less confirmations)."""
        with self._sync_lock:
            self._check_reorg()
            chain_head = self.source.head()
            head = chain_head - self.confirmations
            target = head if to_block is None else min(to_block, head)
            cursor = self.indexed_block()
            report = SyncReport(cursor + 1, target)
            started = time.perf_counter()
            while cursor < target and not (stop is not None and stop.is_set()):
                hi = min(cursor + self._chunk_blocks, target)
                near_head = hi >= chain_head - REORG_WINDOW
                hi_hash = self._headers([hi])[hi][0] if near_head else None
                try:
                    logs = self.source.logs(cursor + 1, hi)
                except ChainError:
                    if hi > cursor + 1:  # too many logs for one answer: halve the range and retry
                        self._chunk_blocks = max(1, (hi - cursor) // 2)
                        continue
                    raise
                try:
                    written, accesses = self._index_chunk(cursor + 1, hi, logs, chain_head, hi_hash)
                except ChainReorganized:
                    self._reset_caches()
                    break  # the next sync finds the fork and rolls back
                except BaseException:
                    self._reset_caches()  # ids and grants of the rolled-back transaction are gone
                    raise
                report.events += written
                report.access_events += accesses
                report.blocks += hi - cursor
                report.chunks += 1
                # Aim at ``target_logs`` logs per eth_getLogs answer.
                if len(logs) > self.target_logs:
                    self._chunk_blocks = max(1, self._chunk_blocks // 2)
                elif len(logs) < self.target_logs // 4:
                    self._chunk_blocks = min(self.max_chunk, self._chunk_blocks * 2)
                cursor = hi
                if progress is not None:
                    progress(cursor, target)
            report.seconds = time.perf_counter() - started
            return report

    # ------------------------------------------------------------------ one chunk

    # ------------------------------------------------------------------ reorgs

    def _headers(self, numbers: list[int]) -> dict[int, tuple[bytes, int] | None]:
        """(hash, timestamp) of canonical blocks by number; None where the chain has no such block."""
        out: dict[int, tuple[bytes, int] | None] = {}
        gateway = self.source.gateway
        provider = gateway.w3.provider
        if gateway.rpc_url is not None and hasattr(provider, "make_batch_request"):
            for i in range(0, len(numbers), 500):
                part = numbers[i:i + 500]
                answers = gateway.rpc(lambda: provider.make_batch_request(
                    [("eth_getBlockByNumber", [hex(b), False]) for b in part]))
                if not isinstance(answers, list):
                    raise ChainError(f"batch request for block headers failed: {answers}")
                for number, answer in zip(part, answers):
                    block = answer.get("result")
                    out[number] = (bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16)) if block else None
            return out
        for number in numbers:
            try:
                block = gateway.rpc(lambda: gateway.w3.eth.get_block(number))
            except ChainError:
                block = None
            out[number] = (bytes(block["hash"]), int(block["timestamp"])) if block else None
        return out

    def _check_reorg(self) -> None:
        """Roll back to the newest stored block that is still canonical, if the cursor's block is not."""
        with self.engine.connect() as conn:
            cursor = conn.execute(select(s.cursor.c.last_block)).scalar_one()
            stored = conn.execute(select(block_hashes.c.block_number, block_hashes.c.hash)
                                  .where(block_hashes.c.block_number <= cursor)
                                  .order_by(block_hashes.c.block_number.desc()).limit(REORG_WINDOW)).all()
        if not stored:
            return
        newest = stored[0]
        found = self._headers([newest.block_number])[newest.block_number]
        if found is not None and found[0] == bytes(newest.hash):
            return  # the cursor's chain is canonical, and so is every block before it (hash chain)
        canonical = self._headers([n for n, _ in stored[1:]])
        fork = next((n for n, h in stored[1:] if canonical.get(n) is not None and canonical[n][0] == bytes(h)),
                    min(n for n, _ in stored) - 1)
        log.warning("audit indexer: chain reorganized after block %d (cursor was %d); rolling back", fork, cursor)
        self._rollback(fork)

    def _rollback(self, fork: int) -> None:
        """Remove every indexed row after block ``fork`` and move the cursor there, in one transaction."""
        cut = s.pos_of(fork + 1, 0)
        with self.engine.begin() as conn:
            conn.execute(update(s.cursor).where(s.cursor.c.id == 1).values(updated_at=int(time.time())))
            rollup = conn.execute(
                select(s.log.c.ts, s.log.c.requester, s.log.c.owner,
                       s.log.c.purpose, s.log.c.kind, s.log.c.rows).where(s.log.c.pos >= cut)).all()
            daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
            for ts, req, own, purpose, kind, rows in rollup:
                agg = daily[(ts // DAY, req, own, purpose, kind)]
                agg[0] += 1
                agg[1] += rows or 0
            d = s.daily.c
            for (day, req, own, purpose, kind), (events, rows) in daily.items():
                key = (d.day == day) & (d.requester == req) & (d.owner == own) & (d.purpose == purpose) & (d.kind == kind)
                conn.execute(update(s.daily).where(key).values(events=d.events - events, rows=d.rows - rows))
            conn.execute(delete(s.daily).where(d.events <= 0))
            conn.execute(delete(s.log).where(s.log.c.pos >= cut))
            reopened = conn.execute(select(s.events.c.job_id).where(
                s.events.c.pos >= cut, s.events.c.event.in_(("ResultPublished", "JobAborted")))).scalars().all()
            if reopened:
                conn.execute(update(s.jobs).where(s.jobs.c.job_id.in_(reopened)).values(state="OPEN"))
            conn.execute(delete(s.events).where(s.events.c.pos >= cut))
            conn.execute(delete(s.grants).where(s.grants.c.granted_pos >= cut))
            conn.execute(update(s.grants).where(s.grants.c.revoked_pos >= cut).values(revoked_pos=None, revoked_ts=None))
            conn.execute(delete(s.jobs).where(s.jobs.c.opened_pos >= cut))
            conn.execute(delete(s.blocks).where(s.blocks.c.block_number > fork))
            conn.execute(delete(block_hashes).where(block_hashes.c.block_number > fork))
            conn.execute(update(s.cursor).where(s.cursor.c.id == 1).values(last_block=fork))
        self.rollbacks += 1
        self._reset_caches()

    # ------------------------------------------------------------------ one chunk

    def _index_chunk(self, lo: int, hi: int, logs: list[RawLog], chain_head: int | None = None,
                     hi_hash: bytes | None = None) -> tuple[int, int]:
        missing = {lg.block_number for lg in logs if lg.timestamp is None}
        hashes: dict[int, bytes] = {}
        if hi_hash is not None:
            # Near the head: keep the hash of every block with our logs and of the chunk's last block, read
            # after the logs; if the last block changed meanwhile the logs may mix two chains.
            wanted = sorted({lg.block_number for lg in logs} | {hi})
            headers = self._headers(wanted)
            if headers.get(hi) is None or headers[hi][0] != hi_hash or any(headers.get(b) is None for b in wanted):
                raise ChainReorganized(f"blocks {lo}-{hi} changed while being indexed")
            hashes = {b: h for b, (h, _) in headers.items()}
            stamps = {b: ts for b, (_, ts) in headers.items() if b in missing}
        else:
            stamps = self.source.timestamps(missing) if missing else {}
        with self.engine.begin() as conn:
            # Take the write lock first, then re-read the cursor: another indexer may have done this range.
            conn.execute(update(s.cursor).where(s.cursor.c.id == 1).values(updated_at=int(time.time())))
            cursor = conn.execute(select(s.cursor.c.last_block)).scalar_one()
            if cursor >= hi:
                return 0, 0
            if cursor > lo - 1:
                lo = cursor + 1
            if cursor != lo - 1 or cursor != self._last_cursor:
                self._grants.clear()  # another indexer wrote grants this one has not seen
            # Re-delivered logs (overlapping answers, a cursor moved back by an operator) are skipped before
            # they reach the daily rollup, which is additive.
            lo_pos, hi_pos = s.pos_of(lo, 0), s.pos_of(hi, s.POS_MASK)
            seen = set(conn.execute(select(s.log.c.pos).where(s.log.c.pos.between(lo_pos, hi_pos))).scalars())
            seen.update(conn.execute(select(s.events.c.pos).where(s.events.c.pos.between(lo_pos, hi_pos))).scalars())
            logs = [lg for lg in logs if s.pos_of(lg.block_number, lg.log_index) not in seen]
            chunk = self._decode(conn, logs, stamps)
            self._write(conn, chunk)
            if self.before_commit is not None:
                self.before_commit(lo, hi)
            if hashes:
                conn.execute(delete(block_hashes).where(block_hashes.c.block_number.in_(list(hashes))
                                                        | (block_hashes.c.block_number < hi - 4 * REORG_WINDOW)))
                conn.execute(block_hashes.insert(), [{"block_number": b, "hash": h} for b, h in hashes.items()])
            conn.execute(update(s.cursor).where(s.cursor.c.id == 1).values(last_block=hi))
        self._last_cursor = hi
        return len(chunk.log_rows) + len(chunk.event_rows), len([r for r in chunk.log_rows if r[1] == s.KIND_ACCESS])

    def _account(self, conn: Connection, address: str) -> int:
        key = address.lower()
        found = self._accounts.get(key)
        if found is None:  # under the write lock: select-then-insert cannot race another indexer
            checksum = Web3.to_checksum_address(key)
            found = conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == checksum)).scalar()
            if found is None:
                found = conn.execute(s.accounts.insert().values(address=checksum)).inserted_primary_key[0]
            self._accounts[key] = found
        return found

    def _dataset(self, conn: Connection, dataset_id: bytes) -> int:
        found = self._datasets.get(dataset_id)
        if found is None:
            found = conn.execute(select(s.datasets.c.id).where(s.datasets.c.dataset_id == dataset_id)).scalar()
            if found is None:
                found = conn.execute(s.datasets.insert().values(dataset_id=dataset_id)).inserted_primary_key[0]
            self._datasets[dataset_id] = found
        return found

    def _grant(self, conn: Connection, grant_id: int) -> _Grant | None:
        g = self._grants.get(grant_id)
        if g is None:
            row = conn.execute(select(s.grants).where(s.grants.c.grant_id == grant_id)).first()
            if row is None:
                return None
            g = _Grant(row.owner, row.grantee, row.not_before, row.expires_at, row.revoked_pos, row.revoked_ts)
            self._grants[grant_id] = g
        return g

    def _tx_ids(self, conn: Connection, hashes: set[str]) -> dict[str, int]:
        raw = [bytes.fromhex(h[2:]) for h in hashes]
        if not raw:
            return {}
        self._insert_ignore(conn, s.transactions, ["tx_hash"], [(h,) for h in raw])
        out = {}
        for i in range(0, len(raw), 500):
            for tid, h in conn.execute(select(s.transactions.c.id, s.transactions.c.tx_hash)
                                       .where(s.transactions.c.tx_hash.in_(raw[i:i + 500]))):
                out["0x" + bytes(h).hex()] = tid
        return out

    def _window_flag(self, g: _Grant | None, pos: int, ts: int) -> int:
        if g is None:
            return 0  # the contract refuses unknown grants; nothing to compare against
        if ts < g.not_before:
            return s.FLAG_BEFORE_WINDOW
        if g.revoked_pos is not None and pos > g.revoked_pos and ts >= g.revoked_ts + self.grace:
            return s.FLAG_AFTER_REVOCATION
        if ts >= g.expires_at + self.grace:
            return s.FLAG_AFTER_EXPIRY
        return 0

    def _decode(self, conn: Connection, logs: list[RawLog], stamps: dict[int, int]) -> _Chunk:
        chunk = _Chunk()
        src = self.source
        for lg in logs:
            ts = lg.timestamp if lg.timestamp is not None else stamps[lg.block_number]
            pos = s.pos_of(lg.block_number, lg.log_index)
            chunk.blocks[lg.block_number] = ts
            chunk.tx_hashes.add(lg.tx_hash)
            topic = lg.topics[0] if lg.topics else None
            if lg.address == src.authorizations and topic == src.access_topic:
                requester, owner, purpose, grant_id, dataset, qhash, rows = decode_access(lg)
                req, own = self._account(conn, requester), self._account(conn, owner)
                flag = self._window_flag(self._grant(conn, grant_id), pos, ts)
                chunk.log_rows.append((pos, s.KIND_ACCESS, ts, req, own, purpose, self._dataset(conn, dataset), grant_id,
                                       None, rows, qhash, lg.tx_hash, flag))
                agg = chunk.daily[(ts // DAY, req, own, purpose, s.KIND_ACCESS)]
                agg[0] += 1
                agg[1] += rows
                continue
            if lg.address == src.authorizations and topic == src.denial_topic:
                requester, owner, purpose, dataset, reason, qhash = decode_denial(lg)
                req, own = self._account(conn, requester), self._account(conn, owner)
                chunk.log_rows.append((pos, s.KIND_DENIAL, ts, req, own, purpose, self._dataset(conn, dataset), None,
                                       reason, None, qhash, lg.tx_hash, 0))
                chunk.daily[(ts // DAY, req, own, purpose, s.KIND_DENIAL)][0] += 1
                continue
            decoded = src.decode_generic(lg)
            if decoded is None:
                continue
            contract, event, args = decoded
            self._other_event(conn, chunk, contract, event, args, pos, ts, lg.tx_hash)
        return chunk

    def _other_event(self, conn: Connection, chunk: _Chunk, contract: str, event: str, args: dict, pos: int, ts: int,
                     tx_hash: str) -> None:
        subject = next((args[k] for k in ("owner", "account", "requester", "submitter", "candidate", "participant",
                                          "voter", "actor", "by", "insurer", "payer", "organiser", "opener", "proposer",
                                          "member") if k in args), None)
        chunk.event_rows.append({"pos": pos, "ts": ts, "tx": tx_hash, "category": CATEGORIES[contract], "event": event,
                                 "account": self._account(conn, subject) if subject else None,
                                 "grant_id": args.get("grantId"), "job_id": args.get("jobId"),
                                 "args": canonical_json(args)})
        if event == "AuthorizationGranted":
            g = _Grant(self._account(conn, args["owner"]), self._account(conn, args["grantee"]), args["notBefore"],
                       args["expiresAt"])
            self._grants[args["grantId"]] = g
            chunk.grant_rows.append({"grant_id": args["grantId"], "owner": g.owner, "grantee": g.grantee,
                                     "dataset": self._dataset(conn, bytes(args["datasetId"])), "purpose": args["purpose"],
                                     "not_before": g.not_before, "expires_at": g.expires_at, "granted_pos": pos,
                                     "revoked_pos": None, "revoked_ts": None})
        elif event == "AuthorizationRevoked":
            g = self._grant(conn, args["grantId"])
            if g is not None and g.revoked_pos is None:
                g.revoked_pos, g.revoked_ts = pos, ts
                chunk.revocations.append((args["grantId"], pos, ts))
        elif event == "JobOpened":
            chunk.job_rows.append({"job_id": args["jobId"], "requester": self._account(conn, args["requester"]),
                                   "spec_hash": bytes(args["specHash"]),
                                   "participants": json.dumps(sorted(Web3.to_checksum_address(p) for p in args["participants"])),
                                   "min_cohort": args["minCohort"], "opened_ts": ts, "opened_pos": pos, "state": "OPEN"})
        elif event == "ResultPublished":
            chunk.job_states.append((args["jobId"], "PUBLISHED"))
        elif event == "JobAborted":
            chunk.job_states.append((args["jobId"], "ABORTED"))

    def _insert_ignore(self, conn: Connection, table, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if self._sqlite:  # straight to the driver's executemany: the hot path for millions of rows
            marks = ",".join("?" * len(columns))
            conn.exec_driver_sql(f"INSERT OR IGNORE INTO {table.name} ({','.join(columns)}) VALUES ({marks})", rows)
            return
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), [dict(zip(columns, r)) for r in rows])

    def _write(self, conn: Connection, chunk: _Chunk) -> None:
        tx_ids = self._tx_ids(conn, chunk.tx_hashes)
        self._insert_ignore(conn, s.blocks, ["block_number", "ts"], list(chunk.blocks.items()))
        log_cols = ["pos", "kind", "ts", "requester", "owner", "purpose", "dataset", "grant_id", "reason", "rows",
                    "query_hash", "tx", "flag"]
        self._insert_ignore(conn, s.log, log_cols, [r[:11] + (tx_ids[r[11]], r[12]) for r in chunk.log_rows])
        if chunk.event_rows:
            ev_cols = ["pos", "ts", "tx", "category", "event", "account", "grant_id", "job_id", "args"]
            self._insert_ignore(conn, s.events, ev_cols, [tuple(tx_ids[r[c]] if c == "tx" else r[c] for c in ev_cols)
                                                          for r in chunk.event_rows])
        if chunk.grant_rows:
            cols = list(chunk.grant_rows[0])
            self._insert_ignore(conn, s.grants, cols, [tuple(r[c] for c in cols) for r in chunk.grant_rows])
        for grant_id, pos, ts in chunk.revocations:
            conn.execute(update(s.grants).where(s.grants.c.grant_id == grant_id, s.grants.c.revoked_pos.is_(None))
                         .values(revoked_pos=pos, revoked_ts=ts))
        if chunk.job_rows:
            cols = list(chunk.job_rows[0])
            self._insert_ignore(conn, s.jobs, cols, [tuple(r[c] for c in cols) for r in chunk.job_rows])
        for job_id, state in chunk.job_states:
            conn.execute(update(s.jobs).where(s.jobs.c.job_id == job_id).values(state=state))
        if chunk.daily:
            # Only blocks after the cursor reach here (checked under the write lock), so adding is exact.
            conn.exec_driver_sql(
                "INSERT INTO audit_daily (day, requester, owner, purpose, kind, events, rows) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT (day, requester, owner, purpose, kind) DO UPDATE SET events = audit_daily.events + "
                "excluded.events, rows = audit_daily.rows + excluded.rows" if self._sqlite else
                "INSERT INTO audit_daily (day, requester, owner, purpose, kind, events, rows) VALUES (%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (day, requester, owner, purpose, kind) DO UPDATE SET events = audit_daily.events + "
                "excluded.events, rows = audit_daily.rows + excluded.rows",
                [k + tuple(v) for k, v in chunk.daily.items()])
