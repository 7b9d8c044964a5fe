"""Pinhole projection and back-projection, written once (conventions in :mod:`inspatio_sim.conventions`).

Camera frame: OpenCV optical (x right, y down, z forward); pixel centres at integer coordinates; depth is z-depth
(metres along the optical axis). ``K`` is ``(3, 3)``, or ``(B, 3, 3)`` per camera for points with a leading batch
dim ``B``. The functions take torch tensors (batched, any device) or numpy arrays and return the same kind; the
arithmetic is the same for both, so CPU numpy code and device torch code agree.

The renderer (:mod:`inspatio_sim.render.splat`) fuses ``K [R^T | -R^T t]`` into one matrix per camera and projects
with in-place multiply-adds in its hot loop; it implements this same model.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def _terms(K: Any, ndim: int) -> tuple[Any, Any, Any, Any]:
    """``fx, fy, cx, cy`` of ``K (3, 3)`` as scalars-like, or of ``K (B, 3, 3)`` shaped to broadcast against a
    ``(B, ...)`` array of ``ndim`` dims."""
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    if K.ndim == 3:
        shape = (K.shape[0],) + (1,) * (ndim - 1)
        fx, fy, cx, cy = (a.reshape(shape) for a in (fx, fy, cx, cy))
    return fx, fy, cx, cy


def project_points(points: Array, K: Array, min_depth: float | None = 1e-6) -> tuple[Array, Array, Array]:
    """Camera-frame points ``(..., 3)`` -> pixel ``u``, ``v`` and z-depth ``z`` (each ``(...)``).

    ``u = fx x / z + cx``, ``v = fy y / z + cy``. Points with ``z <= min_depth`` (behind or at the camera) are
    divided by ``min_depth`` instead, so they land far off-image and finite; ``z`` itself is returned unchanged
    for the caller to test. ``min_depth=None`` divides by ``z`` as is.
    """
    xp = torch if isinstance(points, torch.Tensor) else np
    z = points[..., 2]
    zs = z if min_depth is None else xp.where(z > min_depth, z, xp.full_like(z, min_depth))
    fx, fy, cx, cy = _terms(K, z.ndim)
    return fx * points[..., 0] / zs + cx, fy * points[..., 1] / zs + cy, z


def backproject(u: Array, v: Array, K: Array, depth: Array | None = None) -> Array:
    """Pixels ``u, v (...)`` (and z-depth ``(...)``, metres) -> camera-frame points ``(..., 3)``.

    Without ``depth`` the points are the rays through the pixels with ``z = 1``.
    """
    xp = torch if isinstance(u, torch.Tensor) else np
    fx, fy, cx, cy = _terms(K, u.ndim)
    rays = xp.stack([(u - cx) / fx, (v - cy) / fy, xp.ones_like(u)], -1)
    return rays if depth is None else rays * depth[..., None]


def pixel_rays(K: torch.Tensor, height: int, width: int, stride: int = 1) -> torch.Tensor:
    """Camera-frame rays ``(H', W', 3)`` with z = 1 through the centres of every ``stride``-th pixel of ``K``.

    A pixel's 3-D point at z-depth ``d`` is ``ray * d`` (OpenCV camera frame).
    """
    v, u = torch.meshgrid(torch.arange(0, height, stride, device=K.device, dtype=torch.float32),
                          torch.arange(0, width, stride, device=K.device, dtype=torch.float32), indexing="ij")
    return backproject(u, v, K)
