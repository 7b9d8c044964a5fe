"""``inspatio-sim bench ray``: the Ray vector env vs. the native one, and reconstruct-many with 1 vs 2 workers.

Rollouts: ``InSpatio/VideoWorld-v0`` (ground model, seeded random actions) on the configured World at
``cluster.bench.resolution``. Cases: the native vector env with ``B = cluster.bench.envs_per_actor`` and with
``A x B`` agents (one process), and the Ray vector env with ``A = cluster.bench.num_actors`` actors of ``B`` agents
each (one World and Simulator per actor, all stepping concurrently) in a local Ray instance of ``A x
cluster.actor_cpus`` CPUs (or the cluster of ``cluster.address``). Each case steps ``cluster.bench.steps`` times
after a warm-up; frames/s = steps/s x agents. The Ray overhead per step is the Ray env's step time minus the native
env's step time for one actor's ``B`` agents (what a step would cost if the actors ran in parallel for free).

Reconstruction: ``cluster.bench.clips`` copies of the configured oracle clip (a video written from the Scene's
frames) reconstructed by ``reconstruct-many`` with 1 and with 2 workers (a worker = one task slot of
``cluster.bench.cpus_per_clip`` CPUs, half the machine's cores by default; the local instance gets workers x
that many CPUs); clips/hour = clips / wall
time, Ray start included. ``--quick``: 40 steps, 2 clips with a lighter reconstruction (every second frame, fewer
planes and features).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers the ids)
from inspatio_sim.bench.report import write_report
from inspatio_sim.cluster.session import ray_session

ENV_ID = "InSpatio/VideoWorld-v0"
QUICK_RECON = ["recon.stride=2", "recon.mvs.num_planes=24", "recon.dynamic.gaps=[1]", "recon.max_features=1024",
               "recon.overlap=5", "recon.mapper=incremental"]


def _time_steps(vec: Any, n: int, steps: int, seed: int) -> float:
    """Seconds per step of ``vec`` (``n`` agents), random ground actions, after 3 warm-up steps."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps + 3, n, 2)).astype(np.float32)
    vec.reset(seed=seed)
    for a in actions[:3]:
        vec.step(a)
    t0 = time.perf_counter()
    for a in actions[3:]:
        vec.step(a)
    return (time.perf_counter() - t0) / steps


def _rollouts(cfg: DictConfig, device: str, world: str, res: int, b: int, actors: int, steps: int
              ) -> tuple[dict[str, float], list[list[Any]]]:
    kw = {"width": res, "height": res, "device": device, "world": world}
    step_s: dict[str, float] = {}
    for n in sorted({b, b * actors}):
        vec = gym.make_vec(ENV_ID, num_envs=n, **kw)
        step_s[f"native_b{n}"] = _time_steps(vec, n, steps, 0)
        vec.close()
    cc = cfg.cluster
    with ray_session(cc.address, num_cpus=max(1, int(np.ceil(actors * cc.actor_cpus))),
                     object_store_mb=cc.object_store_mb):
        kw.pop("world")
        vec = gym.make_vec(ENV_ID, num_envs=b * actors, worlds=[world] * actors, actor_cpus=cc.actor_cpus,
                           actor_gpus=cc.actor_gpus, **kw)
        step_s["ray"] = _time_steps(vec, b * actors, steps, 0)
        vec.close()
    metrics = {f"native_fps_{res}_b{b}": b / step_s[f"native_b{b}"],
               f"native_fps_{res}_b{b * actors}": b * actors / step_s[f"native_b{b * actors}"],
               f"ray_fps_{res}_b{b}x{actors}": b * actors / step_s["ray"]}
    metrics["ray_speedup_vs_native_same_agents"] = (metrics[f"ray_fps_{res}_b{b}x{actors}"]
                                                    / metrics[f"native_fps_{res}_b{b * actors}"])
    metrics["ray_step_overhead_ms"] = 1000.0 * (step_s["ray"] - step_s[f"native_b{b}"])
    metrics["ray_step_ms"] = 1000.0 * step_s["ray"]
    metrics[f"native_step_ms_b{b}"] = 1000.0 * step_s[f"native_b{b}"]
    rows = [["native", f"{res}x{res}", 1, b, round(metrics[f"native_fps_{res}_b{b}"], 1),
             round(1000 * step_s[f"native_b{b}"], 2)],
            ["native", f"{res}x{res}", 1, b * actors, round(metrics[f"native_fps_{res}_b{b * actors}"], 1),
             round(1000 * step_s[f"native_b{b * actors}"], 2)],
            ["ray", f"{res}x{res}", actors, b * actors, round(metrics[f"ray_fps_{res}_b{b}x{actors}"], 1),
             round(1000 * step_s["ray"], 2)]]
    return metrics, rows


