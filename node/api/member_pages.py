"""A member's own view, on its own node: who used my data, my grants, my statistics jobs, my evidence batches.

Served to the node's operator with the same single-use login as the regulator's pages (``consortium
audit web-url``), on a node whose member is an insurer, platform or technology firm in good standing.
Every query is filtered to this node's own address, taken from the node and never from the request, so
no parameter reaches another member's grants or uses. The access log comes from the node's event index:
a member node does not run the indexer thread (regulator and auditor nodes do), so each page first
catches the index up with the chain (incremental, from its cursor).
"""
from __future__ import annotations

import threading
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from node.api.audit import export_response
from node.api.pages import (
    MEMBER_ROLES,
    PAGE_SIZE,
    PageSession,
    _guard,
    _render,
    figure_csv,
    figure_window,
    pools_view,
    settlement_view,
)
from node.audit.money import member_pool_money, member_statements
from node.audit.queries import AuditQueryError, LogFilter, iso
from node.chain.deployment import Purpose
from node.chain.errors import ChainError
from node.errors import ConsortiumError
from node.stats.store import contributed
from node.web.figures import Names, member_figures, member_uses

router = APIRouter(prefix="/web/me", tags=["web"], include_in_schema=False)
member_page = _guard(MEMBER_ROLES)
SIDES = ("owner", "requester")  # my data used by others / others' data used by me


CATCH_UP_SECONDS = 10.0  # a first visit to a long chain indexes in the background of later visits, not in one page load


async def _catch_up(session: PageSession) -> str | None:
    """Bring the index up to the chain unless the indexer thread already does; a failure is shown, not fatal."""
    service = session.service
    if service.indexer.running:
        return None
    stop = threading.Event()
    timer = threading.Timer(CATCH_UP_SECONDS, stop.set)
    timer.start()
    try:
        report = await run_in_threadpool(service.indexer.sync, stop=stop)
    except ChainError as exc:
        return f"the chain could not be read ({exc.one_line()}); figures show the index as it was"
    finally:
        timer.cancel()
    if stop.is_set() and service.indexer.indexed_block() < report.to_block:
        return (f"the index is catching up with the chain (block {service.indexer.indexed_block()} of "
                f"{report.to_block}); reload for newer figures")
    return None


def _refusal(exc: AuditQueryError, session: PageSession) -> Response:
    status = 409 if exc.reason == "not_indexed" else 503 if exc.reason == "index_not_ready" else 422
    return _render("error.html", status, title="My data", message=exc.one_line(), session=session)


def _figures(request: Request, session: PageSession):
    service = session.service
    w = figure_window(service, request.query_params.get("days"), request.query_params.get("as_of"))
    names = Names(service.member_names())
    return w, names, member_figures(service.queries, service.address, names, w)


@router.get("", response_class=HTMLResponse)
async def my_view(request: Request, session: PageSession = Depends(member_page)) -> Response:
    warning = await _catch_up(session)
    try:
        return await run_in_threadpool(_my_view, request, session, warning)
    except AuditQueryError as exc:
        return _refusal(exc, session)


def _my_view(request: Request, session: PageSession, warning: str | None) -> Response:
    service, me = session.service, session.service.address
    w, names, figures = _figures(request, session)
    grants = service.queries.grants_of(me, as_of=w.as_of)
    for g in grants["given"] + grants["received"]:
        g["owner_name"], g["grantee_name"] = names(g["owner"]), names(g["grantee"])
        g["state"] = ("revoked" if g["revoked_at"] else "expired" if g["expires_at"] <= w.end_ts
                      else "not yet valid" if g["not_before"] > w.end_ts else "active")
    batches = service.queries.search_events(category="evidence", event="BatchAnchored", account=me, limit=50,
                                            as_of=w.as_of).items
    return _render("member.html", title=f"My data: {names(me)}", session=session, window=w, figures=figures,
                   uses=member_uses(service.queries, me, names, w), grants=grants, batches=batches,
                   money=my_money(service, me, w.as_of),
                   jobs=_my_jobs(request.app.state.ctx, names), contributions=_my_contributions(request.app.state.ctx, names),
                   since=iso(w.since), until=iso(w.until), warning=warning, me=me, my_name=names(me), names=names)


def my_money(service, me: str, as_of: int) -> dict:
    """What this member earned and owes per statement period, and its risk-pool and mutual-aid money, from the index."""
    _, statements = settlement_view(service, me, None, as_of)
    _, pools = pools_view(service, me, None, as_of)
    return {"settlement": member_statements(statements, me), "pools": member_pool_money(pools, me)}


