"""Depth where matching fails: complete textureless regions from what is known, one plane per image segment.

Plane-sweep matching finds depth on texture and at edges, not on the faces of plain walls, floors and furniture.
Those faces are (nearly) planar and bounded by image edges, so per frame:

1. the image is cut into segments along colour edges (connected regions without a colour step above
   ``edge_tol`` between adjacent pixels; smooth shading never makes one): an occlusion boundary between two plain
   surfaces is a colour edge (different shading or paint), so a segment never spans one;
2. in each segment that lacks depth, a plane is fitted (RANSAC in the camera frame, then least squares) to the
   *anchors*: confident MVS depth and sparse SfM points inside the segment. On a plain face these sit on its rim,
   where the matching window sees the face's edge; an edge moves with the surface that owns it (the occluder), so
   the rim of a face in front carries that face's depth, and the depth a background face inherits at an occluder's
   edge (fattening) is outvoted by RANSAC;
3. the plane is accepted only when it is well supported (enough inliers, a high inlier fraction, anchors spread
   over a good part of the segment, not seen edge-on) and fills the segment's missing pixels;
4. every completed pixel is verified in the neighbouring views: a completed point that would hide a confident
   surface of a neighbour (it lies clearly in front of what that neighbour saw through the same pixel) is free
   space there and is dropped; so is one whose colour disagrees with the neighbours that see it unoccluded.

Completed depth gets a confidence in ``[0.5, 0.75)`` (``0.5 + 0.25 x`` the product of the plane's inlier fraction
and the fraction of agreeing views), below that of good matches, so the World still uses it at its default
threshold while fusing it with a lower weight. Segments without interior anchors (the sky through a window, a door
opening whose rim has no depth) stay without depth: they go to the World's backdrop, never into its collision
field. A uniform view through a window framed by a wall is geometrically ambiguous (the wall plane explains every
view of it) and may be completed as part of the wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inspatio_sim.errors import ConfigError

COMPLETED_CONFIDENCE = (0.5, 0.25)
"""Completed depth's confidence is ``a + b * quality`` with quality in [0, 1] (see the module docstring)."""


@dataclass
class CompletionConfig:
    """Settings of the completion (``recon.mvs.complete_*`` keys set ``edge_tol``, ``min_anchors``, ``plane_tol``).

    Attributes:
        edge_tol: Colour step (0-255, largest over R, G, B) between adjacent pixels that separates segments.
        min_segment: Segments smaller than this many pixels are not completed.
        rim_px: Anchors closer than this to the segment's rim are not used (0: use the rim; see above).
        min_anchors: Plane inliers needed.
        min_inlier_fraction: Fraction of the anchors that must lie on the plane.
        min_spread: Anchor inliers must span at least this fraction of the segment's extent along both image axes.
        plane_tol: RANSAC inlier tolerance, relative to depth.
        min_incidence_deg: Planes seen more edge-on than this (angle between ray and plane) are rejected.
        colour_tol: Largest mean absolute colour difference (0-255) to a neighbour that sees the point unoccluded.
        free_space_rel: A completed point closer than ``1 - free_space_rel`` times a neighbour's confident depth at
            its projection would hide that surface: a violation.
    """

    edge_tol: float = 8.0
    min_segment: int = 150
    rim_px: int = 0
    min_anchors: int = 12
    min_inlier_fraction: float = 0.7
    min_spread: float = 0.25
    plane_tol: float = 0.01
    min_incidence_deg: float = 5.0
    colour_tol: float = 14.0
    free_space_rel: float = 0.05

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid key."""
        checks = {
            "edge_tol": self.edge_tol > 0, "min_segment": self.min_segment >= 1,
            "rim_px": self.rim_px >= 0, "min_anchors": self.min_anchors >= 3,
            "min_inlier_fraction": 0 < self.min_inlier_fraction <= 1, "min_spread": 0 <= self.min_spread <= 1,
            "plane_tol": self.plane_tol > 0, "min_incidence_deg": 0 <= self.min_incidence_deg < 90,
            "colour_tol": self.colour_tol > 0, "free_space_rel": 0 <= self.free_space_rel < 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"depth completion setting {key} is out of range: {getattr(self, key)!r} "
                                  f"(recon.mvs.complete_{key} where it is a key)")


def _rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` camera rays with z = 1 of the pixel centres (integer coordinates)."""
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)


def segment(img: np.ndarray, edge_tol: float) -> np.ndarray:
    """Segments ``(H, W)`` int of an RGB image: 4-connected regions between colour edges (label 0 = edge pixel).

    A pixel is an edge when its colour differs from a 4-neighbour by more than ``edge_tol`` in some channel.
    """
    f = img.astype(np.float32)
    edge = np.zeros(img.shape[:2], bool)
    gx = np.abs(np.diff(f, axis=1)).max(-1) > edge_tol
    gy = np.abs(np.diff(f, axis=0)).max(-1) > edge_tol
    edge[:, :-1] |= gx
    edge[:, 1:] |= gx
    edge[:-1] |= gy
    edge[1:] |= gy
    return ndimage.label(~edge)[0]


