"""The machine a benchmark ran on, measured in the same run."""
from __future__ import annotations

import time


def core_speed_ms() -> float:
    """Milliseconds one core takes for a fixed pure-Python workload (best of five): this VM's cores run at
    different speeds from one minute to the next (the same node code measured 1.6 and 2.3 ms per request an hour
    apart, its load generator slower by the same factor), so every figure is reported with the speed it ran at."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2)
