"""Where a running node's memory goes, for finding drift in long runs (debug only, off by default).

Set ``CONSORTIUM_MEMTRACE=/path/file.jsonl`` before starting a node: a daemon thread then writes, every
``CONSORTIUM_MEMTRACE_SECONDS`` (default 30), one JSON line with the process RSS, what tracemalloc sees
(Python allocations only), SQLite's own allocator (page caches live there, invisible to tracemalloc),
the object types and allocation sites grown since the baseline sample (the first after
``CONSORTIUM_MEMTRACE_BASELINE`` seconds, to leave warm-up out). RSS growing while both traced figures stay flat points at the C allocator (arenas, fragmentation).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ENV_FILE = "CONSORTIUM_MEMTRACE"
ENV_SECONDS = "CONSORTIUM_MEMTRACE_SECONDS"
ENV_DEEP = "CONSORTIUM_MEMTRACE_DEEP"  # "0": RSS, C heap and SQLite only (tracemalloc itself moves the heap)
ENV_BASELINE = "CONSORTIUM_MEMTRACE_BASELINE"  # seconds after start of the snapshot growth is measured from


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss_parts_kb() -> dict:
    """Anonymous (heaps, arenas) and file-backed (code, libraries, mapped files) resident memory."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Anonymous", "Rss", "Shared_Clean", "Private_Clean", "Private_Dirty"):
            out[key.lower()] = int(rest.split()[0])
    return out


def _sqlite_memory_used():
    """sqlite3_memory_used() of the library Python's sqlite3 module is linked to, or None if not reachable."""
    import sqlite3  # noqa: F401 - loads the shared library into the process

    for name in ("sqlite3", None):
        try:
            lib = ctypes.CDLL(ctypes.util.find_library(name) if name else None)
            fn = lib.sqlite3_memory_used
        except (OSError, AttributeError, TypeError):
            continue
        fn.restype = ctypes.c_int64
        return fn
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_kb() -> dict | None:
    """glibc's view of the C heap: in use, free but kept (fragmentation), and mmapped, in KiB (None off glibc)."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    info = fn()
    return {"heap": info.arena // 1024, "in_use": info.uordblks // 1024, "free_kept": info.fordblks // 1024,
            "mmapped": info.hblkhd // 1024}


def _type_counts() -> Counter:
    return Counter(type(o).__name__ for o in gc.get_objects())


class MemoryTrace:
    def __init__(self, path: Path, every: float, frames: int = 8, deep: bool = True, baseline_at: float = 0.0):
        self.path = path
        self.baseline_at = baseline_at  # growth is measured from the first sample after this many seconds
        self.deep = deep  # tracemalloc and object counts; they perturb the heap they measure, so off for RSS runs
        self.every = every
        self.frames = frames
        self._sqlite = _sqlite_memory_used()

    def start(self) -> None:
        if self.deep:
            tracemalloc.start(self.frames)
        threading.Thread(target=self._run, name="memtrace", daemon=True).start()

    def _run(self) -> None:
        first = None
        first_types: Counter = Counter()
        started = time.monotonic()
        while True:
            time.sleep(self.every)
            if not self.deep:
                self._write({"t_s": round(time.monotonic() - started, 1), "rss_kb": rss_kb(), "malloc_kb": malloc_kb(),
                             "rss_parts_kb": rss_parts_kb(), "python_blocks": sys.getallocatedblocks(),
                             "sqlite_kb": self._sqlite() // 1024 if self._sqlite else None, "threads": threading.active_count()})
                continue
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")])
            types = _type_counts()
            if first is None and time.monotonic() - started >= self.baseline_at:
                first, first_types = snapshot, types
            if first is None:
                continue
            grown = snapshot.compare_to(first, "traceback")[:12]
            current, peak = tracemalloc.get_traced_memory()
            line = {
                "t_s": round(time.monotonic() - started, 1), "rss_kb": rss_kb(),
                "traced_kb": current // 1024, "traced_peak_kb": peak // 1024,
                "sqlite_kb": self._sqlite() // 1024 if self._sqlite else None,
                "tracemalloc_own_kb": tracemalloc.get_tracemalloc_memory() // 1024,
                "malloc_kb": malloc_kb(), "threads": threading.active_count(),
                "gc_objects": sum(types.values()),
                "types_grown": [(k, types[k] - first_types.get(k, 0)) for k in
                                sorted(types, key=lambda k: first_types.get(k, 0) - types[k])[:12]],
                "sites_grown": [{"kb": s.size_diff // 1024, "count": s.count_diff,
                                 "where": [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in s.traceback][-self.frames:]}
                                for s in grown],
            }
            self._write(line)

    def _write(self, line: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


def start_from_environment() -> MemoryTrace | None:
    """Start the trace when ``CONSORTIUM_MEMTRACE`` names a file; otherwise do nothing."""
    target = os.environ.get(ENV_FILE)
    if not target:
        return None
    trace = MemoryTrace(Path(target), float(os.environ.get(ENV_SECONDS, "30")),
                        deep=os.environ.get(ENV_DEEP, "1") != "0",
                        baseline_at=float(os.environ.get(ENV_BASELINE, "0")))
    trace.start()
    return trace