def fit_plane(X: np.ndarray, tol: float, rng: np.random.Generator, iters: int = 64
              ) -> tuple[np.ndarray, float, np.ndarray] | None:
    """RANSAC plane ``n . X = c`` (unit ``n``) through camera-frame points ``X (M, 3)`` with a relative tolerance.

    Returns ``(n, c, inliers (M,) bool)`` after a least-squares refit on the inliers, or ``None`` (degenerate).
    """
    m = len(X)
    if m < 3:
        return None
    z = X[:, 2]
    best: np.ndarray | None = None
    for _ in range(iters):
        a, b, c = X[rng.choice(m, 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        inl = np.abs(X @ n - n @ a) < tol * z
        if best is None or inl.sum() > best.sum():
            best = inl
    if best is None or best.sum() < 3:
        return None
    P = X[best]
    centre = P.mean(0)
    n = np.linalg.svd(P - centre, full_matrices=False)[2][-1]
    c = float(n @ centre)
    inl = np.abs(X @ n - c) < tol * z
    return n, c, inl


def _complete_frame(img: np.ndarray, depth: np.ndarray, conf: np.ndarray, sparse: np.ndarray | None,
                    rays: np.ndarray, min_conf: float, cfg: CompletionConfig, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Plane-completed depth ``(H, W)`` (0 where not completed) and its plane quality ``(H, W)`` for one frame."""
    h, w = depth.shape
    seg = segment(img, cfg.edge_tol)
    anchor_d = np.where(conf >= min_conf, depth, 0.0)
    if sparse is not None and len(sparse):
        s = np.asarray(sparse, np.float64).reshape(-1, 3)
        u, v = np.rint(s[:, 0]).astype(int), np.rint(s[:, 1]).astype(int)
        ok = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (s[:, 2] > 0) & (anchor_d[v.clip(0, h - 1), u.clip(0, w - 1)]
                                                                          <= 0)
        anchor_d[v[ok], u[ok]] = s[ok, 2]
    # anchors away from each segment's rim: a pixel whose (2 rim_px + 1)^2 neighbourhood is all one segment
    if cfg.rim_px > 0:
        k = 2 * cfg.rim_px + 1
        interior = (ndimage.maximum_filter(seg, k) == seg) & (ndimage.minimum_filter(seg, k) == seg)
    else:
        interior = np.ones_like(seg, dtype=bool)
    out = np.zeros((h, w), np.float64)
    quality = np.zeros((h, w), np.float64)
    missing = depth <= 0
    n_seg = int(seg.max()) + 1
    area = np.bincount(seg.ravel(), minlength=n_seg)
    n_missing = np.bincount(seg.ravel(), weights=missing.ravel(), minlength=n_seg)
    anchors = (anchor_d > 0) & interior
    n_anchor = np.bincount(seg.ravel(), weights=anchors.ravel(), minlength=n_seg)
    area[0] = 0  # edge pixels belong to no segment
    todo = np.nonzero((area >= cfg.min_segment) & (n_missing > 0) & (n_anchor >= cfg.min_anchors))[0]
    if not len(todo):
        return out, quality
    slices = [None, *ndimage.find_objects(seg)]
    sin_min = np.sin(np.deg2rad(cfg.min_incidence_deg))
    for s_id in todo:
        sl = slices[s_id]
        mask = seg[sl] == s_id
        a_mask = mask & anchors[sl]
        vs, us = np.nonzero(a_mask)
        X = rays[sl][a_mask] * anchor_d[sl][a_mask][:, None]
        fit = fit_plane(X, cfg.plane_tol, rng)
        if fit is None:
            continue
        n, c, inl = fit
        if inl.sum() < cfg.min_anchors or inl.mean() < cfg.min_inlier_fraction:
            continue
        sv, su = np.nonzero(mask)
        ext_v, ext_u = max(np.ptp(sv), 1), max(np.ptp(su), 1)
        if np.ptp(vs[inl]) < cfg.min_spread * ext_v or np.ptp(us[inl]) < cfg.min_spread * ext_u:
            continue  # anchors bunched in a corner: the plane would be extrapolated far
        fill = mask & missing[sl]
        r = rays[sl][fill]
        nr = r @ n
        d = np.where(np.abs(nr) > 1e-9, c / np.where(np.abs(nr) > 1e-9, nr, 1.0), 0.0)
        sin_inc = np.abs(nr) / np.linalg.norm(r, axis=1)
        d = np.where((d > 0) & (sin_inc >= sin_min), d, 0.0)
        # no extrapolation beyond the anchors' depth range (a plane fitted to a far wall stays at the wall)
        za = X[inl, 2]
        d = np.where((d >= 0.8 * za.min()) & (d <= 1.25 * za.max()), d, 0.0)
        block = out[sl]
        block[fill] = d
        qb = quality[sl]
        qb[fill] = np.where(d > 0, inl.mean(), 0.0)
    return out, quality


def _verify(i: int, comp: np.ndarray, frames: np.ndarray, K: np.ndarray, poses: np.ndarray, depth: np.ndarray,
            conf: np.ndarray, nbrs: np.ndarray, min_conf: float, cfg: CompletionConfig, rays: np.ndarray
            ) -> np.ndarray:
    """Fraction ``(H, W)`` of the neighbours that see each completed pixel of frame ``i`` and agree (NaN = reject).

    A neighbour *sees* the point when it projects inside its image in front of it; it *disagrees* when the point
    lies clearly in front of the neighbour's confident depth there (free space) or its colour differs by more than
    ``colour_tol`` while the point is not hidden behind the neighbour's surface.
    """
    h, w = comp.shape
    sel = comp > 0
    out = np.full((h, w), np.nan)
    if not sel.any():
        return out
    Xc = rays[sel] * comp[sel][:, None]
    Xw = Xc @ poses[i, :3, :3].T + poses[i, :3, 3]
    col_i = frames[i][sel].astype(np.float64)
    seen = np.zeros(len(Xw))
    agree = np.zeros(len(Xw))
    bad = np.zeros(len(Xw), bool)
    for j in nbrs:
        Xj = (Xw - poses[j, :3, 3]) @ poses[j, :3, :3]
        z = Xj[:, 2]
        zs = np.where(z > 1e-6, z, 1e-6)
        u = np.rint(K[0, 0] * Xj[:, 0] / zs + K[0, 2]).astype(int)
        v = np.rint(K[1, 1] * Xj[:, 1] / zs + K[1, 2]).astype(int)
        inside = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        uu, vv = u.clip(0, w - 1), v.clip(0, h - 1)
        dj = np.where(conf[j][vv, uu] >= min_conf, depth[j][vv, uu], 0.0)
        free = inside & (dj > 0) & (z < (1.0 - cfg.free_space_rel) * dj)
        hidden = inside & (dj > 0) & (z > (1.0 + cfg.free_space_rel) * dj)
        visible = inside & ~hidden
        colour_ok = np.abs(frames[j][vv, uu].astype(np.float64) - col_i).mean(1) <= cfg.colour_tol
        bad |= free
        seen += visible
        agree += visible & colour_ok
    frac = np.where(seen > 0, agree / np.maximum(seen, 1), 0.0)
    frac = np.where(bad | (seen == 0) | (frac < 0.5), np.nan, frac)
    out[sel] = frac
    return out


def complete_depth(frames: np.ndarray, K: np.ndarray, poses: np.ndarray, depth: np.ndarray, confidence: np.ndarray,
                   sparse: list[np.ndarray] | None, neighbors: np.ndarray, config: CompletionConfig,
                   min_confidence: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complete the depth of textureless regions (see the module docstring).

    Args:
        frames: ``(N, H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` intrinsics (pixels).
        poses: ``(N, 4, 4)`` ``T_world_camera`` (OpenCV camera, metres).
        depth: ``(N, H, W)`` float32 z-depth in metres from matching, 0 = none.
        confidence: ``(N, H, W)`` float32 in [0, 1].
        sparse: Per frame ``(M_i, 3)`` ``(u, v, z)`` SfM points (pixels, metres) or ``None``.
        neighbors: ``(N, V)`` int neighbour frames of each frame (for the verification).
        config: :class:`CompletionConfig`.
        min_confidence: Depth at or above this confidence is an anchor (and trusted by the verification).
        seed: RANSAC seed.

    Returns:
        ``depth (N, H, W)`` float32, ``confidence (N, H, W)`` float32 (completed pixels in [0.5, 0.75)), and
        ``completed (N, H, W)`` bool.
    """
    config.validate()
    N, H, W = depth.shape
    rng = np.random.default_rng(seed)
    rays = _rays(K, H, W)
    comp = np.zeros((N, H, W))
    qual = np.zeros((N, H, W))
    for i in range(N):
        comp[i], qual[i] = _complete_frame(frames[i], depth[i], confidence[i], None if sparse is None else sparse[i],
                                           rays, min_confidence, config, rng)
    out_d, out_c = depth.astype(np.float32).copy(), confidence.astype(np.float32).copy()
    completed = np.zeros((N, H, W), bool)
    for i in range(N):
        frac = _verify(i, comp[i], frames, K, poses, depth, confidence, neighbors[i], min_confidence, config, rays)
        ok = np.isfinite(frac)
        a, b = COMPLETED_CONFIDENCE
        out_d[i][ok] = comp[i][ok]
        out_c[i][ok] = a + b * np.minimum(qual[i][ok] * frac[ok], 0.999)
        completed[i] = ok
    return out_d, out_c, completed
