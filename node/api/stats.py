"""Joint statistics: the operator's jobs, and the node-to-node protocol other members' nodes call.

Operator (this member's own account): ``POST /stats/jobs``, ``GET /stats/jobs[/{id}]``,
``GET /stats/jobs/{id}/result.csv``, ``POST /stats/jobs/{id}/rerun``.
Members' nodes (signed requests, the chain decides the rest): ``POST /stats/contribute`` (horizontal),
``POST /stats/fraud``, and the vertical exchange ``/stats/vertical/start|double|labels|finish``.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from node.api.deps import Authenticated, Operator, get_context, problem
from node.runtime.context import NodeContext
from node.stats.service import result_csv

router = APIRouter(prefix="/stats", tags=["statistics"])


async def _call(fn: Callable, *args: Any) -> Any:
    """Run a service call off the event loop; its refusals carry their own reason and status (node/api/deps.py)."""
    return await run_in_threadpool(fn, *args)


def _raw_json(value: Any) -> Response:
    # protocol messages can hold a million points: json.dumps directly, not FastAPI's per-item encoder
    return Response(json.dumps(value), media_type="application/json")


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise problem(422, "invalid_request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise problem(422, "invalid_request", "the body must be a JSON object")
    return body


# ---------------------------------------------------------------------------------------- operator


@router.post("/jobs", status_code=202)
async def submit_job(request: Request, _: Operator, ctx: NodeContext = Depends(get_context)):
    """Open a job from a spec (the parsed TOML of `consortium stats run`); it runs in the background."""
    return await _call(ctx.stats.submit, await _json(request))


@router.get("/jobs")
async def list_jobs(_: Operator, ctx: NodeContext = Depends(get_context)):
    return await _call(ctx.stats.list)


@router.get("/jobs/{job_id}")
async def show_job(job_id: str, _: Operator, ctx: NodeContext = Depends(get_context)):
    return await _call(ctx.stats.view, job_id)


@router.get("/jobs/{job_id}/result.csv")
async def job_csv(job_id: str, _: Operator, ctx: NodeContext = Depends(get_context)):
    job = await _call(ctx.stats.view, job_id)
    if job["result"] is None:
        raise problem(409, "no_result", f"job {job_id} is {job['state']}; it has no released result")
    return Response(result_csv(job["result"]), media_type="text/csv")


@router.post("/jobs/{job_id}/rerun", status_code=202)
async def rerun_job(job_id: str, _: Operator, ctx: NodeContext = Depends(get_context)):
    """Re-run a failed job without the participants that refused or missed the deadline (a new round)."""
    return await _call(ctx.stats.rerun, job_id)


# ---------------------------------------------------------------------------------------- peers


@router.post("/contribute")
async def contribute(request: Request, caller: Authenticated, ctx: NodeContext = Depends(get_context)):
    """A horizontal contribution to a job opened on chain by the caller (masked, packed, encrypted)."""
    return _raw_json(await _call(ctx.stats.participant.contribute_horizontal, caller.address, await _json(request)))


@router.post("/fraud")
async def fraud(request: Request, caller: Authenticated, ctx: NodeContext = Depends(get_context)):
    """A private membership answer to a fraud-signal job (FRAUD grant required)."""
    return _raw_json(await _call(ctx.stats.participant.answer_fraud, caller.address, await _json(request)))


@router.post("/vertical/start")
async def vertical_start(request: Request, caller: Authenticated, ctx: NodeContext = Depends(get_context)):
    return _raw_json(await _call(ctx.stats.participant.vertical_start, caller.address, await _json(request)))


@router.post("/vertical/double")
async def vertical_double(request: Request, caller: Authenticated, job: int = Query(ge=1, le=2**63 - 1),
                          ctx: NodeContext = Depends(get_context)):
    return _raw_json(await _call(ctx.stats.participant.vertical_double_blinded, caller.address, job, await _json(request)))


@router.post("/vertical/labels")
async def vertical_labels(request: Request, caller: Authenticated, job: int = Query(ge=1, le=2**63 - 1),
                          ctx: NodeContext = Depends(get_context)):
    return _raw_json(await _call(ctx.stats.participant.vertical_labels, caller.address, job, await request.body()))


@router.post("/vertical/finish")
async def vertical_finish(caller: Authenticated, job: int = Query(ge=1, le=2**63 - 1), ctx: NodeContext = Depends(get_context)):
    return _raw_json(await _call(ctx.stats.participant.vertical_finish, caller.address, job))
