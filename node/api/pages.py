"""The regulator's and auditor's web pages, rendered on the server (Jinja2; no front-end build step).

Regulator: access log with filters and CSV download, denials, anomalies, member status with warn and
suspend. Auditor: upload a document and its proof file, see the verdict. Who may open them: see
node/audit/web_auth.py (operator session + this node's on-chain role).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from web3 import Web3

from node.api.audit import export_response
from node.audit.anomalies import KINDS
from node.audit.money import (
    CSV_TABLES,
    MoneyFilterError,
    certificate_state,
    filter_pools,
    filter_settlement,
    fold_pools,
    fold_settlement,
    table_csv,
)
from node.audit.queries import AuditQueryError, LogFilter, bounded_int, iso, money_events, parse_address
from node.audit.service import AuditService
from node.audit.web_auth import COOKIE
from node.chain.compiler import POOL_CONTRACTS
from node.chain.deployment import Purpose, Role, Status
from node.chain.errors import ChainError
from node.chain.ledger import card_reason_hash
from node.chain.reasons import DenialReason
from node.errors import ConsortiumError
from node.evidence.errors import EvidenceVerificationError
from node.evidence.verify import RegistryEvidenceChain, verify_evidence
from node.web.figures import MAX_DAYS, Names, Window, regulator_figures

WEB = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(prefix="/web", tags=["web"], include_in_schema=False)
templates = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]))
templates.filters["short"] = lambda a: f"{a[:6]}…{a[-4:]}" if isinstance(a, str) and len(a) > 12 else a

REGULATOR_ONLY = (Role.REGULATOR,)
AUDITOR_OR_REGULATOR = (Role.AUDITOR, Role.REGULATOR)
PAGE_SIZE = 50


def mount_static(app) -> None:
    app.mount("/web/static", StaticFiles(directory=WEB / "static"), name="web-static")


def _service(request: Request) -> AuditService:
    return request.app.state.audit


PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'self'; style-src 'self'; frame-ancestors 'none'"}

# The members page says what happened through a code in its address, never through text taken from it.
ACTION_MESSAGES = {"warned": "{member} warned", "suspended": "{member} suspended"}
ACTION_ERRORS = {
    "CannotSanctionSelf": "A member cannot warn or suspend itself.",
    "NotRegulator": "Only the consortium's regulator may warn or suspend members.",
    "UnknownMember": "That address is not a member of the consortium.",
    "MemberNotInGoodStanding": "That member is not in good standing.",
    "chain_unavailable": "The chain is not reachable; try again.",
}


def _render(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status, headers=PAGE_HEADERS)


class PageSession:
    """A logged-in operator on a node whose member holds the role the page needs."""

    def __init__(self, service: AuditService, sid: str, role: Role):
        self.service, self.sid, self.role = service, sid, role

    @property
    def csrf(self) -> str:
        return self.service.web.csrf(self.sid)


def _guard(roles: tuple[Role, ...]):
    async def dependency(request: Request) -> PageSession:
        service = _service(request)
        sid = request.cookies.get(COOKIE)
        if not service.web.valid(sid):
            raise _PageRefusal(_render("login.html", 403, message="Log in with the link from "
                                       "`consortium audit web-url --config <node.toml>`.", next=request.url.path,
                                       token=""))
        try:
            member = await run_in_threadpool(service.own_member)
        except ChainError as exc:
            raise _PageRefusal(_render("error.html", 503, title="Chain unavailable", message=exc.one_line())) from None
        if member.role not in roles or member.status not in (Status.ACTIVE, Status.WARNED):
            need = " or ".join(r.name.lower() for r in roles)
            raise _PageRefusal(_render("error.html", 403, title="Forbidden",
                                       message=f"This node's member is {member.role.name.lower() if member.role else 'not a member'}"
                                               f" ({member.status.name.lower()}); these pages need a {need} in good standing."))
        return PageSession(service, sid, member.role)

    return dependency


class _PageRefusal(Exception):
    def __init__(self, response: Response):
        self.response = response


def install_refusal_handler(app) -> None:
    @app.exception_handler(_PageRefusal)
    async def _refused(_: Request, exc: _PageRefusal):
        return exc.response


regulator_page = _guard(REGULATOR_ONLY)
auditor_page = _guard(AUDITOR_OR_REGULATOR)


# ---------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, token: str | None = None) -> Response:
    """The link from `audit web-url` lands here: a form that POSTs its token (a GET never logs in)."""
    return _render("login.html", message=None, next="/web/", token=token or "")


@router.post("/login")
def login_post(request: Request, token: str = Form("")) -> Response:
    return _login(request, token)


def _login(request: Request, token: str) -> Response:
    sid = _service(request).web.login(token)
    if sid is None:
        return _render("login.html", 403, message="That login link is used, expired or not this node's; run "
                       "`consortium audit web-url --config <node.toml>` for a new one.", next="/web/", token="")
    response = RedirectResponse("/web/", status_code=303)  # the token leaves the address bar; / picks the landing page
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/web",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    _service(request).web.logout(request.cookies.get(COOKIE))
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


# ---------------------------------------------------------------------- regulator


MEMBER_ROLES = (Role.INSURER, Role.PLATFORM, Role.TECH)
any_member_page = _guard(MEMBER_ROLES + AUDITOR_OR_REGULATOR)


@router.get("/", response_class=HTMLResponse)
def home(session: PageSession = Depends(any_member_page)) -> Response:
    """The landing page after login: the regulator's dashboard, the auditor's check, a member's own view."""
    if session.role == Role.AUDITOR:
        return RedirectResponse("/web/evidence", status_code=303)
    if session.role == Role.REGULATOR:
        return RedirectResponse("/web/dashboard", status_code=303)
    return RedirectResponse("/web/me", status_code=303)


