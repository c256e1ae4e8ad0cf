"""Request dependencies: the node context, the authenticated caller and who may read what.

Access levels, from least to most trusted (tests/system/test_route_access.py holds the table per route):
``authenticated`` (any valid signature; enforcement decides and logs, e.g. /data/query),
``member`` (an admitted member in good standing, read by the registry), ``operator`` (this node's own
account). A route with none of these is public on purpose (/health, /ready without counts, OpenAPI).
Routes declare their caller in their own signature (``_: Operator``, ``_: Member``), never by how a router
is mounted. Errors that carry their own reason and HTTP status are answered by one handler (``problem_response``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from node.access.auth import HEADER_SIGNATURE, AuthError, canonical_target
from node.access.release_gate import ReleaseRefusal
from node.access.signed_request import SignedRequest, serving
from node.chain.deployment import Status
from node.errors import ConsortiumError
from node.runtime.context import NodeContext
from privacy.errors import PrivacyError

# Ids are uint256 on chain but pass through SQLite and PostgreSQL BIGINT columns: one bound for all.
MAX_ID = 2**63 - 1
ChainIdPath = Annotated[int, Path(ge=0, le=MAX_ID, description="a non-negative on-chain id")]
ChainIdQuery = Annotated[int, Query(ge=0, le=MAX_ID, description="a non-negative on-chain id")]
GOOD_STANDING = (Status.ACTIVE, Status.WARNED)


def problem(status: int, reason: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "message": message})


# Errors that carry their own answer: ConsortiumError its ``http_status`` and ``reason``, a release-gate refusal
# (the gate's, or a participant's protocol refusal) its ``status``; the privacy layer refuses inputs (422).
REFUSALS = (ConsortiumError, ReleaseRefusal, PrivacyError)


def problem_response(exc: Exception) -> JSONResponse:
    """The one mapping of a refusal to its HTTP answer, ``{"detail": {"reason", "message"}}``."""
    if isinstance(exc, ConsortiumError):
        status, message = exc.http_status, exc.one_line()
    elif isinstance(exc, ReleaseRefusal):
        status, message = exc.status, str(exc)
    else:
        status, message = 422, str(exc)
    return JSONResponse({"detail": {"reason": exc.reason, "message": message}}, status_code=status)


async def refusal_handler(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(exc)


async def get_context(request: Request) -> NodeContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off per request
    return request.app.state.ctx


@dataclass(frozen=True)
class Caller:
    """The verified signer. Membership is checked where it matters (enforcement, the chain's own guards)."""

    address: str
    request: SignedRequest | None = None  # what the caller signed: kept with a denial as its proof


def signed_target(request: Request) -> str:
    """The request target as it came on the wire (percent-encoded path and query): what the client signed."""
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return canonical_target(raw_path, scope.get("query_string") or b"")


async def authenticated(request: Request) -> Caller:
    """The verified signer of this request (401 when unsigned, forged, stale or replayed)."""
    ctx: NodeContext = request.app.state.ctx
    request.state.arrived = time.monotonic()  # before any waiting: decisions honour what was mined by now
    body = await request.body()
    target = signed_target(request)
    try:
        verified = ctx.verifier.verify(request.method, target, body, request.headers)
    except AuthError as exc:
        raise problem(exc.status, exc.reason, exc.one_line()) from None
    signed = SignedRequest(verified.signer, request.method, target, body, verified.timestamp, verified.nonce,
                           verified.signature, verified.digest)
    serving(signed)
    return Caller(verified.signer, signed)


async def operator(request: Request) -> Caller:
    """The node's own member account: only it may act on the member's behalf (grants, votes, cards)."""
    caller = await authenticated(request)
    ctx: NodeContext = request.app.state.ctx
    if caller.address != ctx.address:
        raise problem(403, "not_operator", "only this member's own account may do this")
    return caller


async def member(request: Request) -> Caller:
    """A member of the consortium in good standing (or this node's operator), as the registry says now."""
    caller = await authenticated(request)
    ctx: NodeContext = request.app.state.ctx
    if caller.address == ctx.address:
        return caller
    cache = ctx.enforcer.cache
    if cache is not None:  # invalidated by admissions and status changes, like the grant checks
        await run_in_threadpool(cache.sync, request.state.arrived)
        status = await run_in_threadpool(cache.member_status, caller.address)
    else:
        status = (await run_in_threadpool(ctx.ledger.member, caller.address)).status
    if status == Status.NONE:
        raise problem(403, "not_member", "only consortium members may read this")
    if status not in GOOD_STANDING:
        raise problem(403, "not_in_good_standing", f"the caller's membership is {status.name.lower()}")
    return caller


async def optional_operator(request: Request) -> Caller | None:
    """The operator when the request is signed (403/401 when signed by anyone else or badly), else None."""
    if HEADER_SIGNATURE not in request.headers:
        return None
    return await operator(request)


# Typed callers: a route declares who may call it in its own signature (FastAPI's Annotated dependencies).
Authenticated = Annotated[Caller, Depends(authenticated)]
Member = Annotated[Caller, Depends(member)]
Operator = Annotated[Caller, Depends(operator)]
