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
    """``N`` world points looked up in the ``S`` source cameras of their batch element.

    Attributes:
        rgb: ``(N, S, 3)`` float32 bilinear colour of the source image at the projection.
        depth: ``(N, S)`` float32 source depth at the projection (nearest pixel; 0 = no data).
        z: ``(N, S)`` float32 z-depth of the point in the source camera.
        inside: ``(N, S)`` bool, the point projects inside the source image, in front of the camera.
        cos: ``(N, S)`` float32 cosine between the point's viewing rays from the target and source cameras.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    z: torch.Tensor
    inside: torch.Tensor
    cos: torch.Tensor

    def part(self, rows: slice) -> Lookup:
        """The lookups of the points ``rows``."""
        return Lookup(rgb=self.rgb[rows], depth=self.depth[rows], z=self.z[rows], inside=self.inside[rows],
                      cos=self.cos[rows])


def lookup(points: torch.Tensor, batch: torch.Tensor, target_centres: torch.Tensor, rgb: torch.Tensor,
           depth: torch.Tensor, image_index: torch.Tensor, poses: torch.Tensor, K: torch.Tensor,
           near: float = 0.05) -> Lookup:
    """Project world ``points (N, 3)`` of batch elements ``batch (N,)`` into that element's ``S`` source cameras.

    Args:
        points: World points to look up (metres).
        batch: ``(N,)`` int64 batch element of each point.
        target_centres: ``(B, 3)`` centres of the cameras that see the points (for the viewing-angle term).
        rgb: ``(L, Hs, Ws, 3)`` uint8 or float image library.
        depth: ``(L, Hs, Ws)`` float32 depth of the library (0 = no data).
        image_index: ``(B, S)`` int64 library image of each source camera (no copies of the images are made).
        poses: ``(B, S, 4, 4)`` source ``T_world_camera``.
        K: ``(3, 3)`` intrinsics of the source images.
        near: Points closer than this to a source camera (metres) are not inside it.
    """
    hs, ws = rgb.shape[1:3]
    cam_from_world = se3.invert(poses)[batch]  # (N, S, 4, 4)
    pc = (cam_from_world[..., :3, :3] @ points[:, None, :, None])[..., 0] + cam_from_world[..., :3, 3]
    z = pc[..., 2]
    zs = z.clamp(min=1e-6)
    u = K[0, 0] * pc[..., 0] / zs + K[0, 2]
    v = K[1, 1] * pc[..., 1] / zs + K[1, 2]
    inside = (z > near) & (u >= -0.5) & (u <= ws - 0.5) & (v >= -0.5) & (v <= hs - 0.5)
    # bilinear colour from the four neighbours (clamped at the border), nearest depth
    image = image_index[batch] * (hs * ws)  # (N, S) first pixel of each source image
    uc, vc = u.clamp(0, ws - 1), v.clamp(0, hs - 1)
    u0, v0 = uc.floor().long().clamp(max=ws - 2 if ws > 1 else 0), vc.floor().long().clamp(max=hs - 2 if hs > 1 else 0)
    fu, fv = (uc - u0).unsqueeze(-1), (vc - v0).unsqueeze(-1)
    flat_rgb = rgb.reshape(-1, 3)  # gathered first, converted after: the library is never copied whole
    u1, v1 = (u0 + 1).clamp(max=ws - 1), (v0 + 1).clamp(max=hs - 1)

    def at(vv: torch.Tensor, uu: torch.Tensor) -> torch.Tensor:
        return flat_rgb.index_select(0, (image + vv * ws + uu).reshape(-1)).reshape(*u.shape, 3).float()

    colour = (at(v0, u0) * (1 - fu) + at(v0, u1) * fu) * (1 - fv) + (at(v1, u0) * (1 - fu) + at(v1, u1) * fu) * fv
    near_px = image + vc.round().long() * ws + uc.round().long()
    src_depth = depth.reshape(-1).index_select(0, near_px.reshape(-1)).reshape(u.shape)
    to_src = poses[batch][..., :3, 3] - points[:, None]
    to_tgt = (target_centres[batch] - points)[:, None].expand_as(to_src)
    cos = F.cosine_similarity(to_src, to_tgt, dim=-1)
    return Lookup(rgb=colour, depth=torch.where(inside, src_depth, 0.0), z=z, inside=inside, cos=cos)


def fill_depth(depth: torch.Tensor, known: torch.Tensor, mode: str) -> torch.Tensor:
    """Fill ``depth (B, H, W)`` where ``known (B, H, W)`` is False.

    ``mode="smooth"``: push-pull (average known depth per coarser cell, normalised bilinear interpolation back): a
    smooth surface spanned by the hole's rim, for holes inside one surface. ``mode="far"``: the farthest known depth
    within ``FAR_REACH`` times the pixel's distance to the rim, for disocclusions, which show what lies behind the
    occluder bordering them on one side; ``mode="near"`` the nearest one there (a foreground surface continued into
    the hole). Pixels with no known depth anywhere get 0.
    """
    if mode == "smooth":
        return _fill_smooth(depth, known)
    if mode == "far":
        return _fill_extreme(depth, known, farthest=True)
    if mode == "near":
        return _fill_extreme(depth, known, farthest=False)
    raise ValueError(f"fill_depth mode must be 'smooth', 'far' or 'near', got '{mode}'")


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


def _fill_extreme(depth: torch.Tensor, known: torch.Tensor, farthest: bool) -> torch.Tensor:
    far, near = _fill_extremes(depth, known)
    return far if farthest else near


def _fill_extremes(depth: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``far`` and ``near`` fills of ``depth (B, H, W)`` in one pass (both ``(B, H, W)``)."""
    # sparse table of window maxima at full resolution: level i is the max over a (2^(i+1) - 1)-wide window; the
    # nearest depth is the max of the inverse depth (unknown pixels stay 0 either way); channel 0 far, 1 near,
    # channel 2 whether the window reaches a known pixel
    inverse = torch.where(known, 1.0 / depth.clamp(min=1e-6), torch.zeros_like(depth))
    m = torch.stack([torch.where(known, depth, torch.zeros_like(depth)), inverse, known.float()], 1)
    levels = [m]
    step = 1
    while step < max(depth.shape[1:]):
        pad = (step, step, step, step)  # zero = unknown depth
        m = F.max_pool2d(F.pad(m, pad), 3, stride=1, dilation=step)
        levels.append(m)
        step *= 2
    stack = torch.stack(levels)  # (L, B, 3, H, W)
    reached = stack[:, :, 2:3] > 0
    first = torch.full_like(reached[0], len(levels), dtype=torch.long)
    for i in range(len(levels) - 1, -1, -1):  # the first level whose window reaches a known pixel
        first = torch.where(reached[i], i, first)
    reach = (first + int(math.log2(FAR_REACH))).clamp(max=len(levels) - 1)
    out = torch.gather(stack[:, :, :2], 0, reach.expand(-1, 2, -1, -1)[None])[0]
    out = torch.where(first < len(levels), out, torch.zeros_like(out))
    far = torch.where(known, depth, out[:, 0])
    near = torch.where(known, depth, torch.where(out[:, 1] > 0, 1.0 / out[:, 1].clamp(min=1e-12), 0.0))
    return far, near


