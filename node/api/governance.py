"""Governance: members, admission proposals and votes, the regulator's cards, key and endpoint rotation."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3

from node.api.deps import Caller, ChainIdPath, get_context, member, operator, problem
from node.chain.ledger import card_reason_hash
from node.enums import Role, RoleName
from node.runtime.context import NodeContext

router = APIRouter(prefix="/governance", tags=["governance"])

_HEX32 = r"^0x[0-9a-fA-F]{64}$"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate: str = Field(pattern=_ADDRESS)
    name: str = Field(min_length=1, max_length=100)
    role: RoleName
    endpoint: str = Field(default="", max_length=300)
    x25519_key: str = Field(default="0x" + "00" * 32, pattern=_HEX32)
    paillier_fingerprint: str = Field(default="0x" + "00" * 32, pattern=_HEX32)
    lifetime_seconds: int = Field(default=0, ge=0, le=2**64 - 1)  # uint64 on chain


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=4096, description="the reason; its SHA-256 goes on chain (none: zero)")


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(min_length=1, max_length=300)


class Keys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x25519_key: str = Field(pattern=_HEX32)
    paillier_fingerprint: str = Field(pattern=_HEX32)


def _b32(hex_value: str) -> bytes:
    return bytes.fromhex(hex_value[2:])


@router.get("/members")
async def members(_: Caller = Depends(member), ctx: NodeContext = Depends(get_context)) -> list[dict]:
    found = await run_in_threadpool(ctx.ledger.members)
    return [{"address": m.address, "name": m.name, "role": m.role.name if m.role else None, "status": m.status.name,
             "endpoint": m.endpoint, "x25519_key": "0x" + m.x25519_key.hex()} for m in found]


@router.post("/proposals", status_code=201)
async def propose(body: Proposal, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    pid = await run_in_threadpool(ctx.ledger.propose_member, body.candidate, body.name, Role[body.role], body.endpoint,
                                  _b32(body.x25519_key), _b32(body.paillier_fingerprint), body.lifetime_seconds)
    return {"proposal_id": pid}


@router.post("/proposals/{proposal_id}/votes")
async def vote(proposal_id: ChainIdPath, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    carried = await run_in_threadpool(ctx.ledger.vote, proposal_id)
    action = (await run_in_threadpool(ctx.ledger.proposal, proposal_id))["action"]
    return {"proposal_id": proposal_id, "admitted": carried and action == "ADMIT", "expelled": carried and action == "EXPEL"}


@router.post("/members/{address}/{action}")
async def card(address: str, action: Literal["warn", "suspend", "reinstate", "expel"], body: Card,
               _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    if not (address.startswith("0x") and len(address) == 42 and Web3.is_address(address)):
        raise problem(422, "bad_address", "address must be 0x followed by 40 hex digits")
    address = Web3.to_checksum_address(address)
    reason = card_reason_hash(body.reason)
    if action == "expel":  # expulsion is a proposal decided by the supermajority, not a card
        pid = await run_in_threadpool(ctx.ledger.propose_expulsion, address, reason)
        return {"member": address, "action": action, "proposal_id": pid}
    await run_in_threadpool(getattr(ctx.ledger, action), address, reason)
    return {"member": address, "action": action}


@router.put("/endpoint")
async def set_endpoint(body: Endpoint, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    await run_in_threadpool(ctx.ledger.set_endpoint, body.endpoint)
    return {"endpoint": body.endpoint}


@router.put("/keys")
async def rotate_keys(body: Keys, _: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    await run_in_threadpool(ctx.ledger.rotate_keys, _b32(body.x25519_key), _b32(body.paillier_fingerprint))
    return {"rotated": True}
