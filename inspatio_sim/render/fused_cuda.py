"""Fused CUDA render kernels (numba.cuda): the same stages as :mod:`inspatio_sim.render.fused`, one thread per point
or pixel.

Block selection (culling, LOD) runs in torch on the GPU (the torch path's ``_select_blocks``); then, on torch's
current stream, without host synchronisation:

1. ``_k_nearest``: per selected point, project; ``atomic.min`` of its depth into the pixel's nearest depth;
2. ``_k_winner``: per point at the nearest depth, ``atomic.min`` of its index (ties go to the first point, as the
   torch path's packed-key minimum);
3. ``_k_soft``: per point within the depth tolerance of the nearest, ``atomic.add`` of its colour and a count;
4. ``_k_resolve``: per pixel, the averaged (or the winner's) colour;
5. ``_k_minmax`` twice (min then max over the window: the depth closing), ``_k_leak`` and ``_k_boxsum`` and
   ``_k_fill``: the gap fill;
6. ``_k_down`` / ``_k_up`` per pyramid level: push-pull hole fill (every level down to 1 pixel: where an image has
   no holes the result equals its colour, so no host-side test is needed);
7. ``_k_output``: uint8 colour, depth, validity.

Sums (soft depth test, window sums) use atomics or another order than the CPU, so colours match the torch path up to
float rounding (the tests hold PSNR >= 60 dB, identical validity masks); depth is the same nearest-point depth.

Status: this file is verified on CPU with numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``;
tests/render/test_fused_cuda.py) against the torch path; on a real GPU it is exercised by ``make gpu-check``
(tests/render/test_cuda.py) where a GPU is present.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from inspatio_sim.render.splat import RenderConfig, RenderOutput
    from inspatio_sim.world.splats import SplatCloud

THREADS = 256
"""Threads per CUDA block of every kernel."""


def _simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


_failed: list[str] = []
"""Why the kernels failed at their first use in this process (e.g. no NVVM to compile them), if they did."""


def cuda_unavailable() -> str | None:
    """``None`` when the fused CUDA kernels can run here, else why not."""
    return _failed[0] if _failed else _cuda_unavailable()


@cache
def _cuda_unavailable() -> str | None:
    if not _simulated() and not torch.cuda.is_available():
        return "no CUDA device on this machine"
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - numba is a dependency
        return f"numba.cuda cannot be imported ({e})"
    if not _simulated() and not cuda.is_available():
        return "numba.cuda finds no usable CUDA driver / toolkit (install numba-cuda and the CUDA runtime)"
    return None


@cache
def _kernels() -> dict[str, Any]:
    """The kernels (compiled lazily by numba at their first launch)."""
    from inspatio_sim.render import cuda_kernels

    return {name: getattr(cuda_kernels, name) for name in dir(cuda_kernels) if name.startswith("_k_")}


def _arr(t: torch.Tensor) -> Any:
    """A tensor as a numba array: device view on CUDA, numpy under the simulator."""
    if t.device.type == "cpu":
        return t.numpy()
    from numba import cuda

    return cuda.as_cuda_array(t)


def _launch(kernel: Any, n: int, *args: Any) -> None:
    if n <= 0:
        return
    grid = (n + THREADS - 1) // THREADS
    if _simulated():
        kernel[grid, THREADS](*args)
        return
    from numba import cuda

    stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
    kernel[grid, THREADS, stream](*args)


def render_fused_cuda(cloud: SplatCloud, view: torch.Tensor, K: torch.Tensor, proj: torch.Tensor,
                      frames: torch.Tensor | None, height: int, width: int,
                      cfg: RenderConfig) -> RenderOutput | None:
    """The fused pipeline on CUDA (or on CPU tensors under numba's CUDA simulator); arguments as
    :func:`inspatio_sim.render.fused.render_fused`. ``None`` when the kernels failed under ``render.backend=auto``
    (logged once; the caller renders with the torch path, as will later calls)."""

    from inspatio_sim.errors import RenderError

    why = cuda_unavailable()
    if why is not None:
        raise RenderError(f"render.backend=fused is not available on device '{cloud.device}': {why}")
    try:
        return _render(cloud, view, K, proj, frames, height, width, cfg)
    except Exception as e:  # compiling or launching the kernels failed (driver, NVVM): say so once, then fall back
        if cfg.backend != "auto":
            raise RenderError(f"render.backend=fused failed on device '{cloud.device}': {e}") from e
        _failed.append(f"the fused CUDA kernels failed ({type(e).__name__}: {e})")
        logging.getLogger(__name__).warning("%s; rendering with render.backend=torch", _failed[0])
        return None


def _render(cloud: SplatCloud, view: torch.Tensor, K: torch.Tensor, proj: torch.Tensor,
            frames: torch.Tensor | None, height: int, width: int, cfg: RenderConfig) -> RenderOutput:
    from inspatio_sim.render.splat import RenderOutput, _select_blocks

    k = _kernels()
    dev = cloud.device
    b = proj.shape[0]
    n_pix = b * height * width
    cam, block = _select_blocks(cloud, view, K, height, width, frames, cfg)
    p_size = cloud.block_size
    n_items = block.shape[0] * p_size
    f32 = torch.float32
    zbest = torch.full((n_pix,), float("inf"), dtype=f32, device=dev)
    win = torch.full((n_pix,), 2**62, dtype=torch.int64, device=dev)
    item_pix = torch.empty(n_items, dtype=torch.int64, device=dev)
    item_z = torch.empty(n_items, dtype=f32, device=dev)
    xyz, rgb_pts = _arr(cloud.xyz.contiguous()), _arr(cloud.rgb.contiguous())
    blocks_a, pix_a, z_a, zb_a, win_a = (_arr(t) for t in (block.contiguous(), item_pix, item_z, zbest, win))
    _launch(k["_k_nearest"], n_items, xyz, blocks_a, _arr(cam.contiguous()), _arr(proj.contiguous()), height, width,
            np.float32(cfg.near), np.float32(cfg.far), zb_a, pix_a, z_a)
    _launch(k["_k_winner"], n_items, pix_a, z_a, zb_a, win_a)
    soft = cfg.depth_tolerance > 0
    acc = torch.zeros(4, n_pix, dtype=f32, device=dev)
    if soft:
        _launch(k["_k_soft"], n_items, pix_a, z_a, zb_a, np.float32(1.0 + cfg.depth_tolerance), rgb_pts, blocks_a,
                _arr(acc))
    colour = torch.empty(3, n_pix, dtype=f32, device=dev)
    hit = torch.empty(n_pix, dtype=torch.bool, device=dev)
    _launch(k["_k_resolve"], n_pix, _arr(acc), win_a, rgb_pts, blocks_a, soft, _arr(colour), _arr(hit), n_pix)
    depth = zbest
    valid = hit
    if cfg.fill_radius > 0:
        r = int(cfg.fill_radius)
        tmp = torch.empty(n_pix, dtype=f32, device=dev)
        closed = torch.empty(n_pix, dtype=f32, device=dev)
        _launch(k["_k_minmax"], n_pix, zb_a, _arr(tmp), height, width, r, True, n_pix)
        _launch(k["_k_minmax"], n_pix, _arr(tmp), _arr(closed), height, width, r, False, n_pix)
        weighted = torch.empty(4, n_pix, dtype=f32, device=dev)
        leak = torch.empty(n_pix, dtype=torch.bool, device=dev)
        _launch(k["_k_leak"], n_pix, zb_a, _arr(closed), _arr(hit), np.float32(1.0 + cfg.leak_threshold),
                _arr(colour), _arr(weighted), _arr(leak), n_pix)
        mean = torch.empty(4, n_pix, dtype=f32, device=dev)
        _launch(k["_k_boxsum"], n_pix, _arr(weighted), _arr(mean), height, width, r, n_pix)
        valid = torch.empty(n_pix, dtype=torch.bool, device=dev)
        _launch(k["_k_fill"], n_pix, zb_a, _arr(closed), _arr(hit), _arr(leak), _arr(mean), _arr(colour),
                _arr(valid), n_pix)
    if cfg.fill_holes:
        levels = [(colour, valid.to(f32), height, width)]
        h, w = height, width
        while min(h, w) > 1:
            nh, nw = (h + 1) // 2, (w + 1) // 2
            ncol = torch.empty(3, b * nh * nw, dtype=f32, device=dev)
            nwt = torch.empty(b * nh * nw, dtype=f32, device=dev)
            col, wt = levels[-1][0], levels[-1][1]
            _launch(k["_k_down"], b * nh * nw, _arr(col), _arr(wt), h, w, _arr(ncol), _arr(nwt), nh, nw, b * nh * nw)
            levels.append((ncol, nwt, nh, nw))
            h, w = nh, nw
        for lvl in range(len(levels) - 2, -1, -1):
            fine, fwt, fh, fw = levels[lvl]
            coarse, _, kh, kw = levels[lvl + 1]
            _launch(k["_k_up"], b * fh * fw, _arr(fine), _arr(fwt), fh, fw, _arr(coarse), kh, kw, b * fh * fw)
    out_rgb = torch.empty(b, height, width, 3, dtype=torch.uint8, device=dev)
    out_depth = torch.empty(b, height, width, dtype=f32, device=dev)
    _launch(k["_k_output"], n_pix, _arr(colour), _arr(depth), _arr(valid), _arr(out_rgb.view(-1)),
            _arr(out_depth.view(-1)), n_pix)
    return RenderOutput(rgb=out_rgb, depth=out_depth, valid=valid.view(b, height, width))