def _my_jobs(ctx, names: Names) -> list[dict]:
    """Statistics jobs this node requested, and what each participant's release gate let out."""
    if ctx.stats is None:
        return []
    out = []
    for job in ctx.stats.store.list_jobs(50):
        releases = (job.get("progress") or {}).get("releases", {})
        result = job.get("result") if job["state"] == "PUBLISHED" else None
        out.append({"id": job["id"], "name": job["name"], "kind": job["kind"], "state": job["state"],
                    "chain_job_id": job["chain_job_id"], "created": iso(int(job["created_at"])),
                    "participants": [names(p) for p in job["participants"]],
                    "releases": [{"name": names(p), "records": r.get("records", 0), "min_cohort": r.get("min_cohort"),
                                  "suppressed": len(r.get("suppressed", []))} for p, r in sorted(releases.items())],
                    "result_rows": len(result["rows"]) if isinstance(result, dict) and "rows" in result else None,
                    "error": job.get("error_reason")})
    return out


def _my_contributions(ctx, names: Names) -> list[dict]:
    """What this node released into other members' jobs (its own contributions, as its release gate passed them)."""
    if ctx.stats is None:
        return []
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(contributed.c.requester, contributed.c.chain_job_id, contributed.c.kind,
                                   contributed.c.records, contributed.c.created_at)
                            .order_by(contributed.c.created_at.desc()).limit(50)).all()
    return [{"requester": names(r.requester), "chain_job_id": r.chain_job_id, "kind": r.kind, "records": r.records,
             "created": iso(int(r.created_at))} for r in rows]


# ---------------------------------------------------------------------- my access log (table and CSV)


def _my_filter(q, me: str) -> tuple[str, LogFilter]:
    """The table's filter with this member fixed on one side; the other side may be narrowed to a member."""
    side = q.get("side") or "owner"
    if side not in SIDES:
        raise AuditQueryError(f"side {side!r} is not owner or requester", hint="side=owner (uses of my data) or side=requester")
    other = "requester" if side == "owner" else "owner"
    f = LogFilter.parse(**{other: q.get(other) or None}, purpose=q.get("purpose"), dataset=q.get("dataset"),
                        outcome=q.get("outcome"), since=q.get("since"), until=q.get("until"), grant_id=q.get("grant_id"),
                        flagged=q.get("flagged") or False, **{side: me})
    return side, f


@router.get("/logs.csv")
async def my_log_csv(request: Request, session: PageSession = Depends(member_page)) -> Response:
    q = request.query_params
    try:
        _, f = _my_filter(q, session.service.address)
    except AuditQueryError as exc:
        return _render("error.html", 422, title="Bad filter", message=exc.one_line())
    as_of = int(q["as_of"]) if q.get("as_of", "").isdigit() else None
    return export_response(session.service, f, "csv", as_of)


@router.get("/logs", response_class=HTMLResponse)
async def my_log(request: Request, session: PageSession = Depends(member_page)) -> Response:
    warning = await _catch_up(session)
    return await run_in_threadpool(_my_log, request, session, warning)


def _my_log(request: Request, session: PageSession, warning: str | None) -> Response:
    service, me = session.service, session.service.address
    params = dict(request.query_params)
    names = service.member_names()
    error, page, side = None, None, params.get("side") or "owner"
    try:
        side, f = _my_filter(params, me)
        as_of = int(params["as_of"]) if params.get("as_of", "").isdigit() else None
        page = service.queries.search_logs(f, limit=PAGE_SIZE, cursor=params.get("cursor") or None, as_of=as_of)
    except (AuditQueryError, ValueError) as exc:
        error = exc.one_line() if isinstance(exc, ConsortiumError) else str(exc)
    keep = {k: v for k, v in params.items() if v and k not in ("cursor", "as_of")}
    pinned = {**keep, **({"as_of": str(page.as_of_block)} if page else {})}
    title = "Uses of my data" if side == "owner" else "My uses of others' data"
    return _render("member_logs.html", 422 if error else 200, title=title, session=session, page=page, error=error,
                   warning=warning, names=names,
                   members=[m for m in service.members() if m.address != me], params=params, side=side,
                   purposes=[p.name for p in Purpose], csv_url="/web/me/logs.csv?" + urlencode(pinned),
                   next_url=("/web/me/logs?" + urlencode({**keep, "as_of": page.as_of_block, "cursor": page.next_cursor})
                             if page and page.next_cursor else None))


@router.get("/{chart}.csv")
async def my_chart_csv(chart: str, request: Request, session: PageSession = Depends(member_page)) -> Response:
    try:
        w, _, figures = await run_in_threadpool(_figures, request, session)
    except AuditQueryError as exc:
        return _render("error.html", 422, title="Bad request", message=exc.one_line())
    return figure_csv(figures, chart, w)
