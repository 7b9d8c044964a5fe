"""``make demo`` / ``inspatio-sim demo``: video → Scene → World, then a camera flight that leaves the recorded path.

The oracle's rendered clip is written to ``{out}/oracle_{preset}.mp4`` and reconstructed like any user video
(``{out}/recon_{preset}/``: Scene + report; structure-from-motion is cached there for the next run); the World is
built from that reconstruction, and a camera flies along the recorded path, swinging up to 0.5 m off it. Writes
``{out}/demo.mp4`` (side by side: our render | the oracle's ground truth, with per-frame PSNR) and
``{out}/demo_metrics.json`` (PSNR per frame, offset from the path, render and oracle frames/s, the reconstruction
report). ``demo.reconstruct=false`` builds the World from the ground-truth Scene instead.

With a world model (``model=classical``), the flight runs through a one-agent Simulator whose model step completes
each explicit render from the cache of recorded frames and its own history: the video shows three panels, explicit
render | completed observation | oracle, and the metrics carry the PSNR of both.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from inspatio_sim.config import to_dataclass
from inspatio_sim.control import ESCMConfig
from inspatio_sim.errors import ConfigError
from inspatio_sim.fileio import write_json
from inspatio_sim.metrics import carry_poses, psnr, umeyama_sim3
from inspatio_sim.model import ModelConfig, ReferenceFrames
from inspatio_sim.oracle import Oracle
from inspatio_sim.recon.pipeline import format_report, reconstruct
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.video_io import write_video
from inspatio_sim.world import World, WorldConfig, build_world

log = logging.getLogger(__name__)
DEMO_FRAMES = 90
MAX_OFFSET = 0.5
MIN_CLEARANCE = 0.3


def demo_path(scene: Scene, oracle: Oracle, num: int = DEMO_FRAMES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses ``(num, 4, 4)``, times ``(num,)`` and offsets ``(num,)`` (metres) of a flight along the recorded path
    that swings sideways up to :data:`MAX_OFFSET` m (and yaws towards the path) in the middle, then returns."""
    s = np.linspace(0.0, 1.0, num)
    src = s * (scene.num_frames - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, scene.num_frames - 1)
    a = src - i0
    from scipy.spatial.transform import Slerp

    key_rots = Rotation.from_matrix(scene.poses[:, :3, :3])
    rots = Slerp(np.arange(scene.num_frames), key_rots)(src)
    pos = scene.poses[i0, :3, 3] * (1 - a)[:, None] + scene.poses[i1, :3, 3] * a[:, None]
    times = (scene.timestamps[i0] * (1 - a) + scene.timestamps[i1] * a) - scene.timestamps[0]
    forward = rots.apply([0.0, 0.0, 1.0])
    side = np.cross(forward, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side, axis=1, keepdims=True).clip(1e-9)
    amp = MAX_OFFSET * np.sin(np.pi * s) ** 2
    poses = np.repeat(np.eye(4)[None], num, axis=0)
    offsets = np.zeros(num)
    for k in range(num):
        for scale in (1.0, 0.6, 0.3, 0.0):
            p = pos[k] + scale * amp[k] * side[k]
            if scale == 0.0 or oracle.clearance(p[None])[0] >= MIN_CLEARANCE:
                break
        yaw = Rotation.from_rotvec([0.0, 0.0, -0.6 * scale * amp[k]])  # turn back towards the recorded path
        poses[k, :3, :3] = (yaw * rots[k]).as_matrix()
        poses[k, :3, 3] = p
        offsets[k] = scale * amp[k]
    return poses, times, offsets


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def run_demo(cfg: DictConfig) -> dict[str, Any]:
    """Run the demo described in the module docstring; return the metrics written to JSON."""
    out = Path(cfg.out)
    scene_cfg = OmegaConf.to_container(cfg.scene, resolve=True)
    if scene_cfg.get("path"):
        raise ConfigError("the demo compares against the oracle and needs scene.path=null (an oracle scene)")
    device = cfg.device
    gt = load_scene(scene_cfg)
    oracle_cfg = scene_cfg["oracle"]
    if bool(cfg.demo.reconstruct):
        video = write_video(gt.frames, out / f"oracle_{oracle_cfg['preset']}.mp4", gt.meta.fps)
        recon_cfg = OmegaConf.to_container(cfg.recon, resolve=True)
        recon_cfg["camera_height"] = float(np.median(gt.poses[:, 2, 3]))  # what a user would measure and type
        print(f"demo: reconstructing {video} (the oracle's rendered clip) ...")
        scene, report = reconstruct(video, out / f"recon_{oracle_cfg['preset']}", recon_cfg, device=device)
        print(format_report(report))
        # the reconstruction has its own world frame: carry ground-truth poses into it relative to the nearest
        # recorded camera (as `bench recon` does)
        idx = np.rint((scene.timestamps - scene.timestamps[0]) * gt.meta.fps).astype(int)
        ref, ref_target = gt.poses[idx], scene.poses
        scale = umeyama_sim3(scene.poses[:, :3, 3], ref[:, :3, 3])[0]
    else:
        scene, report, ref, ref_target, scale = gt, None, gt.poses, gt.poses, 1.0
    t0 = time.perf_counter()
    world = build_world(scene, to_dataclass(WorldConfig, cfg.world, "world"), device=device, progress=True)
    log.info("world built in %.2f s (%d static points)", time.perf_counter() - t0, world.static.num_points)
    rcfg = to_dataclass(RenderConfig, cfg.render, "render")
    h, w, K = gt.height, gt.width, gt.K
    with Oracle(preset=oracle_cfg["preset"], seed=int(oracle_cfg["seed"])) as oracle:
        poses, times, offsets = demo_path(gt, oracle)
        t0 = time.perf_counter()
        gt_rgb = np.concatenate([
            oracle.render(poses[s:s + 8], times[s:s + 8], K, w, h, supersample=int(oracle_cfg["supersample"])).rgb
            for s in tqdm(range(0, len(poses), 8), desc="oracle ground truth", unit="batch")
        ])
        oracle_s = time.perf_counter() - t0
    world_poses = carry_poses(poses, ref, ref_target, scale)
    model = OmegaConf.to_object(cfg.model) if "model" in cfg else ModelConfig()
    t0 = time.perf_counter()
    if model.name == "none":
        rgb = np.concatenate([
            render_world(world, torch.as_tensor(world_poses[s:s + 16], device=device),
                         torch.as_tensor(times[s:s + 16]), K, h, w, rcfg).rgb.cpu().numpy()
            for s in tqdm(range(0, len(poses), 16), desc="render", unit="batch")
        ])
        explicit = None
    else:
        explicit, rgb = _model_flight(world, scene, model, rcfg, K, h, w, world_poses, times)
    render_s = time.perf_counter() - t0
    psnrs = [psnr(a, b) for a, b in zip(rgb, gt_rgb, strict=True)]
    source = "reconstructed from video" if report else "from the ground-truth Scene"

    def panels(k: int) -> np.ndarray:
        ours = [_label(rgb[k], f"model={model.name}  {psnrs[k]:.1f} dB  off {offsets[k]:.2f} m")]
        if explicit is not None:
            ours.insert(0, _label(explicit[k], f"explicit  {psnr(explicit[k], gt_rgb[k]):.1f} dB"))
        return np.concatenate([*ours, _label(gt_rgb[k], "oracle (pybullet)")], axis=1)

    video_out = write_video((panels(k) for k in range(len(poses))), out / "demo.mp4", float(oracle_cfg["fps"]))
    metrics = {
        "frames": len(poses), "resolution": [w, h], "device": device, "world_source": source,
        "psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)),
        "render_fps": len(poses) / render_s, "oracle_fps": len(poses) / oracle_s,
        "max_offset_m": float(offsets.max()), "psnr_per_frame": psnrs, "offset_per_frame": offsets.tolist(),
        "reconstruction": report, "model": model.name,
    }
    if explicit is not None:
        explicit_psnrs = [psnr(a, b) for a, b in zip(explicit, gt_rgb, strict=True)]
        metrics["psnr_mean_explicit"] = float(np.mean(explicit_psnrs))
        metrics["psnr_per_frame_explicit"] = explicit_psnrs
    write_json(out / "demo_metrics.json", metrics)
    if explicit is not None:
        print(f"demo: model={model.name}: PSNR {metrics['psnr_mean']:.2f} dB vs. {metrics['psnr_mean_explicit']:.2f} "
              "dB for the explicit render alone")
    print(f"demo: World {source}; {len(poses)} frames {w}x{h}, PSNR mean {metrics['psnr_mean']:.2f} dB "
          f"(min {metrics['psnr_min']:.2f}), render {metrics['render_fps']:.0f} frames/s "
          f"vs oracle {metrics['oracle_fps']:.1f} -> {video_out}")
    return metrics


