"""Vertical statistics: private join-and-group-by vs the straightforward phe loop, same run, same data."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
import resource
import time

from privacy.join import FeatureOwner, JoinSpec, LabelOwner
from privacy.paillier import default_processes, generate_keypair

describe = "private join-and-group-by (blinding + packed CRT fixed-base Paillier, pipelined on all cores) vs a per-value phe loop"


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=10_000, help="intersected rows (both parties hold exactly these ids)")
    parser.add_argument("--buckets", type=int, default=100)
    parser.add_argument("--metrics", type=int, choices=(2, 3), default=2, help="2: claimed flag + amount; 3: + amount squared")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--baseline-rows", type=int, default=200, help="sample size for the phe baseline")
    parser.add_argument("--processes", type=int, default=0, help="worker processes (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=0, help="label batches queued or unconsumed at once (default: 2 per worker)")
    parser.add_argument("--seed", type=int, default=7)


def _data(rows: int, buckets: int, seed: int):
    rng = random.Random(seed)
    ids = [f"person-{rng.getrandbits(64):016x}-{i}" for i in range(rows)]
    platform = [(i, f"bucket-{rng.randrange(buckets)}") for i in ids]
    insurer = [(i, rng.random() < 0.1, round(rng.uniform(0, 20_000), 2)) for i in ids]
    rng.shuffle(insurer)
    return platform, insurer


def _baseline(public, private, platform, insurer, sample: int, progress):
    """phe with gmpy2: encrypt each value, add per bucket, decrypt per bucket."""
    bucket_of = dict(platform)
    rows = insurer[:sample]
    task = progress.add_task("baseline: phe per value", total=len(rows))
    start = time.perf_counter()
    sums: dict[str, list] = {}
    for identifier, claimed, amount in rows:
        enc = [public.encrypt(int(claimed)), public.encrypt(int(round(amount * 100)))]
        bucket = bucket_of[identifier]
        if bucket in sums:
            sums[bucket] = [a + b for a, b in zip(sums[bucket], enc)]
        else:
            sums[bucket] = enc
        progress.advance(task)
    per_row = (time.perf_counter() - start) / len(rows)
    start = time.perf_counter()
    for values in sums.values():
        [private.decrypt(v) for v in values]
    decrypt_seconds = time.perf_counter() - start
    return per_row, decrypt_seconds, len(sums)


def _workers_usage(executor) -> tuple[float, float]:
    """CPU seconds of all worker processes and the largest worker's peak RSS (MB), from /proc."""
    cpu, peak = 0.0, 0.0
    for pid in list(getattr(executor, "_processes", {}) or {}):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return cpu, peak


def run(args, progress):
    processes = args.processes or default_processes()
    t0 = time.perf_counter()
    public, private = generate_keypair(args.bits)
    keygen_seconds = time.perf_counter() - t0
    platform, insurer = _data(args.rows, args.buckets, args.seed)
    buckets = tuple(f"bucket-{i}" for i in range(args.buckets))

    # baseline first, on a sample, timed per row; decryption per bucket is a fixed cost, scaled to the
    # number of buckets the full run has.
    phe_public, phe_private = public.to_phe(), private.to_phe()
    base_per_row, base_decrypt, base_buckets = _baseline(phe_public, phe_private, platform, insurer, min(args.baseline_rows, args.rows), progress)
    base_decrypt_full = base_decrypt / max(1, base_buckets) * args.buckets
    baseline_seconds = base_per_row * args.rows + base_decrypt_full

    spec = JoinSpec("bench", buckets, public.fingerprint, min_cohort=1, key_bits=args.bits,
                    include_squares=args.metrics == 3, max_rows=max(1 << 20, args.rows))
    cpu_before = os.times()
    start = time.perf_counter()
    # forkserver: workers start from a clean process, not as fork()s of this one, which holds the whole
    # data set (a forked worker's garbage collector touches every inherited object and copies its pages)
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as executor:
        feature_owner = FeatureOwner(spec, platform)
        label_owner = LabelOwner(spec, private, insurer)
        t = progress.add_task("ours: blinding platform ids", total=None)
        message = feature_owner.blinded_buckets(executor)
        reply = label_owner.double_blind(message, executor)
        del message  # each party keeps only what it needs from here on
        feature_owner.load_double_blinded(reply)
        del reply
        progress.update(t, total=1, completed=1)
        t_blind = time.perf_counter() - start
        t = progress.add_task("ours: label batches", total=-(-args.rows // args.batch_size))

        def ticking(batches):
            for batch in batches:
                progress.advance(t)
                yield batch

        # insurer workers blind + encrypt, platform workers re-blind, the main process only matches and
        # multiplies; both sides keep at most --in-flight batches queued (bounded memory, no idle worker)
        batches = label_owner.label_batches(args.batch_size, executor, in_flight=args.in_flight or None)
        matched = feature_owner.accumulate_stream(ticking(batches), public, executor, in_flight=args.in_flight or None)
        t_labels = time.perf_counter() - start - t_blind
        results = label_owner.decrypt(feature_owner.bucket_sums())
        seconds = time.perf_counter() - start
        cpu_workers, worker_peak_mb = _workers_usage(executor)  # forkserver children: read while they live
    cpu_after = os.times()
    cpu_main = cpu_after.user - cpu_before.user + cpu_after.system - cpu_before.system

    # correctness against the plain computation
    bucket_of = dict(platform)
    expected: dict[str, list] = {}
    for identifier, claimed, amount in insurer:
        e = expected.setdefault(bucket_of[identifier], [0, 0, 0])
        e[0] += 1
        e[1] += int(claimed)
        e[2] += int(round(amount * 100))
    correct = all(
        (r.count, r.claimed, int(r.amount * 100)) == tuple(expected[b]) for b, r in results.items()
    ) and len(results) == len(expected)

    ours_per_row = seconds / args.rows
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ratio": round((baseline_seconds / args.rows) / ours_per_row, 1),
        "rows": args.rows,
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "worker_peak_mb": round(worker_peak_mb, 1),
        "matched": matched,
        "correct": correct,
        "buckets": args.buckets,
        "metrics": args.metrics,
        "bits": args.bits,
        "processes": processes,
        "baseline_sample_rows": min(args.baseline_rows, args.rows),
        "baseline_us_per_row": round(baseline_seconds / args.rows * 1e6, 1),
        "ours_us_per_row": round(ours_per_row * 1e6, 1),
        "baseline_extrapolated_seconds": round(baseline_seconds, 1),
        "blind_platform_seconds": round(t_blind, 2),
        "label_phase_seconds": round(t_labels, 2),
        "keygen_seconds": round(keygen_seconds, 2),
        # CPU seconds of our run: main process and workers; utilization = both / (seconds * processes).
        # Under 1.0 means cores idled or another program used them (the machine load is reported too).
        "cpu_main_seconds": round(cpu_main, 1),
        "cpu_workers_seconds": round(cpu_workers, 1),
        "cpu_us_per_row": round((cpu_main + cpu_workers) / args.rows * 1e6, 1),
        "core_utilization": round((cpu_main + cpu_workers) / (seconds * processes), 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