def _clips_per_hour(cfg: DictConfig, clips: int, quick: bool, tmp: Path) -> tuple[dict[str, float], list[list[Any]]]:
    from inspatio_sim.cluster.reconstruct_many import reconstruct_many
    from inspatio_sim.scene_source import load_scene
    from inspatio_sim.video_io import write_video

    scene = load_scene(cfg.scene)
    folder = tmp / "clips"
    folder.mkdir()
    for i in range(clips):
        write_video(scene.frames, folder / f"clip{i}.mp4", scene.meta.fps)
    height = float(np.median(scene.poses[:, 2, 3]))
    cpus = cfg.cluster.bench.cpus_per_clip
    cpus = float(max(1, len(os.sched_getaffinity(0)) // 2) if cpus is None else cpus)
    metrics: dict[str, float] = {}
    rows = []
    for workers in (1, 2):
        run_cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([
            f"recon.camera_height={height}", f"cluster.cpus_per_clip={cpus:g}",
            f"cluster.num_cpus={int(np.ceil(workers * cpus))}", *(QUICK_RECON if quick else [])]))
        t0 = time.perf_counter()
        index = reconstruct_many([str(folder)], tmp / f"worlds_w{workers}", run_cfg)
        seconds = time.perf_counter() - t0
        metrics[f"clips_per_hour_w{workers}"] = clips / seconds * 3600.0
        rows.append([workers, f"{cpus:g}", clips, len(index["failed"]), round(seconds, 1),
                     round(metrics[f"clips_per_hour_w{workers}"], 1)])
    metrics["recon_scaling_w2_vs_w1"] = metrics["clips_per_hour_w2"] / metrics["clips_per_hour_w1"]
    return metrics, rows


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the Ray benchmark; write ``bench_ray.json``/``.md`` to ``out_dir``; return the metrics."""
    from inspatio_sim.scene_source import load_scene

    bc = OmegaConf.to_container(cfg.cluster.bench, resolve=True)
    if quick:
        bc.update(steps=min(bc["steps"], 40), clips=min(bc["clips"], 2))
    with tempfile.TemporaryDirectory(prefix="inspatio-bench-ray-") as tmp:
        world = Path(tmp) / "world"
        load_scene(cfg.scene).save(world)
        metrics, rows = _rollouts(cfg, device, str(world), bc["resolution"], bc["envs_per_actor"],
                                  bc["num_actors"], bc["steps"])
        tables = [("Rollouts", ["env", "resolution", "actors", "agents", "frames/s", "ms/step"], rows)]
        if bc["clips"] > 0:
            recon_metrics, recon_rows = _clips_per_hour(cfg, bc["clips"], quick, Path(tmp))
            metrics.update(recon_metrics)
            tables.append(("reconstruct-many", ["workers", "CPUs/clip", "clips", "failed", "seconds", "clips/hour"],
                           recon_rows))
    config = {"quick": quick, "device": device, "env": ENV_ID, "bench": bc,
              "cluster": OmegaConf.to_container(cfg.cluster, resolve=True),
              "scene": OmegaConf.to_container(cfg.scene)}
    notes = ["Frames/s = env steps/s x agents; ray_step_overhead_ms = Ray env step time - native step time of one "
             "actor's agents. Reproduce: `inspatio-sim bench ray" + (" --quick" if quick else "") +
             f" --device {device}`."]
    write_report("ray", out_dir, config, metrics, device, tables, notes)
    return metrics
