"""The explicit completion STAR refines: the classical completer rolled along training trajectories.

At run time the ``star`` completer first completes the render with the classical completer (reprojection from the
cache's reference and history frames, then inpainting; :mod:`inspatio_sim.model.classical`) and gives that frame to
the network, which predicts a residual on it. Training must show the network the same thing, so every trajectory of a
shard (or of an ``adapt star`` window) is rolled through the classical completer here, step by step, with the
reference slots the data recorded and the completer's own previous frames as history, as a Simulator would.
"""

from __future__ import annotations

import numpy as np
import torch

from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.classical import SOURCE_INPAINT, ClassicalCompleter, ClassicalConfig
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.render import RenderOutput


def shard_references(d: dict[str, np.ndarray]) -> ReferenceFrames:
    """The reference library of a shard-like dict (``ref_rgb``, ``ref_depth`` (confidence already applied),
    ``ref_poses``, ``ref_K``, ``ref_times``); training scenes carry no dynamic masks."""
    rgb = torch.as_tensor(d["ref_rgb"])
    return ReferenceFrames(rgb=rgb, depth=torch.as_tensor(d["ref_depth"].astype(np.float32)),
                           dynamic=torch.zeros(rgb.shape[:3], dtype=torch.bool),
                           poses=torch.as_tensor(d["ref_poses"], dtype=torch.float32),
                           K=torch.as_tensor(d["ref_K"], dtype=torch.float32),
                           timestamps=torch.as_tensor(d["ref_times"], dtype=torch.float64))


@torch.no_grad()
def classical_base(d: dict[str, np.ndarray], config: ClassicalConfig | None = None,
                   history_slots: int | None = None) -> dict[str, np.ndarray]:
    """The classical completion of every frame of a shard-like dict (:func:`~inspatio_sim.model.data.load_shard`).

    Trajectory ``e`` is completed step by step with the reference slots ``d["ref_index"][e, t]`` and, as history,
    the completer's own frames of the earlier steps (``history_slots``, default the cache's).

    Returns:
        ``base_rgb (E, T, H, W, 3)`` uint8, ``base_depth (E, T, H, W)`` float32 (render depth, or the completer's
        estimate for a filled pixel; 0 = unknown) and ``base_invented (E, T, H, W)`` bool (inpainted pixels).
    """
    e, steps, h, w = d["render_valid"].shape
    refs = shard_references(d)
    k = d["ref_index"].shape[2]
    cache_cfg = CacheConfig(ref_slots=k)
    if history_slots is not None:
        cache_cfg.history_slots = int(history_slots)
    cache = SpatiotemporalCache(refs, e, h, w, cache_cfg)
    completer = ClassicalCompleter(config)
    K = torch.as_tensor(d["K"], dtype=torch.float32)
    out: dict[str, list[np.ndarray]] = {"base_rgb": [], "base_depth": [], "base_invented": []}
    for t in range(steps):
        frame = RenderOutput(rgb=torch.as_tensor(d["render_rgb"][:, t]),
                             depth=torch.as_tensor(d["render_depth"][:, t].astype(np.float32)),
                             valid=torch.as_tensor(d["render_valid"][:, t]))
        poses = torch.as_tensor(d["poses"][:, t], dtype=torch.float32)
        cache.ref_index = torch.as_tensor(d["ref_index"][:, t], dtype=torch.int64).clone()
        done = completer.complete(frame, poses, K, cache.slots())
        cache.push(done.rgb, done.depth, poses, torch.full((e,), float(t), dtype=torch.float64))
        out["base_rgb"].append(done.rgb.numpy())
        out["base_depth"].append(done.depth.numpy().astype(np.float32))
        out["base_invented"].append((done.filled & (done.source == SOURCE_INPAINT)).numpy())
    return {k2: np.stack(v, 1) for k2, v in out.items()}
