"""Request dependencies: the node context and the authenticated caller."""
from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import HTTPException, Request

from node.auth import AuthError
from node.context import NodeContext
from node.signed_request import SignedRequest, serving


def problem(status: int, reason: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"reason": reason, "message": message})


def get_context(request: Request) -> NodeContext:
    return request.app.state.ctx


@dataclass(frozen=True)
class Caller:
    """The verified signer. Membership is checked where it matters (enforcement, the chain's own guards)."""

    address: str
    request: SignedRequest | None = None  # what the caller signed: kept with a denial as its proof


async def authenticated(request: Request) -> Caller:
    """The verified signer of this request (401 when unsigned, forged, stale or replayed)."""
    ctx: NodeContext = request.app.state.ctx
    request.state.arrived = time.monotonic()  # before any waiting: decisions honour what was mined by now
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        verified = ctx.verifier.verify(request.method, path, body, dict(request.headers))
    except AuthError as exc:
        raise problem(401, exc.reason, exc.one_line()) from None
    signed = SignedRequest(verified.signer, request.method, path, body, verified.timestamp, verified.nonce,
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


async def evidence_caller(request: Request) -> Caller:
    """Evidence verification: any member; intake, receipts, proofs and status: this member only."""
    if request.url.path == "/evidence/verify":
        return await authenticated(request)
    return await operator(request)
