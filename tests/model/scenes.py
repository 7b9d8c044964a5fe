"""An analytic textured wall for the model tests: exact colour and depth from any camera."""

from __future__ import annotations

import numpy as np
import torch

from inspatio_sim.camera import pixel_rays
from inspatio_sim.conventions import intrinsics_from_fov, look_at
from inspatio_sim.model.references import ReferenceFrames

WALL_X = 4.0
"""The wall is the plane x = WALL_X, seen from x < WALL_X."""


def texture(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Smooth RGB pattern ``(..., 3)`` in [0, 255] on the wall (period ~0.5-1 m: resolvable at every distance)."""
    r = 128 + 100 * torch.sin(7.0 * y) * torch.cos(5.0 * z)
    g = 128 + 100 * torch.sin(4.0 * y + 3.0 * z)
    b = 128 + 100 * torch.cos(6.0 * z - 2.0 * y)
    return torch.stack([r, g, b], -1)


def view(pose: np.ndarray, K: np.ndarray, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``rgb (H, W, 3)`` uint8 and z-depth ``(H, W)`` of the wall from ``pose`` (0 where it is not seen)."""
    T = torch.as_tensor(pose, dtype=torch.float32)
    rays = pixel_rays(torch.as_tensor(K, dtype=torch.float32), h, w)
    d = rays @ T[:3, :3].T
    t = (WALL_X - T[0, 3]) / d[..., 0]
    p = T[:3, 3] + t[..., None] * d
    seen = (d[..., 0] > 1e-6) & (t > 0)
    rgb = torch.where(seen[..., None], texture(p[..., 1], p[..., 2]), 0.0).round().clamp(0, 255).to(torch.uint8)
    return rgb, torch.where(seen, t, 0.0)


def camera(x: float, y: float, yaw_deg: float = 0.0, z: float = 1.4) -> np.ndarray:
    """``T_world_camera`` at ``(x, y, z)`` looking horizontally at heading ``yaw_deg`` (0 = +x, at the wall)."""
    a = np.deg2rad(yaw_deg)
    return look_at([x, y, z], [x + np.cos(a), y + np.sin(a), z])


def references(poses: list[np.ndarray], h: int = 48, w: int = 64, hfov: float = 70.0,
               times: list[float] | None = None, dynamic: bool = False) -> ReferenceFrames:
    """A ReferenceFrames library of exact wall views from ``poses``."""
    K = intrinsics_from_fov(w, h, hfov)
    views = [view(p, K, h, w) for p in poses]
    n = len(poses)
    dyn = torch.zeros((n, h, w), dtype=torch.bool)
    if dynamic:
        dyn[:, :4, :4] = True
    return ReferenceFrames(rgb=torch.stack([v[0] for v in views]), depth=torch.stack([v[1] for v in views]),
                           dynamic=dyn, poses=torch.as_tensor(np.stack(poses), dtype=torch.float32),
                           K=torch.as_tensor(K, dtype=torch.float32),
                           timestamps=torch.as_tensor(times if times is not None else np.arange(n) / 10.0,
                                                      dtype=torch.float64))
