"""The owner's proof of its denials: the requester's signed request behind each one, for the regulator only.

A denial on chain carries the EIP-712 digest of the request that was refused; this route hands the
regulator the request itself so it can check that the named requester really asked (node/access/signed_request.py).
"""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from node.api.audit import regulator
from node.api.deps import Caller, get_context, problem
from node.runtime.context import NodeContext

router = APIRouter(prefix="/denials", tags=["denials"])
_DIGEST = re.compile(r"^0x[0-9a-fA-F]{64}$")


@router.get("/{digest}/request")
async def denial_request(digest: str, _: Caller = Depends(regulator), ctx: NodeContext = Depends(get_context)) -> dict:
    """The signed request behind this member's denial whose queryHash is ``digest`` (regulator only)."""
    if not _DIGEST.match(digest):
        raise problem(422, "bad_digest", "digest must be 0x followed by 64 hex digits (the denial's query_hash)")
    signed = await run_in_threadpool(ctx.access_log.signed_request, bytes.fromhex(digest[2:]))
    if signed is None:
        raise problem(404, "no_signed_request", f"this member kept no signed request with digest {digest}")
    return signed.document()