def _model_flight(world: World, scene: Scene, model: ModelConfig, rcfg: RenderConfig, K: np.ndarray, h: int, w: int,
                  poses: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flight through a one-agent Simulator with the world model: ``(explicit, completed)``, each
    ``(N, h, w, 3) uint8``. Poses ``(N, 4, 4)`` camera-to-world in the World's frame, times ``(N,)`` seconds."""
    fx, cx, cy = float(K[0, 0]), float(K[0, 2]), float(K[1, 2])
    if abs(cx - (w - 1) / 2) > 1e-3 or abs(cy - (h - 1) / 2) > 1e-3 or abs(K[1, 1] - fx) > 1e-3:
        raise ConfigError("the demo's world-model flight needs square pixels and a centred principal point")
    hfov = float(np.rad2deg(2.0 * np.arctan(0.5 * w / fx)))
    refs = ReferenceFrames.from_scene(scene, world.device, min_confidence=world.config.min_confidence)
    sim = Simulator(world, 1, control=ESCMConfig(action_model="fly"), render=rcfg,
                    camera=CameraConfig(width=w, height=h, hfov_deg=hfov), model=model, references=refs)
    explicit, completed = [], []
    try:
        for k in tqdm(range(len(poses)), desc=f"render + model={model.name}", unit="frame"):
            sim.escm.reset(torch.as_tensor(poses[k:k + 1], dtype=torch.float32, device=world.device))
            sim.time = torch.as_tensor(times[k:k + 1], dtype=torch.float64, device=world.device)
            frame = render_world(world, sim.poses(), sim.time, sim.K, h, w, rcfg)
            explicit.append(frame.rgb[0].cpu().numpy())
            completed.append(sim.observe().rgb[0].cpu().numpy())
    finally:
        sim.close()
    return np.stack(explicit), np.stack(completed)
