"""The timing loop the benchmark scripts share: warm up, find a call count that lasts long
enough, then take the median of repeated runs (and minor page faults per call)."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable, Tuple


def measure(step: Callable[[], object], repeats: int, min_time: float,
            warmup: int = 10) -> Tuple[float, float]:
    """(median seconds per call, median minor page faults per call) over `repeats` runs,
    each of as many calls (a power of two) as last at least `min_time` seconds."""
    for _ in range(warmup):
        step()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if time.perf_counter() - t0 >= min_time:
            break
        n *= 2
    samples, faults = [], []
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        samples.append((time.perf_counter() - t0) / n)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
    return statistics.median(samples), statistics.median(faults)
