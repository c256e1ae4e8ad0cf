"""What this member earned and owes under its revenue-share agreements (operator only).

Read from the chain (Settlement statements and payment states), through node/settlement/book.py.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from node.api.deps import Caller, get_context, operator
from node.runtime.context import NodeContext

router = APIRouter(prefix="/settlement", tags=["settlement"])


@router.get("/earnings")
async def earnings(_: Caller = Depends(operator), ctx: NodeContext = Depends(get_context)) -> dict:
    """Each statement naming this member, its amount and state, and totals earned (as provider) and owed (as payer)."""
    from node.settlement.book import SettlementBook

    book = SettlementBook(ctx.ledger, from_block=ctx.deployment.deployment_block)
    return await run_in_threadpool(book.earnings, ctx.address)
