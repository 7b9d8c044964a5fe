"""Fused CPU render kernel (numba): projection -> z-buffer -> soft depth test -> gap fill -> hole fill in one pass.

The eager torch path (:func:`inspatio_sim.render.splat.render`) runs ~60-70 tensor ops per call, each a pass over
memory with a fixed per-op cost; this kernel walks every selected point twice (nearest depth, then the soft
depth test's colour sum) and every pixel a few times, with no intermediate tensors. It runs the same arithmetic in
the same order as the torch path (float32 throughout, same summation order in every sum, same rounding), so its
output is bit-identical to the torch path's on the machines tested; the tests hold it to identical validity masks,
identical depth and colours within 1 level.

Block selection (culling and level of detail, a few dozen small tensor ops proportional to the visible chunks)
stays in torch and is shared with the torch path, so both backends draw exactly the same points.

Parallelism: cameras of a batch are rendered in parallel (``prange``); the thread count follows
:mod:`inspatio_sim.render.threads`. Compiled once per machine and cached (``cache=True``: in the package's
``__pycache__`` or, where that is read-only, numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from inspatio_sim.render.splat import RenderOutput
from inspatio_sim.render.threads import POLICY
from inspatio_sim.world.splats import LOD_STEP

if TYPE_CHECKING:
    from inspatio_sim.render.splat import RenderConfig
    from inspatio_sim.world.splats import SplatCloud

_F = np.float32
_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_EPS = np.float32(1e-6)
_INF = np.float32(np.inf)
_LOG_LOD_STEP = math.log(LOD_STEP)


@intrinsic
def _fma(typingctx: Any, acc: Any, x: Any, m: Any) -> Any:
    """``acc + x * m`` rounded once (float32 fused multiply-add, LLVM ``llvm.fma``), as torch's vectorised CPU
    ``addcmul``: one hardware instruction where the CPU has FMA."""
    if not all(t == types.float32 for t in (acc, x, m)):
        return None
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, [args[1], args[2], args[0]])

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def _min_max_1d(src: np.ndarray, dst: np.ndarray, n: int, stride: int, offset: int, r: int, use_min: bool) -> None:
    """Window (``2r+1``, clipped) min or max of ``src`` along one axis of ``n`` samples at ``offset + i * stride``
    of the flat arrays, written to ``dst``."""
    for i in range(n):
        s = src[offset + i * stride]
        lo = max(i - r, 0)
        hi = min(i + r, n - 1)
        for k in range(lo, hi + 1):
            t = src[offset + k * stride]
            if use_min:
                if t < s:
                    s = t
            elif t > s:
                s = t
        dst[offset + i * stride] = s


@njit(cache=True, error_model="numpy", inline="always")
def _add_1d(src: np.ndarray, dst: np.ndarray, n: int, stride: int, offset: int, r: int) -> None:
    """Window (``2r+1``, clipped) sum along one axis, in the torch path's order: ``x[i] + x[i+1] + x[i-1] +
    x[i+2] + x[i-2] ...`` (left to right), terms outside the axis skipped."""
    rr = min(r, n - 1)
    for i in range(n):
        s = src[offset + i * stride]
        for k in range(1, rr + 1):
            if i + k < n:
                s = s + src[offset + (i + k) * stride]
            if i - k >= 0:
                s = s + src[offset + (i - k) * stride]
        dst[offset + i * stride] = s


@njit(cache=True, error_model="numpy", inline="always")
def _min_max_rows(src: np.ndarray, dst: np.ndarray, h: int, w: int, r: int, use_min: bool) -> None:
    """Window (``2r+1``, clipped) min or max along H of flat ``(h * w,)`` arrays, a whole row at a time (contiguous
    inner loops)."""
    for i in range(h):
        base = i * w
        for j in range(w):
            dst[base + j] = src[base + j]
        for k in range(max(i - r, 0), min(i + r, h - 1) + 1):
            o = k * w
            if use_min:
                for j in range(w):
                    dst[base + j] = min(dst[base + j], src[o + j])
            else:
                for j in range(w):
                    dst[base + j] = max(dst[base + j], src[o + j])


@njit(cache=True, error_model="numpy", inline="always")
def _add_rows(src: np.ndarray, dst: np.ndarray, h: int, w: int, r: int) -> None:
    """:func:`_add_1d` along H for every column, a whole row at a time (the same order of terms per pixel)."""
    rr = min(r, h - 1)
    for i in range(h):
        base = i * w
        for j in range(w):
            dst[base + j] = src[base + j]
        for k in range(1, rr + 1):
            if i + k < h:
                o = (i + k) * w
                for j in range(w):
                    dst[base + j] = dst[base + j] + src[o + j]
            if i - k >= 0:
                o = (i - k) * w
                for j in range(w):
                    dst[base + j] = dst[base + j] + src[o + j]


@njit(cache=True, error_model="numpy")
def _box_min_then_max(depth: np.ndarray, h: int, w: int, r: int, tmp: np.ndarray, out: np.ndarray) -> None:
    """``out = max-filter(min-filter(depth))`` over clipped ``(2r+1)^2`` windows (separable: rows, then columns),
    flat ``(h * w,)`` arrays."""
    _min_max_rows(depth, tmp, h, w, r, True)  # along H
    for i in range(h):  # along W (stride 1)
        _min_max_1d(tmp, out, w, 1, i * w, r, True)
    _min_max_rows(out, tmp, h, w, r, False)
    for i in range(h):
        _min_max_1d(tmp, out, w, 1, i * w, r, False)


@njit(cache=True, error_model="numpy")
def _push_pull(colour: np.ndarray, weight: np.ndarray, h: int, w: int) -> None:
    """Fill pixels of zero ``weight (h*w,)`` of ``colour (3, h*w)`` in place by push-pull, as the torch path's
    ``_push_pull`` (pyramid of 2x2 weighted sums down, bilinear 2x upsampling back up)."""
    cols = [colour]
    wts = [weight]
    hs = [h]
    ws = [w]
    ch, cw = h, w
    while True:
        wt = wts[-1]
        if min(ch, cw) <= 1:
            break
        known_all = True
        for i in range(ch * cw):
            if not wt[i] > _ZERO:
                known_all = False
                break
        if known_all:
            break
        col = cols[-1]
        nh, nw = (ch + 1) // 2, (cw + 1) // 2
        ncol = np.empty((3, nh * nw), dtype=np.float32)
        nwt = np.empty(nh * nw, dtype=np.float32)
        for y in range(nh):
            for x in range(nw):
                # terms in the torch order: (2y, 2x) + (2y+1, 2x) + (2y, 2x+1) + (2y+1, 2x+1); padding is 0
                ws_ = _ZERO
                for c in range(4):
                    sy = 2 * y + (1 if c == 1 or c == 3 else 0)
                    sx = 2 * x + (1 if c >= 2 else 0)
                    t = wt[sy * cw + sx] if sy < ch and sx < cw else _ZERO
                    ws_ = t if c == 0 else ws_ + t
                nwt[y * nw + x] = ws_
                den = ws_ if ws_ > _EPS else _EPS
                for k in range(3):
                    s = _ZERO
                    for c in range(4):
                        sy = 2 * y + (1 if c == 1 or c == 3 else 0)
                        sx = 2 * x + (1 if c >= 2 else 0)
                        t = col[k, sy * cw + sx] * wt[sy * cw + sx] if sy < ch and sx < cw else _ZERO
                        s = t if c == 0 else s + t
                    ncol[k, y * nw + x] = s / den
        cols.append(ncol)
        wts.append(nwt)
        hs.append(nh)
        ws.append(nw)
        ch, cw = nh, nw
    # back up: level l = where(known, colour_l, upsample(result_{l+1}))
    for lvl in range(len(cols) - 2, -1, -1):
        fine, fw = cols[lvl], wts[lvl]
        coarse = cols[lvl + 1]
        fh, fwd = hs[lvl], ws[lvl]
        kh, kw = hs[lvl + 1], ws[lvl + 1]
        for yy in range(fh):
            i = yy // 2
            ni = i - 1 if yy % 2 == 0 else i + 1
            ni = min(max(ni, 0), kh - 1)
            for xx in range(fwd):
                p = yy * fwd + xx
                if fw[p] > _ZERO:
                    continue
                j = xx // 2
                nj = j - 1 if xx % 2 == 0 else j + 1
                nj = min(max(nj, 0), kw - 1)
                for k in range(3):
                    a = coarse[k, i * kw + j]
                    r0 = a + _QUARTER * (coarse[k, ni * kw + j] - a)  # rows first (lerp towards the neighbour row)
                    b = coarse[k, i * kw + nj]
                    r1 = b + _QUARTER * (coarse[k, ni * kw + nj] - b)
                    fine[k, p] = r0 + _QUARTER * (r1 - r0)  # then columns


@njit(cache=True, error_model="numpy", inline="always")
def _sphere_in_frustum(x: np.float32, y: np.float32, z: np.float32, r: np.float32, bound: np.ndarray,
                       slack: np.ndarray, near: np.float32, far: np.float32) -> bool:
    """The torch path's ``_in_frustum`` for one camera-frame sphere."""
    if not (z + r > near and z - r < far):
        return False
    for side in range(4):
        coord = x if side < 2 else y
        dist = coord - bound[side] * z
        margin = -r * slack[side]
        if side % 2 == 0:
            if not dist >= margin:
                return False
        elif not dist <= -margin:
            return False
    return True


