"""``inspatio-sim bench recon``: reconstruction from the oracle's rendered video, measured against ground truth.

The oracle Scene (exact poses, depth and moving-object masks) is written as an mp4 (mp4v, as a phone clip would be
compressed), reconstructed with ``inspatio-sim reconstruct``'s pipeline (intrinsics estimated; metric scale from
the oracle's true median camera height, the number a user would type), and compared:

* camera path: ATE RMSE after a Sim(3) fit (% of path length), relative rotation error between consecutive frames;
* depth on static pixels with ground truth, after the Sim(3) scale (so a scale error is not counted twice; the
  metric-scale error itself is ``scale_error_percent``): AbsRel, δ<1.25, and the fraction of pixels with depth;
* dynamic-mask IoU against the moving object over all frames;
* novel-view PSNR: the World built from the *reconstructed* Scene, rendered at held-out poses 0.25 m off the path
  (carried into the reconstruction's frame relative to the nearest recorded camera), against oracle renders at
  those poses, next to the same figure for a World built from the ground-truth Scene;
* wall time per stage.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from inspatio_sim.bench.render_bench import offset_poses
from inspatio_sim.bench.report import write_report
from inspatio_sim.config import to_dataclass
from inspatio_sim.metrics import carry_poses, depth_absrel, depth_delta, mask_iou, psnr, trajectory_errors
from inspatio_sim.oracle import Oracle
from inspatio_sim.recon.pipeline import reconstruct
from inspatio_sim.recon_report import train_view_psnr
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.video_io import write_video
from inspatio_sim.world import World, WorldConfig, build_world


def evaluate(rec: Scene, gt: Scene, frame_index: np.ndarray) -> dict[str, float]:
    """Pose, depth and mask errors of a reconstructed Scene against the ground-truth frames ``frame_index``."""
    g = gt.subset(frame_index)
    traj = trajectory_errors(rec.poses, g.poses)
    s = traj["sim3_scale"]
    static = ~g.dynamic_mask & (g.depth > 0)
    pred = np.where(static, rec.depth * s, 0.0)
    truth = np.where(static, g.depth, 0.0)
    return {
        "registered_fraction": rec.num_frames / gt.num_frames,
        "ate_percent_path": traj["ate_percent_path"],
        "ate_rmse_m": traj["ate_rmse"],
        "rel_rot_err_deg": traj["rel_rot_err_deg"],
        "abs_rot_err_deg": traj["abs_rot_err_deg"],
        "scale_error_percent": 100.0 * abs(1.0 / s - 1.0),
        "depth_absrel": depth_absrel(pred, truth),
        "depth_delta125": depth_delta(pred, truth),
        "depth_valid_fraction": float((rec.depth[static] > 0).mean()),
        "dynamic_iou": mask_iou(rec.dynamic_mask, g.dynamic_mask),
        "focal_error_percent": 100.0 * abs(rec.K[0, 0] / gt.K[0, 0] - 1.0),
    }


def novel_view_psnr(rec: Scene, gt: Scene, frame_index: np.ndarray, cfg: DictConfig, offset: float, count: int,
                    device: str, oracle: Oracle, world: World | None = None) -> float:
    """Mean PSNR of the World built from ``rec`` at held-out poses ``offset`` m off the path vs. oracle renders.

    Each held-out pose is carried into the reconstruction's frame relative to its nearest recorded camera:
    ``T_rec = T_rec_i @ (T_gt_i^-1 @ T_gt)`` with the relative translation divided by the Sim(3) scale. This is the
    usual way to evaluate view synthesis on estimated poses: a global gauge difference (the reconstruction's world
    is only defined up to a similarity, and a 0.4 degree tilt shifts textured images by pixels) is not counted,
    local pose errors and geometry errors are.
    """
    scale = trajectory_errors(rec.poses, gt.poses[frame_index])["sim3_scale"]
    poses_gt, times = offset_poses(gt, oracle, offset, count, np.random.default_rng(1))
    poses_rec = carry_poses(poses_gt, gt.poses[frame_index], rec.poses, scale)
    if world is None:
        world = build_world(rec, to_dataclass(WorldConfig, cfg.world, "world"), device=device, progress=False)
    rcfg = to_dataclass(RenderConfig, cfg.render, "render")
    ours = render_world(world, torch.as_tensor(poses_rec, device=device), torch.as_tensor(times), gt.K, gt.height,
                        gt.width, rcfg)
    truth = oracle.render(poses_gt, times, gt.K, gt.width, gt.height, supersample=int(gt.meta.extra["supersample"]))
    return float(np.mean([psnr(a, b) for a, b in zip(ours.rgb.cpu().numpy(), truth.rgb, strict=True)]))


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the reconstruction benchmark; write ``bench_recon.json``/``.md`` to ``out_dir``; return the metrics."""
    scene_cfg = OmegaConf.to_container(cfg.scene, resolve=True)
    if scene_cfg.get("path"):
        scene_cfg["path"] = None  # the benchmark needs ground truth: always an oracle scene
    if quick:
        scene_cfg["oracle"].update(num_frames=30, width=160, height=120)
    gt = load_scene(scene_cfg)
    recon_cfg = OmegaConf.to_container(cfg.recon, resolve=True)
    recon_cfg["camera_height"] = float(np.median(gt.poses[:, 2, 3]))
    with tempfile.TemporaryDirectory(prefix="inspatio-bench-recon-") as tmp:
        video = write_video(gt.frames, Path(tmp) / "oracle.mp4", gt.meta.fps)
        t0 = time.perf_counter()
        rec, report = reconstruct(video, Path(tmp) / "out", recon_cfg, device=device, force=True, progress=True)
        recon_s = time.perf_counter() - t0
    # registered frames map back to oracle frames through their timestamps (the mp4 keeps one frame per 1/fps)
    frame_index = np.array([int(np.argmin(np.abs(gt.timestamps - gt.timestamps[0] - t))) for t in rec.timestamps])
    metrics = evaluate(rec, gt, frame_index)
    oracle_cfg = scene_cfg["oracle"]
    world = build_world(rec, to_dataclass(WorldConfig, cfg.world, "world"), device=device, progress=False)
    train = train_view_psnr(rec, render_config=to_dataclass(RenderConfig, cfg.render, "render"), world=world)
    metrics["train_view_psnr_recon"] = train["train_view_psnr"]
    metrics["train_view_coverage_recon"] = train["train_view_coverage"]
    with Oracle(preset=oracle_cfg["preset"], seed=int(oracle_cfg["seed"])) as oracle:
        metrics["novel_view_psnr_recon_025m"] = novel_view_psnr(rec, gt, frame_index, cfg, 0.25, 8 if quick else 32,
                                                                device, oracle, world)
        metrics["novel_view_psnr_gt_scene_025m"] = _gt_scene_psnr(gt, cfg, 0.25, 8 if quick else 32, device, oracle)
    metrics["recon_seconds"] = recon_s
    for k, v in report["seconds"].items():
        metrics[f"seconds_{k}"] = float(v)
    rows = [[k, round(v, 4)] for k, v in metrics.items()]
    config = {"quick": quick, "device": device, "scene": scene_cfg, "recon": recon_cfg,
              "frames": gt.num_frames, "resolution": [gt.width, gt.height]}
    notes = [
        f"Input: the oracle '{oracle_cfg['preset']}' video ({gt.num_frames} frames {gt.width}x{gt.height}, mp4v), "
        "intrinsics estimated, scale from the true median camera height. Depth errors on static pixels after the "
        "Sim(3) scale; `novel_view_psnr_gt_scene_025m` is the same render from the ground-truth Scene, for "
        f"reference. Reproduce: `inspatio-sim bench recon{' --quick' if quick else ''} --device {device}`.",
    ]
    write_report("recon", out_dir, config, metrics, device, [("Reconstruction vs. ground truth", ["metric", "value"],
                                                              rows)], notes)
    return metrics


def _gt_scene_psnr(gt: Scene, cfg: DictConfig, offset: float, count: int, device: str, oracle: Oracle) -> float:
    """The same novel-view PSNR for a World built from the ground-truth Scene (the ceiling for reconstruction)."""
    idx = np.arange(gt.num_frames)
    return novel_view_psnr(gt, gt, idx, cfg, offset, count, device, oracle)


