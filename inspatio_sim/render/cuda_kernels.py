"""numba.cuda kernels of :mod:`inspatio_sim.render.fused_cuda` (module level, so numba's CUDA simulator can run
them too; imported only when the fused CUDA backend is used)."""

import math

import numpy as np
from numba import cuda

inf = np.float32(np.inf)


@cuda.jit
def _k_nearest(xyz, blocks, cams, proj, height, width, near, far, zbest, item_pix, item_z):
    i = cuda.grid(1)
    p_size = xyz.shape[2]
    if i >= blocks.shape[0] * p_size:
        return
    j = i // p_size
    s = i - j * p_size
    bk = blocks[j]
    c = cams[j]
    x, y, z = xyz[0, bk, s], xyz[1, bk, s], xyz[2, bk, s]
    zc = ((proj[c, 2, 3] + x * proj[c, 2, 0]) + y * proj[c, 2, 1]) + z * proj[c, 2, 2]
    inv = np.float32(1.0) / zc
    u = (((proj[c, 0, 3] + x * proj[c, 0, 0]) + y * proj[c, 0, 1]) + z * proj[c, 0, 2]) * inv
    v = (((proj[c, 1, 3] + x * proj[c, 1, 0]) + y * proj[c, 1, 1]) + z * proj[c, 1, 2]) * inv
    item_pix[i] = -1
    if (zc > near and zc < far and u > np.float32(-0.5) and u < np.float32(width - 0.5)
            and v > np.float32(-0.5) and v < np.float32(height - 0.5)):
        pix = (c * height + math.floor(v + np.float32(0.5))) * width + math.floor(u + np.float32(0.5))
        item_pix[i] = pix
        item_z[i] = zc
        cuda.atomic.min(zbest, pix, zc)

@cuda.jit
def _k_winner(item_pix, item_z, zbest, win):
    i = cuda.grid(1)
    if i >= item_pix.shape[0]:
        return
    pix = item_pix[i]
    if pix >= 0 and item_z[i] == zbest[pix]:
        cuda.atomic.min(win, pix, i)

@cuda.jit
def _k_soft(item_pix, item_z, zbest, tol1, xyz_rgb, blocks, acc):
    i = cuda.grid(1)
    if i >= item_pix.shape[0]:
        return
    pix = item_pix[i]
    if pix >= 0 and item_z[i] <= zbest[pix] * tol1:
        p_size = xyz_rgb.shape[2]
        j = i // p_size
        bk = blocks[j]
        s = i - j * p_size
        for k in range(3):
            cuda.atomic.add(acc, (k, pix), xyz_rgb[k, bk, s])
        cuda.atomic.add(acc, (3, pix), np.float32(1.0))

