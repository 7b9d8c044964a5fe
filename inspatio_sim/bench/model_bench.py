"""``inspatio-sim bench model``: how well each completer fills what the explicit World cannot show.

Held-out oracle scenes (:data:`HELD_OUT`, never used for training data) are rendered to an mp4 and reconstructed with
``inspatio-sim reconstruct``'s pipeline, as a user's clip would be (the reconstruction is cached on disk: it is the
benchmark's input, not what it measures). On the World built from that reconstruction, cameras fly short trajectories
0.25-1 m off the recorded path, turning as they go; every completer (``model.name`` = ``none``, ``classical``) sees the
same poses through the Simulator, and its observations are compared with the oracle's render of the same pose and time:

* ``frame_psnr_M``, ``frame_ssim_M``: whole frames; ``hole_psnr_M``: only the pixels the explicit render could not
  show (``~valid``), pooled over all frames;
* ``hole_flicker_M``: mean absolute difference (8-bit units) between frame t+1 and frame t warped into it with the
  ground-truth depth and camera motion, over static pixels that were holes at t+1 and visible at t;
* ``revisit_psnr_M[_writeback|_no_writeback]``: a loop leaves the path, turns away into space the video never showed
  and comes back to its first pose; PSNR between the first and the returning frame over static pixels, capped at
  60 dB (a completer that depends only on the pose earns the cap);
* ``revisit_len_below_30_M_no_writeback``: without write-back (the implicit cache alone), the same loops compared
  pose by pose: the pose ``i`` steps out is seen again ``2 * (half - i)`` steps later; the shortest such gap (in
  steps) at which the mean PSNR between the two views falls below 30 dB, or ``revisit_max_len`` + 2 when no gap
  measured does (``revisit_psnr_by_len`` in the JSON's per-length table);
* ``latency_ms_R_bB_M`` and ``fps_R_bB_M``: one Simulator step plus observation, R x R pixels, B agents;
* ``mem_mb_per_agent_cache``: per-agent memory of cache + write-back after 1,000 steps (constant by construction:
  checked against the figure at the start).

Poses are carried from the oracle's frame into the reconstruction's with the path's Sim(3) relative to one recorded
camera per trajectory (:func:`~inspatio_sim.metrics.carry_poses`), so a global gauge difference is not counted.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from inspatio_sim.bench.report import write_report
from inspatio_sim.bench.timing import interleaved_rates
from inspatio_sim.config import to_dataclass
from inspatio_sim.control import ESCMConfig
from inspatio_sim.conventions import scale_intrinsics
from inspatio_sim.metrics import psnr, ssim, trajectory_errors
from inspatio_sim.model import ModelConfig, ReferenceFrames, WritebackConfig
from inspatio_sim.model.data import HELD_OUT
from inspatio_sim.model.paths import carry_trajectories, revisit_loops, trajectories
from inspatio_sim.model.star import checkpoint as star_ckpt
from inspatio_sim.oracle import Oracle
from inspatio_sim.render import RenderConfig
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import oracle_reconstruction_path, reconstructed_oracle
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.video_io import write_video
from inspatio_sim.world import World, WorldConfig, build_world

COMPLETERS = ("none", "classical", "star1", "star4", "teacher")
REVISIT_CAP_DB = 60.0
STAR_ROWS = {"star1": ("student", 1), "star4": ("student", 4), "teacher": ("teacher", 8)}
"""Rows of the learned completer: (network of the checkpoint, denoising steps)."""
SPEED_COMPLETERS = ("none", "classical", "star4")
"""Completers timed at 64/128 pixels and B = 1/16."""


def model_config(row: str, checkpoint: str = "", base: ModelConfig | None = None, **kw: Any) -> ModelConfig:
    """The :class:`ModelConfig` of a bench row (``none``, ``classical``, ``star1``, ``star4``, ``teacher``): the
    user's ``model.*`` settings (``base``; defaults when ``None``) with the row's completer, checkpoint, sampler and
    steps, and the fields ``kw`` replaced."""
    base = base or ModelConfig()
    if row in STAR_ROWS:
        sampler, steps = STAR_ROWS[row]
        star = dataclasses.replace(base.star, checkpoint=checkpoint, sampler=sampler, steps=steps)
        return dataclasses.replace(base, name="star", star=star, **kw)
    return dataclasses.replace(base, name=row, **kw)


def _simulator(world: World, refs: ReferenceFrames | None, b: int, h: int, w: int, K: np.ndarray, model: ModelConfig,
               render: RenderConfig) -> Simulator:
    """A ``fly`` Simulator (keeps any pose it is placed at) with the bench camera."""
    hfov = math.degrees(2 * math.atan(w / (2 * K[0, 0])))
    return Simulator(world, b, control=ESCMConfig(action_model="fly"), render=render,
                     camera=CameraConfig(width=w, height=h, hfov_deg=hfov), model=model, references=refs)


def _rollout(sim: Simulator, poses: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``rgb (N, T, H, W, 3)`` and explicit validity ``(N, T, H, W)`` along trajectories."""
    steps = poses.shape[1]
    rgb, valid = [], []
    for t in range(steps):
        sim.escm.reset(torch.as_tensor(poses[:, t], dtype=torch.float32, device=sim.device))
        sim.time = torch.as_tensor(times[:, t], dtype=torch.float64, device=sim.device)
        obs = sim.observe()
        rgb.append(obs.rgb.cpu().numpy())
        valid.append(obs.valid.cpu().numpy())
    return np.stack(rgb, 1), np.stack(valid, 1)


