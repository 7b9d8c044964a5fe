"""``inspatio-sim adapt star WORLD_DIR``: a short fine-tune of the STAR student on one user's own video.

The video's frames are the real data of JDMD's joint term: for each of ``adapt_windows`` windows of
``adapt_window`` consecutive frames, a World is built from the Scene **without** that window (and the cache's
reference frames come from the same reduced video), the window's frames are rendered at their recorded poses, and the
true frames are the targets (leave-a-window-out renders: the holes are real holes of this video, their content the
real footage). The student is fine-tuned with the JDMD loss on these windows (``adapt_iterations`` steps, teacher and
fake model as in training); one more window, never trained on, measures what adaptation bought (PSNR of the student's
frames against the true frames, before and after). The result goes to ``WORLD_DIR/star_adapted.pt`` and is used
automatically by every command whose ``scene.path`` is that directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from inspatio_sim.config import to_dataclass
from inspatio_sim.errors import ConfigError
from inspatio_sim.metrics import psnr
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.flow import sample
from inspatio_sim.model.star.network import SLOT_HISTORY, SLOT_REFERENCE, STARNet, frame_input, slot_input, to_uint8
from inspatio_sim.model.star.train import Episode, TrainStarConfig, episode_from_arrays, train
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.scene import Scene
from inspatio_sim.world import WorldConfig, build_world


def _without(scene: Scene, drop: np.ndarray) -> Scene:
    keep = np.ones(scene.num_frames, dtype=bool)
    keep[drop] = False
    return dataclasses.replace(scene, frames=scene.frames[keep], timestamps=scene.timestamps[keep],
                               poses=scene.poses[keep], depth=scene.depth[keep], confidence=scene.confidence[keep],
                               dynamic_mask=scene.dynamic_mask[keep])


def window_arrays(scene: Scene, start: int, length: int, size: int, world_cfg: WorldConfig,
                  render_cfg: RenderConfig, cache_cfg: CacheConfig) -> dict[str, np.ndarray]:
    """A shard-like dict (one trajectory, :func:`~inspatio_sim.model.data.load_shard`'s arrays) of frames
    ``start ... start + length - 1`` rendered ``size x size`` from a World built without them."""
    idx = np.arange(start, start + length)
    sub = _without(scene, idx)
    world = build_world(sub, world_cfg, progress=False)
    refs = ReferenceFrames.from_scene(sub, min_confidence=world_cfg.min_confidence)
    sx, sy = size / scene.width, size / scene.height
    K = scene.K.copy()
    K[0] *= sx
    K[1] *= sy
    Kt = torch.as_tensor(K, dtype=torch.float32)
    cache = SpatiotemporalCache(refs, 1, size, size, cache_cfg)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("render_rgb", "render_depth", "render_valid", "ref_index")}
    for i in idx:
        pose = torch.as_tensor(scene.poses[i:i + 1], dtype=torch.float32)
        t = torch.as_tensor([scene.timestamps[i] - scene.timestamps[0]], dtype=torch.float64)
        frame = render_world(world, pose, t, Kt, size, size, render_cfg)
        scene_time = torch.as_tensor([scene.timestamps[i]], dtype=torch.float64)
        cache.select(pose, scene_time, frame.depth, ~frame.valid, Kt)
        out["render_rgb"].append(frame.rgb.numpy())
        out["render_depth"].append(frame.depth.numpy())
        out["render_valid"].append(frame.valid.numpy())
        out["ref_index"].append(cache.ref_index.numpy().copy())
    gt = torch.nn.functional.interpolate(torch.as_tensor(scene.frames[idx]).permute(0, 3, 1, 2).float(),
                                         size=(size, size), mode="area").permute(0, 2, 3, 1)
    return {**{k: np.stack(v, 1) for k, v in out.items()},
            "gt_rgb": gt.round().clamp(0, 255).to(torch.uint8).numpy()[None],
            "poses": scene.poses[idx][None].astype(np.float32), "K": K,
            "ref_rgb": sub.frames, "ref_depth": refs.depth.numpy(), "ref_poses": sub.poses.astype(np.float32),
            "ref_K": sub.K, "ref_times": sub.timestamps}


@torch.no_grad()
def evaluate(net: STARNet, ep: Episode, steps: int, history: int, seed: int = 0) -> float:
    """Mean PSNR (dB) of ``net``'s ``steps``-step frames (own outputs as history) against the true frames of every
    trajectory of ``ep``."""
    e, t = ep.valid.shape[:2]
    vals = []
    gens = [torch.Generator().manual_seed(seed + i) for i in range(e)]
    ref_kv = net.encode_slots(ep.refs[ep.ref_index.clamp(min=0).reshape(-1)], SLOT_REFERENCE)
    ref_kv = ref_kv.reshape(e, t, ep.ref_index.shape[2], *ref_kv.shape[1:])
    hist: list[torch.Tensor] = []
    for i in range(t):
        depth = torch.where(ep.valid[:, i], ep.depth[:, i], 0.0)
        ctx = [ref_kv[:, i]] + [h[:, None] for h in hist[::-1][:history]]
        valid = [ep.ref_index[:, i] >= 0] + [torch.ones((e, 1), dtype=torch.bool)] * min(len(hist), history)
        c, v = torch.cat(ctx, 1), torch.cat(valid, 1)
        cond = (ep.render_rgb[:, i], ep.valid[:, i], depth, ep.rays[:, i], ep.base_rgb[:, i], ep.invented[:, i])

        def velocity(x: torch.Tensor, tt: torch.Tensor, cond: tuple = cond, c: torch.Tensor = c,
                     v: torch.Tensor = v) -> torch.Tensor:
            return net(frame_input(x, *cond), tt, c, v)

        x = sample(velocity, ep.gt[:, i].shape, steps, ep.gt.device, gens)
        hist.append(net.encode_slots(slot_input(x, ep.base_depth[:, i], ep.rays[:, i]), SLOT_HISTORY))
        out, gt = to_uint8(x).numpy(), to_uint8(ep.gt[:, i]).numpy()
        vals += [psnr(a, b) for a, b in zip(out, gt, strict=True)]
    return float(np.mean(vals))


def adapt(world_dir: str | Path, cfg: DictConfig, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Fine-tune the student on the video of the Scene at ``world_dir`` (module docstring); return a summary."""
    root = ckpt.world_dir(world_dir)
    scene = Scene.load(root)
    tcfg: TrainStarConfig = OmegaConf.to_object(cfg.train.star)
    n, length = int(tcfg.adapt_windows), int(tcfg.adapt_window)
    if scene.num_frames < (n + 1) * length + 2:
        raise ConfigError(f"{root}: {scene.num_frames} frames are too few for {n + 1} windows of {length} frames "
                          "(train.star.adapt_windows / adapt_window)")
    star = OmegaConf.to_object(cfg.model.star)
    source = Path(star.checkpoint).expanduser() if star.checkpoint else ckpt.DEFAULT
    nets, _, _ = ckpt.load(source, want="student", device=device)
    size = int(tcfg.adapt_size)
    world_cfg = to_dataclass(WorldConfig, cfg.world, "world")
    render_cfg = to_dataclass(RenderConfig, cfg.render, "render")
    cache_cfg = to_dataclass(CacheConfig, cfg.model.cache, "model.cache")
    starts = np.linspace(1, scene.num_frames - length - 1, n + 1).round().astype(int)
    episodes = [episode_from_arrays(window_arrays(scene, int(s), length, size, world_cfg, render_cfg, cache_cfg),
                                    device)
                for s in tqdm(starts, desc="adapt star: leave-a-window-out renders", unit="window",
                              disable=not progress)]
    held, train_eps = episodes[len(episodes) // 2], episodes[:len(episodes) // 2] + episodes[len(episodes) // 2 + 1:]
    steps = int(star.steps)
    before = evaluate(nets["student"], held, steps, int(tcfg.history))
    out = root / ckpt.ADAPTED_NAME
    run = dataclasses.replace(tcfg, stage="student", out=str(out), student_iterations=int(tcfg.adapt_iterations),
                              batch=1, window=length, resume=False, student_steps=min(steps, 4),
                              save_every=int(tcfg.adapt_iterations))
    summary = train(run, device=device, episodes=train_eps, progress=progress, init=source, from_student=True)
    adapted, _, _ = ckpt.load(out, want="student", device=device)
    after = evaluate(adapted["student"], held, steps, int(tcfg.history))
    return {**summary, "psnr_before": before, "psnr_after": after, "checkpoint": str(out)}
