"""One persistent pool of worker processes for the CPU-bound steps (encryption, blinding), per process.

Three facts shape it:

- Starting a worker (spawn, imports, gmpy2) and building an encryptor's window tables costs about a
  second, more than encrypting 2,000 values on one core. So the pool is created once, kept for the life
  of the process, and each worker keeps the encryptors it built (keyed by their spec).
- :func:`map_helping` lets the calling thread take chunks from the same list, and redo a chunk that a
  busy or still-starting worker holds once nothing else is left. Ciphertexts are randomized, so either
  copy is a valid answer; the caller never waits idle, and a parallel call is never slower than the
  caller alone by more than about one chunk.
- Workers watch their parent and exit as soon as it is gone, whichever way it stopped (SIGTERM, SIGKILL,
  a crash): a node's pool never outlives its node.

Workers are started with ``spawn``, not ``fork``: the processes that use this pool run threads (a web
server, chain clients, log writers) that ``fork`` would copy in the middle of whatever they were doing.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How often a worker checks that its parent still exists (seconds): a dead parent's workers are gone
# within this, and a sleeping check costs nothing measurable.
PARENT_CHECK_SECONDS = 0.5

_lock = threading.Lock()
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_pool_size = 0
_owner_pid = 0


def default_processes() -> int:
    """The cores this process may run on (its CPU affinity), not every core of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:  # re-parented: the process that started us is gone
            os._exit(0)


def _worker_started(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def shared_pool(processes: int | None = None) -> concurrent.futures.ProcessPoolExecutor:
    """The process-wide worker pool (created on first use, re-created if a worker died or the size changes)."""
    global _pool, _pool_size, _owner_pid
    size = processes or default_processes()
    with _lock:
        broken = _pool is not None and getattr(_pool, "_broken", False)
        inherited = _pool is not None and _owner_pid != os.getpid()  # a pool object copied by fork is not ours
        if _pool is None or broken or inherited or _pool_size != size:
            if _pool is not None and not inherited:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = concurrent.futures.ProcessPoolExecutor(
                size, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started, initargs=(os.getpid(),))
            _pool_size, _owner_pid = size, os.getpid()
        return _pool


def warm(processes: int | None = None) -> None:
    """Start the workers now (in the background), so the first real call does not pay for it."""
    pool = shared_pool(processes)
    for _ in range(_pool_size):
        pool.submit(os.getpid)


def shutdown(wait: bool = True) -> None:
    """Stop the workers (a node calls this when it stops; they also exit on their own if it dies)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None and _owner_pid == os.getpid():
        pool.shutdown(wait=wait, cancel_futures=True)


def map_helping(task: Callable[[T], R], chunks: Sequence[T], local: Callable[[T], R],
                processes: int | None = None) -> list[R]:
    """``[task(c) for c in chunks]`` on the shared pool, with the calling thread helping through ``local``.

    ``task`` runs in a worker (it must be a picklable top-level function), ``local`` in the caller; both
    must give interchangeable answers for the same chunk. Order is preserved.
    """
    if len(chunks) <= 1 or (processes or default_processes()) <= 1:
        return [local(c) for c in chunks]
    pool = shared_pool(processes)
    futures = [pool.submit(task, c) for c in chunks]
    results: list = [None] * len(chunks)
    done = [False] * len(chunks)
    # Workers take chunks from the front; the caller takes from the back whatever no worker has started.
    for i in reversed(range(len(chunks))):
        if futures[i].cancel():
            results[i], done[i] = local(chunks[i]), True
    # What is left is held by workers. Collect what they finished; while one is still busy (or starting),
    # the caller redoes its chunk rather than wait.
    for i in range(len(chunks)):
        if done[i]:
            continue
        if futures[i].done():
            try:
                results[i] = futures[i].result()
                continue
            except concurrent.futures.BrokenExecutor:  # a worker died (killed, out of memory): do it here
                pass
        results[i] = local(chunks[i])
    return results
