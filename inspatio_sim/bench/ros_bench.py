"""``inspatio-sim bench ros``: achieved publish rate of ``inspatio_world_node`` and its cmd_vel -> image latency.

The node runs as ``inspatio-sim ros`` in a child process (the configured World, ground model, ``ros.bench.rate``
requested) and a probe node in this process subscribes over loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``,
a domain id no other test or bench holds meanwhile), once at 128x128 and once at 320x240. Achieved rate: images
received per second over a timed window after one second of warm-up. Latency (at 128x128): the standing agent gets
a ``cmd_vel`` yaw rate; the time from publishing it to receiving the first image of the step whose ``odom`` reports
the turn (same stamp), median over trials. It includes waiting for the next tick (up to one period), stepping,
rendering and transport.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from inspatio_sim.bench.report import write_report
from inspatio_sim.errors import ConfigError

RESOLUTIONS = (("128", 128, 128), ("320x240", 320, 240))
CMD_TIMEOUT = 0.2


def _measure(overrides: list[str], log: Path, seconds: float, trials: int, rate: float,
             domain: int) -> dict[str, float]:
    from inspatio_sim.ros import messages as M
    from inspatio_sim.ros.probe import Probe, start_node, stop_node

    proc = start_node(overrides, log, domain)
    out: dict[str, float] = {}
    try:
        with Probe("inspatio_bench_probe", domain_id=domain) as probe:
            probe.wait_for_node(proc, log, 120.0)
            time.sleep(1.0)
            t0 = time.perf_counter()
            time.sleep(seconds)
            out["hz"] = probe.topics[M.TOPIC_IMAGE].rate(t0, time.perf_counter())
            latencies = []
            for k in range(trials):
                time.sleep(CMD_TIMEOUT + 3.0 / rate + 0.05)  # the previous command has expired: standing still
                lat = probe.latency_to_image(1.0 if k % 2 == 0 else -1.0)
                if lat is not None:
                    latencies.append(lat * 1000)
            if trials:
                if not latencies:
                    raise ConfigError("bench ros: no image reflected a cmd_vel")
                out["latency_ms"] = float(np.median(latencies))
                out["latency_ms_p90"] = float(np.percentile(latencies, 90))
                out["latency_trials"] = float(len(latencies))
    finally:
        stop_node(proc)
    return out


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the ROS benchmark; write ``bench_ros.json``/``.md`` to ``out_dir``; return the metrics."""
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"bench ros needs the ROS 2 wheels ({e}); run `pip install -e .[ros]`") from e
    from inspatio_sim.ros.commands import flatten_overrides
    from inspatio_sim.ros.probe import reserve_domain

    b = OmegaConf.to_container(cfg.ros.bench, resolve=True)
    rate = float(b["rate"])
    seconds = 3.0 if quick else float(b["seconds"])
    trials = 8 if quick else int(b["latency_trials"])
    base = [*flatten_overrides(cfg, ("scene", "world", "render", "control")), f"device={device}", f"ros.rate={rate}",
            f"ros.cmd_timeout={CMD_TIMEOUT}", f"ros.threads={cfg.ros.threads}", "control.action_model=ground"]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="inspatio-bench-ros-") as tmp, reserve_domain() as domain:
        for name, w, h in RESOLUTIONS:
            print(f"bench ros: {w}x{h} at {rate:g} Hz requested ...", flush=True)
            results[name] = _measure([*base, f"render.camera.width={w}", f"render.camera.height={h}"],
                                     Path(tmp) / f"node_{name}.log", seconds, trials if name == "128" else 0, rate,
                                     domain)

    metrics = {
        "publish_hz_requested": rate,
        "publish_hz_achieved_128": results["128"]["hz"],
        "publish_hz_achieved_320x240": results["320x240"]["hz"],
        "latency_ms_cmd_to_image": results["128"]["latency_ms"],
    }
    rows = [[f"{w}x{h}", rate, round(results[name]["hz"], 2), f"{results[name]['hz'] / rate:.0%}"]
            for name, w, h in RESOLUTIONS]
    lat = results["128"]
    config = {"quick": quick, "device": device, "rate": rate, "seconds": seconds, "latency_trials": trials,
              "cmd_timeout": CMD_TIMEOUT, "node_overrides": base, "threads": cfg.ros.threads,
              "latency_ms_p90": lat["latency_ms_p90"], "latency_samples": lat["latency_trials"]}
    notes = [f"inspatio_world_node in a child process, probe subscriber in the benchmark process (loopback, "
             f"Fast DDS), ground model, {seconds:g} s windows; latency at 128x128, median of "
             f"{int(lat['latency_trials'])} trials (p90 {lat['latency_ms_p90']:.1f} ms). "
             "Reproduce: `inspatio-sim bench ros" + (" --quick" if quick else "") + "`."]
    write_report("ros", out_dir, config, metrics, device,
                 [("Publish rate", ["resolution", "requested Hz", "achieved Hz", "achieved / requested"], rows),
                  ("Latency cmd_vel -> image (128x128)", ["median ms", "p90 ms", "trials"],
                   [[round(lat["latency_ms"], 1), round(lat["latency_ms_p90"], 1), int(lat["latency_trials"])]])],
                 notes)
    return metrics