def figure_window(service: AuditService, days: str | None, as_of: str | None) -> Window:
    """Whole days ending at the pinned block's chain time (the chain's clock, not this machine's)."""
    n = bounded_int(days, "days", low=1, high=MAX_DAYS) if days not in (None, "") else 7
    block = service.queries.pinned_block(bounded_int(as_of, "as_of block") if as_of not in (None, "") else None)
    try:
        end = int(service.gateway.w3.eth.get_block(block)["timestamp"])
    except Exception:  # chain unreachable: the newest indexed event's time still dates the window
        end = service.queries.newest_event_time(block) or int(time.time())
    return Window(block, end, n)


def _dashboard(request: Request, session: PageSession):
    service = session.service
    q = request.query_params
    w = figure_window(service, q.get("days"), q.get("as_of"))
    names = Names(service.member_names())
    found = service.anomalies.find(since=w.since, until=w.until)
    return w, regulator_figures(service.queries, found, names, w)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    """Who uses whose data, how much, and is anything odd: charts over a window of days, each linked to its table."""
    try:
        w, (figures, top) = _dashboard(request, session)
    except AuditQueryError as exc:
        return _render("error.html", 409 if exc.reason == "not_indexed" else 503 if exc.reason == "index_not_ready" else 422,
                       title="Dashboard", message=exc.one_line(), session=session)
    return _render("dashboard.html", title="Dashboard", session=session, window=w, figures=figures, top=top,
                   since=iso(w.since), until=iso(w.until), iso=iso)


