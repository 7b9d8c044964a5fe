"""Sphere-vs-distance-field motion: conservative advancement with sliding (no tunnelling at any speed).

A sphere of radius ``r`` centred at ``p`` is clear when ``sdf(p) > r + margin``. Moving it by ``delta`` advances
along the motion in steps no longer than the current clearance, so it can never cross a surface however large
``delta`` is; when it is blocked, the rest of the motion loses its component into the surface (along the SDF
gradient) and continues, so agents slide along walls instead of sticking to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]
"""Signed distance (metres) ``(N,)`` at points ``(N, 3)``."""


@dataclass
class SweepResult:
    """Outcome of :func:`sweep_sphere` for a batch of ``B`` spheres.

    Attributes:
        position: ``(B, 3)`` where each sphere ended.
        collided: ``(B,)`` bool, the motion touched the surface (and was shortened or deflected).
    """

    position: torch.Tensor
    collided: torch.Tensor


def sdf_gradient(sdf: SdfFn, p: torch.Tensor, h: float) -> torch.Tensor:
    """Unit gradient ``(B, 3)`` of ``sdf`` at ``p (B, 3)`` by central differences of step ``h`` (metres)."""
    offsets = torch.eye(3, dtype=p.dtype, device=p.device) * h
    probes = torch.cat([p[:, None] + offsets, p[:, None] - offsets], 1).reshape(-1, 3)
    d = sdf(probes).reshape(p.shape[0], 2, 3)
    g = d[:, 0] - d[:, 1]
    return g / g.norm(dim=1, keepdim=True).clamp(min=1e-9)


def sweep_sphere(
    sdf: SdfFn,
    start: torch.Tensor,
    delta: torch.Tensor,
    radius: float,
    *,
    margin: float,
    gradient_step: float,
    slides: int = 2,
    max_steps: int = 48,
    tolerance: float = 1e-4,
) -> SweepResult:
    """Move spheres from ``start (B, 3)`` by ``delta (B, 3)`` without entering ``sdf <= radius + margin``.

    Args:
        sdf: Distance field of the static geometry.
        radius: Sphere radius (metres).
        margin: Extra clearance covering the field's own error (e.g. half an occupancy voxel).
        gradient_step: Finite-difference step for surface normals.
        slides: How many times a blocked motion may be deflected along the surface.
        max_steps: Advancement steps per leg (a leg that has not finished stops where it is: conservative).
        tolerance: Distance (metres) under which a leg counts as finished or blocked.
    """
    p = start.clone()
    remaining = delta.clone()
    collided = torch.zeros(start.shape[0], dtype=torch.bool, device=start.device)
    for _ in range(slides + 1):
        length = remaining.norm(dim=1)
        moving = length > tolerance
        if not bool(moving.any()):
            break
        direction = remaining / length[:, None].clamp(min=1e-12)
        travelled = torch.zeros_like(length)
        blocked = torch.zeros_like(moving)
        for _ in range(max_steps):
            clear = sdf(p) - radius - margin
            left = length - travelled
            active = moving & ~blocked & (left > tolerance)
            if not bool(active.any()):
                break
            step = torch.minimum(clear, left)
            touching = active & (clear <= tolerance)
            if bool(touching.any()):
                # in contact: motion into the surface is blocked; motion along or away from it proceeds in steps
                # of at most `margin`, each kept only if it does not bring the sphere deeper (corners, curvature)
                idx = touching.nonzero().squeeze(1)
                n = sdf_gradient(sdf, p[idx], gradient_step)
                trial = torch.minimum(left[idx], torch.full_like(left[idx], margin))
                deeper = sdf(p[idx] + direction[idx] * trial[:, None]) - radius - margin < clear[idx] - tolerance
                stop = ((direction[idx] * n).sum(1) < -1e-3) | deeper
                blocked[idx[stop]] = True
                step[idx] = trial
            step = torch.where(active & ~blocked, step, torch.zeros_like(step))
            p = p + direction * step[:, None]
            travelled = travelled + step
        stopped = moving & (length - travelled > tolerance)
        collided |= stopped
        normal = sdf_gradient(sdf, p, gradient_step)
        rest = direction * (length - travelled)[:, None]
        into = (rest * normal).sum(1, keepdim=True).clamp(max=0.0)  # only remove motion into the surface
        remaining = torch.where(stopped[:, None], rest - into * normal, torch.zeros_like(rest))
    return SweepResult(position=p, collided=collided)
