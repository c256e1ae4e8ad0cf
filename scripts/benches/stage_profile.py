"""Where a node's CPU goes per request, by stage: py-spy samples of the node process, sorted into stages.

Used by ``bench.py node-access --profile``; on saved samples: ``bench.py stage-profile FILE REQUESTS``.
py-spy (a sampling profiler, no code change in the node) records collapsed stacks of the node's threads;
a background thread's stacks go to that thread, a request's stack to the innermost frame that names a
stage, so a signature check inside the authentication dependency counts as "auth", not as "framework".
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

describe = "print the per-stage CPU table of a py-spy raw sample file (used by node-access --profile)"

# Background threads, recognised anywhere in the stack (their thread name or loop function).
THREADS: list[tuple[str, tuple[str, ...]]] = [
    ("access log: flush to chain (background)", ("AccessLog._run", "AccessLog.flush", "access-log-flusher")),
    ("access log: group commit (writer thread)", ("AccessLog._write_loop", "access-log-writer")),
    ("other background threads", ("EvidenceService", "evidence-", "indexer", "Indexer", "stats-", "StatsService",
                                  "memtrace", "BackgroundLoop")),
]
# Request stages, matched frame by frame from the innermost outwards: the first frame that names a stage
# decides, so SQL run by the release gate counts as the release gate and a signature check inside the
# authentication dependency as "auth". Within one frame the order below decides.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("auth: signature, nonce (node/access/auth.py)", ("RequestVerifier.", "recover_signer", "request_digest")),
    ("authz: chain head check (RPC)", ("AuthorizationCache.sync", "AuthorizationCache._sync_now")),
    ("authz: decision (cache, enforcement)", ("Enforcer.", "AuthorizationCache.")),
    ("release gate: history, footprint, record", ("ReleaseGate.release", "ReleaseGate._record", "ReleaseGate._history",
                                                  "find_conflict", "Footprint")),
    # grouped/_commit: the worker commits a batch's records as its group block ends (node/runtime/offload.py)
    ("access log: queue + wait for commit", ("AccessLog.append", "AccessLog.submit", "AccessLog.deny", "AccessLog.grouped",
                                             "AccessLog._commit")),
    ("dataset query (SQLite)", ("query_groups", "run_query", "AggregateQuery.", "dataset_schema")),
    ("release gate: other", ("release_gate.py",)),
    ("request body / response model (pydantic)", ("pydantic", "model_dump_json")),
    ("auth dependency: headers, body, SignedRequest", ("node/api/deps.py",)),
    ("data route (node/api/data.py)", ("node/api/data.py",)),
    ("HTTP parsing and writing (uvicorn protocol)", ("h11", "httptools", "uvicorn/protocols")),
    ("node middleware (body limit, deadline, headers)", ("BodyLimit", "BodyDeadline", "SecurityHeaders")),
    ("data-query lane and request workers", ("node/api/lane.py", "node/runtime/offload.py")),
    ("threadpool hand-off (anyio)", ("anyio",)),
    ("framework: routing, dependencies, handlers (starlette/fastapi)", ("starlette", "fastapi")),
    ("event loop, sockets (asyncio/uvloop)", ("asyncio", "uvloop", "selectors")),
]
OTHER = "other"


def classify(stack: str) -> str:
    for stage, markers in THREADS:
        if any(m in stack for m in markers):
            return stage
    for frame in reversed(stack.split(";")):
        for stage, markers in STAGES:
            if any(m in frame for m in markers):
                return stage
    return OTHER


def stage_table(raw: str, requests: int, rate: float, measured_cpu_ms: float | None = None) -> list[dict]:
    """Rows of (stage, samples, share %, CPU ms per request) from py-spy ``--format raw`` output.

    With ``measured_cpu_ms`` (the node's CPU time per request, from the kernel) each stage gets its share
    of that figure; otherwise samples / rate. The first is right on a loaded machine, where py-spy also
    samples threads that are runnable but waiting for a core.
    """
    counts: Counter = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[classify(stack)] += int(n)
    total = sum(counts.values()) or 1
    return [{"stage": s, "samples": n, "share_pct": round(100 * n / total, 1),
             "cpu_ms_per_request": round(measured_cpu_ms * n / total if measured_cpu_ms is not None
                                         else n / rate * 1000 / max(requests, 1), 3)}
            for s, n in counts.most_common()]


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def start_recording(pid: int, out: Path, rate: int, gil: bool = True) -> subprocess.Popen:
    """py-spy sampling ``pid`` until ``stop_recording``, without pausing it (--nonblocking: the node runs at full speed).

    ``gil``: sample only the thread holding the interpreter lock, i.e. Python doing work (C code that
    releases the lock, such as SQLite executing a statement, is then left out); otherwise every thread
    the kernel reports as running.
    """
    exe = py_spy()
    if exe is None:
        raise SystemExit("py-spy is not installed: pip install py-spy (test extras), or run without --profile")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads",
                             "--nonblocking", "--output", str(out), *(["--gil"] if gil else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_recording(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its file on interrupt
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def print_table(rows: list[dict], file=sys.stderr) -> None:
    print(f"{'stage':<66} {'share %':>8} {'CPU ms/req':>11}", file=file)
    for r in rows:
        print(f"{r['stage']:<66} {r['share_pct']:>8} {r['cpu_ms_per_request']:>11}", file=file)
    print(f"{'total':<66} {100.0:>8} {round(sum(r['cpu_ms_per_request'] for r in rows), 3):>11}", file=file)


def add_arguments(parser) -> None:
    parser.add_argument("file", type=Path)
    parser.add_argument("requests", type=int)
    parser.add_argument("--rate", type=float, default=250)
    parser.add_argument("--cpu-ms", type=float, default=None, help="measured node CPU ms per request to share out")


def run(args, progress) -> dict:
    rows = stage_table(args.file.read_text(), args.requests, args.rate, args.cpu_ms)
    print_table(rows)
    return {"stages": rows}