@router.get("/dashboard/{chart}.csv")
def dashboard_csv(chart: str, request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    """The numbers behind one chart of the dashboard, for the same window and block."""
    try:
        w, (figures, _) = _dashboard(request, session)
    except AuditQueryError as exc:
        return _render("error.html", 422, title="Bad request", message=exc.one_line())
    return figure_csv(figures, chart, w)


def figure_csv(figures: list, chart: str, w: Window) -> Response:
    found = next((f for f in figures if f.key == chart), None)
    if found is None:
        return _render("error.html", 404, title="Not found", message=f"no chart {chart!r}; charts: "
                       + ", ".join(f.key for f in figures))
    return Response(found.csv_text(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{chart}-{w.as_of}.csv"', "X-Audit-As-Of-Block": str(found.as_of_block),
        "Cache-Control": "no-store"})


def _members_view(service: AuditService) -> tuple[list, dict[str, str]]:
    members = service.members()
    return members, {m.address: m.name for m in members}


def _log_page(request: Request, session: PageSession, outcome: str | None, title: str, path: str) -> Response:
    service = session.service
    params = dict(request.query_params)
    if outcome:
        params["outcome"] = outcome
    members, names = _members_view(service)
    error = None
    page = None
    try:
        f = LogFilter.parse(**{k: params.get(k) for k in ("requester", "owner", "purpose", "dataset", "outcome", "since",
                                                         "until", "grant_id", "flagged")})
        as_of = int(params["as_of"]) if params.get("as_of", "").isdigit() else None
        page = service.queries.search_logs(f, limit=PAGE_SIZE, cursor=params.get("cursor") or None, as_of=as_of)
    except (AuditQueryError, ValueError) as exc:
        error = exc.one_line() if isinstance(exc, ConsortiumError) else str(exc)
        f = LogFilter()
    keep = {k: v for k, v in params.items() if v and k not in ("cursor", "as_of")}
    if outcome:
        keep.pop("outcome", None)
    pinned = {**keep, **({"as_of": str(page.as_of_block)} if page else {})}
    if outcome and page:
        pinned["outcome"] = outcome
    return _render("logs.html", title=title, path=path, session=session, page=page, error=error, names=names,
                   members=members, params=params, fixed_outcome=outcome, purposes=[p.name for p in Purpose],
                   csv_url="/web/logs.csv?" + urlencode(pinned),
                   next_url=(f"{path}?" + urlencode({**keep, "as_of": page.as_of_block, "cursor": page.next_cursor})
                             if page and page.next_cursor else None))


@router.get("/logs", response_class=HTMLResponse)
def access_log(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    return _log_page(request, session, None, "Access log", "/web/logs")


@router.get("/denials", response_class=HTMLResponse)
def denials(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    return _log_page(request, session, "denial", "Denials", "/web/denials")


@router.get("/logs.csv")
def access_log_csv(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    q = request.query_params
    try:
        f = LogFilter.parse(**{k: q.get(k) for k in ("requester", "owner", "purpose", "dataset", "outcome", "since",
                                                    "until", "grant_id", "flagged")})
    except AuditQueryError as exc:
        return _render("error.html", 422, title="Bad filter", message=exc.one_line())
    as_of = int(q["as_of"]) if q.get("as_of", "").isdigit() else None
    return export_response(session.service, f, "csv", as_of)


@router.get("/anomalies", response_class=HTMLResponse)
def anomalies(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    kind = request.query_params.get("kind") or None
    result = session.service.anomalies.find(kinds=[kind] if kind in KINDS else None)
    _, names = _members_view(session.service)
    return _render("anomalies.html", title="Anomalies", session=session, result=result, names=names, kinds=KINDS,
                   kind=kind)


@router.get("/members", response_class=HTMLResponse)
def members(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    service = session.service
    service.forget_members()
    members, names = _members_view(service)
    cards = service.queries.search_events(category="governance", event="MemberStatusChanged", limit=50).items
    q = request.query_params
    member = q.get("member", "")
    message = (ACTION_MESSAGES[q["done"]].format(member=Web3.to_checksum_address(member))
               if q.get("done") in ACTION_MESSAGES and Web3.is_address(member) else None)
    error = q.get("error")
    error = ACTION_ERRORS.get(error, "The action was refused.") if error else None
    return _render("members.html", title="Members", session=session, members=members, names=names, cards=cards,
                   own=service.address, message=message, error=error)


@router.post("/members/{address}/{action}")
def card(address: str, action: str, csrf: str = Form(""), reason: str = Form(""),
         session: PageSession = Depends(regulator_page)) -> Response:
    """Warn or suspend a member: a transaction from this node's (regulator's) account."""
    service = session.service
    if not service.web.check_csrf(session.sid, csrf):
        return _render("error.html", 403, title="Forbidden", message="The form's CSRF token is missing or stale; reload the page.")
    if action not in ("warn", "suspend") or not Web3.is_address(address):
        return _render("error.html", 422, title="Bad request", message="warn or suspend a member's address")
    reason_hash = card_reason_hash(reason)
    try:
        getattr(service.ledger, action)(Web3.to_checksum_address(address), reason_hash)
    except ConsortiumError as exc:
        name = getattr(exc, "name", None) or exc.reason  # a contract revert's error name, else the reason code
        return RedirectResponse("/web/members?" + urlencode({"error": name}), status_code=303)
    service.forget_members()
    done = "warned" if action == "warn" else "suspended"
    return RedirectResponse("/web/members?" + urlencode({"done": done, "member": address}), status_code=303)


# ---------------------------------------------------------------------- settlement and pools (issue 15)
# Every money event is on chain; these pages fold the index's settlement and pools events into tables
# (node/audit/money.py), filtered by member and period, each table also as CSV for the same block.


def _money_refusal(exc: ConsortiumError, title: str, session: PageSession | None = None) -> Response:
    status = 409 if exc.reason == "not_indexed" else 503 if exc.reason == "index_not_ready" else 422
    return _render("error.html", status, title=title, message=exc.one_line(), session=session)


def money_filters(q) -> tuple[str | None, int | None, int | None]:
    """(member, period, as_of block) from a money page's query; each optional, each checked."""
    member = parse_address(q["member"], "member") if q.get("member") else None
    period = bounded_int(q["period"], "period") if q.get("period") not in (None, "") else None
    as_of = bounded_int(q["as_of"], "as_of block") if q.get("as_of") not in (None, "") else None
    return member, period, as_of


def block_time(service: AuditService, block: int) -> int:
    """The chain time of ``block`` (certificates expire by it), or the newest indexed event's time if the chain is down."""
    try:
        return int(service.gateway.w3.eth.get_block(block)["timestamp"])
    except Exception:
        return service.queries.newest_event_time(block) or int(time.time())


def settlement_view(service: AuditService, member: str | None, period: int | None, as_of: int | None):
    block, events = money_events(service.queries, "settlement", as_of=as_of)
    view = filter_settlement(fold_settlement(events), member, period)
    now = block_time(service, block)
    for cert in view.certificates:
        cert["state"] = certificate_state(cert, now)
    return block, view


def pools_view(service: AuditService, member: str | None, period: int | None, as_of: int | None):
    block, events = money_events(service.queries, "pools", as_of=as_of)
    schemes = {service.gateway.contract(n).address: n for n in POOL_CONTRACTS}  # who holds a claim, by name
    return block, filter_pools(fold_pools(events, schemes), member, period)


def _money_page(request: Request, session: PageSession, page: str) -> Response:
    title = "Settlement" if page == "settlement" else "Pools"
    q = request.query_params
    try:
        member, period, as_of = money_filters(q)
        block, view = (settlement_view if page == "settlement" else pools_view)(session.service, member, period, as_of)
    except (AuditQueryError, MoneyFilterError) as exc:
        return _money_refusal(exc, title, session)
    members, names = _members_view(session.service)
    keep = {k: v for k, v in {"member": member or "", "period": "" if period is None else str(period)}.items() if v}
    csv = {t: f"/web/{page}/{t}.csv?" + urlencode({**keep, "as_of": block}) for t in CSV_TABLES[page]}
    return _render(f"{page}.html", title=title, session=session, view=view, block=block, names=names, members=members,
                   member=member, period=period, csv=csv, iso=iso)


def _money_csv(request: Request, session: PageSession, page: str, table: str) -> Response:
    try:
        member, period, as_of = money_filters(request.query_params)
        block, view = (settlement_view if page == "settlement" else pools_view)(session.service, member, period, as_of)
        text = table_csv(page, table, getattr(view, table, None) or [])
    except (AuditQueryError, MoneyFilterError) as exc:
        return _money_refusal(exc, "Bad request")
    return Response(text, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{page}-{table}-{block}.csv"', "X-Audit-As-Of-Block": str(block),
        "Cache-Control": "no-store"})


@router.get("/settlement", response_class=HTMLResponse)
def settlement_page(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    """Offers, certificates, statements per period with their state, and disputes."""
    return _money_page(request, session, "settlement")


@router.get("/settlement/{table}.csv")
def settlement_csv(table: str, request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    return _money_csv(request, session, "settlement", table)


@router.get("/pools", response_class=HTMLResponse)
def pools_page(request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    """Risk pools, confirmed losses with each member's share and payment, contributions, mutual-aid payouts."""
    return _money_page(request, session, "pools")


@router.get("/pools/{table}.csv")
def pools_csv(table: str, request: Request, session: PageSession = Depends(regulator_page)) -> Response:
    return _money_csv(request, session, "pools", table)


# ---------------------------------------------------------------------- auditor


@router.get("/evidence", response_class=HTMLResponse)
def evidence_form(session: PageSession = Depends(auditor_page)) -> Response:
    return _render("evidence.html", title="Evidence check", session=session, verdict=None)


@router.post("/evidence", response_class=HTMLResponse)
async def evidence_check(document: UploadFile, proof: UploadFile, csrf: str = Form(""),
                         session: PageSession = Depends(auditor_page)) -> Response:
    """Verify a document and its proof file against EvidenceRegistry (node.evidence.verify, chain only)."""
    if not session.service.web.check_csrf(session.sid, csrf):
        return _render("error.html", 403, title="Forbidden", message="The form's CSRF token is missing or stale; reload the page.")
    digest = hashlib.sha256(await document.read()).digest()
    verdict: dict
    try:
        proof_file = json.loads(await proof.read())
    except ValueError as exc:
        verdict = {"valid": False, "reason": "malformed_proof", "message": f"the proof file is not JSON: {exc}"}
    else:
        chain = RegistryEvidenceChain(session.service.gateway)
        try:
            result = await run_in_threadpool(verify_evidence, digest, proof_file, chain)
            verdict = result.to_json()
            verdict["block_time_iso"] = iso(result.block_time)
        except EvidenceVerificationError as exc:
            verdict = {"valid": False, "reason": exc.reason, "message": exc.one_line()}
        except ConsortiumError as exc:
            verdict = {"valid": False, "reason": exc.reason, "message": exc.one_line()}
    verdict["document_name"] = document.filename
    verdict["document_sha256"] = digest.hex()
    return _render("evidence.html", title="Evidence check", session=session, verdict=verdict)


__all__ = ["router", "mount_static", "install_refusal_handler", "DenialReason"]
