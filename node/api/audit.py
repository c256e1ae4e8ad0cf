"""The regulator's audit API: access logs, other chain events, aggregates, anomalies, index verification.

Every route needs a signed request from a REGULATOR member in good standing (403 otherwise); every
answer states the block height it reflects (``as_of_block`` in JSON, ``X-Audit-As-Of-Block`` on exports).
Read-only: the regulator's governance actions (warn, suspend) are the registry's and go through
/governance or the web pages.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from node.api.deps import MAX_ID, Caller, authenticated, problem
from node.audit.queries import AuditQueryError, LogFilter, parse_time
from node.audit.service import AuditService
from node.audit.verify import verify_index
from node.chain.deployment import Role, Status

router = APIRouter(prefix="/audit", tags=["audit"])

MAX_VERIFY_BLOCKS = 100_000


def audit_service(request: Request) -> AuditService:
    service = getattr(request.app.state, "audit", None)
    if service is None:
        raise problem(503, "audit_disabled", "this node does not serve the audit API")
    return service


async def regulator(request: Request, caller: Caller = Depends(authenticated)) -> Caller:
    """A signed request from a regulator in good standing (the role comes from the registry, not the caller)."""
    member = await run_in_threadpool(request.app.state.ctx.ledger.member, caller.address)
    if member.role != Role.REGULATOR:
        raise problem(403, "not_regulator", "only a consortium regulator may read the audit log")
    if member.status not in (Status.ACTIVE, Status.WARNED):
        raise problem(403, "not_in_good_standing", f"the regulator account is {member.status.name.lower()}")
    return caller


def _refuse(exc: AuditQueryError):
    status = 409 if exc.reason == "not_indexed" else 503 if exc.reason == "index_not_ready" else 422
    return problem(status, exc.reason, exc.one_line())


def log_filter(requester: str | None = None, owner: str | None = None, purpose: str | None = None,
               dataset: str | None = None, outcome: str | None = None, since: str | None = None,
               until: str | None = None, grant_id: str | None = None, flagged: str | None = None) -> LogFilter:
    try:
        return LogFilter.parse(requester=requester, owner=owner, purpose=purpose, dataset=dataset, outcome=outcome,
                               since=since, until=until, grant_id=grant_id, flagged=flagged or False)
    except AuditQueryError as exc:
        raise _refuse(exc) from None


@router.get("/status")
def status(_: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> dict:
    try:
        out = service.queries.status()
    except AuditQueryError as exc:
        raise _refuse(exc) from None
    return {**out, "as_of_block": out["indexed_block"], "chain_head": service.gateway.block_number(),
            "indexer_error": service.indexer.last_error}


@router.get("/logs")
def logs(f: LogFilter = Depends(log_filter), limit: int = 100, cursor: str | None = None, as_of: int | None = None,
         _: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> dict:
    """One page of accesses and denials, newest first; pass ``next_cursor`` back as ``cursor`` for the next."""
    try:
        return service.queries.search_logs(f, limit=limit, cursor=cursor, as_of=as_of).to_json()
    except AuditQueryError as exc:
        raise _refuse(exc) from None


def export_response(service: AuditService, f: LogFilter, fmt: str, as_of: int | None) -> StreamingResponse:
    try:
        if fmt == "csv":
            block, body = service.queries.export_csv(f, as_of=as_of)
            media = "text/csv; charset=utf-8"
        else:
            block, body = service.queries.export_json(f, as_of=as_of)
            media = "application/json"
    except AuditQueryError as exc:
        raise _refuse(exc) from None
    return StreamingResponse(body, media_type=media, headers={
        "X-Audit-As-Of-Block": str(block),
        "Content-Disposition": f'attachment; filename="access-log-block-{block}.{fmt}"'})


@router.get("/logs/export")
def export(f: LogFilter = Depends(log_filter), format: Literal["csv", "json"] = "csv", as_of: int | None = None,
           _: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> StreamingResponse:
    """Every matching row as CSV or JSON, pinned to one block (``X-Audit-As-Of-Block``)."""
    return export_response(service, f, format, as_of)


@router.get("/aggregates")
def aggregates(f: LogFilter = Depends(log_filter), group_by: str = "day,requester,purpose",
               _: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> dict:
    """Accesses (and denials) per member per purpose per day, or any grouping of those."""
    try:
        return service.queries.daily_counts(f, group_by=tuple(g.strip() for g in group_by.split(",") if g.strip()))
    except AuditQueryError as exc:
        raise _refuse(exc) from None


@router.get("/events")
def events(category: str | None = None, event: str | None = None, account: str | None = None,
           grant_id: int | None = Query(None, ge=0, le=MAX_ID), job_id: int | None = Query(None, ge=0, le=MAX_ID),
           since: str | None = None, until: str | None = None,
           limit: int = 100, cursor: str | None = None, as_of: int | None = None,
           _: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> dict:
    """Authorization, governance, statistics-job and evidence events (filter by grant or job id)."""
    try:
        return service.queries.search_events(
            category=category, event=event, account=account, grant_id=grant_id, job_id=job_id,
            since=parse_time(since, "since") if since else None, until=parse_time(until, "until") if until else None,
            limit=limit, cursor=cursor, as_of=as_of).to_json()
    except AuditQueryError as exc:
        raise _refuse(exc) from None


@router.get("/anomalies")
def anomalies(since: str | None = None, until: str | None = None, kind: str | None = None,
              _: Caller = Depends(regulator), service: AuditService = Depends(audit_service)) -> dict:
    try:
        return service.anomalies.find(since=parse_time(since, "since") if since else None,
                                      until=parse_time(until, "until") if until else None,
                                      kinds=kind.split(",") if kind else None)
    except AuditQueryError as exc:
        raise _refuse(exc) from None


@router.get("/verify")
def verify(from_block: int = Query(ge=0, le=MAX_ID), to_block: int | None = Query(None, ge=0, le=MAX_ID), _: Caller = Depends(regulator),
           service: AuditService = Depends(audit_service)) -> dict:
    """Re-read ``from_block..to_block`` from the chain and report every difference with the index."""
    upper = to_block if to_block is not None else service.indexer.indexed_block()
    if upper - from_block >= MAX_VERIFY_BLOCKS:
        raise problem(422, "range_too_large", f"verify at most {MAX_VERIFY_BLOCKS} blocks per request "
                      "(or run `consortium audit verify` on the node)")
    try:
        return verify_index(service.engine, service.gateway, from_block, to_block).to_json()
    except AuditQueryError as exc:
        raise _refuse(exc) from None
