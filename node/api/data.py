"""The data a member serves to others: small aggregates, each checked against the chain and logged."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from node.access_log import LogRecord
from node.api.deps import Caller, authenticated, get_context, problem
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.context import NodeContext
from node.datasets import AggregateQuery, dataset_schema, run_query

router = APIRouter(prefix="/data", tags=["data"])


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(max_length=64)
    purpose: Literal["UNDERWRITING", "CLAIMS", "FRAUD", "STATISTICS", "PRICING"]
    metric: str = "count"
    column: str | None = None
    filters: dict[str, str | int | float] = Field(default_factory=dict, max_length=16)
    group_by: str | None = None


class QueryResponse(BaseModel):
    grant_id: int
    records: int
    rows: list[dict[str, Any]]


def _serve(ctx: NodeContext, caller: Caller, body: QueryRequest, arrived: float) -> QueryResponse:
    query = AggregateQuery(body.dataset, body.metric, body.column, tuple(sorted(body.filters.items())), body.group_by)
    schema = dataset_schema(body.dataset)  # unknown dataset: 404 before touching the chain
    query.validate()
    purpose = Purpose[body.purpose]
    qhash = query.query_hash(caller.address, int(purpose))
    decision = ctx.enforcer.decide(caller.address, schema.name, purpose, arrived)
    if not decision.allowed:
        ctx.access_log.deny(caller, dataset_id(schema.name), purpose, decision.reason)
        raise problem(403, decision.reason.name.lower(), decision.message)
    rows, touched = run_query(ctx.engine, query)
    ctx.access_log.append(LogRecord("access", caller.address, dataset_id(schema.name), int(purpose), qhash,
                                    grant_id=decision.grant_id, rows=touched))
    return QueryResponse(grant_id=decision.grant_id, records=touched, rows=rows)


@router.post("/query", response_model=QueryResponse)
async def query(request: Request, body: QueryRequest, caller: Caller = Depends(authenticated),
                ctx: NodeContext = Depends(get_context)):
    """Answer an aggregate over one of this member's datasets, if a grant on chain allows it."""
    arrived = request.state.arrived
    result = await run_in_threadpool(_serve, ctx, caller, body, arrived)
    # Already a validated model: answer it directly instead of re-validating it as response_model would.
    return Response(result.model_dump_json(), media_type="application/json")
