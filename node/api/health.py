"""Liveness and readiness."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from node.api.deps import Caller, get_context, optional_operator, problem
from node.runtime.context import NodeContext

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: NodeContext = Depends(get_context)) -> dict:
    return {"status": "ok", "member": ctx.address, "name": ctx.settings.name}


def not_ready_reason(ctx: NodeContext) -> tuple[str, str] | None:
    """Why this node cannot do its work now (reason, message), or None when it can.

    Ready means: the statistics key is loaded and registered on chain with the X25519 key, and neither
    the access log nor evidence anchoring is failing to reach the chain. A member whose account has no
    gas, for one, is not ready: nothing it must write on chain would get there.
    """
    stats = ctx.stats
    if stats is not None and not stats.key_ready.is_set():
        if stats.key_error and stats.key_retrying:
            return "key_not_registered", (f"statistics key not registered on chain yet: {stats.key_error}; the node "
                                          "retries by itself (an unfunded account needs gas: a member's `consortium "
                                          "gov vote --fund-ether N`, or `consortium chain fund NAME` on a dev chain)")
        if stats.key_error:
            return "key_not_ready", (f"statistics key not loaded: {stats.key_error}; fix it (the passphrase, the key "
                                     "file in the node's home), then restart the node")
        return "starting", "the statistics key is still being loaded or generated"
    if ctx.access_log.last_error:
        return "access_log_failing", f"access log cannot be written on chain: {ctx.access_log.last_error}"
    if ctx.evidence.last_error:
        return "evidence_anchoring_failing", f"evidence batches cannot be anchored: {ctx.evidence.last_error}"
    return None


@router.get("/ready")
def ready(ctx: NodeContext = Depends(get_context), operator: Caller | None = Depends(optional_operator)) -> dict:
    """Ready to do the member's work? 503 with the reason when not. Unsigned callers (load balancers)
    learn the reason code only; the operator also gets the message and the access-log queue, which
    says how much this member serves."""
    try:
        block = ctx.gateway.block_number()
    except Exception as exc:
        raise problem(503, "chain_unavailable", f"chain not reachable: {type(exc).__name__}") from None
    blocked = not_ready_reason(ctx)
    if blocked is not None:
        reason, message = blocked
        raise problem(503, reason, message if operator is not None else "see the node's operator /ready or log")
    if operator is None:
        return {"status": "ready", "block": block}
    return {"status": "ready", "block": block, "access_log": ctx.access_log.counts(), "last_error": None}
