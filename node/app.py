"""The node's FastAPI application: routers, error mapping and the request-size limit."""
from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from node.api import data, governance, grants, health
from node.api.deps import evidence_caller
from node.evidence import api as evidence_api
from node.chain.errors import ChainUnavailable, ContractRevert
from node.context import NodeContext
from node.datasets import DatasetError
from node.errors import ConsortiumError

_FORBIDDEN_REVERTS = {"NotMember", "MemberNotInGoodStanding", "NotRegulator", "NotGrantOwner", "CannotSanctionSelf",
                      "NotRequester", "NotParticipant", "NotClaimInsurer",
                      # a consent that does not authorize the grant it is offered for (node/consent.py)
                      "ConsentMismatch", "ConsentExpired", "ConsentAlreadyUsed", "BadConsentSignature", "ConsentSignerNotMember"}


_HTTP_REASONS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request"}


def _body(reason: str, message: str) -> dict:
    return {"detail": {"reason": reason, "message": message}}


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, whether or not Content-Length is sent.

    ``path_limits`` raises the limit for paths that take large bodies (evidence documents).
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


def create_app(ctx: NodeContext) -> FastAPI:
    app = FastAPI(title=f"Consortium node: {ctx.settings.name}", version="0.1.0",
                  description="Data-use authorizations, access logs and joint statistics for one consortium member")
    app.state.ctx = ctx
    for module in (health, data, grants, governance):
        app.include_router(module.router)
    from node.api import stats as stats_api

    app.include_router(stats_api.router)  # joint statistics: operator jobs and the node-to-node protocol
    from node.api import denials as denials_api

    app.include_router(denials_api.router)  # the signed request behind each denial, for the regulator
    # Evidence intake, receipts and proofs belong to the member's own systems (operator); verification
    # is open to any authenticated member, typically an auditor.
    app.state.evidence = ctx.evidence
    app.include_router(evidence_api.router, dependencies=[Depends(evidence_caller)])
    from node.audit.service import install_audit

    install_audit(app, ctx)  # regulator/auditor API and pages, and the event indexer for the app's lifetime

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

    @app.exception_handler(ConsortiumError)
    async def _consortium(_: Request, exc: ConsortiumError):
        return JSONResponse(_body(exc.reason, exc.one_line()), status_code=400)

    # Outermost, so even routing and validation never read more than the limit.
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes,
                       path_limits={"/evidence/documents": ctx.settings.evidence_max_document_bytes,
                                    "/evidence/verify": ctx.settings.evidence_max_document_bytes * 4 // 3 + 65536,
                                    # the auditor's evidence page uploads a document and its proof file
                                    "/web/evidence": ctx.settings.evidence_max_document_bytes + 1024 * 1024,
                                    "/evidence/hashes": max(ctx.settings.max_body_bytes, 64 * 1024 * 1024),
                                    # vertical statistics: a million blinded ids, label batches of 5000 ciphertexts
                                    "/stats/vertical/double": max(ctx.settings.max_body_bytes, 256 * 1024 * 1024),
                                    "/stats/vertical/labels": max(ctx.settings.max_body_bytes, 64 * 1024 * 1024)})
    return app