def flicker(rgb: np.ndarray, hole: np.ndarray, gt_depth: np.ndarray, gt_dynamic: np.ndarray, poses: np.ndarray,
            K: np.ndarray) -> float:
    """Mean |frame t+1 - frame t warped into t+1| (8-bit units, mean over channels) over static pixels that are
    holes at t+1 and visible at t; ``rgb (N, T, H, W, 3)``, the rest ``(N, T, H, W)`` / poses ``(N, T, 4, 4)``
    (oracle frame), ground-truth depth and dynamic masks."""
    import cv2

    n, steps, h, w = hole.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    diffs = []
    for i in range(n):
        for t in range(1, steps):
            d = gt_depth[i, t]
            pw = (rays * d[..., None]) @ poses[i, t, :3, :3].T + poses[i, t, :3, 3]
            prev = np.linalg.inv(poses[i, t - 1])
            pc = pw @ prev[:3, :3].T + prev[:3, 3]
            z = pc[..., 2]
            zs = np.where(z > 1e-6, z, 1e-6)
            up, vp = K[0, 0] * pc[..., 0] / zs + K[0, 2], K[1, 1] * pc[..., 1] / zs + K[1, 2]
            inside = (z > 0.05) & (up >= 0) & (up <= w - 1) & (vp >= 0) & (vp <= h - 1)
            ui, vi = np.clip(np.rint(up), 0, w - 1).astype(int), np.clip(np.rint(vp), 0, h - 1).astype(int)
            seen = np.abs(gt_depth[i, t - 1][vi, ui] - z) <= 0.03 * z  # not hidden at t
            m = hole[i, t] & inside & seen & (d > 0) & ~gt_dynamic[i, t] & ~gt_dynamic[i, t - 1][vi, ui]
            if not m.any():
                continue
            warped = cv2.remap(rgb[i, t - 1].astype(np.float32), up.astype(np.float32), vp.astype(np.float32),
                               cv2.INTER_LINEAR)
            diffs.append(np.abs(rgb[i, t].astype(np.float32) - warped)[m].mean(-1))
    return float(np.concatenate(diffs).mean()) if diffs else float("nan")


def revisit_by_length(rgb: np.ndarray, gt_dynamic: np.ndarray) -> dict[int, float]:
    """Mean PSNR (capped) between the outbound and the returning view of the same pose of loops
    ``rgb (N, 2 * half + 1, H, W, 3)``, per revisit gap in steps (2, 4, ..., 2 * half), over pixels static in both."""
    steps = rgb.shape[1]
    half = steps // 2
    out = {}
    for i in range(half):
        j = steps - 1 - i
        vals = [min(psnr(rgb[n, j], rgb[n, i], ~gt_dynamic[n, i] & ~gt_dynamic[n, j]), REVISIT_CAP_DB)
                for n in range(rgb.shape[0])]
        out[j - i] = float(np.mean(vals))
    return out


