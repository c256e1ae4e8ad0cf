"""Liveness and readiness."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from node.api.deps import Caller, get_context, optional_operator, problem
from node.context import NodeContext

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: NodeContext = Depends(get_context)) -> dict:
    return {"status": "ok", "member": ctx.address, "name": ctx.settings.name}


@router.get("/ready")
def ready(ctx: NodeContext = Depends(get_context), operator: Caller | None = Depends(optional_operator)) -> dict:
    """Chain reachable? Unsigned callers (load balancers) learn only that; the operator also gets the
    access-log queue, which says how much this member serves."""
    try:
        block = ctx.gateway.block_number()
    except Exception as exc:
        raise problem(503, "chain_unavailable", f"chain not reachable: {type(exc).__name__}") from None
    if operator is None:
        return {"status": "ready", "block": block}
    return {"status": "ready", "block": block, "access_log": ctx.access_log.counts(), "last_error": ctx.access_log.last_error}