@njit(cache=True, error_model="numpy")
def _select_camera(view: np.ndarray, k: np.ndarray, height: int, width: int, frame: int, chunk_center: np.ndarray,
                   chunk_radius: np.ndarray, chunk_frame: np.ndarray, chunk_voxel0: np.ndarray,
                   chunk_levels: np.ndarray, level_start: np.ndarray, level_count: np.ndarray,
                   block_center: np.ndarray, block_radius: np.ndarray, near: np.float32, far: np.float32,
                   lod_target: np.float32) -> np.ndarray:
    """The blocks one camera draws (``view (3, 4)`` camera_from_world, ``k (3, 3)``), as the torch path's
    ``_select_blocks``: chunks culled and given their LOD level, that level's blocks culled; in the same order
    (chunk, then block). ``frame`` is the camera's video frame (-2: static content only)."""
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    bound = np.empty(4, dtype=np.float32)
    bound[0] = (np.float32(-0.5) - cx) / fx
    bound[1] = (np.float32(width - 0.5) - cx) / fx
    bound[2] = (np.float32(-0.5) - cy) / fy
    bound[3] = (np.float32(height - 0.5) - cy) / fy
    slack = np.empty(4, dtype=np.float32)
    for i in range(4):
        slack[i] = np.sqrt(_ONE + bound[i] * bound[i])
    out = np.empty(256, dtype=np.int64)
    n = 0
    inv_log_step = np.float32(_LOG_LOD_STEP)
    for ch in range(chunk_center.shape[0]):
        f = chunk_frame[ch]
        if f != -1 and f != frame:
            continue
        px, py, pz = chunk_center[ch, 0], chunk_center[ch, 1], chunk_center[ch, 2]
        x = ((view[0, 3] + px * view[0, 0]) + py * view[0, 1]) + pz * view[0, 2]
        y = ((view[1, 3] + px * view[1, 0]) + py * view[1, 1]) + pz * view[1, 2]
        z = ((view[2, 3] + px * view[2, 0]) + py * view[2, 1]) + pz * view[2, 2]
        r = chunk_radius[ch]
        if not _sphere_in_frustum(x, y, z, r, bound, slack, near, far):
            continue
        z_near = max(z - r, near)
        ratio = lod_target * z_near / (fx * chunk_voxel0[ch])
        level = int(np.floor(np.log(max(ratio, np.float32(1e-12))) / inv_log_step))
        level = min(max(level, 0), chunk_levels[ch] - 1)
        first = level_start[ch, level]
        for bk in range(first, first + level_count[ch, level]):
            px, py, pz = block_center[bk, 0], block_center[bk, 1], block_center[bk, 2]
            x = ((view[0, 3] + px * view[0, 0]) + py * view[0, 1]) + pz * view[0, 2]
            y = ((view[1, 3] + px * view[1, 0]) + py * view[1, 1]) + pz * view[1, 2]
            z = ((view[2, 3] + px * view[2, 0]) + py * view[2, 1]) + pz * view[2, 2]
            if _sphere_in_frustum(x, y, z, block_radius[bk], bound, slack, near, far):
                if n == out.shape[0]:
                    grown = np.empty(2 * n, dtype=np.int64)
                    grown[:n] = out
                    out = grown
                out[n] = bk
                n += 1
    return out[:n]


