"""Paillier encryption paths: encryptions per second per core, 2048 and 3072 bits."""
from __future__ import annotations

import time

from privacy import workers
from privacy.paillier import (
    CrtEncryptor,
    FixedBaseEncryptor,
    ObfuscatorPool,
    default_processes,
    generate_keypair,
    parallel_encrypt,
)

describe = "encryptions/s per core: plain phe, CRT (key holder), short-exponent fixed-base, offline pool; plus all-core"


def add_arguments(parser):
    parser.add_argument("--bits", type=int, nargs="+", default=[2048, 3072])
    parser.add_argument("--seconds", type=float, default=1.5, help="approximate time per path")
    parser.add_argument("--parallel", type=int, default=20000, help="encryptions for the all-core measurement (fixed-base)")
    parser.add_argument("--ratio-sizes", type=int, nargs="+", default=[200, 2000, 20000],
                        help="batch sizes for parallel_encrypt vs one core (2048-bit, fixed-base)")


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


def _parallel_ratios(fixed, sizes) -> dict:
    """parallel_encrypt / encrypt_many on one core, same encryptor, same process, same sizes.

    ``parallel_ratio_cold_*``: the first call of a fresh process, workers not started yet (their start-up
    included). The others: the pool already running, as in a node that has served a job before.
    """
    out = {}
    workers.shutdown()
    for size in sizes:
        values = list(range(size))
        t = time.perf_counter()
        fixed.encrypt_many(values)
        one_core = time.perf_counter() - t
        cold = size == sizes[0]
        t = time.perf_counter()
        parallel_encrypt(fixed, values)
        parallel = time.perf_counter() - t
        if cold:
            out[f"parallel_ratio_cold_{_label(size)}"] = round(one_core / parallel, 2)
            t = time.perf_counter()
            parallel_encrypt(fixed, values)
            parallel = time.perf_counter() - t
        out[f"parallel_ratio_{_label(size)}"] = round(one_core / parallel, 2)
        out[f"one_core_per_s_{_label(size)}"] = round(size / one_core, 1)
    out["parallel_note"] = "ratio = one-core time / parallel_encrypt time, 2048-bit fixed-base, same process"
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
        start = time.perf_counter()
        parallel_encrypt(fixed, plaintexts)
        result[f"fixed_base_all_cores_total_{bits}"] = round(args.parallel / (time.perf_counter() - start), 1)
        progress.advance(task)
        if bits == 2048:
            result.update(_parallel_ratios(fixed, args.ratio_sizes))
    result["cores"] = default_processes()
    result["unit"] = "encryptions per second (per core unless *_all_cores_total)"
    return result
