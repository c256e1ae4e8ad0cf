"""Blocking request work off the event loop: a few workers, each taking every queued job at once.

Starlette's ``run_in_threadpool`` goes through anyio (capacity limiter, cancel scope, worker queue):
about 80 us of CPU per call; the loop's own ``run_in_executor`` about 40 us (a concurrent Future, then an
asyncio Future chained to it with callbacks both ways). Here a worker takes every queued job (function,
asyncio future) at once, runs them in turn, and hands all results back with one ``call_soon_threadsafe``.
Jobs queued with a ``group`` (a context manager factory, e.g. the access log's ``grouped``) run inside one
such block, so a batch of queries shares one commit of its access records; no result of the batch is handed
back before the block has ended, and if it fails every job of the batch gets its error.
The caller's context variables go along, as with anyio: the signed request being served
(node/access/signed_request.py) is read in the thread when a denial is logged.
"""
from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

# The data queries' own pool (node/api/data.py is its user): few threads on purpose. Each query holds the interpreter
# between its waits (chain head, SQLite, the access log's fsync), so on two cores more threads only add
# lock hand-offs and context switches: with 40, a served query cost 1.9-2.0 ms of node CPU; with 4, 1.55-1.73 (same
# machine and load, ``bench.py node-access``; 2 and 8 measured worse than 4). Batches (above) cut the hand-offs
# further; two workers still overlap a batch waiting on the chain with another.
MAX_WORKERS = 2
MAX_BATCH = 64  # jobs one worker takes at once: a bound on how long the first of them waits for the last

_jobs: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
_lock = threading.Lock()
_workers = 0
_idle = 0


def _settle_all(results: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _take() -> list[tuple]:
    """Every queued job (at least one, waiting for it), at most MAX_BATCH."""
    global _idle
    with _lock:
        _idle += 1
    batch = [_jobs.get()]
    with _lock:
        _idle -= 1
    while len(batch) < MAX_BATCH:
        try:
            batch.append(_jobs.get_nowait())
        except queue.Empty:
            break
    return batch


def _run_group(jobs: list[tuple], group: Callable[[], ContextManager] | None) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    try:
        with (group or nullcontext)():
            for _, _, context, fn, args, _ in jobs:
                try:
                    outcomes.append((True, context.run(fn, *args)))
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request, raised there
                    outcomes.append((False, exc))
    except BaseException as exc:  # noqa: BLE001 - the group's own end failed (its commit): no job of it stands
        outcomes = [(False, exc)] * len(jobs)
    return outcomes


def _work() -> None:
    while True:
        batch = _take()
        by_loop: dict[Any, list[tuple[asyncio.Future, bool, Any]]] = {}
        start = 0
        while start < len(batch):  # consecutive jobs with the same group run in one block
            end = start + 1
            while end < len(batch) and batch[end][5] == batch[start][5]:
                end += 1
            jobs = batch[start:end]
            for (loop, future, *_), (ok, value) in zip(jobs, _run_group(jobs, jobs[0][5])):
                by_loop.setdefault(loop, []).append((future, ok, value))
            start = end
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, results)
            except RuntimeError:  # the loop closed while this ran (shutdown): nobody is waiting
                pass
        del batch, by_loop, jobs


def _ensure_worker() -> None:
    global _workers
    with _lock:
        if _idle >= _jobs.qsize() or _workers >= MAX_WORKERS:  # an idle worker for every queued job
            return
        _workers += 1
    threading.Thread(target=_work, name=f"request-worker-{_workers}", daemon=True).start()


async def in_thread(fn: Callable[..., Any], *args: Any, group: Callable[[], ContextManager] | None = None) -> Any:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _jobs.put((loop, future, contextvars.copy_context(), fn, args, group))
    _ensure_worker()
    return await future
