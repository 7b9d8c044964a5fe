"""Timing helpers shared by the benchmarks: interleaved rounds on a shared, noisy machine."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

ROUNDS = 5
"""Timing rounds: every case is timed once per round, cases interleaved, and its median over rounds reported, so
a slow spell of a shared machine hits all cases alike instead of one."""


def window_rate(fn: Callable[[], object], items: int, seconds: float, sync: Callable[[], object]) -> float:
    """Items per second of ``fn`` (which processes ``items`` items) over a window of at least ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 2:
            return items * n / elapsed


def interleaved_rates(cases: dict[object, tuple[Callable[[], object], int]], seconds: float,
                      sync: Callable[[], object], rounds: int = ROUNDS,
                      progress: Callable[[range], object] = iter) -> dict[object, float]:
    """Median items/s per case over ``rounds`` interleaved rounds; ``seconds`` is each case's total time."""
    for fn, _ in cases.values():  # warm-up
        fn()
    sync()
    rates: dict[object, list[float]] = {key: [] for key in cases}
    for _ in progress(range(rounds)):
        for key, (fn, items) in cases.items():
            rates[key].append(window_rate(fn, items, seconds / rounds, sync))
    return {k: float(np.median(v)) for k, v in rates.items()}
