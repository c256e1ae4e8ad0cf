"""The data a member serves to others: small aggregates, each checked against the chain and logged."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from node.access.release_gate import ReleaseRefusal, answer_query
from node.api.deps import Caller, authenticated, get_context, problem
from node.enums import Purpose, PurposeName
from node.runtime.context import NodeContext
from node.runtime.offload import in_thread
from node.store.datasets import AggregateQuery, dataset_schema

router = APIRouter(prefix="/data", tags=["data"])


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(max_length=64)
    purpose: PurposeName
    metric: str = "count"
    column: str | None = None
    filters: dict[str, str | int | float] = Field(default_factory=dict, max_length=16)
    group_by: str | None = None


class QueryResponse(BaseModel):
    grant_id: int
    records: int  # records in released groups only
    rows: list[dict[str, Any]]
    min_cohort: int  # the k applied: this member's floor (a query cannot lower it)
    min_cohort_raised: bool
    suppressed: list[str]  # groups with fewer than k distinct persons: no value released
    epsilon: float = 0.0


def _serve(ctx: NodeContext, caller: Caller, body: QueryRequest, arrived: float) -> QueryResponse:
    query = AggregateQuery(body.dataset, body.metric, body.column, tuple(sorted(body.filters.items())), body.group_by)
    dataset_schema(body.dataset)  # unknown dataset: 404 before touching the chain
    query.validate()
    try:  # the owner's release gate decides what of the answer leaves this node (and logs it)
        answer = answer_query(ctx.release_gate, caller.address, query, Purpose[body.purpose], arrived)
    except ReleaseRefusal as exc:
        raise problem(exc.status, exc.reason, str(exc)) from None
    return QueryResponse(**answer)


@router.post("/query", response_model=QueryResponse)
async def query(request: Request, body: QueryRequest, caller: Caller = Depends(authenticated),
                ctx: NodeContext = Depends(get_context)):
    """Answer an aggregate over one of this member's datasets, if a grant on chain allows it."""
    arrived = request.state.arrived
    result = await in_thread(_serve, ctx, caller, body, arrived)
    # Already a validated model: answer it directly instead of re-validating it as response_model would.
    return Response(result.model_dump_json(), media_type="application/json")
