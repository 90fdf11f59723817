"""The timing loops the benchmark scripts share: warm up, find a call count that lasts long
enough, then take the median of repeated runs (and minor page faults per call); one step at
a time, or several in turns."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable, Dict, List, Tuple


def measure(step: Callable[[], object], repeats: int, min_time: float,
            warmup: int = 10) -> Tuple[float, float]:
    """(median seconds per call, median minor page faults per call) over `repeats` runs,
    each of as many calls (a power of two) as last at least `min_time` seconds."""
    return measure_in_turns({"step": step}, repeats, min_time, warmup)["step"]


def measure_in_turns(steps: Dict[str, Callable[[], object]], repeats: int, min_time: float,
                     warmup: int = 10) -> Dict[str, Tuple[float, float]]:
    """{name: (median seconds per call, median minor page faults per call)} for several steps
    timed in turns: each round runs every step once (as many calls as last `min_time`), so a
    change in the machine's load falls on all of them alike and their ratios stay fair."""
    counts = {name: _calls_lasting(step, min_time, warmup) for name, step in steps.items()}
    samples: Dict[str, List[float]] = {name: [] for name in steps}
    faults: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            n = counts[name]
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - t0) / n)
            faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
    return {name: (statistics.median(samples[name]), statistics.median(faults[name])) for name in steps}


def _calls_lasting(step: Callable[[], object], min_time: float, warmup: int) -> int:
    """After `warmup` calls, the least power of two of calls of `step` that last `min_time`."""
    for _ in range(warmup):
        step()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if time.perf_counter() - t0 >= min_time:
            return n
        n *= 2
