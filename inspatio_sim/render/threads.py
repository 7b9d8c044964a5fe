"""Thread policy of the CPU renderer: as many threads as there are CPUs free of other work.

torch's and numba's thread pools spin-wait at every parallel region; with one more thread than free cores a
worker is descheduled in the middle of a region and every region waits a scheduler slice for it (measured: 297
-> 39 frames/s at 64x64, B=1, with one other busy process on a 2-core machine). ``render.threads=auto`` therefore
measures, every :data:`REFRESH_S` seconds, how busy the usable CPUs were since the last look *with work that is
not this process's* (``/proc/stat`` of the CPUs in this process's affinity set, minus this process's own CPU time)
and sets both pools to ``round(usable - busy_elsewhere)`` threads, at least one. ``render.threads=N`` fixes N.

Usable CPUs: the process's affinity set, capped by a cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``).
Where ``/proc/stat`` is unreadable (not Linux), ``auto`` falls back to the 1-minute load average.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import torch

from inspatio_sim.errors import ConfigError

REFRESH_S = 0.25
"""Seconds between two looks at the CPUs' load (the policy reacts within about this long)."""


def usable_cpus() -> int:
    """CPUs this process may run on: affinity set, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def parse_threads(setting: object) -> int | None:
    """``render.threads`` as a fixed count, or ``None`` for ``auto``.

    Raises:
        ConfigError: neither ``auto`` nor a positive integer.
    """
    text = str(setting).strip().lower()
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"render.threads must be 'auto' or a positive integer, got {setting!r}")
    return n


def _busy_seconds(cpus: set[int]) -> tuple[float, float] | None:
    """(busy seconds, wall clock) summed over ``cpus`` from ``/proc/stat``; ``None`` where unreadable."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *vals = line.split()
        if int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in vals[:8]]
        busy += sum(v) - v[3] - v[4]  # all but idle and iowait
    return busy / hz, time.monotonic()


class ThreadPolicy:
    """Chooses and applies the thread count of torch and numba (one per process: :data:`POLICY`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample: tuple[float, float, float] | None = None  # (busy s, wall s, own cpu s)
        self._chosen = 0
        self._applied = 0
        self.free_estimate = float("nan")
        """CPUs free of other work at the last look (for reports)."""

    def _cpus(self) -> set[int]:
        try:
            return set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return set(range(os.cpu_count() or 1))

    def _look(self) -> tuple[float, float, float] | None:
        s = _busy_seconds(self._cpus())
        return None if s is None else (s[0], s[1], time.process_time())

    def auto_threads(self) -> int:
        """Threads for the CPUs free now (re-measured at most every :data:`REFRESH_S`)."""
        usable = usable_cpus()
        now = time.monotonic()
        if self._sample is not None and now - self._sample[1] < REFRESH_S and self._chosen:
            return self._chosen
        with self._lock:
            cur = self._look()
            if cur is None:  # no /proc/stat: the load average (includes this process; a coarse fallback)
                self.free_estimate = usable - os.getloadavg()[0]
                self._chosen = max(1, min(usable, round(self.free_estimate + 1)))
                return self._chosen
            if self._sample is None:  # first call: a short first look
                self._sample = cur
                time.sleep(0.02)
                cur = self._look()
                assert cur is not None
            prev = self._sample
            wall = cur[1] - prev[1]
            if wall > 0:
                elsewhere = max(0.0, (cur[0] - prev[0]) - (cur[2] - prev[2])) / wall
                self.free_estimate = max(0.0, usable - elsewhere)
                self._chosen = max(1, min(usable, round(self.free_estimate)))
            self._sample = cur
        return self._chosen

    def apply(self, setting: object) -> int:
        """Set torch's and numba's thread counts from ``setting`` (``auto`` or N); return the count used."""
        fixed = parse_threads(setting)
        n = fixed if fixed is not None else self.auto_threads()
        self._applied = n
        self.resync()
        numba = sys.modules.get("numba")  # per calling thread; numba is loaded by the fused backend
        if numba is not None:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        return n


    def resync(self) -> None:
        """Set torch's pool back to the chosen count: numba's OpenMP layer shares libgomp with torch, and its
        first parallel launch in a thread resets the OpenMP thread count to numba's own."""
        if self._applied and torch.get_num_threads() != self._applied:
            torch.set_num_threads(self._applied)


POLICY = ThreadPolicy()
"""The process's thread policy (torch's and numba's pools are per process)."""
