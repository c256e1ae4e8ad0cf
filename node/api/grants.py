"""Grants: the member's operator grants and revokes; any member lists what it gave or received."""
from __future__ import annotations

import hashlib
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from node.api.deps import Caller, ChainIdPath, get_context, member, operator, problem
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.context import NodeContext
from node.datasets import dataset_schema

router = APIRouter(prefix="/grants", tags=["grants"])


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantee: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    dataset: str = Field(max_length=64)
    purpose: Literal["UNDERWRITING", "CLAIMS", "FRAUD", "STATISTICS", "PRICING"]
    expires_at: int = Field(gt=0)
    not_before: int = Field(default=0, ge=0)
    scope: str = Field(default="", max_length=4096, description="scope document; its SHA-256 goes on chain")
    consent_ref: str = Field(default="0x" + "00" * 32, pattern=r"^0x[0-9a-fA-F]{64}$",
                             description="hash of the consent record (EIP-712 subject consent or a consent batch)")


def _grant_view(g) -> dict:
    return {"grant_id": g.grant_id, "owner": g.owner, "grantee": g.grantee, "dataset_id": "0x" + g.dataset_id.hex(),
            "purpose": g.purpose.name, "not_before": g.not_before, "expires_at": g.expires_at,
            "consent_ref": "0x" + g.consent_ref.hex(), "revoked_at": g.revoked_at}


@router.post("", status_code=201)
async def grant(body: GrantRequest, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    dataset_schema(body.dataset)
    grant_id = await run_in_threadpool(
        ctx.ledger.grant, body.grantee, dataset_id(body.dataset), Purpose[body.purpose], expires_at=body.expires_at,
        not_before=body.not_before, scope_hash=hashlib.sha256(body.scope.encode()).digest(),
        consent_ref=bytes.fromhex(body.consent_ref[2:]))
    return {"grant_id": grant_id}


@router.delete("/{grant_id}")
async def revoke(grant_id: ChainIdPath, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    await run_in_threadpool(ctx.ledger.revoke, grant_id)
    return {"grant_id": grant_id, "revoked": True}


@router.get("")
async def list_grants(direction: str = "given", caller: Caller = Depends(member),
                      ctx: NodeContext = Depends(get_context)) -> list[dict]:
    """Grants the caller gave (``direction=given``) or received (``direction=received``)."""
    def load() -> list[dict]:
        ids = ctx.ledger.grants_given(caller.address) if direction == "given" else ctx.ledger.grants_received(caller.address)
        return [_grant_view(ctx.ledger.get_grant(i)) for i in ids]
    if direction not in ("given", "received"):
        raise problem(422, "bad_direction", "direction must be 'given' or 'received'")
    return await run_in_threadpool(load)
