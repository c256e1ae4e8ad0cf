"""Queries on the access-log index: filters, keyset pagination, CSV/JSON export and daily aggregates.

Every answer is pinned to a block height (``as_of_block``): rows are limited to positions at or below
that block, so an answer is exactly "the chain's access log up to block N" even while the indexer
commits new chunks. A time range is turned into a position range through the block timestamps, so
each filter is one range scan on a ``(column, pos)`` index, newest first.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterator

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Engine
from web3 import Web3

from node.audit import schema as s
from node.chain.deployment import Purpose
from node.chain.reasons import DenialReason
from node.errors import ConsortiumError

MAX_PAGE = 1000
EVENT_CATEGORIES = ("authorization", "governance", "statistics", "evidence", "pools", "settlement")
# Every integer a filter takes ends up bound to a 64-bit signed column: larger ones are refused up front
# (they would otherwise fail inside the database, after a CSV export has started streaming).
INT64_MAX = 2**63 - 1
CSV_COLUMNS = ["block", "log_index", "tx_hash", "time", "outcome", "requester", "owner", "purpose", "dataset", "grant_id",
               "reason", "rows", "query_hash", "flag"]


class AuditQueryError(ConsortiumError):
    """A filter that cannot be answered (HTTP 422, or 409 for a block not yet indexed)."""

    reason = "invalid_filter"


def _dataset_names() -> dict[bytes, str]:
    try:
        from node.store.datasets import SCHEMAS

        names = list(SCHEMAS)
    except Exception:  # the datasets module is optional for the index
        names = ["policies", "claims", "user_features", "fraud_list"]
    return {bytes(Web3.keccak(text=n)): n for n in names}


DATASET_NAMES = _dataset_names()


def parse_purpose(value: Any) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        if number in {p.value for p in Purpose}:
            return number
    elif isinstance(value, str) and value.upper() in Purpose.__members__:
        return int(Purpose[value.upper()])
    raise AuditQueryError(f"unknown purpose {value!r}", hint=f"use one of {', '.join(Purpose.__members__)}")


def parse_dataset(value: str) -> bytes:
    """A dataset name (``claims``) or its on-chain id (0x + 64 hex)."""
    if value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    if value and not value.startswith("0x"):
        return bytes(Web3.keccak(text=value))
    raise AuditQueryError(f"dataset {value!r} is neither a name nor a 32-byte hex id", hint="e.g. claims or 0x<64 hex>")


def parse_address(value: str, what: str) -> str:
    if not Web3.is_address(value):
        raise AuditQueryError(f"{what} {value!r} is not an address", hint="give a 0x-prefixed 20-byte address")
    return Web3.to_checksum_address(value)


def bounded_int(value: Any, what: str, *, low: int = 0, high: int = INT64_MAX) -> int:
    """An integer from user input within ``low..high`` (default: what a BIGINT column holds, non-negative)."""
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    except (TypeError, ValueError):
        raise AuditQueryError(f"{what} {value!r} is not a number", hint=f"give an integer in {low}..{high}") from None
    if not low <= number <= high:
        raise AuditQueryError(f"{what} {number} is out of range", hint=f"give an integer in {low}..{high}")
    return number


def parse_time(value: Any, what: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (UTC when no zone is given)."""
    if isinstance(value, int):
        return bounded_int(value, what, low=-INT64_MAX)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return bounded_int(text, what, low=-INT64_MAX)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditQueryError(f"{what} {value!r} is not a time", hint="give unix seconds or ISO 8601 (2026-01-31T12:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _parse_cursor(cursor: str) -> int:
    try:
        return bounded_int(cursor, "cursor")
    except AuditQueryError:
        raise AuditQueryError(f"cursor {cursor[:80]!r} is not one this node returned",
                              hint="pass back a next_cursor from a previous page") from None


@lru_cache(maxsize=8192)
def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LogFilter:
    requester: str | None = None
    owner: str | None = None
    purpose: int | None = None
    dataset: bytes | None = None
    outcome: int | None = None  # schema.KIND_ACCESS / KIND_DENIAL
    since: int | None = None  # unix seconds, inclusive
    until: int | None = None  # unix seconds, exclusive
    grant_id: int | None = None
    flagged: bool = False  # only uses outside their grant's window

    @classmethod
    def parse(cls, *, requester: str | None = None, owner: str | None = None, purpose: Any = None,
              dataset: str | None = None, outcome: str | None = None, since: Any = None, until: Any = None,
              grant_id: Any = None, flagged: Any = False) -> "LogFilter":
        """From user input (query string, CLI): every value checked, every refusal names what was expected."""
        if outcome not in (None, "", "access", "denial", "any"):
            raise AuditQueryError(f"outcome {outcome!r} is not access or denial", hint="use outcome=access or outcome=denial")
        gid = bounded_int(grant_id, "grant id") if grant_id not in (None, "") else None
        return cls(requester=parse_address(requester, "requester") if requester else None,
                   owner=parse_address(owner, "owner") if owner else None,
                   purpose=parse_purpose(purpose) if purpose not in (None, "") else None,
                   dataset=parse_dataset(dataset) if dataset else None,
                   outcome=s.OUTCOMES.get(outcome) if outcome else None,
                   since=parse_time(since, "since") if since not in (None, "") else None,
                   until=parse_time(until, "until") if until not in (None, "") else None,
                   grant_id=gid, flagged=str(flagged).lower() in ("1", "true", "yes", "on"))

    def to_params(self) -> dict[str, str]:
        """The same filter as query-string parameters (links, CSV download)."""
        out: dict[str, str] = {}
        for key in ("requester", "owner", "since", "until", "grant_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value)
        if self.purpose is not None:
            out["purpose"] = Purpose(self.purpose).name
        if self.dataset is not None:
            out["dataset"] = DATASET_NAMES.get(self.dataset, "0x" + self.dataset.hex())
        if self.outcome is not None:
            out["outcome"] = s.OUTCOME_NAMES[self.outcome]
        if self.flagged:
            out["flagged"] = "true"
        return out


@dataclass
class Page:
    as_of_block: int
    items: list[dict]
    next_cursor: str | None
    filters: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"as_of_block": self.as_of_block, "count": len(self.items), "next_cursor": self.next_cursor,
                "filters": self.filters, "items": self.items}


_PURPOSE_NAMES = {p.value: p.name for p in Purpose}


def _purpose_name(value: int) -> str:
    try:
        return Purpose(value).name
    except ValueError:
        return str(value)


def _reason_name(value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return DenialReason(value).name
    except ValueError:
        return str(value)


class AuditQueries:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._ids: dict[tuple[str, Any], int] = {}  # interned ids never change: cache hits skip a query

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def indexed_block(conn: Connection) -> int:
        found = conn.execute(select(s.cursor.c.last_block)).scalar()
        if found is None:
            raise AuditQueryError("the access-log index is empty (the indexer has not run)", reason="index_not_ready",
                                  hint="start the node, or run `consortium audit sync --config ...`")
        return found

    def _as_of(self, conn: Connection, as_of: int | None) -> int:
        indexed = self.indexed_block(conn)
        if as_of is not None:
            as_of = bounded_int(as_of, "as_of block")
        if as_of is None:
            return indexed
        if as_of > indexed:
            raise AuditQueryError(f"block {as_of} is not indexed yet (indexed up to {indexed})", reason="not_indexed",
                                  hint="retry in a moment, or ask without as_of")
        return as_of

    def _account_id(self, conn: Connection, address: str) -> int | None:
        found = self._ids.get(("account", address))
        if found is None:
            found = conn.execute(select(s.accounts.c.id).where(s.accounts.c.address == address)).scalar()
            if found is not None:
                self._ids[("account", address)] = found
        return found

    def _dataset_id(self, conn: Connection, dataset: bytes) -> int | None:
        found = self._ids.get(("dataset", dataset))
        if found is None:
            found = conn.execute(select(s.datasets.c.id).where(s.datasets.c.dataset_id == dataset)).scalar()
            if found is not None:
                self._ids[("dataset", dataset)] = found
        return found

    @staticmethod
    def _pos_range(conn: Connection, since: int | None, until: int | None, as_of: int) -> tuple[int, int] | None:
        lo, hi = 0, s.pos_of(as_of, s.POS_MASK)
        if since is not None:
            first = conn.execute(select(func.min(s.blocks.c.block_number)).where(s.blocks.c.ts >= since)).scalar()
            if first is None:
                return None
            lo = s.pos_of(first, 0)
        if until is not None:
            last = conn.execute(select(func.max(s.blocks.c.block_number)).where(s.blocks.c.ts < until)).scalar()
            if last is None:
                return None
            hi = min(hi, s.pos_of(last, s.POS_MASK))
        return (lo, hi) if lo <= hi else None

    # ------------------------------------------------------------------ access log

    def _log_conditions(self, conn: Connection, f: LogFilter, as_of: int) -> list | None:
        span = self._pos_range(conn, f.since, f.until, as_of)
        if span is None:
            return None
        conds = [s.log.c.pos >= span[0], s.log.c.pos <= span[1]]
        for column, address in (("requester", f.requester), ("owner", f.owner)):
            if address is not None:
                aid = self._account_id(conn, address)
                if aid is None:
                    return None
                conds.append(s.log.c[column] == aid)
        if f.dataset is not None:
            did = self._dataset_id(conn, f.dataset)
            if did is None:
                return None
            conds.append(s.log.c.dataset == did)
        if f.purpose is not None:
            conds.append(s.log.c.purpose == f.purpose)
        if f.outcome is not None:
            conds.append(s.log.c.kind == f.outcome)
        if f.grant_id is not None:
            conds.append(s.log.c.grant_id == f.grant_id)
        if f.flagged:
            conds.append(s.log.c.flag != 0)
        return conds

    def _log_rows(self, conn: Connection, conds: list, limit: int | None) -> list[dict]:
        req, own = s.accounts.alias("req"), s.accounts.alias("own")
        lg = s.log.c
        query = (select(lg.pos, lg.kind, lg.ts, req.c.address, own.c.address, lg.purpose, s.datasets.c.dataset_id,
                        lg.grant_id, lg.reason, lg.rows, lg.query_hash, s.transactions.c.tx_hash, lg.flag)
                 .select_from(s.log.join(req, req.c.id == lg.requester).join(own, own.c.id == lg.owner)
                              .join(s.datasets, s.datasets.c.id == lg.dataset)
                              .join(s.transactions, s.transactions.c.id == lg.tx))
                 .where(and_(*conds)).order_by(lg.pos.desc()))
        if limit is not None:
            query = query.limit(limit)
        # Positional unpacking and cached names: row building is most of a query's time.
        out = []
        for pos, kind, ts, requester, owner, purpose, dataset, grant_id, reason, rows, qhash, tx, flag in \
                conn.execute(query):
            dataset_hex = "0x" + dataset.hex()
            out.append({"block": pos >> s.POS_SHIFT, "log_index": pos & s.POS_MASK, "tx_hash": "0x" + tx.hex(),
                        "ts": ts, "time": iso(ts), "outcome": s.OUTCOME_NAMES[kind], "requester": requester,
                        "owner": owner, "purpose": _PURPOSE_NAMES.get(purpose) or str(purpose),
                        "dataset": DATASET_NAMES.get(bytes(dataset), dataset_hex), "dataset_id": dataset_hex,
                        "grant_id": grant_id, "reason": _reason_name(reason), "rows": rows,
                        "query_hash": "0x" + qhash.hex(), "flag": s.FLAG_NAMES.get(flag)})
        return out

    def search_logs(self, f: LogFilter, *, limit: int = 100, cursor: str | None = None, as_of: int | None = None) -> Page:
        """One page of matching accesses and denials, newest first; ``cursor`` continues a previous page."""
        if not 1 <= limit <= MAX_PAGE:
            raise AuditQueryError(f"limit {limit} is out of range", hint=f"use 1..{MAX_PAGE}")
        before = None
        if cursor:
            before = _parse_cursor(cursor)
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)
            conds = self._log_conditions(conn, f, block)
            if conds is None:
                return Page(block, [], None, f.to_params())
            if before is not None:
                conds.append(s.log.c.pos < before)
            items = self._log_rows(conn, conds, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        next_cursor = str(s.pos_of(items[-1]["block"], items[-1]["log_index"])) if more else None
        return Page(block, items, next_cursor, f.to_params())

    def iter_logs(self, f: LogFilter, *, as_of: int | None = None, page: int = 5000) -> tuple[int, Iterator[dict]]:
        """All matching rows, newest first, for export; the height is fixed before the first row is read."""
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)

        def rows() -> Iterator[dict]:
            cursor = None
            while True:
                result = self.search_logs(f, limit=min(page, MAX_PAGE), cursor=cursor, as_of=block)
                yield from result.items
                if result.next_cursor is None:
                    return
                cursor = result.next_cursor

        return block, rows()

    def export_csv(self, f: LogFilter, *, as_of: int | None = None) -> tuple[int, Iterator[str]]:
        block, rows = self.iter_logs(f, as_of=as_of)

        def lines() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for i, item in enumerate(rows, 1):
                writer.writerow(["" if item[c] is None else item[c] for c in CSV_COLUMNS])
                if i % 500 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

        return block, lines()

    def export_json(self, f: LogFilter, *, as_of: int | None = None) -> tuple[int, Iterator[str]]:
        """A JSON document streamed in pieces: {"as_of_block": N, "items": [...]}."""
        block, rows = self.iter_logs(f, as_of=as_of)

        def pieces() -> Iterator[str]:
            yield json.dumps({"as_of_block": block, "filters": f.to_params()})[:-1] + ', "items": ['
            for i, item in enumerate(rows):
                yield ("," if i else "") + json.dumps(item)
            yield "]}"

        return block, pieces()

    # ------------------------------------------------------------------ aggregates

    def daily_counts(self, f: LogFilter, *, group_by: tuple[str, ...] = ("day", "requester", "purpose")) -> dict:
        """Events per (day, requester, owner, purpose, outcome) from the rollup, grouped as asked.

        Time filters apply to whole UTC days here (the rollup's grain); ``dataset`` and ``grant_id``
        are not kept in the rollup and are refused.
        """
        allowed = ("day", "requester", "owner", "purpose", "outcome")
        bad = [g for g in group_by if g not in allowed]
        if bad or not group_by:
            raise AuditQueryError(f"cannot group by {', '.join(bad) or 'nothing'}", hint=f"group by any of {', '.join(allowed)}")
        if f.dataset is not None or f.grant_id is not None or f.flagged:
            raise AuditQueryError("aggregates are kept per requester, owner, purpose and outcome only",
                                  hint="drop the dataset/grant_id/flagged filter, or list the events instead")
        d = s.daily
        req, own = s.accounts.alias("req"), s.accounts.alias("own")
        columns = {"day": d.c.day, "requester": req.c.address, "owner": own.c.address, "purpose": d.c.purpose,
                   "outcome": d.c.kind}
        with self.engine.connect() as conn:
            block = self.indexed_block(conn)
            conds = []
            if f.since is not None:
                conds.append(d.c.day >= f.since // 86_400)
            if f.until is not None:
                conds.append(d.c.day <= (f.until - 1) // 86_400)
            for column, address in (("requester", f.requester), ("owner", f.owner)):
                if address is not None:
                    conds.append(d.c[column] == (self._account_id(conn, address) or -1))
            if f.purpose is not None:
                conds.append(d.c.purpose == f.purpose)
            if f.outcome is not None:
                conds.append(d.c.kind == f.outcome)
            keys = [columns[g].label(g) for g in group_by]
            query = (select(*keys, func.sum(d.c.events).label("events"), func.sum(d.c.rows).label("rows"))
                     .select_from(d.join(req, req.c.id == d.c.requester).join(own, own.c.id == d.c.owner))
                     .where(and_(*conds)).group_by(*keys).order_by(*keys))
            groups = []
            for r in conn.execute(query):
                item = dict(r._mapping)
                if "day" in item:
                    item["day"] = datetime.fromtimestamp(item["day"] * 86_400, timezone.utc).strftime("%Y-%m-%d")
                if "purpose" in item:
                    item["purpose"] = _purpose_name(item["purpose"])
                if "outcome" in item:
                    item["outcome"] = s.OUTCOME_NAMES[item["outcome"]]
                groups.append(item)
        return {"as_of_block": block, "group_by": list(group_by), "groups": groups}

    # Group keys of ``summarize_logs``: the log's own columns, so every filter of the table applies too.
    SUMMARY_KEYS = ("day", "requester", "owner", "purpose", "outcome", "dataset", "grant_id", "flag")

    def summarize_logs(self, f: LogFilter, *, group_by: tuple[str, ...], as_of: int | None = None) -> dict:
        """Accesses and denials matching ``f`` counted per group, pinned to block ``as_of``.

        Unlike ``daily_counts`` (the rollup: fast, whole days, newest block only) this reads the log
        itself, so a chart built from it holds exactly the rows the filtered table and its CSV list at
        the same block. ``events`` counts log entries, ``rows`` sums the rows each access returned
        (denials return none).
        """
        bad = [g for g in group_by if g not in self.SUMMARY_KEYS]
        if bad or not group_by:
            raise AuditQueryError(f"cannot group by {', '.join(bad) or 'nothing'}",
                                  hint=f"group by any of {', '.join(self.SUMMARY_KEYS)}")
        lg = s.log.c
        req, own = s.accounts.alias("req"), s.accounts.alias("own")
        columns = {"day": (lg.ts // 86_400), "requester": req.c.address, "owner": own.c.address, "purpose": lg.purpose,
                   "outcome": lg.kind, "dataset": s.datasets.c.dataset_id, "grant_id": lg.grant_id, "flag": lg.flag}
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)
            conds = self._log_conditions(conn, f, block)
            groups: list[dict] = []
            if conds is not None:
                keys = [columns[g].label(g) for g in group_by]
                query = (select(*keys, func.count().label("events"), func.coalesce(func.sum(lg.rows), 0).label("rows"))
                         .select_from(s.log.join(req, req.c.id == lg.requester).join(own, own.c.id == lg.owner)
                                      .join(s.datasets, s.datasets.c.id == lg.dataset))
                         .where(and_(*conds)).group_by(*keys).order_by(*keys))
                for r in conn.execute(query):
                    item = dict(r._mapping)
                    item["events"], item["rows"] = int(item["events"]), int(item["rows"])
                    if "day" in item:
                        item["day"] = datetime.fromtimestamp(int(item["day"]) * 86_400, timezone.utc).strftime("%Y-%m-%d")
                    if "purpose" in item:
                        item["purpose"] = _purpose_name(item["purpose"])
                    if "outcome" in item:
                        item["outcome"] = s.OUTCOME_NAMES[item["outcome"]]
                    if "dataset" in item:
                        item["dataset"] = DATASET_NAMES.get(bytes(item["dataset"]), "0x" + bytes(item["dataset"]).hex())
                    if "flag" in item:
                        item["flag"] = s.FLAG_NAMES.get(item["flag"])
                    groups.append(item)
        return {"as_of_block": block, "group_by": list(group_by), "filters": f.to_params(), "groups": groups}

    def pinned_block(self, as_of: int | None = None) -> int:
        """The block an answer is pinned to: ``as_of`` if indexed (else refused), the indexed head by default."""
        with self.engine.connect() as conn:
            return self._as_of(conn, as_of)

    def newest_event_time(self, as_of: int | None = None) -> int | None:
        """The chain time of the newest indexed block with a consortium event at or below ``as_of``."""
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)
            return conn.execute(select(func.max(s.blocks.c.ts)).where(s.blocks.c.block_number <= block)).scalar()

    def grants_of(self, address: str, *, as_of: int | None = None) -> dict:
        """Grants ``address`` gave and received, as the index holds them at block ``as_of``."""
        address = parse_address(address, "member")
        g = s.grants.c
        own, gee = s.accounts.alias("own"), s.accounts.alias("gee")
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)
            aid = self._account_id(conn, address)
            given: list[dict] = []
            received: list[dict] = []
            if aid is not None:
                hi = s.pos_of(block, s.POS_MASK)
                query = (select(g.grant_id, own.c.address, gee.c.address, s.datasets.c.dataset_id, g.purpose, g.not_before,
                                g.expires_at, g.revoked_pos, g.revoked_ts)
                         .select_from(s.grants.join(own, own.c.id == g.owner).join(gee, gee.c.id == g.grantee)
                                      .join(s.datasets, s.datasets.c.id == g.dataset))
                         .where(and_(g.granted_pos <= hi, (g.owner == aid) | (g.grantee == aid))).order_by(g.grant_id))
                for gid, owner, grantee, ds, purpose, not_before, expires_at, revoked_pos, revoked_ts in conn.execute(query):
                    revoked = revoked_pos is not None and revoked_pos <= hi
                    item = {"grant_id": gid, "owner": owner, "grantee": grantee,
                            "dataset": DATASET_NAMES.get(bytes(ds), "0x" + bytes(ds).hex()), "purpose": _purpose_name(purpose),
                            "not_before": not_before, "expires_at": expires_at, "expires": iso(expires_at),
                            "revoked_at": iso(revoked_ts) if revoked else None}
                    (given if owner == address else received).append(item)
        return {"as_of_block": block, "given": given, "received": received}

    # ------------------------------------------------------------------ other events

    def search_events(self, *, category: str | None = None, event: str | None = None, account: str | None = None,
                      grant_id: int | None = None, job_id: int | None = None, since: int | None = None,
                      until: int | None = None, limit: int = 100, cursor: str | None = None,
                      as_of: int | None = None) -> Page:
        """Authorization, governance, statistics-job and evidence events, newest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise AuditQueryError(f"limit {limit} is out of range", hint=f"use 1..{MAX_PAGE}")
        if category is not None and category not in EVENT_CATEGORIES:
            raise AuditQueryError(f"unknown category {category!r}", hint="use " + ", ".join(EVENT_CATEGORIES))
        e = s.events
        with self.engine.connect() as conn:
            block = self._as_of(conn, as_of)
            filters = {k: v for k, v in dict(category=category, event=event, account=account, grant_id=grant_id,
                                             job_id=job_id, since=since, until=until).items() if v is not None}
            span = self._pos_range(conn, since, until, block)
            if span is None:
                return Page(block, [], None, filters)
            conds = [e.c.pos >= span[0], e.c.pos <= span[1]]
            if cursor:
                conds.append(e.c.pos < _parse_cursor(cursor))
            if category is not None:
                conds.append(e.c.category == category)
            if event is not None:
                conds.append(e.c.event == event)
            if account is not None:
                conds.append(e.c.account == (self._account_id(conn, parse_address(account, "account")) or -1))
            if grant_id is not None:
                conds.append(e.c.grant_id == grant_id)
            if job_id is not None:
                conds.append(e.c.job_id == job_id)
            query = (select(e, s.transactions.c.tx_hash).select_from(e.join(s.transactions, s.transactions.c.id == e.c.tx))
                     .where(and_(*conds)).order_by(e.c.pos.desc()).limit(limit + 1))
            items = [{"block": s.block_of(r.pos), "log_index": r.pos & s.POS_MASK, "tx_hash": "0x" + bytes(r.tx_hash).hex(),
                      "ts": r.ts, "time": iso(r.ts), "category": r.category, "event": r.event,
                      "args": json.loads(r.args)} for r in conn.execute(query)]
        more = len(items) > limit
        items = items[:limit]
        next_cursor = str(s.pos_of(items[-1]["block"], items[-1]["log_index"])) if more else None
        return Page(block, items, next_cursor, filters)

    def status(self) -> dict:
        with self.engine.connect() as conn:
            block = self.indexed_block(conn)
            counts = {s.OUTCOME_NAMES[k]: n for k, n in conn.execute(
                select(s.daily.c.kind, func.sum(s.daily.c.events)).group_by(s.daily.c.kind))}
            others = conn.execute(select(func.count()).select_from(s.events)).scalar()
        return {"indexed_block": block, "access_events": int(counts.get("access", 0)),
                "denial_events": int(counts.get("denial", 0)), "other_events": int(others)}


# ---------------------------------------------------------------------- money events (settlement and pools pages)
# Area: settlement and pools (issue 15). Offers, certificates, statements and pool payouts are few next to
# access records (one per sale, per period, per claim), so a page reads its category whole, in chain order,
# and node/audit/money.py folds the events into rows.


def money_events(queries: AuditQueries, category: str, *, as_of: int | None = None) -> tuple[int, list[dict]]:
    """(block, every event of ``category`` up to that block, oldest first) for the settlement and pools pages."""
    if category not in ("settlement", "pools"):
        raise AuditQueryError(f"unknown money category {category!r}", hint="use settlement or pools")
    e = s.events
    with queries.engine.connect() as conn:
        block = queries._as_of(conn, as_of)
        query = (select(e.c.pos, e.c.ts, e.c.event, e.c.args, s.transactions.c.tx_hash)
                 .select_from(e.join(s.transactions, s.transactions.c.id == e.c.tx))
                 .where(and_(e.c.category == category, e.c.pos <= s.pos_of(block, s.POS_MASK))).order_by(e.c.pos))
        items = [{"block": s.block_of(r.pos), "log_index": r.pos & s.POS_MASK, "tx_hash": "0x" + bytes(r.tx_hash).hex(),
                  "ts": r.ts, "time": iso(r.ts), "event": r.event, "args": json.loads(r.args)} for r in conn.execute(query)]
    return block, items
