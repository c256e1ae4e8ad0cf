"""The durable queue of access and denial records, flushed to chain in batches.

A record is committed to the store before the request is answered, so none is lost if the node
crashes. A background thread sends pending records with recordAccessBatch / recordDenialBatch; the
transaction hash is stored before the transaction is sent, so after a crash the node learns whether
that batch was mined and never logs a record twice.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import BigInteger, Column, Float, Integer, LargeBinary, MetaData, String, Table, bindparam, func, select, update
from sqlalchemy.engine import Engine

from node.access.auth import checksum
from node.access.signed_request import ZERO32, SignedRequest, request_of
from node.chain.encoded_call import EncodedCall  # noqa: F401  (its home moved to node/chain; tests import it here)
from node.chain.errors import ChainError
from node.chain.ledger import Ledger
from node.store.db import migrate, write_lock
from node.store.prepared import for_engine, transaction
from node.worker import BackgroundLoop

log = logging.getLogger("consortium.access_log")

SCHEMA_VERSION = 2  # 2: denial_requests
metadata = MetaData()
outbox = Table(
    "chain_log_outbox", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(6), nullable=False),  # "access" | "denial"
    Column("grant_id", BigInteger),
    Column("requester", String(42), nullable=False),
    Column("dataset_id", LargeBinary(32), nullable=False),
    Column("purpose", Integer, nullable=False),
    Column("reason_code", Integer),
    Column("query_hash", LargeBinary(32), nullable=False),
    Column("rows", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("state", String(7), nullable=False, default="pending", index=True),  # pending | sent | mined
    Column("tx_hash", String(66), index=True),
    Column("sent_at", Float),
    Column("mined_at", Float),
    Column("block_number", BigInteger),
)

# The signed request behind each denial, kept so the regulator can ask for it (node/access/signed_request.py).
# Written in the same transaction as the denial: a denial is never logged without its proof.
denial_requests = Table(
    "denial_requests", metadata,
    Column("digest", LargeBinary(32), primary_key=True),  # the denial's queryHash on chain
    Column("requester", String(42), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", String(8192), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("nonce", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(65), nullable=False),
    Column("created_at", Float, nullable=False),
)

_BATCH_BASE_GAS = 60_000
_GAS_PER_RECORD = 10_000
# A sent transaction the chain has never heard of after this long was lost before reaching it.
_LOST_AFTER_SECONDS = 30.0
# How often the flusher looks on a chain with confirmations (see AccessLog._run).
_CONFIRM_POLL_SECONDS = 0.05
# geth hands a transaction over 4 KiB to its peers as an announcement only, which they fetch about 0.5 s
# later, so on a chain with confirmations (Clique) such a batch often missed the next signer's block.
# Records per batch that stay under it (one 32-byte ABI word per field: access 3 a record, denial 5).
_BROADCAST_RECORDS = {"access": 38, "denial": 22}


_ENTRY_FIELDS = ("kind", "grant_id", "requester", "dataset_id", "purpose", "reason_code", "query_hash", "rows", "created_at",
                 "state")


def _outbox_insert():
    return outbox.insert().values({name: bindparam(name) for name in _ENTRY_FIELDS})


def _outbox_mark_resigned():
    return (update(outbox).where(outbox.c.tx_hash == bindparam("earlier_hash"))
            .values(tx_hash=bindparam("tx_hash"), sent_at=bindparam("sent_at")))


def _outbox_mark_sent():
    # A batch is the lowest pending seqs of its kind, so within its first..last seq every pending row of that kind is
    # in it (rows are appended above every seq, and only the flusher, holding its lock, queues rows again): one
    # statement by range. Row by row (executemany), each step let the request threads take the interpreter lock,
    # which under load held a batch's send for tens of milliseconds.
    return (update(outbox).where(outbox.c.kind == bindparam("batch_kind"), outbox.c.state == "pending",
                                 outbox.c.seq.between(bindparam("first_seq"), bindparam("last_seq")))
            .values(state="sent", tx_hash=bindparam("tx_hash"), sent_at=bindparam("sent_at")))


@dataclass(frozen=True)
class LogRecord:
    kind: str
    requester: str
    dataset_id: bytes
    purpose: int
    query_hash: bytes
    grant_id: int | None = None
    reason_code: int | None = None
    rows: int = 0


@dataclass(eq=False)
class _Pending:
    """One record waiting for its group commit."""

    values: dict
    proof: dict | None
    settled: bool = False
    error: BaseException | None = None


class AccessLog(BackgroundLoop):
    thread_name = "access-log-flusher"

    def __init__(self, engine: Engine, ledger: Ledger, *, flush_seconds: float = 1.0, batch_max: int = 1000,
                 lost_after_seconds: float = _LOST_AFTER_SECONDS):
        self.lost_after_seconds = lost_after_seconds
        self.engine = engine
        self._write_lock = write_lock(engine)  # every write of the outbox queues here, not in SQLite's busy sleeps
        self.ledger = ledger
        self.flush_seconds = flush_seconds
        self.batch_max = batch_max
        self._init_loop()
        self._flush_lock = threading.Lock()
        self.last_error: str | None = None
        self._failures = 0
        self._turn = threading.Condition()  # guards _queued and _committing
        self._queued: list[_Pending] = []
        self._committing = False
        self._local = threading.local()  # .group: records held by grouped() in this thread
        self.group_max = 1000
        migrate(engine, "access_log", metadata, SCHEMA_VERSION)

    # ------------------------------------------------------------------ intake

    def append(self, record: LogRecord) -> None:
        """Durably queue one record: returns once it is committed to disk.

        Concurrent callers are committed together (group commit): one fsync covers every record
        that arrived while the previous commit was on its way to disk.
        """
        self._commit(self._entry(record))

    def deny(self, caller, dataset_id: bytes, purpose: int, reason_code: int) -> None:
        """Durably queue the denial of ``caller``'s request, with that signed request as its proof.

        ``caller`` is the authenticated Caller (or the address of the request being served). The
        denial's queryHash is the EIP-712 digest of the request the caller signed; the request is
        kept here for the regulator. A denial without a signed request behind it (none in this
        node's code) is logged with a zero hash, which the regulator flags as unproven.
        """
        signed = request_of(caller)
        address = getattr(caller, "address", caller)
        if signed is None:
            log.warning("denial of %s logged without its signed request: the regulator will flag it", address)
        self._commit(self._entry(LogRecord("denial", address, dataset_id, int(purpose), signed.digest if signed else ZERO32,
                                           reason_code=int(reason_code)), request=signed))

    def signed_request(self, digest: bytes) -> SignedRequest | None:
        """The signed request kept for the denial whose queryHash is ``digest``."""
        with self.engine.connect() as conn:
            r = conn.execute(select(denial_requests).where(denial_requests.c.digest == digest)).first()
        if r is None:
            return None
        return SignedRequest(r.requester, r.method, r.path, bytes(r.body), r.timestamp, bytes(r.nonce), bytes(r.signature),
                             bytes(r.digest))

    @staticmethod
    def _entry(record: LogRecord, request: SignedRequest | None = None) -> "_Pending":
        values = dict(kind=record.kind, grant_id=record.grant_id, requester=checksum(record.requester),
                      dataset_id=record.dataset_id, purpose=int(record.purpose), reason_code=record.reason_code,
                      query_hash=record.query_hash, rows=record.rows, created_at=time.time(), state="pending")
        proof = None if request is None else dict(
            digest=request.digest, requester=request.signer, method=request.method, path=request.path, body=request.body,
            timestamp=request.timestamp, nonce=request.nonce, signature=request.signature, created_at=values["created_at"])
        return _Pending(values, proof)

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Records appended or denied in this thread inside the block are committed together as it ends (one
        transaction, one fsync); the block's end raises if that commit failed. For a worker that serves several
        requests in turn (node/runtime/offload.py): it answers none of them before the block ends, so each access
        is still durably queued before its answer."""
        if getattr(self._local, "group", None) is not None:  # already inside one: the outer block commits
            yield
            return
        self._local.group = []
        try:
            yield
        finally:
            group, self._local.group = self._local.group, None
        if group:
            self._commit(*group)

    def _commit(self, *entries: "_Pending") -> None:
        """Group commit without a writer thread: a caller that finds no commit under way commits everything
        queued (its own records and those of callers who arrived meanwhile) and wakes them; callers who
        arrive during a commit wait for it, and one of them leads the next. A lone request thus commits
        its own record with no thread hand-off, and under load one fsync still covers many records."""
        group = getattr(self._local, "group", None)
        if group is not None:  # inside grouped(): committed when the block ends
            group.extend(entries)
            return
        with self._turn:
            self._queued.extend(entries)
            while not all(entry.settled for entry in entries):
                if self._committing:
                    self._turn.wait()
                    continue
                self._committing = True
                batch, self._queued = self._queued[:self.group_max], self._queued[self.group_max:]
                self._turn.release()
                try:
                    error = self._write_group(batch)
                finally:
                    self._turn.acquire()
                    self._committing = False
                for pending in batch:
                    pending.settled, pending.error = True, error
                self._turn.notify_all()
        for entry in entries:
            if entry.error is not None:
                raise entry.error

    def _write_group(self, group: list["_Pending"]) -> BaseException | None:
        """Insert a group in one transaction; the error if nothing of it was stored (every caller sees it)."""
        proofs = {p.proof["digest"]: p.proof for p in group if p.proof is not None}
        try:
            if not proofs:  # the request path's case: accesses only, one executemany on the driver's connection
                insert = for_engine(self.engine, "outbox.insert", _outbox_insert)
                with self._write_lock, transaction(self.engine) as cursor:
                    cursor.executemany(insert.sql, [insert.params(p.values) for p in group])
                return None
            with self._write_lock, self.engine.begin() as conn:
                conn.execute(outbox.insert(), [p.values for p in group])
                if proofs:
                    kept = set(conn.execute(select(denial_requests.c.digest)
                                            .where(denial_requests.c.digest.in_(list(proofs)))).scalars())
                    fresh = [p for d, p in proofs.items() if d not in kept]
                    if fresh:
                        conn.execute(denial_requests.insert(), fresh)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller, re-raised in each of them
            return exc
        return None

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
        return {state: n for state, n in rows}

    def lag_seconds(self) -> list[float]:
        """For mined records: seconds from acceptance to being mined."""
        with self.engine.connect() as conn:
            return [m - c for c, m in conn.execute(select(outbox.c.created_at, outbox.c.mined_at).where(outbox.c.state == "mined"))]

    # ------------------------------------------------------------------ flushing

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.flush()  # best effort: whatever is left stays queued durably if this fails

    def _run(self) -> None:
        # On a chain that settles after confirmations (Clique) the in-turn signer puts in its next block only
        # the transactions it holds when it starts that block (as the previous block arrives): a batch sent
        # a flush interval late misses a whole block period, and a settled one is seen a poll late. So the
        # flusher looks every _CONFIRM_POLL_SECONDS there, and settles only when the head moved.
        confirming = self.ledger.gateway.confirmations > 0
        interval = min(self.flush_seconds, _CONFIRM_POLL_SECONDS) if confirming else self.flush_seconds
        backoff, seen_head = interval, None
        while not self._stop.is_set():
            self._pause(backoff)
            try:
                if confirming:
                    head = self.ledger.gateway.raw_request("eth_blockNumber", []).get("result")
                    self.flush(settle=head is None or head != seen_head)
                    seen_head = head
                else:
                    self.flush()
                backoff = interval
                self.last_error = None
            except ChainError as exc:
                self.last_error = exc.one_line()
                log.warning("access log flush failed, will retry: %s", self.last_error)
                backoff = min(max(backoff * 2, 0.5), 10.0)  # chain outage: back off, keep queueing

    def flush(self, settle: bool = True) -> int:
        """Settle sent batches, then send pending records; returns the number newly mined."""
        with self._flush_lock:
            mined = self._settle_sent() if settle else 0
            # Only what is queued now: under steady load new records keep arriving, and a pass that sent until none
            # was left ran for seconds without settling anything (every settled record held back until load fell).
            with self.engine.connect() as conn:
                last = conn.execute(select(func.max(outbox.c.seq))).scalar()
            if last is None:
                return mined
            mined_at_once = self.ledger.gateway.confirmations == 0  # anvil: each batch settled before the next
            for kind in ("access", "denial"):
                while (sent := self._send_batch(kind, last)) is not None:
                    if mined_at_once:
                        mined += self._settle(sent)
                    # else settled by a later pass, once a block and its confirmations have arrived
            return mined

    def _send_batch(self, kind: str, last: int) -> str | None:
        with self.engine.connect() as conn:
            limit = min(self.batch_max, _BROADCAST_RECORDS[kind]) if self.ledger.gateway.confirmations else self.batch_max
            rows = conn.execute(select(outbox).where(outbox.c.state == "pending", outbox.c.kind == kind, outbox.c.seq <= last)
                                .order_by(outbox.c.seq).limit(limit)).all()
        if not rows:
            return None
        seqs = [r.seq for r in rows]
        if kind == "access":
            fn = self.ledger.access_batch_call([r.grant_id for r in rows], [bytes(r.query_hash) for r in rows],
                                               [min(r.rows, 2**32 - 1) for r in rows])
        else:
            fn = self.ledger.denial_batch_call([r.requester for r in rows], [bytes(r.dataset_id) for r in rows],
                                               [r.purpose for r in rows], [r.reason_code for r in rows],
                                               [bytes(r.query_hash) for r in rows])

        signed: list[str] = []  # the hashes this batch was signed under: the gateway signs again after a taken nonce

        def mark_sent(tx_hash) -> None:
            fields = {"tx_hash": "0x" + bytes(tx_hash).hex(), "sent_at": time.time()}
            if signed:  # signed again: the rows already carry the earlier hash, which was never sent
                mark = for_engine(self.engine, "outbox.mark_resigned", _outbox_mark_resigned)
                fields["earlier_hash"] = signed[-1]
            else:
                mark = for_engine(self.engine, "outbox.mark_sent", _outbox_mark_sent)  # compiled once (no IN list)
                fields.update(batch_kind=kind, first_seq=seqs[0], last_seq=seqs[-1])
            with self._write_lock, transaction(self.engine) as cursor:
                cursor.execute(mark.sql, mark.params(fields))
                if cursor.rowcount != len(seqs):  # a row outside the batch would be settled by its receipt: never
                    raise ChainError(f"outbox batch {seqs[0]}..{seqs[-1]} would mark {cursor.rowcount} rows sent, "
                                     f"not {len(seqs)}", hint="nothing was sent; the records stay queued")
            signed.append(fields["tx_hash"])

        # A fixed gas budget (measured: about 5.7k gas per record, see `bench.py gas`) spares an
        # eth_estimateGas round trip per batch; after a failed attempt the estimate is used again,
        # so a batch that would revert is refused with its decoded reason before it is sent.
        gas = None if self._failures else _BATCH_BASE_GAS + _GAS_PER_RECORD * len(rows)
        try:
            self.ledger.gateway.submit(self.ledger.account, fn, gas=gas, before_send=mark_sent)
        except ChainError:
            # Refused before or at sending: the records go back to pending for the next attempt.
            self._failures += 1
            with self._write_lock, self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.seq.in_(seqs)).values(state="pending", tx_hash=None))
            raise
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.tx_hash).where(outbox.c.seq == seqs[0])).scalar_one()

    def _settle_sent(self) -> int:
        with self.engine.connect() as conn:
            hashes = [h for (h,) in conn.execute(select(outbox.c.tx_hash).where(outbox.c.state == "sent")
                                                 .group_by(outbox.c.tx_hash).order_by(func.min(outbox.c.sent_at)))]
        if not hashes:
            return 0
        try:
            receipts = self.ledger.gateway.confirmed_receipts(hashes)  # one look at all of them (two round trips)
        except ChainError:
            receipts = [None] * len(hashes)
        # In the order sent, which is nonce order: a later batch is in the same block as an unsettled one or a later
        # one, so it is not settled either (its receipt is looked at again next time, with that one).
        settled = 0
        while settled < len(hashes) and receipts[settled] is not None and int(receipts[settled]["status"], 16) == 1:
            settled += 1
        first_open = hashes[settled] if settled < len(hashes) else None
        known = first_open is not None and self._known(first_open, receipts[settled])  # before the write lock is taken
        with self._write_lock, self.engine.begin() as conn:  # every batch this look settled, in one commit
            mined = sum(self._apply(conn, h, r, True) for h, r in zip(hashes[:settled], receipts[:settled]))
            if first_open is not None:
                self._apply(conn, first_open, receipts[settled], known)
        return mined

    def _receipt(self, tx_hash: str, wait: bool) -> dict | None:
        """The receipt once settled (the gateway's confirmations; re-sent if a reorg dropped it), else None."""
        gateway = self.ledger.gateway
        deadline = time.monotonic() + (60 if wait else 0)
        while True:
            try:
                receipt = gateway.confirmed_receipt(tx_hash)
            except ChainError:
                receipt = None
            if receipt is not None or time.monotonic() >= deadline:
                return receipt
            time.sleep(0.05)

    def _settle(self, tx_hash: str, wait: bool = True) -> int:
        receipt = self._receipt(tx_hash, wait)
        known = self._known(tx_hash, receipt)
        with self._write_lock, self.engine.begin() as conn:
            return self._apply(conn, tx_hash, receipt, known)

    def _known(self, tx_hash: str, receipt: dict | None) -> bool:
        """Whether the chain node has the transaction (mined, or waiting in its pool)."""
        if receipt is not None:
            return True
        try:
            return self.ledger.gateway.raw_request("eth_getTransactionByHash", [tx_hash]).get("result") is not None
        except ChainError:
            return False

    def _apply(self, conn, tx_hash: str, receipt: dict | None, known: bool) -> int:
        """Mark a batch mined from its settled receipt, or queue it again if it reverted or was lost; the rows marked."""
        status = int(receipt["status"], 16) if receipt else None
        if status == 1:
            self._failures = 0
            result = conn.execute(update(outbox).where(outbox.c.tx_hash == tx_hash, outbox.c.state == "sent")
                                  .values(state="mined", mined_at=time.time(), block_number=int(receipt["blockNumber"], 16)))
            return result.rowcount
        sent_at = conn.execute(select(func.min(outbox.c.sent_at)).where(outbox.c.tx_hash == tx_hash)).scalar() or 0
        if status == 0:
            self._failures += 1  # the next attempt estimates gas, which surfaces the revert reason
        if status == 0 or (not known and time.time() - sent_at > self.lost_after_seconds):
            # Reverted or lost: queue the records again (a lost tx never reached the chain).
            conn.execute(update(outbox).where(outbox.c.tx_hash == tx_hash).values(state="pending", tx_hash=None))
        return 0