@njit(cache=True, error_model="numpy")
def _render_camera(xyz: np.ndarray, rgb: np.ndarray, blocks: np.ndarray, a: np.ndarray, height: int, width: int,
                   near: np.float32, far: np.float32, tol1: np.float32, soft: bool, fill_r: int, leak1: np.float32,
                   fill_holes: bool, out_rgb: np.ndarray, out_depth: np.ndarray, out_valid: np.ndarray) -> None:
    """One camera: ``blocks (n,)`` of ``xyz/rgb (3, NB, P)`` projected with ``a (3, 4)`` into ``out_rgb (H, W, 3)``
    uint8, ``out_depth (H, W)`` float32 and ``out_valid (H, W)`` bool."""
    hw = height * width
    p_size = xyz.shape[2]
    umax = np.float32(width - 0.5)
    vmax = np.float32(height - 0.5)
    lo = np.float32(-0.5)
    zbest = np.full(hw, _INF, dtype=np.float32)
    win = np.full(hw, -1, dtype=np.int64)  # winner (block row * P + slot) per pixel
    n = blocks.shape[0]
    drawn_pix = np.empty(n * p_size, dtype=np.int32)  # pixel of each point (-1: not drawn), for pass 2
    drawn_z = np.empty(n * p_size, dtype=np.float32)
    # pass 1: nearest point per pixel; ties go to the first point drawn (the torch path's packed-key minimum)
    for j in range(n):
        bk = blocks[j]
        for s in range(p_size):
            x, y, z = xyz[0, bk, s], xyz[1, bk, s], xyz[2, bk, s]
            zc = _fma(_fma(_fma(a[2, 3], x, a[2, 0]), y, a[2, 1]), z, a[2, 2])
            inv = _ONE / zc
            u = _fma(_fma(_fma(a[0, 3], x, a[0, 0]), y, a[0, 1]), z, a[0, 2]) * inv
            v = _fma(_fma(_fma(a[1, 3], x, a[1, 0]), y, a[1, 1]), z, a[1, 2]) * inv
            item = j * p_size + s
            drawn_pix[item] = -1
            if zc > near and zc < far and u > lo and u < umax and v > lo and v < vmax:
                # u, v > -0.5: the sums are >= 0, where truncation is floor (and cheaper than a floorf call)
                pix = int(v + _HALF) * width + int(u + _HALF)
                drawn_pix[item] = pix
                drawn_z[item] = zc
                if zc < zbest[pix]:
                    zbest[pix] = zc
                    win[pix] = item
    colour = np.zeros((3, hw), dtype=np.float32)
    if soft:
        # pass 2: every point within the tolerance of the nearest is averaged in (sums in drawing order)
        cnt = np.zeros(hw, dtype=np.float32)
        for item in range(n * p_size):
            pix = drawn_pix[item]
            if pix >= 0 and drawn_z[item] <= zbest[pix] * tol1:
                bk = blocks[item // p_size]
                s = item - (item // p_size) * p_size
                colour[0, pix] += rgb[0, bk, s]
                colour[1, pix] += rgb[1, bk, s]
                colour[2, pix] += rgb[2, bk, s]
                cnt[pix] += _ONE
        for p in range(hw):
            c = cnt[p] if cnt[p] > _ONE else _ONE
            for k in range(3):
                colour[k, p] = colour[k, p] / c
    else:
        for p in range(hw):
            if win[p] >= 0:
                bk = blocks[win[p] // p_size]
                s = win[p] % p_size
                for k in range(3):
                    colour[k, p] = rgb[k, bk, s]
    depth = zbest  # inf where nothing was drawn
    valid = np.empty(hw, dtype=np.bool_)
    for p in range(hw):
        valid[p] = win[p] >= 0
    if fill_r > 0:
        tmp = np.empty(hw, dtype=np.float32)
        closed = np.empty(hw, dtype=np.float32)
        _box_min_then_max(depth, height, width, fill_r, tmp, closed)
        weighted = np.empty((4, hw), dtype=np.float32)
        leak = np.zeros(hw, dtype=np.bool_)
        for p in range(hw):
            hit = valid[p]
            lk = hit and closed[p] < _INF and depth[p] > closed[p] * leak1
            leak[p] = lk
            g = _ONE if (hit and not lk) else _ZERO
            for k in range(3):
                weighted[k, p] = colour[k, p] * g
            weighted[3, p] = g
        mean = np.empty((4, hw), dtype=np.float32)
        for k in range(4):  # along H, then W
            _add_rows(weighted[k], tmp, height, width, fill_r)
            for i in range(height):
                _add_1d(tmp, mean[k], width, 1, i * width, fill_r)
        for p in range(hw):
            good = valid[p] and not leak[p]
            closable = closed[p] < _INF
            fill = closable and not good and mean[3, p] > _ZERO
            if fill:
                den = mean[3, p] if mean[3, p] > _EPS else _EPS
                for k in range(3):
                    colour[k, p] = mean[k, p] / den
                depth[p] = closed[p]
            elif leak[p]:
                depth[p] = _INF
            valid[p] = good or fill
    if fill_holes:
        holes = False
        for p in range(hw):
            if not valid[p]:
                holes = True
                break
        if holes:
            weight = np.empty(hw, dtype=np.float32)
            for p in range(hw):
                weight[p] = _ONE if valid[p] else _ZERO
            _push_pull(colour, weight, height, width)
    for p in range(hw):
        y = p // width
        x = p - y * width
        for k in range(3):
            c = colour[k, p]
            c = min(max(c, _ZERO), np.float32(255.0))
            out_rgb[y, x, k] = np.uint8(np.rint(c))
        out_valid[y, x] = valid[p]
        out_depth[y, x] = depth[p] if valid[p] else _ZERO


@njit(cache=True, error_model="numpy", parallel=True)
def render_select_fused_cpu(xyz: np.ndarray, rgb: np.ndarray, view: np.ndarray, kmat: np.ndarray, proj: np.ndarray,
                            frames: np.ndarray, chunk_center: np.ndarray, chunk_radius: np.ndarray,
                            chunk_frame: np.ndarray, chunk_voxel0: np.ndarray, chunk_levels: np.ndarray,
                            level_start: np.ndarray, level_count: np.ndarray, block_center: np.ndarray,
                            block_radius: np.ndarray, height: int, width: int, near: np.float32, far: np.float32,
                            lod_target: np.float32, tol1: np.float32, soft: bool, fill_r: int, leak1: np.float32,
                            fill_holes: bool, out_rgb: np.ndarray, out_depth: np.ndarray,
                            out_valid: np.ndarray) -> None:
    """Select (cull, LOD) and render B cameras in parallel, one camera per task.

    ``view (B, 3, 4)`` camera_from_world, ``kmat (B, 3, 3)``, ``proj (B, 3, 4)`` = ``K @ view``, ``frames (B,)``
    int64 video frame per camera (-2: static only); the cloud's arrays as in
    :class:`~inspatio_sim.world.splats.SplatCloud`; ``near, far, tol1, leak1`` float32 clip distances,
    ``1 + depth_tolerance``, ``1 + leak_threshold``; outputs ``(B, H, W, 3)`` uint8, ``(B, H, W)`` float32 and bool.
    """
    for c in prange(view.shape[0]):
        blocks = _select_camera(view[c], kmat[c], height, width, frames[c], chunk_center, chunk_radius, chunk_frame,
                                chunk_voxel0, chunk_levels, level_start, level_count, block_center, block_radius,
                                near, far, lod_target)
        _render_camera(xyz, rgb, blocks, proj[c], height, width, near, far, tol1, soft, fill_r, leak1, fill_holes,
                       out_rgb[c], out_depth[c], out_valid[c])


def _np(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view (copy only where needed): one compiled specialisation for every caller."""
    return t.contiguous().numpy()


def render_fused(cloud: SplatCloud, view: torch.Tensor, K: torch.Tensor, proj: torch.Tensor,
                 frames: torch.Tensor | None, height: int, width: int, cfg: RenderConfig) -> RenderOutput | None:
    """The whole pipeline (block selection included) as one kernel call; inputs checked by the caller.

    Args:
        cloud: The points (on CPU; CUDA goes to :mod:`inspatio_sim.render.fused_cuda`).
        view: ``(B, 3, 4)`` float32 camera_from_world ``[R^T | -R^T t]``.
        K: ``(B, 3, 3)`` float32 intrinsics.
        proj: ``(B, 3, 4)`` float32 ``K @ view``.
        frames: ``(B,)`` int64 video frame per camera, or ``None`` (static content only).

    Returns ``None`` only on CUDA under ``render.backend=auto`` when the kernels failed (the caller falls back).
    """
    if cloud.device.type == "cuda":
        from inspatio_sim.render.fused_cuda import render_fused_cuda

        return render_fused_cuda(cloud, view, K, proj, frames, height, width, cfg)
    b = proj.shape[0]
    fr = torch.full((b,), -2, dtype=torch.int64) if frames is None else frames.to(torch.int64).contiguous()
    rgb = torch.empty(b, height, width, 3, dtype=torch.uint8)
    depth = torch.empty(b, height, width, dtype=torch.float32)
    valid = torch.empty(b, height, width, dtype=torch.bool)
    render_select_fused_cpu(
        *(_np(t) for t in (cloud.xyz, cloud.rgb, view, K, proj, fr, cloud.chunk_center, cloud.chunk_radius,
                           cloud.chunk_frame, cloud.chunk_voxel0, cloud.chunk_levels, cloud.level_start,
                           cloud.level_count, cloud.block_center, cloud.block_radius)),
        int(height), int(width), np.float32(cfg.near), np.float32(cfg.far),
        np.float32(cfg.lod_target_px), np.float32(1.0 + cfg.depth_tolerance), cfg.depth_tolerance > 0,
        int(cfg.fill_radius), np.float32(1.0 + cfg.leak_threshold), bool(cfg.fill_holes), rgb.numpy(),
        depth.numpy(), valid.numpy())
    POLICY.resync()
    return RenderOutput(rgb=rgb, depth=depth, valid=valid)
