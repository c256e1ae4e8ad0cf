"""One persistent pool of worker processes for the CPU-bound steps (encryption, blinding), per process.

Four facts shape it:

- Starting a worker (spawn, imports, gmpy2) and building an encryptor's window tables costs about a
  second, more than encrypting 2,000 values on one core. So the pool is created once (:func:`warm`), kept
  for the life of the process, and each worker keeps the encryptors it built (keyed by their spec);
  :func:`run_everywhere` builds them in every worker ahead of time.
- Handing a chunk to a worker and getting its answer back costs a round trip, measured by :func:`warm`
  on the idle pool. Work worth less than a few round trips on one core is not worth sending
  (:func:`worth_parallel`, for callers that know their one-core time), and a pool that is not running is
  never started by the call that would wait for it (:func:`pool_if_running`, for callers that hand the
  pool all their work): below the threshold, or before the pool is up, the work runs on one core.
- :func:`map_helping` leaves the work to the workers while they keep pace, and the calling thread takes
  chunks itself as soon as they fall behind (still starting, building a table, busy with another job,
  dead): a parallel call is never slower than the caller alone by more than about one chunk. The caller
  does not compete with healthy workers for the cores.
- Workers watch their parent and exit as soon as it is gone, whichever way it stopped (SIGTERM, SIGKILL,
  a crash): a node's pool never outlives its node.

Workers are started with ``spawn``, not ``fork``: the processes that use this pool run threads (a web
server, chain clients, log writers) that ``fork`` would copy in the middle of whatever they were doing.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import statistics
import threading
import time
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How often a worker checks that its parent still exists (seconds): a dead parent's workers are gone
# within this, and a sleeping check costs nothing measurable.
PARENT_CHECK_SECONDS = 0.5

# Work is sent to the pool only when it is worth this many measured round trips on one core. P workers
# beat one core once the work exceeds P/(P-1) round trips (two, for two cores) plus the cost of handing
# out the chunks; eight leaves room for that and for a round trip measured on a quiet moment.
PAYOFF_ROUND_TRIPS = 8

# How long run_everywhere's tasks stay in a worker after their work, so that tasks submitted together
# land in different (idle) workers rather than one fast worker taking them all.
_SPREAD_SECONDS = 0.05

_lock = threading.Lock()
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_pool_size = 0
_owner_pid = 0
_round_trip: float | None = None  # seconds, measured by warm(wait=True) on the idle pool
_ready: dict[int, list] = {}  # worker pid -> the work keys it is known to be ready for, oldest first


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


def _pid() -> int:
    return os.getpid()


def _run_and_stay(task: Callable[[Any], Any], arg: Any) -> int:
    task(arg)
    time.sleep(_SPREAD_SECONDS)
    return os.getpid()


def _live(pool: concurrent.futures.ProcessPoolExecutor | None) -> bool:
    return pool is not None and not getattr(pool, "_broken", False) and _owner_pid == os.getpid()


def shared_pool(processes: int | None = None) -> concurrent.futures.ProcessPoolExecutor:
    """The process-wide worker pool (created on first use, re-created if a worker died or the size changes)."""
    global _pool, _pool_size, _owner_pid, _round_trip
    size = processes or default_processes()
    with _lock:
        if not _live(_pool) or _pool_size != size:
            if _pool is not None and _owner_pid == os.getpid():  # a pool object copied by fork is not ours
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = concurrent.futures.ProcessPoolExecutor(
                size, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started, initargs=(os.getpid(),))
            _pool_size, _owner_pid, _round_trip = size, os.getpid(), None
            _ready.clear()  # new workers have built nothing yet
        return _pool


def running(processes: int | None = None) -> bool:
    """Whether the pool of this size exists, is ours and has had its round trip measured (see :func:`warm`)."""
    size = processes or default_processes()
    with _lock:
        return _live(_pool) and _pool_size == size and _round_trip is not None


def warm(processes: int | None = None, wait: bool = False) -> float:
    """Start the workers now, so that no real call pays for it; returns the seconds it took.

    Then, once every worker has answered, measure the pool's round trip on the idle pool: the figure
    :func:`worth_parallel` is based on, and until which the pool counts as not :func:`running`. With
    ``wait`` this call blocks until then; without, a background thread does it.
    """
    start = time.perf_counter()
    with _lock:
        measured = _live(_pool) and _pool_size == (processes or default_processes()) and _round_trip is not None
    if measured:
        return 0.0
    pool = shared_pool(processes)
    if not wait:
        threading.Thread(target=_measure, args=(pool,), name="pool-warm", daemon=True).start()
        return time.perf_counter() - start
    _measure(pool)
    return time.perf_counter() - start


def _measure(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    global _round_trip
    try:
        _everywhere(pool, _pid_task, None)  # this pool, not a new one if it was shut down meanwhile
        trips = []
        for _ in range(9):
            t = time.perf_counter()
            pool.submit(_pid).result()
            trips.append(time.perf_counter() - t)
    except (RuntimeError, concurrent.futures.BrokenExecutor, concurrent.futures.CancelledError):
        return  # the pool was shut down or broke meanwhile: it stays not running
    with _lock:
        if _pool is pool:
            _round_trip = statistics.median(trips)


def _pid_task(_: Any) -> int:
    return os.getpid()


def round_trip_seconds() -> float | None:
    """The measured time to hand a worker a trivial task and get its answer (None before :func:`warm`)."""
    return _round_trip


def threshold_seconds() -> float | None:
    """One-core work below which a parallel call runs on the caller alone (None while not measured)."""
    return None if _round_trip is None else PAYOFF_ROUND_TRIPS * _round_trip


def worth_parallel(one_core_seconds: float, processes: int | None = None) -> bool:
    """The pool's one rule: use it only when it is running (warm, measured) and the work, as it would take
    on one core, exceeds :func:`threshold_seconds`. A pool that is not running is not started here: a
    start costs about a second of CPU per worker, which would slow this very call down."""
    if (processes or default_processes()) <= 1 or not running(processes):
        return False
    return one_core_seconds >= PAYOFF_ROUND_TRIPS * (_round_trip or 0.0)


def pool_if_running(processes: int | None = None) -> concurrent.futures.ProcessPoolExecutor | None:
    """The shared pool for callers that hand it all their work (``executor.map``, no stepping in), if it is
    running. If not: None, so that this call runs on one core rather than wait for workers to start, and
    the workers start in the background for the next call."""
    if running(processes):
        return shared_pool(processes)
    warm(processes)
    return None


def run_everywhere(task: Callable[[Any], Any], arg: Any, processes: int | None = None, key: Any = None,
                   keep: int = 1, attempts: int = 20) -> float:
    """Run ``task(arg)`` once in every worker (e.g. to build an encryptor's tables before a timed run).

    Tasks submitted together to idle workers land in different ones, since each stays a moment after its
    work; rounds repeat until every worker has answered. With ``key``, the workers are noted as ready for
    it (see :func:`mark_ready`). Returns the seconds it took.
    """
    start = time.perf_counter()
    pool = shared_pool(processes)
    for pid in _everywhere(pool, task, arg, attempts):
        if key is not None:
            mark_ready(key, pid, keep, pool)
    return time.perf_counter() - start


def _everywhere(pool: concurrent.futures.ProcessPoolExecutor, task: Callable[[Any], Any], arg: Any, attempts: int = 20) -> set[int]:
    seen: set[int] = set()
    for _ in range(attempts):
        futures = [pool.submit(_run_and_stay, task, arg) for _ in range(pool._max_workers)]
        seen |= {f.result() for f in futures}
        if seen >= _pids(pool):
            break
    return seen


def _pids(pool: concurrent.futures.ProcessPoolExecutor) -> set[int]:
    return set(getattr(pool, "_processes", None) or ())


def mark_ready(key: Any, pid: int, keep: int = 1, pool: concurrent.futures.ProcessPoolExecutor | None = None) -> None:
    """Note that worker ``pid`` has what work ``key`` needs (its tables built); workers answer with their pid.

    ``keep`` mirrors how many such things a worker keeps (oldest dropped first), so that a key the worker
    has since dropped is not taken for ready. A mirror, not a promise: a wrong guess costs speed, never a
    wrong answer (the caller steps in for workers that fall behind).
    """
    with _lock:
        if pool is not None and pool is not _pool:
            return
        keys = _ready.setdefault(pid, [])
        if key not in keys:
            keys.append(key)
            del keys[:-keep]


def ready_everywhere(key: Any) -> bool:
    """Whether every current worker is known to be ready for ``key`` (so none of them starts by building)."""
    with _lock:
        pids = _pids(_pool) if _live(_pool) else set()
        return bool(pids) and all(key in _ready.get(pid, ()) for pid in pids)


def shutdown(wait: bool = True) -> None:
    """Stop the workers (a node calls this when it stops; they also exit on their own if it dies)."""
    global _pool, _round_trip
    with _lock:
        pool, _pool, _round_trip = _pool, None, None
        _ready.clear()
    if pool is not None and _owner_pid == os.getpid():
        pool.shutdown(wait=wait, cancel_futures=True)


def map_helping(task: Callable[[T], R], chunks: Sequence[T], local: Callable[[T], R],
                processes: int | None = None, chunk_seconds: float | None = None, stats: dict | None = None) -> list[R]:
    """``[task(c) for c in chunks]`` on the shared pool, the calling thread stepping in through ``local``.

    ``task`` runs in a worker (it must be a picklable top-level function), ``local`` in the caller; both
    must give interchangeable answers for the same chunk. Order is preserved.

    ``chunk_seconds`` is what one chunk takes on one core. With it, the caller waits while the workers keep
    pace (an answer at least every three chunks' time) and steps in once they fall behind; without it, the
    caller works from the start. Stepping in, it takes the chunks no worker has started (from the back),
    then gives each chunk a worker still holds as long as one of its own took, and redoes it if that is
    not enough: ciphertexts are randomized, so either copy is a valid answer. ``stats`` (a dict, optional)
    receives who did how many chunks.
    """
    counts = {"chunks": len(chunks), "workers": 0, "caller": 0, "redone": 0, "stepped_in": False}
    if len(chunks) <= 1 or (processes or default_processes()) <= 1:
        counts["caller"] = len(chunks)
        if stats is not None:
            stats.update(counts)
        return [local(c) for c in chunks]
    pool = shared_pool(processes)
    futures = [pool.submit(task, c) for c in chunks]
    results: list = [None] * len(chunks)
    done = [False] * len(chunks)
    if chunk_seconds is not None:
        # While the workers keep pace the caller only waits: it would compete with them for the cores.
        # Workers take chunks in order, so waiting for each in turn sees an answer about every chunk / P.
        # Three chunks' time: at load ~4 (09:04 UTC) 1.5 made the caller step in needlessly, and a computing
        # caller slows the workers far more than it adds (20k values: 1.04x against 1.68x workers alone).
        patience = 3 * chunk_seconds + (_round_trip or 0.0)
        for future in futures:
            try:
                if future.exception(timeout=patience) is not None:
                    break  # broken (a worker died): step in
            except concurrent.futures.TimeoutError:
                break  # fallen behind (starting, building tables, busy elsewhere): step in
    counts["stepped_in"] = not all(f.done() for f in futures)
    # Workers take chunks from the front; the caller takes from the back whatever no worker has started.
    own_seconds: list[float] = []
    for i in reversed(range(len(chunks))):
        if not futures[i].done() and futures[i].cancel():
            start = time.perf_counter()
            results[i], done[i] = local(chunks[i]), True
            own_seconds.append(time.perf_counter() - start)
            counts["caller"] += 1
    # The rest was finished or is held by a worker. A held chunk gets as long as the caller itself just
    # needed for one (the same machine, as busy): a worker that started it earlier should be done by then.
    # If not, the workers are stuck (still starting, building tables): the caller redoes what they hold.
    grace = max(own_seconds) if own_seconds else (1.5 * chunk_seconds if chunk_seconds is not None else 0.0)
    for i in range(len(chunks)):
        if done[i]:
            continue
        try:
            results[i], done[i] = futures[i].result(timeout=grace), True
            counts["workers"] += 1
            continue
        except concurrent.futures.TimeoutError:
            grace = 0.0  # stuck: stop waiting for workers, redo the rest here
        except concurrent.futures.BrokenExecutor:  # a worker died (killed, out of memory): redo it here
            pass
        results[i] = local(chunks[i])
        counts["redone"] += 1
    if stats is not None:
        stats.update(counts)
    return results
