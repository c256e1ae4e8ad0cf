"""Blocking request work off the event loop, in one thread hand-off.

Starlette's ``run_in_threadpool`` goes through anyio (capacity limiter, cancel scope, worker queue):
about 80 us of CPU per call; the loop's own ``run_in_executor`` about 40 us (a concurrent Future, then an
asyncio Future chained to it with callbacks both ways). Here a worker takes (function, asyncio future)
from a queue and hands the result back with one ``call_soon_threadsafe``: the least a hand-off can do.
The caller's context variables go along, as with anyio: the signed request being served
(node/access/signed_request.py) is read in the thread when a denial is logged.
"""
from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from typing import Any, Callable

# The data queries' own pool (node/api/data.py is its user): few threads on purpose. Each query holds the interpreter
# between its waits (chain head, SQLite, the access log's fsync), so on two cores more threads only add
# lock hand-offs and context switches: with 40, a served query cost 1.9-2.0 ms of node CPU; with 4, 1.55-1.73 (same
# machine and load, ``bench.py node-access``; 2 and 8 measured worse than 4). Four still overlap a chain round trip
# with a commit and let the access log commit up to four records together. Other routes use Starlette's pool.
MAX_WORKERS = 4

_jobs: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
_lock = threading.Lock()
_workers = 0
_idle = 0


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _work() -> None:
    global _idle
    while True:
        with _lock:
            _idle += 1
        loop, future, context, fn, args = _jobs.get()
        with _lock:
            _idle -= 1
        try:
            value, ok = context.run(fn, *args), True
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request, raised there
            value, ok = exc, False
        try:
            loop.call_soon_threadsafe(_settle, future, ok, value)
        except RuntimeError:  # the loop closed while this ran (shutdown): nobody is waiting
            pass
        del loop, future, context, fn, args, value


def _ensure_worker() -> None:
    global _workers
    with _lock:
        if _idle >= _jobs.qsize() or _workers >= MAX_WORKERS:  # an idle worker for every queued job
            return
        _workers += 1
    threading.Thread(target=_work, name=f"request-worker-{_workers}", daemon=True).start()


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _jobs.put((loop, future, contextvars.copy_context(), fn, args))
    _ensure_worker()
    return await future