def _revisit_psnr(rgb: np.ndarray, gt_dynamic: np.ndarray) -> float:
    """Mean PSNR (capped) between the first and last frame of each loop over pixels static at both times."""
    vals = []
    for i in range(rgb.shape[0]):
        m = ~gt_dynamic[i, 0] & ~gt_dynamic[i, -1]
        vals.append(min(psnr(rgb[i, -1], rgb[i, 0], m), REVISIT_CAP_DB))
    return float(np.mean(vals))


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the model benchmark; write ``bench_model.json``/``.md`` to ``out_dir``; return the metrics."""
    scenes = HELD_OUT[:1] if quick else HELD_OUT  # quick: the textured room only (its reconstruction is cached)
    frames, width, height = (40, 240, 180) if quick else (60, 320, 240)
    n_traj, steps, n_loops, half = (4, 8, 2, 6) if quick else (8, 12, 4, 10)
    render_cfg = to_dataclass(RenderConfig, cfg.render, "render")
    world_cfg = to_dataclass(WorldConfig, cfg.world, "world")
    h, w = height // 2, width // 2
    star_file = str(cfg.model.star.checkpoint or star_ckpt.DEFAULT)
    user_model: ModelConfig = OmegaConf.to_object(cfg.model)  # every row keeps the user's model.* settings
    star_nets = star_ckpt.load(star_file)[0]  # a missing or bad checkpoint stops here with one clear line
    rows_run = [m for m in COMPLETERS if m not in STAR_ROWS or STAR_ROWS[m][0] in star_nets]
    acc: dict[str, dict[str, list[Any]]] = {m: {"frame": [], "ssim": [], "hole_se": [], "flicker": [], "rev": [],
                                                "rev_nowb": [], "rev_len": []} for m in [*rows_run, "star4_adapted"]}
    per_scene: list[list[Any]] = []
    strips: dict[str, np.ndarray] = {}  # the first trajectory of the first scene, per completer (qualitative strip)
    match: list[dict[str, float]] = []
    sim_for_speed: tuple[World, ReferenceFrames, np.ndarray] | None = None
    for preset, seed in scenes:
        gt, rec, index = reconstructed_oracle(preset, seed, frames, width, height, cfg.recon, device)
        scale = trajectory_errors(rec.poses, gt.poses[index])["sim3_scale"]
        world = build_world(rec, world_cfg, device=device, progress=False)
        refs = ReferenceFrames.from_scene(rec, device=device, min_confidence=world_cfg.min_confidence)
        K = scale_intrinsics(gt.K, w / gt.width, h / gt.height)
        Krec = scale_intrinsics(rec.K, w / rec.width, h / rec.height)
        sim_for_speed = sim_for_speed or (world, refs, Krec)
        rng = np.random.default_rng(seed)
        with Oracle(preset, seed) as oracle:
            traj, times = trajectories(gt, oracle, n_traj, steps, rng)
            loops, loop_times = revisit_loops(gt, oracle, n_loops, half, rng)
            flat = traj.reshape(-1, 4, 4)
            truth = oracle.render(flat, times.reshape(-1), K, w, h, supersample=3)
            loop_truth = oracle.render(loops.reshape(-1, 4, 4), loop_times.reshape(-1), K, w, h, supersample=1)
        gt_rgb = truth.rgb.reshape(n_traj, steps, h, w, 3)
        gt_depth = truth.depth.reshape(n_traj, steps, h, w)
        gt_dyn = truth.dynamic.reshape(n_traj, steps, h, w)
        loop_dyn = loop_truth.dynamic.reshape(n_loops, -1, h, w)
        traj_rec = carry_trajectories(traj, gt, rec, index, scale)
        loops_rec = carry_trajectories(loops, gt, rec, index, scale)
        adapted = None
        if "star4" in rows_run:
            adapted = _adapted_checkpoint(rec, preset, seed, frames, width, height, cfg, star_file, device)
        for m in tqdm([*rows_run, "star4_adapted"] if adapted else rows_run, desc=f"bench model {preset}",
                      unit="completer"):
            base = "star4" if m == "star4_adapted" else m
            ck = str(adapted) if m == "star4_adapted" else star_file
            sim = _simulator(world, refs, n_traj, h, w, Krec, model_config(base, ck, user_model), render_cfg)
            rgb, valid = _rollout(sim, traj_rec, times)
            if not strips:
                strips["ground truth"] = gt_rgb[0]
            strips.setdefault(m, rgb[0])
            hole = ~valid
            a = acc[m]
            a["frame"] += [psnr(x, y) for x, y in zip(rgb.reshape(-1, h, w, 3), gt_rgb.reshape(-1, h, w, 3),
                                                      strict=True)]
            a["ssim"].append(ssim(rgb.reshape(-1, h, w, 3), gt_rgb.reshape(-1, h, w, 3)))
            se = (rgb.astype(np.float64) - gt_rgb.astype(np.float64)) ** 2
            a["hole_se"].append((float(se[hole].sum()), int(hole.sum()) * 3))
            a["flicker"].append(flicker(rgb, hole, gt_depth, gt_dyn, traj, K))
            if m == "star4_adapted":
                continue
            loop_sim = _simulator(world, refs, n_loops, h, w, Krec, model_config(m, ck, user_model), render_cfg)
            a["rev"].append(_revisit_psnr(_rollout(loop_sim, loops_rec, loop_times)[0], loop_dyn))
            if m != "none":
                nowb = model_config(m, ck, user_model, writeback=WritebackConfig(scope="off"))
                loop_sim = _simulator(world, refs, n_loops, h, w, Krec, nowb, render_cfg)
                loop_rgb = _rollout(loop_sim, loops_rec, loop_times)[0]
                a["rev_nowb"].append(_revisit_psnr(loop_rgb, loop_dyn))
                a["rev_len"].append(revisit_by_length(loop_rgb, loop_dyn))
            per_scene.append([f"{preset}-{seed}", m, float(np.mean(a["frame"][-n_traj * steps:])),
                              _pooled_psnr([a["hole_se"][-1]]), a["flicker"][-1], a["rev"][-1],
                              float(hole.mean())])
        match.append(_degrade_match(gt, rec, index, world, traj, times, K, gt_rgb, render_cfg, world_cfg, seed))
    metrics: dict[str, float] = {}
    revisit_table: dict[str, dict[int, float]] = {}
    for key in match[0]:
        metrics[key] = float(np.mean([mm[key] for mm in match]))
    for m, a in acc.items():
        if not a["frame"]:
            continue
        metrics[f"frame_psnr_{m}"] = float(np.mean(a["frame"]))
        if m == "star4_adapted":
            continue
        metrics[f"frame_ssim_{m}"] = float(np.mean(a["ssim"]))
        metrics[f"hole_psnr_{m}"] = _pooled_psnr(a["hole_se"])
        metrics[f"hole_flicker_{m}"] = float(np.nanmean(a["flicker"]))
        metrics[f"revisit_psnr_{m}" + ("_writeback" if m != "none" else "")] = float(np.mean(a["rev"]))
        if a["rev_nowb"]:
            metrics[f"revisit_psnr_{m}_no_writeback"] = float(np.mean(a["rev_nowb"]))
            by_len = {k: float(np.mean([r[k] for r in a["rev_len"]])) for k in sorted(a["rev_len"][0])}
            below = [k for k, v in by_len.items() if v < 30.0]
            metrics[f"revisit_len_below_30_{m}_no_writeback"] = float(min(below) if below else max(by_len) + 2)
            revisit_table[m] = by_len
    assert sim_for_speed is not None
    metrics.update(_speed(*sim_for_speed, render_cfg, device, quick, star_file, user_model))
    meta = star_ckpt.load(star_file)[1]
    metrics["train_minutes_default"] = float(meta.get("teacher_minutes", 0.0)) + float(meta.get("student_minutes", 0.0))
    rows = [[k, v] for k, v in metrics.items()]
    config = {"quick": quick, "device": device, "scenes": [list(s) for s in scenes], "frames": frames,
              "video": [width, height], "eval_resolution": [w, h], "trajectories": n_traj, "steps": steps,
              "revisit_loops": n_loops, "revisit_loop_steps": 2 * half, "revisit_max_len": 2 * half,
              "model": {k: v for k, v in dataclasses.asdict(user_model).items() if k != "name"}}
    gaps = sorted({g for t in revisit_table.values() for g in t})
    revisit_rows = [[m, *[f"{t[g]:.1f}" for g in gaps]] for m, t in revisit_table.items()]
    notes = [f"Worlds reconstructed from the held-out oracle videos {', '.join(f'{p}-{s}' for p, s in scenes)} "
             f"({frames} frames {width}x{height}); trajectories 0.25-1 m off the path at {w}x{h}; revisit loops of "
             f"{2 * half} steps (0.5 m out while turning 150 degrees, and back). "
             f"Reproduce: `inspatio-sim bench model{' --quick' if quick else ''} --device {device}`."]
    write_strip(strips, Path(out_dir) / "model_strip")
    write_report("model", out_dir, config, metrics, device, [
        ("Per scene and completer", ["scene", "completer", "frame PSNR", "hole PSNR", "hole flicker", "revisit PSNR",
                                     "hole fraction"], per_scene),
        ("Revisit PSNR without write-back, by steps between the two views of a pose",
         ["completer", *[f"{g} steps" for g in gaps]], revisit_rows),
        ("Headline", ["metric", "value"], rows)], notes)
    return metrics


def write_strip(strips: dict[str, np.ndarray], stem: Path) -> None:
    """A side-by-side of one trajectory: a PNG with one labelled row per completer (frames left to right) and an mp4
    with the completers side by side (``stem``.png / .mp4); ``strips`` maps a name to ``(T, H, W, 3)`` uint8."""
    import cv2

    if not strips:
        return
    order = [k for k in strips if k != "ground truth"] + ["ground truth"]
    rows = []
    for name in order:
        row = np.concatenate(list(strips[name]), 1).copy()
        cv2.putText(row, name, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(stem.with_suffix(".png")), np.concatenate(rows, 0)[..., ::-1])
    frames = [np.concatenate([strips[n][t] for n in order], 1) for t in range(len(strips[order[0]]))]
    write_video(frames, stem.with_suffix(".mp4"), 2.0)


def _adapted_checkpoint(rec: Scene, preset: str, seed: int, frames: int, width: int, height: int, cfg: DictConfig,
                        star_file: str, device: str) -> Path | None:
    """The student adapted to this held-out scene's own video (``adapt star`` on its reconstruction; cached beside
    it and made again when the base checkpoint changes); ``None`` when the checkpoint has no student."""
    from inspatio_sim.model.star.adapt import adapt

    root = oracle_reconstruction_path(preset, seed, frames, width, height, cfg.recon)
    out = root / star_ckpt.ADAPTED_NAME
    stamp = root / "star_adapted.base"
    base = f"{Path(star_file).resolve()} {Path(star_file).stat().st_mtime_ns}"
    if out.is_file() and stamp.is_file() and stamp.read_text() == base:
        return out
    acfg = OmegaConf.merge(cfg, {"model": {"star": {"checkpoint": star_file}}})
    adapt(root, acfg, device=device, progress=True)
    stamp.write_text(base)
    return out


def _pooled_psnr(parts: list[tuple[float, int]]) -> float:
    """PSNR of pooled squared errors ``[(sum, count), ...]`` (peak 255)."""
    total, count = sum(p[0] for p in parts), sum(p[1] for p in parts)
    mse = total / max(count, 1)
    return REVISIT_CAP_DB if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _speed(world: World, refs: ReferenceFrames, K: np.ndarray, render_cfg: RenderConfig, device: str, quick: bool,
           star_file: str = "", user_model: ModelConfig | None = None) -> dict[str, float]:
    """Step + observe latency and frames/s per completer at 64 and 128 pixels, B = 1 and 16; memory per agent."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    cases: dict[object, tuple[Any, int]] = {}
    sims = {}
    for m in SPEED_COMPLETERS:
        for res in (64, 128):
            for b in (1, 16):
                sim = Simulator(world, b, control=ESCMConfig(action_model="ground"), render=render_cfg,
                                camera=CameraConfig(width=res, height=res, hfov_deg=90.0),
                                model=model_config(m, star_file, user_model),
                                references=refs)
                rngs = [np.random.default_rng(i) for i in range(b)]
                sim.reset(None, rngs)
                action = torch.tensor([[0.5, 0.3]], device=sim.device).expand(b, 2)

                def step(sim: Simulator = sim, action: torch.Tensor = action) -> None:
                    sim.step(action)
                    sim.observe()

                cases[(m, res, b)] = (step, b)
                sims[(m, res, b)] = sim
    rates = interleaved_rates(cases, 1.0 if quick else 3.0, sync,
                              progress=lambda r: tqdm(r, desc="bench model speed", unit="round"))
    out: dict[str, float] = {}
    for (m, res, b), fps in rates.items():
        out[f"fps_{res}_b{b}_{m}"] = fps
        out[f"latency_ms_{res}_b{b}_{m}"] = 1000.0 * b / fps
    # a long rollout: per-agent memory stays constant and steps do not slow down as write-back fills its pool
    sim = sims[("classical", 64, 1)]
    before = sim.model.memory_per_agent()
    action = torch.tensor([[0.5, 0.3]], device=sim.device)
    total = 100 if quick else 1000
    window = total // 10
    stamps = []
    for _ in range(total):
        sim.step(action)
        sim.observe()
        sync()
        stamps.append(time.perf_counter())
    after = sim.model.memory_per_agent()
    if after != before:
        raise RuntimeError(f"bench model: per-agent model memory grew from {before} to {after} bytes")
    out["mem_mb_per_agent_cache"] = after / 2**20
    first = (stamps[window] - stamps[0]) / window
    last = (stamps[-1] - stamps[-1 - window]) / window
    out["long_rollout_slowdown_classical"] = last / first
    return out


