"""Batched point splatting of a :class:`~inspatio_sim.world.splats.SplatCloud` (one code path for CPU and CUDA).

Per call, for B cameras:
  1. *Culling and LOD*: each chunk's bounding sphere is tested against each camera frustum; a visible chunk
     contributes its coarsest LOD level whose point spacing projects to at most ``lod_target_px`` pixels at the
     chunk's nearest depth. Dynamic segments are kept only for the camera's current video frame.
  2. *Projection*: the selected points of each camera are gathered into a padded ``(B, M)`` batch and projected
     with one batched matrix product.
  3. *Z-buffer with soft depth test*: a ``scatter_reduce(amin)`` finds the nearest depth per pixel; every point
     within ``depth_tolerance`` (relative) of it is averaged into the pixel (an area filter that anti-aliases).
  4. *Gap fill*: pin-holes and background points leaking through them are found with a depth closing
     (min- then max-filter) and filled from their neighbours; larger holes (disocclusions, unseen space) stay
     invalid and get a push-pull colour fill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inspatio_sim.conventions import DEPTH_INVALID
from inspatio_sim.errors import RenderError
from inspatio_sim.world.splats import STATIC_FRAME, SplatCloud


@dataclass
class RenderConfig:
    """Renderer settings (hydra group ``render``).

    Attributes:
        lod_target_px: Coarsest LOD whose point spacing projects to at most this many pixels is used.
        depth_tolerance: Points within this relative depth of the nearest one at a pixel are averaged into it.
        near: Near clipping distance (metres, along the optical axis).
        far: Far clipping distance (metres).
        fill_radius: Radius (pixels) of the depth closing that finds pin-holes and leaks (0 disables).
        leak_threshold: A pixel farther than ``(1 + leak_threshold)`` times the closed depth is a leak.
        fill_holes: Fill the colour of remaining holes by push-pull interpolation (they stay invalid).
    """

    lod_target_px: float = 0.7
    depth_tolerance: float = 0.02
    near: float = 0.05
    far: float = 100.0
    fill_radius: int = 1
    leak_threshold: float = 0.05
    fill_holes: bool = True

    def validate(self) -> None:
        from inspatio_sim.errors import ConfigError

        if not self.lod_target_px > 0:
            raise ConfigError(f"render.lod_target_px must be > 0, got {self.lod_target_px}")
        if not 0 < self.near < self.far:
            raise ConfigError(f"render.near/far must satisfy 0 < near < far, got {self.near}, {self.far}")
        if self.depth_tolerance < 0 or self.leak_threshold < 0 or self.fill_radius < 0:
            raise ConfigError("render.depth_tolerance, leak_threshold and fill_radius must be >= 0")


@dataclass
class RenderOutput:
    """Batched render.

    Attributes:
        rgb: ``(B, H, W, 3)`` uint8.
        depth: ``(B, H, W)`` float32 z-depth in metres, 0 where invalid.
        valid: ``(B, H, W)`` bool, True where the world has geometry (including filled pin-holes).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor


def render(
    cloud: SplatCloud,
    poses: torch.Tensor | np.ndarray,
    K: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    frames: torch.Tensor | None = None,
    config: RenderConfig | None = None,
) -> RenderOutput:
    """Render ``cloud`` from B cameras.

    Args:
        cloud: Points to draw (on the device to render on).
        poses: ``(B, 4, 4)`` ``T_world_camera`` (OpenCV camera).
        K: ``(3, 3)`` shared or ``(B, 3, 3)`` per-camera intrinsics for ``(height, width)``.
        height, width: Output resolution in pixels.
        frames: ``(B,)`` int64 video frame per camera selecting dynamic content; ``None`` = static only.
        config: :class:`RenderConfig`; defaults if ``None``.
    """
    cfg = config or RenderConfig()
    device = cloud.device
    poses_t, K_t, frames_t = _check_inputs(poses, K, height, width, frames, device)
    b = poses_t.shape[0]
    if cloud.num_points == 0:
        raise RenderError("cannot render an empty world (no points)")

    R, t = poses_t[:, :3, :3], poses_t[:, :3, 3]
    Rt = R.transpose(1, 2)
    view = torch.cat([Rt, -(Rt @ t[:, :, None])], dim=2)  # (B, 3, 4) camera_from_world
    proj = K_t @ view  # (B, 3, 4)

    index, mask = _select_points(cloud, view, K_t, height, width, frames_t, cfg)  # (B, M)
    pts = cloud.xyz[index]  # (B, M, 3)
    uvw = torch.baddbmm(proj[:, None, :, 3], pts, proj[:, :, :3].transpose(1, 2))  # (B, M, 3)
    z = uvw[..., 2]
    ok = mask & (z > cfg.near) & (z < cfg.far)
    inv_z = 1.0 / torch.where(ok, z, torch.ones_like(z))
    u = torch.round(uvw[..., 0] * inv_z)
    v = torch.round(uvw[..., 1] * inv_z)
    ok &= (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    bi = torch.arange(b, device=device)[:, None].expand_as(z)
    pix = (bi[ok] * height + v[ok].long()) * width + u[ok].long()
    zs, ps = z[ok], index[ok]

    n_pix = b * height * width
    zmin = torch.full((n_pix,), float("inf"), device=device).scatter_reduce_(0, pix, zs, "amin")
    front = zs <= zmin[pix] * (1.0 + cfg.depth_tolerance)
    pix, zs, ps = pix[front], zs[front], ps[front]
    acc = torch.zeros(n_pix, 5, device=device)
    acc.index_add_(0, pix, torch.cat([cloud.rgb[ps], zs[:, None], torch.ones_like(zs)[:, None]], dim=1))
    count = acc[:, 4:5]
    hit = count[:, 0] > 0
    acc = acc[:, :4] / count.clamp(min=1.0)
    color = acc[:, :3].reshape(b, height, width, 3).permute(0, 3, 1, 2)
    depth = torch.where(hit, acc[:, 3], torch.full_like(acc[:, 3], float("inf"))).reshape(b, 1, height, width)
    hit = hit.reshape(b, 1, height, width)
    color, depth, valid = _fill_gaps(color, depth, hit, cfg)
    rgb = color.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    depth = torch.where(valid, depth, torch.full_like(depth, DEPTH_INVALID))[:, 0]
    return RenderOutput(rgb=rgb, depth=depth.contiguous(), valid=valid[:, 0].contiguous())


def _check_inputs(
    poses: torch.Tensor | np.ndarray, K: torch.Tensor | np.ndarray, height: int, width: int,
    frames: torch.Tensor | None, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise RenderError(f"resolution must be positive integers, got {height}x{width} (H x W)")
    poses_t = torch.as_tensor(poses, device=device).to(torch.float32)
    if poses_t.ndim != 3 or poses_t.shape[1:] != (4, 4):
        raise RenderError(f"poses must be (B, 4, 4) T_world_camera, got shape {tuple(poses_t.shape)}")
    b = poses_t.shape[0]
    if b == 0:
        raise RenderError("nothing to render: batch of 0 poses (B=0)")
    bad = ~torch.isfinite(poses_t).all(dim=(1, 2))
    if bad.any():
        raise RenderError(f"pose {int(bad.nonzero()[0])} of the batch contains NaN or inf")
    K_t = torch.as_tensor(K, device=device).to(torch.float32)
    if K_t.shape == (3, 3):
        K_t = K_t.expand(b, 3, 3)
    if K_t.shape != (b, 3, 3):
        raise RenderError(f"K must be (3, 3) or (B, 3, 3) with B={b}, got {tuple(K_t.shape)}")
    if not torch.isfinite(K_t).all() or (K_t[:, 0, 0] <= 0).any() or (K_t[:, 1, 1] <= 0).any():
        raise RenderError("K must be finite with positive focal lengths")
    frames_t = None
    if frames is not None:
        frames_t = torch.as_tensor(frames, device=device).to(torch.int64).reshape(-1)
        if frames_t.shape[0] != b:
            raise RenderError(f"frames must have one entry per pose (B={b}), got {frames_t.shape[0]}")
    return poses_t, K_t, frames_t


def _select_points(
    cloud: SplatCloud, view: torch.Tensor, K: torch.Tensor, height: int, width: int,
    frames: torch.Tensor | None, cfg: RenderConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded point indices ``(B, M)`` (int64) and their validity mask of the segments each camera needs."""
    device = cloud.device
    b = view.shape[0]
    centre = torch.baddbmm(view[:, None, :, 3], cloud.chunk_center[None].expand(b, -1, -1),
                           view[:, :, :3].transpose(1, 2))  # (B, C, 3) camera frame
    r = cloud.chunk_radius[None]
    x, y, z = centre.unbind(-1)
    visible = (z + r > cfg.near) & (z - r < cfg.far)
    fx, fy, cx, cy = (K[:, i, j, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    for bound, coord, f in (((-0.5 - cx) / fx, x, 1.0), ((width - 0.5 - cx) / fx, x, -1.0),
                            ((-0.5 - cy) / fy, y, 1.0), ((height - 0.5 - cy) / fy, y, -1.0)):
        # half-space f * (coord - bound * z) >= 0 bounds the frustum; keep spheres not fully outside it
        visible &= f * (coord - bound * z) >= -r * torch.sqrt(1.0 + bound * bound)
    z_near = (z - r).clamp(min=cfg.near)
    ratio = cfg.lod_target_px * z_near / (fx * cloud.chunk_voxel0[None])
    level = torch.floor(torch.log2(ratio.clamp(min=1e-12))).long()
    level = torch.minimum(level.clamp(min=0), cloud.chunk_levels[None] - 1)  # (B, C)

    chunk = cloud.seg_chunk
    sel = visible[:, chunk] & (level[:, chunk] == cloud.seg_level[None])
    if frames is None:
        sel &= cloud.seg_frame[None] == STATIC_FRAME
    else:
        sel &= (cloud.seg_frame[None] == STATIC_FRAME) | (cloud.seg_frame[None] == frames[:, None])
    bb, ss = sel.nonzero(as_tuple=True)  # sorted by camera
    cnt = cloud.seg_count[ss]
    total = torch.zeros(b, dtype=torch.int64, device=device).index_add_(0, bb, cnt)
    m = int(total.max()) if bb.numel() else 0
    index = torch.zeros(b, max(m, 1), dtype=torch.int64, device=device)
    mask = torch.zeros(b, max(m, 1), dtype=torch.bool, device=device)
    if m == 0:
        return index, mask
    pair = torch.repeat_interleave(torch.arange(ss.shape[0], device=device), cnt)
    item = torch.arange(pair.shape[0], device=device)
    point = cloud.seg_start[ss][pair] + item - (torch.cumsum(cnt, 0) - cnt)[pair]
    cam = bb[pair]
    slot = item - (torch.cumsum(total, 0) - total)[cam]
    index[cam, slot] = point
    mask[cam, slot] = True
    return index, mask


def _fill_gaps(
    color: torch.Tensor, depth: torch.Tensor, hit: torch.Tensor, cfg: RenderConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fill pin-holes and leaks; return colour ``(B,3,H,W)``, depth ``(B,1,H,W)`` (inf = none), valid ``(B,1,H,W)``."""
    valid = hit
    if cfg.fill_radius > 0:
        k = 2 * cfg.fill_radius + 1
        dmin = -F.max_pool2d(-depth, k, stride=1, padding=cfg.fill_radius)
        closed = F.max_pool2d(dmin, k, stride=1, padding=cfg.fill_radius)
        closable = torch.isfinite(closed)
        leak = hit & closable & (depth > closed * (1.0 + cfg.leak_threshold))
        good = (hit & ~leak).float()
        fill = closable & ~(hit & ~leak)
        num = F.avg_pool2d(color * good, k, stride=1, padding=cfg.fill_radius)
        den = F.avg_pool2d(good, k, stride=1, padding=cfg.fill_radius)
        fill &= den > 0
        color = torch.where(fill, num / den.clamp(min=1e-6), color)
        depth = torch.where(fill, closed, torch.where(leak, torch.full_like(depth, float("inf")), depth))
        valid = (hit & ~leak) | fill
    if cfg.fill_holes and not bool(valid.all()):
        color = _push_pull(color, valid.float())
    return color, depth, valid


def _push_pull(color: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill pixels with zero ``weight`` by recursively averaging down and interpolating back up (push-pull)."""
    h, w = color.shape[-2:]
    if min(h, w) <= 1 or bool((weight > 0).all()):
        return color
    num = F.avg_pool2d(color * weight, 2, ceil_mode=True)
    den = F.avg_pool2d(weight, 2, ceil_mode=True)
    coarse = _push_pull(num / den.clamp(min=1e-6), (den > 0).float())
    up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(weight > 0, color, up)
