"""Batched point splatting of a :class:`~inspatio_sim.world.splats.SplatCloud` (one code path for CPU and CUDA).

Per call, for B cameras:
  1. *Culling and LOD*: each chunk's bounding sphere is tested against each camera frustum; a visible chunk
     contributes its coarsest LOD level whose point spacing projects to at most ``lod_target_px`` pixels at the
     chunk's nearest depth (dynamic chunks only at the camera's current video frame). That level's blocks are
     culled with their own spheres. The result is a flat list of (camera, block) pairs: no per-camera padding.
  2. *Projection*: the selected blocks are gathered (coordinate-major, so each coordinate is one contiguous
     ``(N, P)`` array) and projected with their camera's ``K [R^T | -R^T t]``.
  3. *Z-buffer with soft depth test*: one ``scatter_reduce(amin)`` over packed ``(depth bits << 32) | point`` keys
     finds the nearest point per pixel; every point within ``depth_tolerance`` (relative) of it is averaged into
     the pixel (an area filter that anti-aliases).
  4. *Gap fill*: pin-holes and background points leaking through them are found with a depth closing
     (min- then max-filter) and filled from their neighbours; larger holes (disocclusions, unseen space) stay
     invalid and get a push-pull colour fill.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inspatio_sim.conventions import DEPTH_INVALID
from inspatio_sim.errors import RenderError
from inspatio_sim.validation import check_intrinsics, check_poses
from inspatio_sim.world.splats import LOD_STEP, STATIC_FRAME, SplatCloud

_NO_HIT = torch.iinfo(torch.int64).max
BACKENDS = ("auto", "torch", "fused")
"""Values of ``render.backend``."""


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

    lod_target_px: float = 1.0
    depth_tolerance: float = 0.02
    near: float = 0.05
    far: float = 100.0
    fill_radius: int = 1
    leak_threshold: float = 0.05
    fill_holes: bool = True
    backend: str = "auto"  # torch (eager reference) | fused (compiled kernel, numba on CPU) | auto (fastest on device)
    threads: str = "auto"  # CPU threads of torch and numba: auto (the CPUs free of other work, re-measured) | N

    def validate(self) -> None:
        from inspatio_sim.errors import ConfigError
        from inspatio_sim.render.threads import parse_threads

        if self.backend not in BACKENDS:
            raise ConfigError(f"render.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        parse_threads(self.threads)

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


@torch.no_grad()
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
    cfg.validate()
    device = cloud.device
    poses_t, K_t, frames_t = _check_inputs(poses, K, height, width, frames, device)
    b = poses_t.shape[0]
    if cloud.num_blocks <= 1:
        raise RenderError("cannot render an empty world (no points)")
    backend = resolve_backend(cfg.backend, device)
    if device.type == "cpu":
        from inspatio_sim.render.threads import POLICY

        POLICY.apply(cfg.threads)

    R, t = poses_t[:, :3, :3], poses_t[:, :3, 3]
    Rt = R.transpose(1, 2)
    view = torch.cat([Rt, -(Rt @ t[:, :, None])], dim=2)  # (B, 3, 4) camera_from_world
    proj = K_t @ view  # (B, 3, 4)

    if backend == "fused":
        from inspatio_sim.render.fused import render_fused

        out = render_fused(cloud, view, K_t, proj, frames_t, height, width, cfg)
        if out is not None:
            return out
    cam, block = _select_blocks(cloud, view, K_t, height, width, frames_t, cfg)  # (N,) each
    p = cloud.block_size
    # the selected blocks as rows of the (3 * blocks, P) coordinate-major arrays: a row gather (dim 0) is a plain
    # copy per block, about twice as fast on CPU as index_select along dim 1 of (3, blocks, P)
    rows = (block[None] + torch.arange(0, 3 * cloud.num_blocks, cloud.num_blocks, device=device)[:, None]).reshape(-1)
    x, y, z = _gather_rows(cloud.xyz, rows).unbind(0)  # each (N, P)
    a = proj.index_select(0, cam)  # (N, 3, 4): every block projects with its camera's matrix
    u_h, v_h, z = (torch.addcmul(torch.addcmul(torch.addcmul(a[:, i, 3:], x, a[:, i, 0:1]), y, a[:, i, 1:2]),
                                 z, a[:, i, 2:3]) for i in range(3))
    inv_z = 1.0 / z
    u = u_h.mul_(inv_z)  # in place (fresh tensors): fewer allocations of (N, P) arrays
    v = v_h.mul_(inv_z)
    # NaN (padding) fails every comparison, so unused block slots are dropped here too
    ok = z > cfg.near
    ok &= z < cfg.far
    ok &= u > -0.5
    ok &= u < width - 0.5
    ok &= v > -0.5
    ok &= v < height - 0.5
    n_pix = b * height * width
    if ok.numel() >= 1 << 32:
        raise RenderError(f"too many points in one call ({ok.numel():,}); render fewer cameras per call")
    item = ok.reshape(-1).nonzero().squeeze(1)  # drawn points, as indices into the (N * P) selection
    pix = v.add(0.5).floor_().mul_(width).add_(u.add(0.5).floor_()).long().add_((cam * (height * width))[:, None])
    pix = pix.reshape(-1).index_select(0, item)
    zf = z.reshape(-1).index_select(0, item)

    # nearest point per pixel: min over packed (depth bits << 32 | item) keys, one scatter for all points
    key = (zf.view(torch.int32).long() << 32) | item
    best = torch.full((n_pix + 1,), _NO_HIT, dtype=torch.int64, device=device).scatter_reduce_(0, pix, key, "amin")
    hit = best != _NO_HIT  # (n_pix + 1,), the last entry collects the dropped points
    win = torch.where(hit, best & 0xFFFFFFFF, 0)
    zmin = torch.where(hit, z.reshape(-1).index_select(0, win), torch.inf)
    if cfg.depth_tolerance > 0:
        # soft depth test: average the colour of every point within the tolerance of the nearest one (area filter)
        pix_f = torch.where(zf <= zmin.index_select(0, pix) * (1.0 + cfg.depth_tolerance), pix, n_pix)
        # the drawn points' colours, gathered straight into the scatter's (rgb, count) rows (no concatenation)
        values = torch.empty(4, item.shape[0], dtype=cloud.rgb.dtype, device=device)
        torch.index_select(_gather_rows(cloud.rgb, rows).reshape(3, -1), 1, item, out=values[:3])
        values[3].fill_(1.0)
        acc = torch.zeros(4, n_pix + 1, device=device).scatter_add_(1, pix_f[None].expand(4, -1), values)
        colour = acc[:3, :n_pix] / acc[3:, :n_pix].clamp(min=1.0)
    else:
        point = block.index_select(0, win[:n_pix] // p) * p + win[:n_pix] % p
        colour = cloud.rgb.reshape(3, -1).index_select(1, point) * hit[:n_pix]  # 0 where nothing was drawn
    depth, hit = zmin[:n_pix], hit[:n_pix]
    color = colour.reshape(3, b, height, width).transpose(0, 1)
    depth = depth.reshape(b, 1, height, width)
    hit = hit.reshape(b, 1, height, width)
    color, depth, valid = _fill_gaps(color, depth, hit, cfg)
    rgb = color.permute(0, 2, 3, 1).clamp(0, 255).round_().to(torch.uint8, memory_format=torch.contiguous_format)
    depth = torch.where(valid, depth, torch.full_like(depth, DEPTH_INVALID))[:, 0]
    return RenderOutput(rgb=rgb, depth=depth.contiguous(), valid=valid[:, 0].contiguous())


def fused_available(device: torch.device | str) -> str | None:
    """``None`` when the fused backend runs on ``device``, else the reason it does not."""
    dev = torch.device(device)
    if dev.type == "cpu":
        try:
            import numba  # noqa: F401
        except ImportError:
            return "numba is not installed (it is a dependency of inspatio-sim: reinstall with `make install`)"
        return None
    if dev.type == "cuda":
        from inspatio_sim.render.fused_cuda import cuda_unavailable

        return cuda_unavailable()
    return f"no fused kernel for device type '{dev.type}'"


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The backend that renders on ``device`` for ``render.backend`` (``auto``: ``fused`` where available).

    Raises:
        RenderError: ``fused`` requested where it is not available.
    """
    if backend == "torch":
        return "torch"
    why = fused_available(device)
    if why is None:
        return "fused"
    if backend == "fused":
        raise RenderError(f"render.backend=fused is not available on device '{torch.device(device)}': {why}; "
                          "use render.backend=torch or auto")
    return "torch"


