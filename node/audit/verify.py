"""Proof that the index matches the chain: re-read a block range and compare, event by event.

The chain side is decoded with web3's generic ABI decoder (not the indexer's fast path), so a
verification also checks the fast decoder. Compared per log position: event name, transaction hash,
block timestamp and every argument.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from node.audit import schema as s
from node.audit.decode import ConsortiumLogs, canonical_json
from node.audit.queries import AuditQueries, AuditQueryError
from node.chain.gateway import ChainGateway

MAX_LISTED = 20


@dataclass
class VerifyReport:
    from_block: int
    to_block: int
    indexed_block: int
    chain_events: int = 0
    index_events: int = 0
    missing: list[dict] = field(default_factory=list)  # on chain, not in the index
    extra: list[dict] = field(default_factory=list)  # in the index, not on chain
    different: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {"missing": 0, "extra": 0, "different": 0})

    @property
    def matches(self) -> bool:
        return not any(self.counts.values())

    def to_json(self) -> dict:
        return {"from_block": self.from_block, "to_block": self.to_block, "as_of_block": self.indexed_block,
                "matches": self.matches, "chain_events": self.chain_events, "index_events": self.index_events,
                **{f"{k}_count": v for k, v in self.counts.items()}, "missing": self.missing, "extra": self.extra,
                "different": self.different}

    def _note(self, kind: str, item: dict) -> None:
        self.counts[kind] += 1
        listed = getattr(self, kind)
        if len(listed) < MAX_LISTED:
            listed.append(item)


def _index_records(engine: Engine, lo_pos: int, hi_pos: int) -> dict[int, tuple]:
    req, own = s.accounts.alias("req"), s.accounts.alias("own")
    out: dict[int, tuple] = {}
    with engine.connect() as conn:
        query = (select(s.log, req.c.address.label("req"), own.c.address.label("own"), s.datasets.c.dataset_id,
                        s.transactions.c.tx_hash)
                 .select_from(s.log.join(req, req.c.id == s.log.c.requester).join(own, own.c.id == s.log.c.owner)
                              .join(s.datasets, s.datasets.c.id == s.log.c.dataset)
                              .join(s.transactions, s.transactions.c.id == s.log.c.tx))
                 .where(and_(s.log.c.pos >= lo_pos, s.log.c.pos <= hi_pos)))
        for r in conn.execute(query):
            dataset = "0x" + bytes(r.dataset_id).hex()
            qhash = "0x" + bytes(r.query_hash).hex()
            if r.kind == s.KIND_ACCESS:
                name, args = "AccessRecorded", {"requester": r.req, "owner": r.own, "purpose": r.purpose,
                                                "grantId": r.grant_id, "datasetId": dataset, "queryHash": qhash, "rows": r.rows}
            else:
                name, args = "DenialRecorded", {"requester": r.req, "owner": r.own, "purpose": r.purpose,
                                                "datasetId": dataset, "reasonCode": r.reason, "queryHash": qhash}
            out[r.pos] = (name, "0x" + bytes(r.tx_hash).hex(), r.ts, canonical_json(args))
        query = (select(s.events, s.transactions.c.tx_hash)
                 .select_from(s.events.join(s.transactions, s.transactions.c.id == s.events.c.tx))
                 .where(and_(s.events.c.pos >= lo_pos, s.events.c.pos <= hi_pos)))
        for r in conn.execute(query):
            out[r.pos] = (r.event, "0x" + bytes(r.tx_hash).hex(), r.ts,
                          json.dumps(json.loads(r.args), sort_keys=True, separators=(",", ":")))
    return out


def verify_index(engine: Engine, gateway: ChainGateway, from_block: int, to_block: int | None = None, *,
                 step: int = 500, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Compare the index with the chain over ``from_block..to_block`` (capped at the indexed height)."""
    with engine.connect() as conn:
        indexed = AuditQueries.indexed_block(conn)
    to_block = indexed if to_block is None else to_block
    if from_block < 0 or to_block < from_block:
        raise AuditQueryError(f"empty or negative block range {from_block}..{to_block}", hint="give FROM <= TO")
    if to_block > indexed:
        raise AuditQueryError(f"block {to_block} is not indexed yet (indexed up to {indexed})", reason="not_indexed",
                              hint="sync first (`consortium audit sync`) or verify a lower range")
    source = ConsortiumLogs(gateway)
    report = VerifyReport(from_block, to_block, indexed)
    lo = from_block
    while lo <= to_block:
        hi = min(lo + step - 1, to_block)
        logs = source.logs(lo, hi)
        missing_ts = {lg.block_number for lg in logs if lg.timestamp is None}
        stamps = source.timestamps(missing_ts) if missing_ts else {}
        chain: dict[int, tuple] = {}
        for lg in logs:
            decoded = source.decode_generic(lg)
            if decoded is None:
                continue
            _, event, args = decoded
            ts = lg.timestamp if lg.timestamp is not None else stamps[lg.block_number]
            chain[s.pos_of(lg.block_number, lg.log_index)] = (event, lg.tx_hash, ts, canonical_json(args))
        index = _index_records(engine, s.pos_of(lo, 0), s.pos_of(hi, s.POS_MASK))
        report.chain_events += len(chain)
        report.index_events += len(index)
        for pos in sorted(chain.keys() | index.keys()):
            where = {"block": s.block_of(pos), "log_index": pos & s.POS_MASK}
            on_chain, indexed_as = chain.get(pos), index.get(pos)
            if indexed_as is None:
                report._note("missing", {**where, "event": on_chain[0], "tx_hash": on_chain[1]})
            elif on_chain is None:
                report._note("extra", {**where, "event": indexed_as[0], "tx_hash": indexed_as[1]})
            elif on_chain != indexed_as:
                report._note("different", {**where, "chain": _show(on_chain), "index": _show(indexed_as)})
        if progress is not None:
            progress(hi, to_block)
        lo = hi + 1
    return report


def _show(record: tuple) -> dict:
    return {"event": record[0], "tx_hash": record[1], "ts": record[2], "args": json.loads(record[3])}
