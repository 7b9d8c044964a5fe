"""Render a World at simulation times (maps time to the dynamic layer's video frame)."""

from __future__ import annotations

import numpy as np
import torch

from inspatio_sim.conventions import DEPTH_INVALID
from inspatio_sim.errors import RenderError
from inspatio_sim.render.splat import RenderConfig, RenderOutput, render
from inspatio_sim.world.world import World


def render_world(
    world: World,
    poses: torch.Tensor | np.ndarray,
    times: torch.Tensor | np.ndarray | float,
    K: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    config: RenderConfig | None = None,
) -> RenderOutput:
    """Render ``world`` from ``poses (B, 4, 4)`` at simulation ``times (B,)`` seconds (or one float for all).

    ``K`` is ``(3, 3)`` or ``(B, 3, 3)`` for the output resolution ``(height, width)``. Pixels showing the sky
    layer are valid (the World has content there) but have depth 0 (no geometry).
    """
    n = int(torch.as_tensor(poses).shape[0]) if torch.as_tensor(poses).ndim == 3 else -1
    t = torch.as_tensor(times, dtype=torch.float64, device=world.device).reshape(-1)
    if t.numel() == 1 and n > 0:
        t = t.expand(n)
    if not torch.isfinite(t).all():
        raise RenderError("render times must be finite seconds")
    out = render(world.cloud(), poses, K, height, width, frames=world.frame_at(t), config=config)
    if world.sky.num_blocks > 1:
        out.depth[out.depth > world.sky_distance - world.scene_radius] = DEPTH_INVALID
    return out
