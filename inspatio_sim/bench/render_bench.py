"""``inspatio-sim bench render``: renderer speed (vs. pybullet TinyRenderer) and novel-view fidelity vs. the oracle.

Speed: frames/s of :func:`inspatio_sim.render.render_world` for square resolutions x batch sizes on the benchmark
scene, cameras at recorded path poses, with the eager torch backend (``fps_R_bB``, the reference) and the fused
kernel (``fps_R_bB_fused``); TinyRenderer renders path poses one by one (no supersampling, no shadows) for the
speed ratio (``speedup_vs_tinyrenderer_R``: the fastest backend and batch). All cases are timed in interleaved
rounds; medians are reported.
Under load: 64x64 at B=1 and B=64 with the configured backend and thread policy (``render.backend``,
``render.threads``), timed alternately on the machine as it is and while the bench keeps one CPU busy with a
spinning process of its own (:data:`LOAD_PROCESSES`); ``fps_64_bB_under_load_ratio`` = loaded / unloaded.
Fidelity: the World is built from the oracle's exact depth and poses; it is rendered at the Scene resolution at
training poses and at held-out poses offset 0.1-0.5 m (random direction) from the path with up to 10 degrees of
extra rotation, then compared with the oracle's render of the same pose and time (PSNR over all pixels, SSIM,
depth AbsRel on pixels valid in both, hole fraction = pixels our render has no geometry for).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from inspatio_sim.bench.report import write_report
from inspatio_sim.bench.timing import interleaved_rates, window_rate
from inspatio_sim.config import to_dataclass
from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.errors import ConfigError
from inspatio_sim.metrics import depth_absrel, psnr, ssim
from inspatio_sim.oracle import Oracle
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.render.splat import fused_available
from inspatio_sim.render.threads import REFRESH_S, usable_cpus
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.world import World, WorldConfig, build_world

MIN_CLEARANCE = 0.3
"""Held-out cameras closer than this (metres) to any geometry are resampled."""
TRIES_PER_POSE = 200
"""Random draws allowed per held-out pose before the scene is declared to have too little clear space."""
LOAD_PROCESSES = 1
"""Busy processes (one spinning Python loop each) the under-load phase runs beside the renderer."""
UNDER_LOAD_CASES = ((64, 1), (64, 64))
"""(resolution, batch) cases of the under-load phase."""


def offset_poses(
    scene: Scene, oracle: Oracle, offset: float, count: int, rng: np.random.Generator, max_rot_deg: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out poses ``(count, 4, 4)`` exactly ``offset`` m from random path poses, and their times ``(count,)``.

    Each is at least :data:`MIN_CLEARANCE` m clear of the oracle's geometry.

    Raises:
        ConfigError: fewer than ``count`` clear poses after ``TRIES_PER_POSE * count`` draws.
    """
    poses, times = [], []
    for _ in range(TRIES_PER_POSE * count):
        if len(poses) == count:
            break
        i = int(rng.integers(scene.num_frames))
        d = rng.normal(size=3)
        T = scene.poses[i].copy()
        T[:3, 3] += offset * d / np.linalg.norm(d)
        if oracle.clearance(T[None, :3, 3])[0] < MIN_CLEARANCE:
            continue
        rot = Rotation.from_rotvec(rng.uniform(-1, 1, 3) * np.deg2rad(max_rot_deg) / np.sqrt(3))
        T[:3, :3] = T[:3, :3] @ rot.as_matrix()
        poses.append(T)
        times.append(scene.timestamps[i] - scene.timestamps[0])
    if len(poses) < count:
        raise ConfigError(
            f"bench: only {len(poses)} of {count} held-out poses {offset} m off the recorded path are at least "
            f"{MIN_CLEARANCE} m clear of geometry after {TRIES_PER_POSE * count} random draws; this scene has too "
            "little free space around its path for that offset (choose smaller offsets or another scene)")
    return np.stack(poses), np.asarray(times)