def _degrade_match(gt: Scene, rec: Scene, index: np.ndarray, world: World, traj: np.ndarray, times: np.ndarray,
                   K: np.ndarray, gt_rgb: np.ndarray, render_cfg: RenderConfig, world_cfg: WorldConfig, seed: int
                   ) -> dict[str, float]:
    """How well ``inspatio-sim data star``'s degraded Worlds match the reconstructed one (the training data's claim
    to look like what users get): static pixels with depth, depth AbsRel, and, along the same trajectories
    ``traj (N, T, 4, 4)`` (oracle frame), the explicit render's hole fraction and whole-frame PSNR against
    ``gt_rgb (N, T, H, W, 3)``, for the World reconstructed from the video and for the exact Scene degraded by
    :func:`~inspatio_sim.model.data.degrade` with the default settings."""
    from inspatio_sim.metrics import depth_absrel
    from inspatio_sim.model.data import DegradeConfig, degrade

    out: dict[str, float] = {}
    g = gt.subset(index)
    static = ~g.dynamic_mask & (g.depth > 0)
    scale = trajectory_errors(rec.poses, g.poses)["sim3_scale"]
    degraded = degrade(gt, DegradeConfig(), np.random.default_rng([7, seed]))
    out["match_depth_valid_recon"] = float((rec.depth[static] > 0).mean())
    dstatic = ~gt.dynamic_mask & (gt.depth > 0)
    out["match_depth_valid_degraded"] = float((degraded.depth[dstatic] > 0).mean())
    out["match_depth_absrel_recon"] = depth_absrel(np.where(static, rec.depth * scale, 0.0), np.where(static, g.depth,
                                                                                                        0.0))
    out["match_depth_absrel_degraded"] = depth_absrel(np.where(dstatic, degraded.depth, 0.0),
                                                      np.where(dstatic, gt.depth, 0.0))
    n, _, h, w = gt_rgb.shape[:4]
    worlds = {"recon": (world, carry_trajectories(traj, gt, rec, index, scale), scale_intrinsics(rec.K, w / rec.width,
                                                                                      h / rec.height)),
              "degraded": (build_world(degraded, world_cfg, device=world.device, progress=False), traj, K)}
    for name, (wld, poses, Kw) in worlds.items():
        sim = _simulator(wld, None, n, h, w, Kw, ModelConfig(name="none"), render_cfg)
        rgb, valid = _rollout(sim, poses, times)
        out[f"match_hole_fraction_{name}"] = float((~valid).mean())
        out[f"match_frame_psnr_none_{name}"] = float(np.mean([
            psnr(x, y) for x, y in zip(rgb.reshape(-1, h, w, 3), gt_rgb.reshape(-1, h, w, 3), strict=True)]))
    return out
