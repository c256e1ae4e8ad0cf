"""The node's FastAPI application: routers, error mapping, the request-size limit and the body deadline."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from eth_abi.exceptions import EncodingError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from web3.exceptions import Web3ValidationError

from node.api import audit as audit_api
from node.api import data, governance, grants, health, member_pages, pages
from node.api.body_limits import route_body_limits
from node.api.deps import REFUSALS, refusal_handler
from node.api.lane import NodeApp
from node.audit.service import AuditService
from node.chain.errors import ChainUnavailable, ContractRevert
from node.evidence import api as evidence_api
from node.runtime.context import NodeContext
from node.store.datasets import DatasetError

_FORBIDDEN_REVERTS = {"NotMember", "MemberNotInGoodStanding", "NotRegulator", "NotGrantOwner", "CannotSanctionSelf",
                      "NotRequester", "NotParticipant", "NotClaimInsurer",
                      # a consent that does not authorize the grant it is offered for (node/access/consent.py)
                      "ConsentMismatch", "ConsentExpired", "ConsentAlreadyUsed", "BadConsentSignature", "ConsentSignerNotMember"}


log = logging.getLogger(__name__)

# Raised by parsing and conversion code deep under a route when the input was wrong (a list where a
# string belongs, an integer too large for a column or a uint): the request's fault, answered 422.
_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, Web3ValidationError, EncodingError)

_HTTP_REASONS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 408: "body_timeout",
                 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request"}


def _body(reason: str, message: str) -> dict:
    return {"detail": {"reason": reason, "message": message}}


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, whether or not Content-Length is sent.

    ``path_limits`` raises the limit for paths that take large bodies (node/api/body_limits.py declares them).
    """

    def __init__(self, app: ASGIApp, limit: int, path_limits: dict[str, int] | None = None):
        self.app = app
        self.default = limit
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.path_limits.get(scope.get("path", ""), self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        response = JSONResponse(_body("body_too_large", f"request body over {limit} bytes"), status_code=413)
        await response({"type": "http"}, None, send)  # type: ignore[arg-type]


class _TooLarge(Exception):
    pass


class BodyDeadline:
    """Refuse with 408 (and close the connection) a request body that arrives too slowly.

    The body must be complete within ``grace`` seconds plus one second per ``min_rate`` bytes received,
    so a large upload at a normal speed passes and a client trickling bytes is cut off. Headers are
    bounded in the server itself (node/runtime/http_server.py), before the application sees the request.
    """

    def __init__(self, app: ASGIApp, grace: float, min_rate: int):
        self.app = app
        self.grace = grace
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        complete = False
        responded = False
        timed_out = False
        waiting: asyncio.Task | None = None  # the task blocked in receive(), if any
        timer: asyncio.TimerHandle | None = None

        def deadline() -> float:
            return started + self.grace + received / self.min_rate

        def expire() -> None:
            # One timer per request, moved only when it fires: a per-receive asyncio.timeout cost more CPU than
            # the rest of this middleware on the request path, and most small bodies come with the headers.
            nonlocal timer, timed_out
            timer = None
            if complete:
                return
            if loop.time() < deadline():  # bytes arrived since it was armed: the deadline moved on
                timer = loop.call_at(deadline(), expire)
                return
            timed_out = True
            if waiting is not None:
                waiting.cancel()

        async def timed_receive():
            nonlocal received, complete, waiting, timer
            if complete:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            if timed_out:
                raise _SlowBody()
            if timer is None:
                timer = loop.call_at(max(deadline(), loop.time() + 0.001), expire)
            waiting = asyncio.current_task()
            try:
                message = await receive()
            except asyncio.CancelledError:
                if timed_out:  # our own cancel: undo it on the task, answer 408 instead
                    asyncio.current_task().uncancel()
                    raise _SlowBody() from None
                raise
            finally:
                waiting = None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if complete and timer is not None:
                    timer.cancel()
                    timer = None
            return message

        async def tracking_send(message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except _SlowBody:
            if responded:
                raise
            response = JSONResponse(_body("body_timeout", f"request body not received in time ({received} bytes "
                                          f"after {loop.time() - started:.0f} s)"), status_code=408,
                                    headers={"connection": "close"})
            await response({"type": "http"}, None, send)  # type: ignore[arg-type]
        finally:
            if timer is not None:
                timer.cancel()


class _SlowBody(Exception):
    pass


_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """Every answer (API, pages, static files, errors) tells browsers not to sniff types or send Referers."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in _SECURITY_HEADERS if k not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _install_audit(app: FastAPI, ctx: NodeContext) -> AuditService:
    """Mount the audit API and pages on one AuditService and run its indexer while the app runs."""
    service = AuditService(ctx.engine, ctx.gateway, ctx.deployment, ctx.ledger, ctx.settings.home)
    app.state.audit = service
    app.include_router(audit_api.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    pages.install_refusal_handler(app)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        service.start()
        try:
            async with previous(a) as state:
                yield state
        finally:
            service.stop()

    app.router.lifespan_context = lifespan
    return service


def create_app(ctx: NodeContext) -> FastAPI:
    # FastAPI's built-in OpenTelemetry is off: the node exports no traces or metrics, and with it on every request
    # looked up the global providers through the process environment (bench.py node-access --profile).
    app = NodeApp(title=f"Consortium node: {ctx.settings.name}", version="0.1.0",
                  description="Data-use authorizations, access logs and joint statistics for one consortium member",
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
    app.state.ctx = ctx
    from node.runtime.memtrace import start_from_environment

    start_from_environment()  # CONSORTIUM_MEMTRACE=file: periodic memory samples, for finding drift (debug only)
    for module in (health, data, grants, governance):
        app.include_router(module.router)
    from node.api import stats as stats_api

    app.include_router(stats_api.router)  # joint statistics: operator jobs and the node-to-node protocol
    from node.api import denials as denials_api

    app.include_router(denials_api.router)  # the signed request behind each denial, for the regulator
    from node.api import settlement as settlement_api

    app.include_router(settlement_api.router)  # what this member earned and owes (operator only)
    # Evidence intake, receipts and proofs belong to the member's own systems (operator); verification
    # is open to any authenticated member, typically an auditor.
    app.state.evidence = ctx.evidence
    app.include_router(evidence_api.router)  # each route declares its caller: operator, or a member to verify
    _install_audit(app, ctx)  # regulator/auditor API and pages, and the event indexer for the app's lifetime
    app.include_router(member_pages.router)  # a member's own view of who used its data (operator login)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(_body("invalid_request", f"{where}: {first.get('msg')}"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        # Framework errors (unparsable body, unknown path, wrong method) get the same machine-readable shape.
        if isinstance(exc.detail, dict) and "reason" in exc.detail:
            body = {"detail": exc.detail}
        else:
            body = _body(_HTTP_REASONS.get(exc.status_code, "http_error"), str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ContractRevert)
    async def _revert(_: Request, exc: ContractRevert):
        status = 403 if exc.name in _FORBIDDEN_REVERTS else 404 if exc.name.startswith("Unknown") else 409
        return JSONResponse(_body(exc.name, str(exc)), status_code=status)

    @app.exception_handler(ChainUnavailable)
    async def _chain_down(_: Request, exc: ChainUnavailable):
        return JSONResponse(_body(exc.reason, exc.one_line()), status_code=503)

    @app.exception_handler(DatasetError)
    async def _dataset(_: Request, exc: DatasetError):
        return JSONResponse(_body(exc.reason, exc.one_line()), status_code=404 if exc.reason == "unknown_dataset" else 422)

    for refusal in REFUSALS:  # errors that carry their reason and HTTP status (node/api/deps.py)
        app.add_exception_handler(refusal, refusal_handler)

    async def _bad_input(request: Request, exc: Exception):
        # Logged without the input (it may hold personal data): the type says where to add a proper check.
        log.warning("bad input on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(_body("invalid_request", f"the request could not be used: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}"), status_code=422)

    for error in _INPUT_ERRORS:
        app.add_exception_handler(error, _bad_input)

    # Outermost, so even routing and validation never read more than the limit.
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes, path_limits=route_body_limits(ctx.settings))
    app.add_middleware(BodyDeadline, grace=ctx.settings.http_body_timeout_seconds,
                       min_rate=ctx.settings.http_body_min_bytes_per_second)
    app.add_middleware(SecurityHeaders)
    return app
