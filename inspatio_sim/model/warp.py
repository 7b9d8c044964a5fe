"""Image-space geometry for the model step: lift pixels with depth, look them up in other cameras, fill depth holes.

Conventions: :mod:`inspatio_sim.conventions` (OpenCV cameras, ``T_world_camera`` poses, z-depth in metres, 0 = no
data, pixel centres at integer coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inspatio_sim import se3
from inspatio_sim.camera import pixel_rays


def lift(depth: torch.Tensor, poses: torch.Tensor, K: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """World points ``(B, H', W', 3)`` of every ``stride``-th pixel of ``depth (B, H, W)`` seen from
    ``poses (B, 4, 4)`` with intrinsics ``K (3, 3)`` (pixels with depth 0 land on the camera centre: mask them)."""
    rays = pixel_rays(K, depth.shape[1], depth.shape[2], stride=stride)
    cam = rays[None] * depth[:, ::stride, ::stride, None]
    return torch.einsum("bij,bhwj->bhwi", poses[:, :3, :3], cam) + poses[:, None, None, :3, 3]


@dataclass
class Lookup:
    """World points looked up in ``S`` source cameras per batch element.

    Attributes:
        rgb: ``(B, S, H, W, 3)`` float32 bilinear colour of the source image at the projection.
        depth: ``(B, S, H, W)`` float32 source depth at the projection (nearest pixel; 0 = no data).
        z: ``(B, S, H, W)`` float32 z-depth of the point in the source camera.
        inside: ``(B, S, H, W)`` bool, the point projects inside the source image, in front of the camera.
        cos: ``(B, S, H, W)`` float32 cosine between the point's viewing rays from the target and source cameras.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    z: torch.Tensor
    inside: torch.Tensor
    cos: torch.Tensor


def lookup(points: torch.Tensor, target_centres: torch.Tensor, rgb: torch.Tensor, depth: torch.Tensor,
           poses: torch.Tensor, K: torch.Tensor, near: float = 0.05) -> Lookup:
    """Project world ``points (B, H, W, 3)`` into ``S`` source cameras each and sample them.

    Args:
        points: World points to look up.
        target_centres: ``(B, 3)`` centres of the cameras that see ``points`` (for the viewing-angle term).
        rgb: ``(B, S, Hs, Ws, 3)`` uint8 or float source images.
        depth: ``(B, S, Hs, Ws)`` float32 source depth (0 = no data).
        poses: ``(B, S, 4, 4)`` source ``T_world_camera``.
        K: ``(3, 3)`` intrinsics of the source images.
        near: Points closer than this to a source camera (metres) are not inside it.
    """
    b, s = poses.shape[:2]
    h, w = points.shape[1:3]
    hs, ws = rgb.shape[2:4]
    flat = points.reshape(b, 1, h * w, 3).expand(b, s, h * w, 3)
    cam = se3.transform_points(se3.invert(poses), flat)  # (B, S, HW, 3)
    z = cam[..., 2]
    zs = z.clamp(min=1e-6)
    u = K[0, 0] * cam[..., 0] / zs + K[0, 2]
    v = K[1, 1] * cam[..., 1] / zs + K[1, 2]
    inside = (z > near) & (u >= -0.5) & (u <= ws - 0.5) & (v >= -0.5) & (v <= hs - 0.5)
    # grid_sample with align_corners=True maps -1/+1 to the centres of the first/last pixels
    grid = torch.stack([2.0 * u / max(ws - 1, 1) - 1.0, 2.0 * v / max(hs - 1, 1) - 1.0], -1)
    grid = grid.reshape(b * s, h, w, 2)
    src = rgb.reshape(b * s, hs, ws, 3).permute(0, 3, 1, 2).float()
    colour = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
    src_depth = F.grid_sample(depth.reshape(b * s, 1, hs, ws), grid, mode="nearest", padding_mode="zeros",
                              align_corners=True)
    to_src = poses[:, :, None, :3, 3] - flat
    to_tgt = target_centres[:, None, None, :] - flat
    cos = F.cosine_similarity(to_src, to_tgt, dim=-1)
    shape = (b, s, h, w)
    return Lookup(rgb=colour.permute(0, 2, 3, 1).reshape(*shape, 3), depth=src_depth.reshape(shape),
                  z=z.reshape(shape), inside=inside.reshape(shape), cos=cos.reshape(shape))


def fill_depth(depth: torch.Tensor, known: torch.Tensor, mode: str) -> torch.Tensor:
    """Fill ``depth (B, H, W)`` where ``known (B, H, W)`` is False.

    ``mode="smooth"``: push-pull (average known depth per coarser cell, normalised bilinear interpolation back): a
    smooth surface spanned by the hole's rim, for holes inside one surface. ``mode="far"``: the farthest known depth
    within ``FAR_REACH`` times the pixel's distance to the rim, for disocclusions, which show what lies behind the
    occluder bordering them on one side. Pixels with no known depth anywhere get 0.
    """
    if mode == "smooth":
        return _fill_smooth(depth, known)
    if mode == "far":
        return _fill_far(depth, known)
    raise ValueError(f"fill_depth mode must be 'smooth' or 'far', got '{mode}'")


FAR_REACH = 4
"""``far`` fill looks this many times farther than the distance from a hole pixel to the nearest known pixel."""


def _fill_smooth(depth: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    d = torch.where(known, depth, torch.zeros_like(depth))[:, None]
    k = known[:, None].float()
    levels: list[tuple[torch.Tensor, torch.Tensor]] = [(d, k)]
    while min(d.shape[-2:]) > 1:
        num = F.avg_pool2d(d * k, 2, ceil_mode=True)
        den = F.avg_pool2d(k, 2, ceil_mode=True)
        d = torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))
        k = (den > 0).float()
        levels.append((d, k))
    filled = levels[-1][0]
    for fine_d, fine_k in reversed(levels[:-1]):
        size = fine_d.shape[-2:]
        num = F.interpolate(filled * (filled > 0), size=size, mode="bilinear", align_corners=False)
        den = F.interpolate((filled > 0).float(), size=size, mode="bilinear", align_corners=False)
        up = torch.where(den > 1e-6, num / den.clamp(min=1e-6), torch.zeros_like(num))
        filled = torch.where(fine_k > 0, fine_d, up)
    return filled[:, 0]


def _fill_far(depth: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    # sparse table of window maxima at full resolution: level i is the max over a (2^(i+1) - 1)-wide window
    m = torch.where(known, depth, torch.zeros_like(depth))[:, None]
    k = known[:, None].float()
    maxima, reached = [m], [k]
    step = 1
    while step < max(depth.shape[1:]):
        pad = (step, step, step, step)  # zero = unknown depth
        m = F.max_pool2d(F.pad(m, pad), 3, stride=1, dilation=step)
        k = F.max_pool2d(F.pad(k, pad), 3, stride=1, dilation=step)
        maxima.append(m)
        reached.append(k)
        step *= 2
    first = torch.full_like(k, len(maxima), dtype=torch.long)
    for i in range(len(maxima) - 1, -1, -1):  # the first level whose window reaches a known pixel
        first = torch.where(reached[i] > 0, i, first)
    reach = (first + int(math.log2(FAR_REACH))).clamp(max=len(maxima) - 1)
    out = torch.gather(torch.stack(maxima), 0, reach[None])[0]
    out = torch.where(first < len(maxima), out, torch.zeros_like(out))
    return torch.where(known[:, None], depth[:, None], out)[:, 0]