def _gather_rows(blocks: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``blocks (3, num_blocks, P)`` at flat ``rows`` (``channel * num_blocks + block``, channel-major) as
    ``(3, N, P)``."""
    return blocks.reshape(-1, blocks.shape[-1]).index_select(0, rows).reshape(3, -1, blocks.shape[-1])


def _check_inputs(
    poses: torch.Tensor | np.ndarray, K: torch.Tensor | np.ndarray, height: int, width: int,
    frames: torch.Tensor | None, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise RenderError(f"resolution must be positive integers, got {height}x{width} (H x W)")
    b = check_poses(poses, what="render poses", error=RenderError).shape[0]
    check_intrinsics(K, what="render K", error=RenderError, batch=b)
    poses_t = torch.as_tensor(poses, device=device).to(torch.float32)
    K_t = torch.as_tensor(K, device=device).to(torch.float32).expand(b, 3, 3)
    frames_t = None
    if frames is not None:
        frames_t = torch.as_tensor(frames, device=device).to(torch.int64).reshape(-1)
        if frames_t.shape[0] != b:
            raise RenderError(f"frames must have one entry per pose (B={b}), got {frames_t.shape[0]}")
    return poses_t, K_t, frames_t


def _select_blocks(
    cloud: SplatCloud, view: torch.Tensor, K: torch.Tensor, height: int, width: int,
    frames: torch.Tensor | None, cfg: RenderConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The blocks each camera draws, as ``(camera (K,), block (K,))`` int64 pairs sorted by camera.

    Chunks are culled and given a LOD level per camera; the blocks of each (visible chunk, level) are then culled
    against the frustum with their own, tighter spheres. Work is proportional to the visible chunks and blocks, not
    to the size of the World.
    """
    device = cloud.device
    b = view.shape[0]
    chunk_cam = torch.baddbmm(view[:, None, :, 3], cloud.chunk_center[None].expand(b, -1, -1),
                              view[:, :, :3].transpose(1, 2))  # (B, C, 3)
    bound, slack = _frustum_sides(K, height, width)  # (B, 4) each, computed once per camera
    visible = _in_frustum(chunk_cam, cloud.chunk_radius[None], bound[:, None], slack[:, None], cfg)
    frame = cloud.chunk_frame[None]
    visible &= (frame == STATIC_FRAME) if frames is None else (frame == STATIC_FRAME) | (frame == frames[:, None])
    # gathers below use index_select on flat views: much cheaper on CPU than advanced indexing (aten::index)
    n_chunks = visible.shape[1]
    pair = visible.reshape(-1).nonzero().squeeze(1)  # (camera, chunk) pairs as flat indices, sorted by camera
    cam, chunk = pair // n_chunks, pair % n_chunks
    z_near = (chunk_cam[..., 2].reshape(-1).index_select(0, pair) - cloud.chunk_radius.index_select(0, chunk)
              ).clamp(min=cfg.near)
    fx = K[:, 0, 0].index_select(0, cam)
    ratio = cfg.lod_target_px * z_near / (fx * cloud.chunk_voxel0.index_select(0, chunk))
    level = torch.floor(torch.log(ratio.clamp(min=1e-12)) / math.log(LOD_STEP)).long()
    level = torch.minimum(level.clamp(min=0), cloud.chunk_levels.index_select(0, chunk) - 1)
    chunk_level = chunk * cloud.level_count.shape[1] + level
    count = cloud.level_count.reshape(-1).index_select(0, chunk_level)
    first = cloud.level_start.reshape(-1).index_select(0, chunk_level)
    cam = torch.repeat_interleave(cam, count)
    block = torch.repeat_interleave(first - (torch.cumsum(count, 0) - count), count)
    block += torch.arange(block.shape[0], device=device)
    v = view.index_select(0, cam)
    centre = torch.baddbmm(v[:, :, 3:], v[:, :, :3], cloud.block_center.index_select(0, block)[:, :, None])[..., 0]
    keep = _in_frustum(centre, cloud.block_radius.index_select(0, block), bound.index_select(0, cam),
                       slack.index_select(0, cam), cfg)
    if not bool(keep.any()):  # nothing in view: draw the (all-NaN) null block so shapes stay non-empty
        return torch.zeros(1, dtype=torch.int64, device=device), torch.zeros(1, dtype=torch.int64, device=device)
    return cam[keep], block[keep]


def _frustum_sides(K: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per camera (``K (B, 3, 3)``), the four frustum sides ``coord = bound * z`` (x left, x right, y top, y bottom)
    as ``bound (B, 4)`` and ``slack = sqrt(1 + bound^2) (B, 4)`` (a sphere's radius scaled to the side's normal)."""
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    bound = torch.stack([(-0.5 - cx) / fx, (width - 0.5 - cx) / fx, (-0.5 - cy) / fy, (height - 0.5 - cy) / fy], 1)
    return bound, torch.sqrt(1.0 + bound * bound)


def _in_frustum(
    centre: torch.Tensor, radius: torch.Tensor, bound: torch.Tensor, slack: torch.Tensor, cfg: RenderConfig
) -> torch.Tensor:
    """Whether spheres (camera-frame ``centre (..., 3)``, ``radius (...)``) are not fully outside the frustum.

    ``bound`` and ``slack`` (from :func:`_frustum_sides`) broadcast against ``centre[..., 0]`` as ``(..., 4)``.
    """
    x, y, z = centre.unbind(-1)
    inside = (z + radius > cfg.near) & (z - radius < cfg.far)
    for side, coord in enumerate((x, x, y, y)):
        # the frustum side is the half-space sign * (coord - bound * z) >= 0, sign +1 for the left / top sides
        dist = coord - bound[..., side] * z
        margin = -radius * slack[..., side]
        inside &= (dist >= margin) if side % 2 == 0 else (dist <= -margin)
    return inside


def _fill_gaps(
    color: torch.Tensor, depth: torch.Tensor, hit: torch.Tensor, cfg: RenderConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fill pin-holes and leaks; return colour ``(B,3,H,W)``, depth ``(B,1,H,W)`` (inf = none), valid ``(B,1,H,W)``."""
    valid = hit
    if cfg.fill_radius > 0:
        r = cfg.fill_radius
        closed = _box_filter(_box_filter(depth, r, torch.minimum), r, torch.maximum)
        closable = torch.isfinite(closed)
        leak = hit & closable & (depth > closed * (1.0 + cfg.leak_threshold))
        good = hit & ~leak
        weighted = color.new_empty(color.shape[0], 4, *color.shape[2:])  # (colour * good, good), no concatenation
        torch.mul(color, good, out=weighted[:, :3])
        weighted[:, 3:].copy_(good)
        mean = _box_filter(weighted, r, torch.add)
        fill = closable & ~good & (mean[:, 3:] > 0)
        color = torch.where(fill, mean[:, :3] / mean[:, 3:].clamp(min=1e-6), color)
        depth = torch.where(fill, closed, torch.where(leak, torch.inf, depth))
        valid = good | fill
    if cfg.fill_holes:
        holed = (~valid).flatten(1).any(1).nonzero().squeeze(1)  # only images with holes need the pyramid
        if holed.numel() == color.shape[0]:  # typical: every image has holes, no gather / scatter of the batch
            color = _push_pull(color, valid.float())
        elif holed.numel():
            filled = _push_pull(color.index_select(0, holed), valid.index_select(0, holed).float())
            color = color.index_copy(0, holed, filled)
    return color, depth, valid


def _box_filter(img: torch.Tensor, r: int, op: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Separable ``(2r+1)^2`` window reduction of ``img (B, C, H, W)`` with a binary ``op`` (min, max or add);
    the window is clipped at the image border."""
    for dim in (2, 3):
        src, n = img, img.shape[dim]
        if n < 2 or r < 1:
            continue
        out = torch.empty_like(src)
        # first step written straight into ``out`` (no copy of ``src`` first): out[i] = op(src[i], src[i + 1])
        op(src.narrow(dim, 0, n - 1), src.narrow(dim, 1, n - 1), out=out.narrow(dim, 0, n - 1))
        out.narrow(dim, n - 1, 1).copy_(src.narrow(dim, n - 1, 1))
        tail = out.narrow(dim, 1, n - 1)
        op(tail, src.narrow(dim, 0, n - 1), out=tail)
        for k in range(2, min(r, n - 1) + 1):
            head, tail = out.narrow(dim, 0, n - k), out.narrow(dim, k, n - k)
            op(head, src.narrow(dim, k, n - k), out=head)  # in place: no temporary per step
            op(tail, src.narrow(dim, 0, n - k), out=tail)
        img = out
    return img


def _push_pull(colour: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill pixels of zero ``weight (B, 1, H, W)`` in ``colour (B, C, H, W)`` by averaging down (weighted) and
    interpolating back up (push-pull); pixels with weight > 0 keep their colour."""
    h, w = colour.shape[-2:]
    known = weight > 0
    if min(h, w) <= 1 or bool(known.all()):
        return colour
    pm = colour.new_empty(colour.shape[0], colour.shape[1] + 1, h, w)  # (colour * weight, weight), no concatenation
    torch.mul(colour, weight, out=pm[:, :-1])
    pm[:, -1:].copy_(weight)
    if h % 2 or w % 2:
        pm = F.pad(pm, (0, w % 2, 0, h % 2))
    pm = (pm[..., 0::2, 0::2] + pm[..., 1::2, 0::2]).add_(pm[..., 0::2, 1::2]).add_(pm[..., 1::2, 1::2])
    coarse_w = pm[:, -1:]
    coarse = _push_pull(pm[:, :-1] / coarse_w.clamp(min=1e-6), coarse_w)
    return torch.where(known, colour, _upsample2(coarse)[..., :h, :w])


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling of ``(B, C, h, w)`` (half-pixel centres, edges clamped), as ``F.interpolate``."""
    h, w = x.shape[-2:]
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")  # clamped edges for both passes, padded once
    for dim, n in ((2, h), (3, w)):
        centre = x.narrow(dim, 1, n)
        out = x.new_empty(*centre.shape[:dim + 1], 2, *centre.shape[dim + 1:])  # interleaved halves, in place
        torch.lerp(centre, x.narrow(dim, 0, n), 0.25, out=out.select(dim + 1, 0))
        torch.lerp(centre, x.narrow(dim, 2, n), 0.25, out=out.select(dim + 1, 1))
        x = out.flatten(dim, dim + 1)  # rows done: its padded columns are the replicated edge columns, lerped
    return x