@cuda.jit
def _k_resolve(acc, win, rgb, blocks, soft, colour, hit, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    w = win[p]
    hit[p] = w < 2**62
    if soft:
        c = acc[3, p] if acc[3, p] > np.float32(1.0) else np.float32(1.0)
        for k in range(3):
            colour[k, p] = acc[k, p] / c
    else:
        for k in range(3):
            colour[k, p] = np.float32(0.0)
        if w < 2**62:
            p_size = rgb.shape[2]
            j = w // p_size
            for k in range(3):
                colour[k, p] = rgb[k, blocks[j], w - j * p_size]

@cuda.jit
def _k_minmax(src, dst, height, width, r, use_min, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    hw = height * width
    b = p // hw
    y = (p - b * hw) // width
    x = p - b * hw - y * width
    s = src[p]
    for yy in range(max(y - r, 0), min(y + r, height - 1) + 1):
        for xx in range(max(x - r, 0), min(x + r, width - 1) + 1):
            t = src[b * hw + yy * width + xx]
            s = min(s, t) if use_min else max(s, t)
    dst[p] = s

@cuda.jit
def _k_leak(depth, closed, hit, leak1, colour, weighted, leak, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    lk = hit[p] and closed[p] < inf and depth[p] > closed[p] * leak1
    leak[p] = lk
    g = np.float32(1.0) if (hit[p] and not lk) else np.float32(0.0)
    for k in range(3):
        weighted[k, p] = colour[k, p] * g
    weighted[3, p] = g

@cuda.jit
def _k_boxsum(weighted, mean, height, width, r, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    hw = height * width
    b = p // hw
    y = (p - b * hw) // width
    x = p - b * hw - y * width
    for k in range(4):
        s = np.float32(0.0)
        for yy in range(max(y - r, 0), min(y + r, height - 1) + 1):
            for xx in range(max(x - r, 0), min(x + r, width - 1) + 1):
                s += weighted[k, b * hw + yy * width + xx]
        mean[k, p] = s

@cuda.jit
def _k_fill(depth, closed, hit, leak, mean, colour, valid, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    good = hit[p] and not leak[p]
    fill = closed[p] < inf and not good and mean[3, p] > np.float32(0.0)
    if fill:
        den = mean[3, p] if mean[3, p] > np.float32(1e-6) else np.float32(1e-6)
        for k in range(3):
            colour[k, p] = mean[k, p] / den
        depth[p] = closed[p]
    elif leak[p]:
        depth[p] = inf
    valid[p] = good or fill

@cuda.jit
def _k_down(col, wt, h, w, ncol, nwt, nh, nw, n_out):
    # col (3, B*h*w), wt (B*h*w,) -> ncol (3, B*nh*nw), nwt: weighted 2x2 sums, zero padding
    q = cuda.grid(1)
    if q >= n_out:
        return
    b = q // (nh * nw)
    y = (q - b * nh * nw) // nw
    x = q - b * nh * nw - y * nw
    ws = np.float32(0.0)
    for c in range(4):
        sy = 2 * y + (1 if c == 1 or c == 3 else 0)
        sx = 2 * x + (1 if c >= 2 else 0)
        if sy < h and sx < w:
            ws += wt[b * h * w + sy * w + sx]
    nwt[q] = ws
    den = ws if ws > np.float32(1e-6) else np.float32(1e-6)
    for k in range(3):
        s = np.float32(0.0)
        for c in range(4):
            sy = 2 * y + (1 if c == 1 or c == 3 else 0)
            sx = 2 * x + (1 if c >= 2 else 0)
            if sy < h and sx < w:
                f = b * h * w + sy * w + sx
                s += col[k, f] * wt[f]
        ncol[k, q] = s / den

@cuda.jit
def _k_up(fine, fwt, fh, fw, coarse, kh, kw, n_out):
    q = cuda.grid(1)
    if q >= n_out:
        return
    if fwt[q] > np.float32(0.0):
        return
    b = q // (fh * fw)
    yy = (q - b * fh * fw) // fw
    xx = q - b * fh * fw - yy * fw
    i = yy // 2
    ni = min(max(i - 1 if yy % 2 == 0 else i + 1, 0), kh - 1)
    j = xx // 2
    nj = min(max(j - 1 if xx % 2 == 0 else j + 1, 0), kw - 1)
    base = b * kh * kw
    for k in range(3):
        a = coarse[k, base + i * kw + j]
        r0 = a + np.float32(0.25) * (coarse[k, base + ni * kw + j] - a)
        c = coarse[k, base + i * kw + nj]
        r1 = c + np.float32(0.25) * (coarse[k, base + ni * kw + nj] - c)
        fine[k, q] = r0 + np.float32(0.25) * (r1 - r0)

@cuda.jit
def _k_output(colour, depth, valid, out_rgb, out_depth, n_pix):
    p = cuda.grid(1)
    if p >= n_pix:
        return
    for k in range(3):
        c = min(max(colour[k, p], np.float32(0.0)), np.float32(255.0))
        f = math.floor(c)  # round half to even, as torch.round
        d = c - f
        if d > np.float32(0.5) or (d == np.float32(0.5) and f % 2 == 1):
            f += 1
        out_rgb[p * 3 + k] = np.uint8(f)
    out_depth[p] = depth[p] if valid[p] else np.float32(0.0)