def speed(world: World, scene: Scene, oracle: Oracle, rcfg: RenderConfig, bcfg: dict[str, Any], device: str,
          rng: np.random.Generator) -> tuple[dict[tuple[int, int, str], float], dict[int, float]]:
    """frames/s of our renderer per (resolution, batch size, backend), and of TinyRenderer (one pose at a time) per
    resolution, measured in interleaved rounds (:func:`~inspatio_sim.bench.timing.interleaved_rates`)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    backends = ["torch"] + (["fused"] if fused_available(device) is None else [])
    cases: dict[object, tuple[Callable[[], object], int]] = {}
    for res in bcfg["resolutions"]:
        K = intrinsics_from_fov(res, res, 90.0)
        for b in bcfg["batch_sizes"]:
            idx = rng.integers(scene.num_frames, size=b)
            poses = torch.as_tensor(scene.poses[idx], dtype=torch.float32, device=device)
            times = torch.as_tensor(scene.timestamps[idx] - scene.timestamps[0], device=device)
            for backend in backends:
                cfg = dataclasses.replace(rcfg, backend=backend)
                cases[(res, b, backend)] = (
                    lambda p=poses, t=times, K=K, r=res, c=cfg: render_world(world, p, t, K, r, r, c), b)
        idx = rng.integers(scene.num_frames, size=8)
        cases[res] = (lambda K=K, r=res, idx=idx: [
            oracle.render(scene.poses[i:i + 1], scene.timestamps[i:i + 1] - scene.timestamps[0], K, r, r,
                          supersample=1) for i in idx], len(idx))
    rates = interleaved_rates(cases, bcfg["seconds_per_case"], sync,
                              progress=lambda r: tqdm(r, desc="render speed", unit="round"))
    ours = {k: v for k, v in rates.items() if isinstance(k, tuple)}
    tiny = {k: v for k, v in rates.items() if isinstance(k, int)}
    return ours, tiny


def _spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def under_load(world: World, scene: Scene, rcfg: RenderConfig, bcfg: dict[str, Any], device: str,
               rng: np.random.Generator, rounds: int = 3) -> dict[str, float]:
    """frames/s of :data:`UNDER_LOAD_CASES` without and with :data:`LOAD_PROCESSES` busy processes beside the
    renderer, alternating (``rounds`` rounds of: unloaded window, start the load, loaded window, stop it).

    Returns ``fps_R_bB_quiet``, ``fps_R_bB_loaded``, ``fps_R_bB_under_load_ratio`` (medians over rounds) and the
    thread counts the policy chose (``threads_quiet``, ``threads_under_load``).
    """
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    cases: dict[tuple[int, int], Callable[[], object]] = {}
    for res, b in UNDER_LOAD_CASES:
        K = intrinsics_from_fov(res, res, 90.0)
        idx = rng.integers(scene.num_frames, size=b)
        poses = torch.as_tensor(scene.poses[idx], dtype=torch.float32, device=device)
        times = torch.as_tensor(scene.timestamps[idx] - scene.timestamps[0], device=device)
        cases[(res, b)] = lambda p=poses, t=times, K=K, r=res: render_world(world, p, t, K, r, r, rcfg)
    window = max(0.2, bcfg["seconds_per_case"] / rounds)
    rates: dict[tuple[tuple[int, int], bool], list[float]] = {(k, lo): [] for k in cases for lo in (False, True)}
    threads = {False: [], True: []}
    for _ in tqdm(range(rounds), desc="render under load", unit="round"):
        for loaded in (False, True):
            procs = _spinners(LOAD_PROCESSES) if loaded else []
            try:
                time.sleep(2 * REFRESH_S + 0.2)  # the load starts (stops) and the policy looks again
                for key, fn in cases.items():
                    fn()
                    sync()
                    rates[(key, loaded)].append(window_rate(fn, key[1], window, sync))
                    threads[loaded].append(torch.get_num_threads())
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    out: dict[str, float] = {}
    for res, b in cases:
        quiet = float(np.median(rates[((res, b), False)]))
        loaded = float(np.median(rates[((res, b), True)]))
        out[f"fps_{res}_b{b}_quiet"] = quiet
        out[f"fps_{res}_b{b}_loaded"] = loaded
        out[f"fps_{res}_b{b}_under_load_ratio"] = loaded / quiet
    out["threads_quiet"] = float(np.median(threads[False]))
    out["threads_under_load"] = float(np.median(threads[True]))
    return out


def fidelity(world: World, scene: Scene, oracle: Oracle, rcfg: RenderConfig, bcfg: dict[str, Any], device: str,
             rng: np.random.Generator, supersample: int) -> dict[str, dict[str, float]]:
    """Per view-set (``train``, ``0.25m``...) mean PSNR, SSIM, depth AbsRel and hole fraction."""
    h, w = bcfg["fidelity_height"], bcfg["fidelity_width"]
    sx, sy = w / scene.width, h / scene.height
    from inspatio_sim.conventions import scale_intrinsics

    K = scale_intrinsics(scene.K, sx, sy)
    n = bcfg["novel_views_per_offset"]
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    train_idx = np.linspace(0, scene.num_frames - 1, min(n, scene.num_frames)).round().astype(int)
    sets["train"] = (scene.poses[train_idx], scene.timestamps[train_idx] - scene.timestamps[0])
    for off in bcfg["novel_offsets"]:
        sets[f"{off:.2f}m"] = offset_poses(scene, oracle, off, n, rng)
    out: dict[str, dict[str, float]] = {}
    for name, (poses, times) in tqdm(sets.items(), desc="fidelity", unit="set"):
        gt = oracle.render(poses, times, K, w, h, supersample=supersample)
        ours = render_world(world, torch.as_tensor(poses, device=device), torch.as_tensor(times), K, h, w, rcfg)
        rgb, depth, valid = ours.rgb.cpu().numpy(), ours.depth.cpu().numpy(), ours.valid.cpu().numpy()
        out[name] = {
            "psnr": float(np.mean([psnr(a, b) for a, b in zip(rgb, gt.rgb, strict=True)])),
            "psnr_valid": float(np.mean([psnr(a, b, m) for a, b, m in zip(rgb, gt.rgb, valid, strict=True)])),
            "ssim": ssim(rgb, gt.rgb),
            "depth_absrel": depth_absrel(depth, gt.depth),
            "hole_fraction": float(1.0 - valid[gt.depth > 0].mean()),
        }
    return out


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the render benchmark; write ``bench_render.json``/``.md`` to ``out_dir``; return the metrics."""
    bcfg = OmegaConf.to_container(cfg.bench.render, resolve=True)
    scene_cfg = OmegaConf.to_container(cfg.scene, resolve=True)
    if quick:
        bcfg.update(seconds_per_case=min(bcfg["seconds_per_case"], 0.5),
                    novel_views_per_offset=min(bcfg["novel_views_per_offset"], 6), fidelity_width=160,
                    fidelity_height=120)
        if not scene_cfg.get("path"):
            scene_cfg["oracle"].update(num_frames=30, width=160, height=120)
    rng = np.random.default_rng(0)
    rcfg = to_dataclass(RenderConfig, cfg.render, "render")
    scene = load_scene(scene_cfg)
    t0 = time.perf_counter()
    world = build_world(scene, to_dataclass(WorldConfig, cfg.world, "world"), device=device, progress=True)
    build_s = time.perf_counter() - t0
    oracle_cfg = scene_cfg["oracle"]
    with Oracle(preset=oracle_cfg["preset"], seed=int(oracle_cfg["seed"])) as oracle:
        fps, tiny = speed(world, scene, oracle, rcfg, bcfg, device, rng)
        load = under_load(world, scene, rcfg, bcfg, device, rng)
        fid = fidelity(world, scene, oracle, rcfg, bcfg, device, rng, int(oracle_cfg["supersample"]))

    metrics: dict[str, float] = {f"fps_{r}_b{b}" + ("" if be == "torch" else f"_{be}"): v
                                 for (r, b, be), v in fps.items()}
    metrics.update({f"tinyrenderer_fps_{r}": v for r, v in tiny.items()})
    for r in tiny:
        metrics[f"speedup_vs_tinyrenderer_{r}"] = max(v for (rr, _, _), v in fps.items() if rr == r) / tiny[r]
    for r, b, be in fps:
        if be == "fused":
            metrics[f"speedup_fused_vs_torch_{r}_b{b}"] = fps[(r, b, "fused")] / fps[(r, b, "torch")]
    metrics.update(load)
    metrics["train_view_psnr"] = fid["train"]["psnr"]
    metrics["train_view_ssim"] = fid["train"]["ssim"]
    for name, m in fid.items():
        if name == "train":
            continue
        tag = name.replace(".", "")
        for k, v in m.items():
            metrics[f"novel_view_{k}_{tag}"] = v
    metrics["world_build_seconds"] = build_s
    metrics["world_points"] = float(world.static.num_points)

    speed_rows = [[f"{r}x{r}", b, be, round(v, 1)] for (r, b, be), v in fps.items()]
    speed_rows += [[f"{r}x{r}", 1, "TinyRenderer (1 at a time)", round(v, 1)] for r, v in tiny.items()]
    load_rows = [[f"{r}x{r}", b, round(load[f"fps_{r}_b{b}_quiet"], 1), round(load[f"fps_{r}_b{b}_loaded"], 1),
                  round(load[f"fps_{r}_b{b}_under_load_ratio"], 3)] for r, b in UNDER_LOAD_CASES]
    fid_rows = [[k, m["psnr"], m["psnr_valid"], m["ssim"], m["depth_absrel"], m["hole_fraction"]]
                for k, m in fid.items()]
    config = {"quick": quick, "device": device, "scene": scene_cfg, "render": OmegaConf.to_container(cfg.render),
              "bench": bcfg, "world": OmegaConf.to_container(cfg.world),
              "scene_frames": scene.num_frames, "scene_resolution": [scene.width, scene.height]}
    notes = [f"Speed: poses from the recorded path, 90 degree hfov, device {device}. Fidelity at "
             f"{bcfg['fidelity_width']}x{bcfg['fidelity_height']} against the oracle (supersample "
             f"{oracle_cfg['supersample']}). Reproduce: `inspatio-sim bench render" + (" --quick" if quick else "")
             + f" --device {device}`.",
             f"Threads chosen by the policy: {load['threads_quiet']:g} unloaded, {load['threads_under_load']:g} "
             f"under load (of {usable_cpus()} usable CPUs)."]
    write_report("render", out_dir, config, metrics, device,
                 [("Speed (frames/s)", ["resolution", "batch", "backend", "frames/s"], speed_rows),
                  (f"Under load ({LOAD_PROCESSES} busy process, backend {rcfg.backend}, threads {rcfg.threads})",
                   ["resolution", "batch", "frames/s", "frames/s loaded", "ratio"], load_rows),
                  ("Fidelity vs. oracle", ["views", "PSNR dB", "PSNR valid px", "SSIM", "depth AbsRel", "holes"],
                   fid_rows)], notes)
    return metrics