def depth_hypotheses(depth: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``(3, B, H, W)``: the ``smooth``, ``far`` and ``near`` fills of :func:`fill_depth`, in that order."""
    far, near = _fill_extremes(depth, known)
    return torch.stack([_fill_smooth(depth, known), far, near])


def reproject(prev: torch.Tensor, prev_depth: torch.Tensor, depth: torch.Tensor, poses: torch.Tensor,
              prev_poses: torch.Tensor, K: torch.Tensor, tolerance: float = 0.03, near: float = 0.05
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame ``prev (B, H, W, C)`` seen from ``prev_poses (B, 4, 4)`` warped into the cameras ``poses (B, 4, 4)``
    whose depth is ``depth (B, H, W)`` (metres, 0 = unknown); both with intrinsics ``K (3, 3)``.

    Every pixel with depth is lifted to the world, projected into the previous camera and sampled there (bilinear,
    differentiable in ``prev``). Returns the warped frame ``(B, H, W, C)`` and ``(B, H, W)`` bool: the pixel has
    depth, projects inside the previous frame in front of its camera (``z > near``), and was not hidden there
    (``prev_depth (B, H, W)`` at the nearest pixel within ``tolerance`` relative of the point's z).
    """
    b, h, w = depth.shape
    world = lift(depth.float(), poses.float(), K.float())
    inv = se3.invert(prev_poses.float())
    cam = torch.einsum("bij,bhwj->bhwi", inv[:, :3, :3], world) + inv[:, None, None, :3, 3]
    z = cam[..., 2]
    zs = z.clamp(min=1e-6)
    u = K[0, 0] * cam[..., 0] / zs + K[0, 2]
    v = K[1, 1] * cam[..., 1] / zs + K[1, 2]
    inside = (z > near) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1) & (depth > 0)
    grid = torch.stack([2 * u / max(w - 1, 1) - 1, 2 * v / max(h - 1, 1) - 1], -1)
    warped = F.grid_sample(prev.permute(0, 3, 1, 2).float(), grid, mode="bilinear", padding_mode="border",
                           align_corners=True).permute(0, 2, 3, 1)
    ui = u.round().clamp(0, w - 1).long()
    vi = v.round().clamp(0, h - 1).long()
    seen = prev_depth.float()[torch.arange(b, device=depth.device)[:, None, None], vi, ui]
    visible = (seen - z).abs() <= tolerance * z
    return warped, inside & visible
