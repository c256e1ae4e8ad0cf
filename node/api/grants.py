"""Grants: the member's operator grants and revokes; any member lists what it gave or received.

Every grant rests on a consent to exactly that grant (owner, grantee, dataset, purpose, scope, expiry),
checked by DataUseAuthorization at grant time (node/access/consent.py explains the forms).
"""
from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from node.access.consent import ConsentError, attest_batch, parse_consent
from node.api.deps import Caller, ChainIdPath, get_context, member, operator, problem
from node.chain.ledger import dataset_id
from node.enums import Purpose, PurposeName
from node.runtime.context import NodeContext
from node.store.datasets import dataset_schema

router = APIRouter(prefix="/grants", tags=["grants"])


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grantee: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    dataset: str = Field(max_length=64)
    purpose: PurposeName
    expires_at: int = Field(gt=0)
    not_before: int = Field(default=0, ge=0)
    scope: str = Field(default="", max_length=4096, description="scope document; its SHA-256 goes on chain")
    consent: dict | None = Field(default=None, description="a signed consent document (`consent sign`, `consent batch`) "
                                                          "naming exactly this grant's fields")
    consent_records: list[dict] | None = Field(default=None, max_length=1_000_000,
                                               description="this member's own batch of subjects' consent records: "
                                                           "the node attests their Merkle root for this grant")
    consent_ref: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{64}$",
                                    description="hash of this member's own consent record or legal basis: the node "
                                                "attests it for this grant")


def _grant_view(g) -> dict:
    return {"grant_id": g.grant_id, "owner": g.owner, "grantee": g.grantee, "dataset_id": "0x" + g.dataset_id.hex(),
            "purpose": g.purpose.name, "not_before": g.not_before, "expires_at": g.expires_at,
            "consent_ref": "0x" + g.consent_ref.hex(), "revoked_at": g.revoked_at}


def _consent_for(ctx: NodeContext, body: GrantRequest, dataset: bytes, scope_hash: bytes):
    """The signed consent the grant is sent with; exactly one consent form must be given (deny by default)."""
    given = [f for f in ("consent", "consent_records", "consent_ref") if getattr(body, f) is not None]
    if len(given) != 1:
        raise problem(422, "consent_required", "a grant needs exactly one of consent (a signed consent document), "
                                               "consent_records (this member's batch) or consent_ref (its legal basis)")
    try:
        if body.consent is not None:
            return parse_consent(body.consent)
        if body.consent_records is not None:
            return attest_batch(ctx.ledger.account, body.consent_records, owner=ctx.address, grantee=body.grantee,
                                dataset_id=dataset, purpose=int(Purpose[body.purpose]), scope_hash_hex="0x" + scope_hash.hex(),
                                expires_at=body.expires_at, chain_id=ctx.gateway.chain_id,
                                contract=ctx.ledger.authorizations.address)
    except ConsentError as exc:
        raise problem(422, exc.reason, exc.one_line()) from None
    return None  # consent_ref: the ledger has this member attest it for exactly this grant


@router.post("", status_code=201)
async def grant(body: GrantRequest, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    dataset_schema(body.dataset)
    dataset, scope_hash = dataset_id(body.dataset), hashlib.sha256(body.scope.encode()).digest()
    consent = await run_in_threadpool(_consent_for, ctx, body, dataset, scope_hash)
    grant_id = await run_in_threadpool(
        ctx.ledger.grant, body.grantee, dataset, Purpose[body.purpose], expires_at=body.expires_at,
        not_before=body.not_before, scope_hash=scope_hash, consent=consent,
        consent_ref=bytes.fromhex(body.consent_ref[2:]) if body.consent_ref else bytes(32))
    return {"grant_id": grant_id, "consent_ref": "0x" + ctx.ledger.get_grant(grant_id).consent_ref.hex()}


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
