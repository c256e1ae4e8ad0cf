"""The data a member serves to others: small aggregates, each checked against the chain and logged."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.access.release_gate import ReleaseRefusal, answer_query
from node.api.deps import Caller, authenticated, problem
from node.enums import Purpose, PurposeName
from node.runtime.context import NodeContext
from node.runtime.offload import in_thread
from node.store.datasets import AggregateQuery

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
    query.validate()  # an unknown dataset (404) or a bad column (422) before touching the chain
    try:  # the owner's release gate decides what of the answer leaves this node (and logs it)
        answer = answer_query(ctx.release_gate, caller.address, query, Purpose[body.purpose], arrived)
    except ReleaseRefusal as exc:
        raise problem(exc.status, exc.reason, str(exc)) from None
    return QueryResponse(**answer)


# The request body as OpenAPI shows it: the route reads and validates it itself (below).
_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": QueryRequest.model_json_schema()}}}}


@router.post("/query", response_model=QueryResponse, openapi_extra=_BODY_DOC)
async def query(request: Request):
    """Answer an aggregate over one of this member's datasets, if a grant on chain allows it.

    Any valid signature may ask (``authenticated``): the owner's enforcement decides, and logs a refusal on
    chain. The most frequent route of a serving node, so it calls its dependency and validates its body
    itself: FastAPI's dependency solving and body model cost about 0.17 ms of CPU a request
    (``bench.py node-access --profile``), a tenth of the request's whole budget.
    """
    caller = await authenticated(request)  # 401 before the body is looked at, as with Depends
    try:
        body = QueryRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None
    ctx: NodeContext = request.app.state.ctx
    # queries taken together by a worker commit their access records together (one fsync)
    result = await in_thread(_serve, ctx, caller, body, request.state.arrived, group=ctx.access_log.grouped)
    # Already a validated model: answer it directly instead of re-validating it as response_model would.
    return Response(result.model_dump_json(), media_type="application/json")
