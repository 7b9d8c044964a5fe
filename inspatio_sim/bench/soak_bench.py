"""``inspatio-sim bench soak``: memory and rate over a long run (does anything leak or slow down?).

Env phase: ``gym.make_vec("InSpatio/PointNav-v0", num_envs=B)`` (native vector env, B = ``bench.soak.num_envs``,
default 16, 64x64 camera) steps uniformly random actions for ``bench.soak.env_steps`` vector steps (default
100,000; episodes end and autoreset as usual). The process's resident memory (``VmRSS`` of ``/proc/self/status``)
is sampled at ``bench.soak.samples`` evenly spaced steps. Growth is measured from the sample at
``bench.soak.warmup_fraction`` of the run (allocator pools, caches and lazily built tensors fill up first) to the
last one: ``soak_env_rss_growth_pct = 100 (end - start) / start``.

ROS phase: the node (``inspatio-sim ros``, ground model, ``bench.soak.ros_rate`` Hz requested) runs in a child
process while a probe in this process floods ``cmd_vel`` at ``bench.soak.flood_hz`` for ``bench.soak.ros_minutes``
minutes (a forward speed and a slowly swinging yaw rate, so the agent keeps moving and colliding). Per window of
``bench.soak.ros_window`` seconds: images received per second and the node's ``VmRSS`` (``/proc/PID/status``).
Growth is measured as for the env phase. The phase is skipped, with a note in the JSON, when rclpy is not installed
or ``bench.soak.ros_minutes=0``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs  # noqa: F401  (registers the ids)
from inspatio_sim.bench.report import write_report
from inspatio_sim.errors import ConfigError

ENV_ID = "InSpatio/PointNav-v0"


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size (``VmRSS``) of process ``pid`` in MiB, from ``/proc/PID/status`` (Linux)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError as e:
        raise ConfigError(f"bench soak: cannot read the memory of process {pid} ({e}); it needs Linux /proc") from e
    raise ConfigError(f"bench soak: /proc/{pid}/status has no VmRSS line")


def growth_pct(series: list[float], warmup_fraction: float) -> tuple[float, float, float]:
    """``(start, end, growth %)`` of evenly spaced samples: start is the first sample at or after
    ``warmup_fraction`` of the run, end the last sample."""
    if len(series) < 2:
        raise ConfigError("bench soak: need at least two samples to measure growth; raise bench.soak.samples")
    start = series[min(math.ceil(warmup_fraction * (len(series) - 1)), len(series) - 2)]
    end = series[-1]
    return start, end, 100.0 * (end - start) / start


def env_phase(steps: int, num_envs: int, resolution: int, samples: int, device: str, overrides: list[str],
              seed: int = 0) -> tuple[list[list[float]], float]:
    """Step the native vector env ``steps`` times with random actions.

    Returns:
        ``rows`` of ``[step, seconds since the first step, RSS MiB]`` (step 0 = after reset, then ``samples``
        evenly spaced steps up to ``steps``) and vector steps per second over the whole run.
    """
    vec = gym.make_vec(ENV_ID, num_envs=num_envs, width=resolution, height=resolution, device=device,
                       overrides=overrides)
    try:
        vec.reset(seed=seed)
        vec.action_space.seed(seed)
        at = set(np.linspace(0, steps, samples + 1).round().astype(int).tolist())
        rows = [[0.0, 0.0, rss_mb()]]
        t0 = time.perf_counter()
        for k in tqdm(range(1, steps + 1), desc="soak env", unit="step", mininterval=5.0):
            vec.step(vec.action_space.sample())
            if k in at:
                rows.append([float(k), time.perf_counter() - t0, rss_mb()])
        return rows, steps / (time.perf_counter() - t0)
    finally:
        vec.close()


def ros_phase(overrides: list[str], seconds: float, window: float, flood_hz: float, log: Path,
              progress: Callable[[int], Any] | None = None) -> list[list[float]]:
    """Flood the node's ``cmd_vel`` for ``seconds``; return ``[t, images/s, node RSS MiB]`` per ``window`` s."""
    from inspatio_sim.ros import messages as M
    from inspatio_sim.ros.probe import Probe, reserve_domain, start_node, stop_node

    with reserve_domain() as domain:
        proc = start_node(overrides, log, domain)
        rows: list[list[float]] = []
        try:
            with Probe("inspatio_soak_probe", domain_id=domain) as probe:
                probe.wait_for_node(proc, log, timeout=180.0)
                images = probe.topics[M.TOPIC_IMAGE]
                t0 = time.perf_counter()
                next_window, k = t0 + window, 0
                while True:
                    now = time.perf_counter()
                    if now >= next_window:
                        rows.append([now - t0, images.rate(next_window - window, next_window), rss_mb(proc.pid)])
                        if progress is not None:
                            progress(1)
                        if now - t0 >= seconds - 1e-9:
                            break
                        next_window += window
                    if proc.poll() is not None:
                        raise ConfigError(f"bench soak: the node died under the cmd_vel flood ({proc.returncode}); "
                                          f"see {log}:\n" + log.read_text()[-2000:])
                    yaw = 0.8 * math.sin(0.5 * (now - t0))
                    probe.send_twist((0.5, 0.0, 0.0), (0.0, 0.0, yaw))
                    k += 1
                    time.sleep(max(0.0, t0 + k / flood_hz - time.perf_counter()))
        finally:
            stop_node(proc)
    return rows


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the soak benchmark; write ``bench_soak.json``/``.md`` to ``out_dir``; return the metrics."""
    from inspatio_sim.ros.commands import flatten_overrides

    b = OmegaConf.to_container(cfg.bench.soak, resolve=True)
    if quick:
        b.update(env_steps=min(b["env_steps"], 2_000), ros_minutes=min(b["ros_minutes"], 0.5),
                 ros_window=min(b["ros_window"], 5.0))
    for key in ("env_steps", "num_envs", "resolution", "samples"):
        if not isinstance(b[key], int) or b[key] < 1:
            raise ConfigError(f"bench.soak.{key} must be an integer >= 1, got {b[key]!r}")
    if b["samples"] < 2 or b["samples"] > b["env_steps"]:
        raise ConfigError(f"bench.soak.samples must be in [2, env_steps], got {b['samples']}")
    if not 0 <= b["warmup_fraction"] < 1:
        raise ConfigError(f"bench.soak.warmup_fraction must be in [0, 1), got {b['warmup_fraction']}")
    if b["ros_minutes"] < 0 or b["ros_window"] <= 0 or b["flood_hz"] <= 0 or b["ros_rate"] <= 0:
        raise ConfigError("bench.soak.ros_minutes must be >= 0 and ros_window, flood_hz, ros_rate > 0")

    print(f"bench soak: {b['env_steps']:,} steps of {b['num_envs']} agents ...", flush=True)
    env_rows, steps_per_s = env_phase(b["env_steps"], b["num_envs"], b["resolution"], b["samples"], device,
                                      flatten_overrides(cfg, ("scene", "world")))
    start, end, growth = growth_pct([r[2] for r in env_rows], b["warmup_fraction"])
    metrics: dict[str, float] = {
        "soak_env_rss_mb_start": start, "soak_env_rss_mb_end": end, "soak_env_rss_growth_pct": growth,
        "soak_env_steps_per_s": steps_per_s, "soak_env_rss_mb_after_reset": env_rows[0][2],
    }
    series: dict[str, list[list[float]]] = {"env_step_seconds_rss_mb": env_rows}
    tables = [(f"Env phase: {ENV_ID}, B={b['num_envs']}, {b['resolution']}x{b['resolution']}, random actions",
               ["step", "seconds", "RSS MiB"], [[int(s), round(t, 1), round(m, 1)] for s, t, m in env_rows])]

    ros_note = _ros_skip_reason(b)
    if ros_note is None:
        seconds = 60.0 * b["ros_minutes"]
        overrides = [*flatten_overrides(cfg, ("scene", "world", "render", "control")), f"device={device}",
                     f"ros.rate={b['ros_rate']}", f"ros.threads={cfg.ros.threads}", "control.action_model=ground"]
        print(f"bench soak: ROS node at {b['ros_rate']:g} Hz, cmd_vel flood at {b['flood_hz']:g} Hz for "
              f"{seconds:g} s ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="inspatio-bench-soak-") as tmp, \
                tqdm(total=math.ceil(seconds / b["ros_window"] - 1e-9), desc="soak ros", unit="window") as bar:
            ros_rows = ros_phase(overrides, seconds, b["ros_window"], b["flood_hz"], Path(tmp) / "node.log",
                                 bar.update)
        rates = [r[1] for r in ros_rows]
        r_start, r_end, r_growth = growth_pct([r[2] for r in ros_rows], b["warmup_fraction"])
        metrics.update(soak_ros_rate_hz_min_window=min(rates), soak_ros_rate_hz_mean=float(np.mean(rates)),
                       soak_ros_rss_growth_pct=r_growth, soak_ros_rate_hz_requested=float(b["ros_rate"]),
                       soak_ros_rss_mb_start=r_start, soak_ros_rss_mb_end=r_end)
        series["ros_seconds_hz_rss_mb"] = ros_rows
        tables.append((f"ROS phase: node at {b['ros_rate']:g} Hz requested, cmd_vel at {b['flood_hz']:g} Hz",
                       ["seconds", "images/s", "node RSS MiB"],
                       [[round(t, 1), round(hz, 2), round(m, 1)] for t, hz, m in ros_rows]))
        ros_note = f"ran {seconds:g} s"
    config = {"quick": quick, "device": device, "env": ENV_ID, "bench": b, "ros_phase": ros_note,
              "scene": OmegaConf.to_container(cfg.scene, resolve=True)}
    notes = [f"RSS growth from the sample at {b['warmup_fraction']:.0%} of each phase to its end. ROS phase: "
             f"{ros_note}. Reproduce: `inspatio-sim bench soak" + (" --quick" if quick else "")
             + f" --device {device}`."]
    write_report("soak", out_dir, config, metrics, device, tables, notes, series=series)
    return metrics


def _ros_skip_reason(b: dict[str, Any]) -> str | None:
    """Why the ROS phase does not run (``None``: it runs)."""
    if b["ros_minutes"] == 0:
        return "skipped: bench.soak.ros_minutes=0"
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        return f"skipped: the ROS 2 wheels are not installed ({e}); `pip install -e .[ros]`"
    return None
