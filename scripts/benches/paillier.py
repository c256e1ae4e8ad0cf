"""Paillier encryption paths: encryptions per second per core, 2048 and 3072 bits."""
from __future__ import annotations

import os
import statistics
import time

from privacy import workers
from privacy.paillier import (
    CrtEncryptor,
    FixedBaseEncryptor,
    ObfuscatorPool,
    _encrypt_task,
    default_processes,
    generate_keypair,
    parallel_encrypt,
    prepare_workers,
)

describe = "encryptions/s per core: plain phe, CRT (key holder), short-exponent fixed-base, offline pool; plus all-core"


def add_arguments(parser):
    parser.add_argument("--bits", type=int, nargs="+", default=[2048, 3072])
    parser.add_argument("--seconds", type=float, default=1.5, help="approximate time per path")
    parser.add_argument("--parallel", type=int, default=20000, help="encryptions for the all-core measurement (fixed-base)")
    parser.add_argument("--ratio-sizes", type=int, nargs="+", default=[200, 2000, 20000],
                        help="batch sizes for parallel_encrypt vs one core (2048-bit, fixed-base)")
    parser.add_argument("--ratio-repeats", type=int, default=3,
                        help="one-core and parallel runs alternate this many times per size; ratios of the medians")


def _rate(encrypt, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while True:
        encrypt(count)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and count >= 5:
            return count / elapsed


def _label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _never(_):
    raise RuntimeError("the ceiling measurement must not run chunks in the caller")


def _parallel_ratios(fixed, sizes, repeats: int) -> dict:
    """parallel_encrypt against encrypt_many on one core: same encryptor object (the best one-core path for a
    public key), same values, same process, runs alternating so that a change in machine load hits both.

    ``parallel_ratio_cold_*``: the pool stopped, as in a process that never warmed it: parallel_encrypt must
    then run on the caller alone (starting workers would slow the call down), so about 1.0.
    The others: the pool warm and the encryptor's tables built in every worker beforehand; what that costs
    once is reported apart (``pool_warm_s``, ``pool_tables_s``), not hidden in the timed runs.
    ``ceiling_ratio_*``: the same work split into one chunk per worker, the caller only waiting: what the
    cores deliver for this arithmetic (on a busy or hyper-threaded host, less than the core count).
    """
    out = {}
    workers.shutdown()
    values = list(range(sizes[0]))
    cold_ones, cold_parallels = [], []
    for _ in range(max(5, repeats)):  # alternating, medians: one timing of 50 ms is at the mercy of the scheduler
        cold_ones.append(_timed(lambda: fixed.encrypt_many(values)))
        cold_parallels.append(_timed(lambda: parallel_encrypt(fixed, values)))
        if workers.running():
            raise RuntimeError("parallel_encrypt started the pool: a cold call must run on the caller alone")
    out[f"parallel_ratio_cold_{_label(sizes[0])}"] = round(statistics.median(cold_ones) / statistics.median(cold_parallels), 2)
    out["pool_warm_s"] = round(workers.warm(wait=True), 3)
    out["pool_tables_s"] = round(prepare_workers(fixed), 3)
    out["pool_round_trip_ms"] = round(workers.round_trip_seconds() * 1000, 3)
    out["pool_threshold_ms"] = round(workers.threshold_seconds() * 1000, 3)
    processes = default_processes()
    for size in sizes:
        values = list(range(size))
        ones, parallels, stats = [], [], {}
        for _ in range(repeats):
            ones.append(_timed(lambda: fixed.encrypt_many(values)))
            parallels.append(_timed(lambda: parallel_encrypt(fixed, values, stats=stats)))
        label = _label(size)
        out[f"parallel_ratio_{label}"] = round(statistics.median(ones) / statistics.median(parallels), 2)
        out[f"one_core_per_s_{label}"] = round(size / statistics.median(ones), 1)
        out[f"parallel_chunks_{label}"] = (f"{stats.get('workers', 0)} workers, {stats.get('caller', 0)} + {stats.get('redone', 0)} "
                                           f"caller of {stats.get('chunks', 0)}" if stats else "below threshold: caller alone")
        out[f"load_{label}"] = round(os.getloadavg()[0], 2)
    size = sizes[-1]
    values = list(range(size))
    one_core = statistics.median(_timed(lambda: fixed.encrypt_many(values)) for _ in range(repeats))
    spec, per = fixed.spec(), -(-size // processes)
    chunks = [(spec, values[i : i + per]) for i in range(0, size, per)]
    # the workers alone (no threshold, no stepping in): one chunk each, the caller waiting for them
    split = statistics.median(_timed(lambda: workers.map_helping(_encrypt_task, chunks, _never, processes, chunk_seconds=3600))
                              for _ in range(repeats))
    out[f"ceiling_ratio_{_label(size)}"] = round(one_core / split, 2)
    out["parallel_note"] = "ratio = one-core time / parallel_encrypt time (medians), 2048-bit fixed-base, same process"
    return out


def run(args, progress):
    result = {}
    task = progress.add_task("paillier paths", total=len(args.bits) * 7)
    for bits in args.bits:
        public, private = generate_keypair(bits)
        phe_pub = public.to_phe()
        # plain phe, through its public API (EncodedNumber + raw_encrypt, gmpy2 underneath)
        result[f"phe_{bits}"] = round(_rate(lambda i: phe_pub.encrypt(i), args.seconds), 1)
        progress.advance(task)
        result[f"crt_{bits}"] = round(_rate(CrtEncryptor(private).encrypt, args.seconds), 1)
        progress.advance(task)
        t = time.perf_counter()
        fixed = FixedBaseEncryptor(public)
        result[f"fixed_base_table_seconds_{bits}"] = round(time.perf_counter() - t, 3)
        result[f"fixed_base_{bits}"] = round(_rate(fixed.encrypt, args.seconds), 1)
        progress.advance(task)
        result[f"fixed_base_strict_{bits}"] = round(_rate(FixedBaseEncryptor(public, strict=True).encrypt, args.seconds), 1)
        progress.advance(task)
        pool = ObfuscatorPool(fixed, fallback=False)
        n_pool = max(200, int(result[f"fixed_base_{bits}"] * args.seconds))
        t = time.perf_counter()
        pool.fill(n_pool)
        result[f"pool_fill_per_s_{bits}"] = round(n_pool / (time.perf_counter() - t), 1)
        start, count = time.perf_counter(), 0
        while pool.remaining:
            pool.encrypt(count)
            count += 1
        result[f"pool_online_{bits}"] = round(count / (time.perf_counter() - start), 1)
        progress.advance(task)
        crt_pool = ObfuscatorPool(CrtEncryptor(private), fallback=False)
        crt_pool.fill(50)
        start = time.perf_counter()
        while crt_pool.remaining:
            crt_pool.encrypt(1)
        result[f"pool_online_crt_filled_{bits}"] = round(50 / (time.perf_counter() - start), 1)
        progress.advance(task)
        plaintexts = list(range(args.parallel))
        result[f"pool_tables_s_{bits}"] = round(prepare_workers(fixed), 3)  # workers started, tables built: not timed below
        start = time.perf_counter()
        parallel_encrypt(fixed, plaintexts)
        result[f"fixed_base_all_cores_total_{bits}"] = round(args.parallel / (time.perf_counter() - start), 1)
        progress.advance(task)
        if bits == 2048:
            result.update(_parallel_ratios(fixed, args.ratio_sizes, args.ratio_repeats))
    workers.shutdown()
    result["cores"] = default_processes()
    result["unit"] = "encryptions per second (per core unless *_all_cores_total)"
    return result
