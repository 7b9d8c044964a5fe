"""Dynamic masks: pixels whose observed optical flow disagrees with the flow a static world would induce.

For every frame ``i`` and neighbour ``j = i +- g`` (``g`` in ``DynamicConfig.gaps``) the observed flow ``F_ij`` (OpenCV
DIS) is compared with the *rigid* flow that the depth of frame ``i`` and the relative camera motion ``T_j^-1 T_i``
predict. Depth is never trusted exactly: each pixel gets a depth *interval* (minimum and maximum of the valid depth in
a small window, widened by a relative tolerance that grows as confidence drops), which maps to a segment of the
epipolar line in frame ``j``; the residual is the distance of the observed correspondence ``x + F_ij(x)`` to that
segment. So depth noise, blurred depth edges and small pose errors do not raise false alarms, while a moving object
(whose correspondence leaves the epipolar segment) does. The observed correspondence comes from DIS run between frame
``i`` and frame ``j`` pre-warped by the rigid motion of a smoothed, hole-filled copy of frame ``i``'s depth (rotation
only where there is none): DIS then only searches the small residual motion, where on raw frames its coarse-to-fine
search fails on the tens of pixels a handheld camera moves per frame.

Pixels with no valid depth anywhere in their window (sky, MVS holes) are decided from the flow alone: their depth
interval is ``[min_depth, inf)``, i.e. the whole epipolar ray, and they are dynamic only when the observed
correspondence leaves the epipolar line itself (motion along the epipolar line is invisible there). Small holes
inside a dynamic region are filled by the morphological clean-up.

A pair gives no evidence at a pixel when the flow fails the forward-backward check (occlusions, flow errors), when
the correspondence leaves frame ``j``, when the static point would be hidden behind frame ``j``'s depth, or when it
would lie behind camera ``j``. Pairs are combined by averaging the clipped normalised residuals (residual /
threshold) over the pairs with evidence; the threshold is ``threshold_px + threshold_rel * |rigid flow|``.

``python -m inspatio_sim.recon.dynamic [--scene room] [--degrade]`` measures IoU against the oracle's masks.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy import ndimage

from inspatio_sim import se3
from inspatio_sim.camera import pixel_rays, project_points
from inspatio_sim.errors import ConfigError, SceneError
from inspatio_sim.metrics import mask_scores
from inspatio_sim.validation import check_intrinsics, check_poses

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class DynamicConfig:
    """How dynamic masks are detected (hydra node ``recon.dynamic``).

    Attributes:
        gaps: Frame distances of the neighbours compared with each frame (both directions); larger gaps give more
            parallax and object motion per pair.
        flow_preset: OpenCV DIS preset: ``ultrafast``, ``fast`` or ``medium``.
        flow_min_side: DIS refines the flow down to the finest pyramid level (at most the preset's) whose shorter
            image side still has this many pixels; small videos are thus refined at full resolution.
        threshold_px: Residual (pixels) always tolerated between observed and rigid flow.
        threshold_rel: Extra tolerance as a fraction of the rigid flow magnitude.
        depth_tolerance: Relative depth uncertainty at confidence 1 (divided by the confidence below it).
        depth_window: Odd window (pixels) whose valid depth min/max bound each pixel's depth interval.
        min_confidence: Depth with lower confidence is treated as missing.
        min_depth: Nearest depth (metres) assumed for pixels without any depth in their window.
        fb_px: Forward-backward check: flow round trips further off than ``fb_px + fb_rel * (|F| + |B|)``
            pixels give no evidence.
        fb_rel: Relative part of the forward-backward tolerance.
        occlusion_tolerance: A static point further than this fraction behind frame j's depth counts as hidden.
        score_clip: Normalised residuals are clipped to this before averaging over pairs.
        open_radius: Radius (pixels) of the morphological opening that removes speckles (0 = off).
        close_radius: Radius (pixels) of the closing that joins fragments (0 = off).
        min_area: Connected components smaller than this fraction of the image are dropped.
        fill_holes: Fill enclosed holes of each component (untextured or occluded object interiors).
    """

    gaps: list[int] = field(default_factory=lambda: [1, 3])
    flow_preset: str = "medium"
    flow_min_side: int = 120
    threshold_px: float = 1.0
    threshold_rel: float = 0.03
    depth_tolerance: float = 0.05
    depth_window: int = 5
    min_confidence: float = 0.1
    min_depth: float = 0.2
    fb_px: float = 1.0
    fb_rel: float = 0.03
    occlusion_tolerance: float = 0.1
    score_clip: float = 2.0
    open_radius: int = 1
    close_radius: int = 2
    min_area: float = 0.002
    fill_holes: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a value outside its range."""
        gaps = list(self.gaps)
        if not gaps or any(int(g) != g or g < 1 for g in gaps):
            raise ConfigError(f"recon.dynamic.gaps must be a non-empty list of integers >= 1, got {self.gaps}")
        if self.flow_preset not in _PRESETS:
            raise ConfigError(f"recon.dynamic.flow_preset must be one of {', '.join(_PRESETS)}, got "
                              f"'{self.flow_preset}'")
        for key in ("threshold_px", "min_depth", "score_clip", "flow_min_side"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"recon.dynamic.{key} must be > 0, got {getattr(self, key)}")
        for key in ("threshold_rel", "depth_tolerance", "fb_px", "fb_rel", "occlusion_tolerance"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"recon.dynamic.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.min_confidence <= 1:
            raise ConfigError(f"recon.dynamic.min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.depth_window < 1 or self.depth_window % 2 == 0:
            raise ConfigError(f"recon.dynamic.depth_window must be an odd integer >= 1, got {self.depth_window}")
        for key in ("open_radius", "close_radius"):
            if getattr(self, key) < 0:
                raise ConfigError(f"recon.dynamic.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.min_area < 1:
            raise ConfigError(f"recon.dynamic.min_area must be in [0, 1), got {self.min_area}")


def _check_inputs(frames: np.ndarray, depth: np.ndarray, K: np.ndarray, poses: np.ndarray,
                  confidence: np.ndarray | None) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise SceneError(f"dynamic_masks: frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n, h, w = frames.shape[:3]
    if depth.shape != (n, h, w):
        raise SceneError(f"dynamic_masks: depth must be (N, H, W) = {(n, h, w)} like the frames, got {depth.shape}")
    if confidence is not None and confidence.shape != (n, h, w):
        raise SceneError(f"dynamic_masks: confidence must be {(n, h, w)} like the frames, got {confidence.shape}")
    check_intrinsics(K, what="dynamic_masks: K", error=SceneError)
    check_poses(poses, what="dynamic_masks: poses", error=SceneError, count=n)


def _depth_bounds(depth: np.ndarray, confidence: np.ndarray | None, cfg: DynamicConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel inverse-depth interval, central depth and nearest depth of a frame, all ``(H, W)`` float32.

    Returns ``(w_lo, w_hi, centre, nearest)``: the interval ``[w_lo, w_hi]`` of inverse depth (1/m, ``w_lo`` = 0
    means infinity) bounded by the valid depth in the pixel's window widened by the relative tolerance, else
    ``[0, 1 / min_depth]``; ``centre`` the pixel's depth (the window's nearest on holes, 0 where unknown) in metres;
    ``nearest`` the smallest valid depth in the window (inf where none), which the occlusion test reads.
    """
    conf = np.ones_like(depth) if confidence is None else confidence.astype(np.float32)
    valid = (depth > 0) & np.isfinite(depth) & (conf >= cfg.min_confidence)
    rel = cfg.depth_tolerance / np.clip(conf, max(cfg.min_confidence, 1e-3), 1.0)
    kernel = np.ones((cfg.depth_window, cfg.depth_window), np.uint8)
    nearest = cv2.erode(np.where(valid, depth, np.inf).astype(np.float32), kernel, borderType=cv2.BORDER_REPLICATE)
    near = np.where(valid, depth * (1.0 - rel), np.inf).astype(np.float32)
    far = np.where(valid, depth * (1.0 + rel), 0.0).astype(np.float32)
    near = cv2.erode(near, kernel, borderType=cv2.BORDER_REPLICATE)
    far = cv2.dilate(far, kernel, borderType=cv2.BORDER_REPLICATE)
    known = np.isfinite(near)
    centre = np.where(valid, depth, np.where(known, near, 0.0))
    # farther from depth: the range of depth around the hole (to infinity when the hole reaches the image border)
    hole_near, hole_far = _hole_ranges(valid, np.where(valid, depth * (1.0 - rel), np.inf),
                                       np.where(valid, depth * (1.0 + rel), 0.0))
    near = np.where(known, near, hole_near)
    far = np.where(known, far, hole_far)
    near = np.where(np.isfinite(near), np.maximum(near, cfg.min_depth), cfg.min_depth)
    w_hi = 1.0 / near
    w_lo = np.where(np.isfinite(far) & (far > 0), 1.0 / np.maximum(far, near), 0.0)
    return w_lo.astype(np.float32), w_hi.astype(np.float32), centre.astype(np.float32), nearest


def _hole_ranges(valid: np.ndarray, near: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth range ``(H, W)`` (metres) of each connected hole's rim: min of ``near`` and max of ``far`` over the
    valid pixels bordering it. Holes touching the image border (sky, objects entering the view) extend to inf;
    valid pixels and holes without a valid rim get ``(inf, inf)`` (unknown)."""
    labels, count = ndimage.label(~valid)
    if count == 0 or not valid.any():
        return np.full(valid.shape, np.inf), np.full(valid.shape, np.inf)
    k3 = np.ones((3, 3), np.uint8)
    idx = np.arange(1, count + 1)
    rim_near = np.asarray(ndimage.minimum(cv2.erode(near.astype(np.float32), k3), labels, idx))
    rim_far = np.asarray(ndimage.maximum(cv2.dilate(far.astype(np.float32), k3), labels, idx))
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    rim_far[border[border > 0] - 1] = np.inf
    rim_far[~np.isfinite(rim_near)] = np.inf
    return np.r_[np.inf, rim_near][labels], np.r_[np.inf, rim_far][labels]


def _pair_score(flow: np.ndarray, back: np.ndarray, bounds: tuple[np.ndarray, ...], nearest_j: np.ndarray,
                rays: np.ndarray, K: np.ndarray, T_ji: np.ndarray, grid: np.ndarray, cfg: DynamicConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised residual ``(H, W)`` of frame i against neighbour j, and where the pair has evidence.

    ``flow`` / ``back``: DIS flow i->j / j->i ``(H, W, 2)`` pixels; ``rays`` ``(H, W, 3)`` camera rays with z = 1;
    ``T_ji`` maps camera-i points to camera j; ``grid`` ``(H, W, 2)`` pixel coordinates (u, v).
    """
    h, w = flow.shape[:2]
    w_lo, w_hi, centre = bounds[:3]
    # homogeneous image point of the ray point at inverse depth s:  q(s) = K (R ray) + (K t) s
    A = rays @ (K @ T_ji[:3, :3]).T
    b = K @ T_ji[:3, 3]
    az = A[..., 2]
    eps = 1e-3
    # keep the part of the interval in front of camera j: az + bz s > eps
    if abs(b[2]) > 1e-12:
        s_lim = (eps - az) / b[2]
        if b[2] > 0:
            w_lo = np.maximum(w_lo, s_lim)
        else:
            w_hi = np.minimum(w_hi, s_lim)
    front = (w_hi >= w_lo) & (az + b[2] * np.maximum(w_lo, 0) > eps * 0.5)

    def project(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.maximum(az + b[2] * s, eps)
        return np.stack([(A[..., 0] + b[0] * s) / z, (A[..., 1] + b[1] * s) / z], -1), z

    p0, _ = project(w_lo)
    p1, _ = project(w_hi)
    has_centre = centre > 0
    pc, zc = project(np.where(has_centre, 1.0 / np.maximum(centre, 1e-6), 0.5 * (w_lo + w_hi)))
    obs = grid + flow
    seg = p1 - p0
    t = np.clip(((obs - p0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-9), 0.0, 1.0)
    resid = np.linalg.norm(obs - (p0 + t[..., None] * seg), axis=-1)
    rigid = np.linalg.norm(pc - grid, axis=-1)
    score = resid / (cfg.threshold_px + cfg.threshold_rel * rigid)

    # evidence: correspondence inside frame j, forward-backward consistent, static point not hidden in frame j
    inside = (obs[..., 0] >= 0) & (obs[..., 0] <= w - 1) & (obs[..., 1] >= 0) & (obs[..., 1] <= h - 1)
    b_at = cv2.remap(back, obs[..., 0].astype(np.float32), obs[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    fb = np.linalg.norm(flow + b_at, axis=-1)
    consistent = fb <= cfg.fb_px + cfg.fb_rel * (np.linalg.norm(flow, axis=-1) + np.linalg.norm(b_at, axis=-1))
    ui = np.clip(np.rint(pc[..., 0]), 0, w - 1).astype(np.int64)
    vi = np.clip(np.rint(pc[..., 1]), 0, h - 1).astype(np.int64)
    in_j = (pc[..., 0] > -0.5) & (pc[..., 0] < w - 0.5) & (pc[..., 1] > -0.5) & (pc[..., 1] < h - 0.5)
    hidden = has_centre & (zc > nearest_j[vi, ui] * (1.0 + cfg.occlusion_tolerance + cfg.depth_tolerance))
    evidence = front & inside & in_j & consistent & ~hidden
    return np.where(evidence, score, 0.0).astype(np.float32), evidence


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius + radius  # a rounder disk than the strict circle for small radii


def _clean(mask: np.ndarray, cfg: DynamicConfig) -> np.ndarray:
    """Morphological clean-up of ``(N, H, W)`` bool masks, each frame on its own."""
    n, h, w = mask.shape
    out = np.empty_like(mask)
    for i in range(n):
        m = mask[i].astype(np.uint8)
        if cfg.open_radius > 0:
            m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _disk(cfg.open_radius).astype(np.uint8))
        if cfg.close_radius > 0:
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disk(cfg.close_radius).astype(np.uint8))
        out[i] = m.astype(bool)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # 4-connected within a frame, never across frames
    if cfg.min_area > 0 and out.any():
        labels, count = ndimage.label(out, structure)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= cfg.min_area * h * w
        keep[0] = False
        out = keep[labels]
    if cfg.fill_holes and out.any():
        out = ndimage.binary_fill_holes(out, structure)
    return out


def _prior_depth(depth: np.ndarray, confidence: np.ndarray | None, cfg: DynamicConfig) -> np.ndarray:
    """Smooth, hole-filled ``(H, W)`` depth (metres) used only to pre-warp images for the flow; 0 = infinity.

    Enclosed holes and pixels within ``depth_window`` of valid depth take the nearest valid depth; the rest of the
    holes reaching the image border (sky) are treated as infinitely far, i.e. warped by the camera rotation alone.
    """
    valid = depth > 0
    if confidence is not None:
        valid &= confidence >= cfg.min_confidence
    if not valid.any():
        return np.zeros_like(depth)
    dist, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    labels, _ = ndimage.label(~valid)
    border = np.zeros(labels.max() + 1, bool)
    border[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    fill = (dist <= cfg.depth_window) | ~border[labels]  # enclosed holes are filled entirely
    filled = np.where(fill, depth[iy, ix], 0.0).astype(np.float32)
    return cv2.medianBlur(filled, 5)


def _correspondence(gray_a: np.ndarray, gray_c: np.ndarray, prior_a: np.ndarray, rays: np.ndarray, K: np.ndarray,
                    T_ca: np.ndarray, grid: np.ndarray, dis: cv2.DISOpticalFlow) -> np.ndarray:
    """Pixel ``(H, W, 2)`` (u, v) in frame c seen at each pixel of frame a: DIS on an ego-motion pre-warped image.

    Frame c is first warped to frame a with the rigid motion of ``prior_a`` (rotation only where it is 0), so DIS
    only has to find the small residual motion (moving objects, depth errors); large camera motions would
    otherwise defeat DIS's coarse-to-fine search.
    """
    pts = rays * np.where(prior_a > 0, prior_a, 1.0)[..., None]
    pc = pts @ T_ca[:3, :3].T + np.where(prior_a > 0, 1.0, 0.0)[..., None] * T_ca[:3, 3]
    warp = np.stack(project_points(pc, K, min_depth=1e-3)[:2], -1).astype(np.float32)
    warp[pc[..., 2] < 1e-3] = -1e4  # behind camera c: nothing to see
    warped = cv2.remap(gray_c, warp[..., 0], warp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    d = dis.calc(gray_a, warped, None)
    q = (grid + d).astype(np.float32)
    return cv2.remap(warp, q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def dynamic_masks(frames: np.ndarray, depth: np.ndarray, K: np.ndarray, poses: np.ndarray,
                  config: DynamicConfig | None = None, confidence: np.ndarray | None = None,
                  progress: bool = True) -> np.ndarray:
    """Masks of moving content: observed optical flow that disagrees with the rigid flow of depth + camera motion.

    Args:
        frames: ``(N, H, W, 3)`` uint8 RGB video frames.
        depth: ``(N, H, W)`` float32 z-depth in metres, 0 = no data (holes, sky).
        K: ``(3, 3)`` intrinsics in pixels of these frames.
        poses: ``(N, 4, 4)`` ``T_world_camera`` (OpenCV camera), metres, consistent with ``depth``'s scale.
        config: Detection settings (defaults when ``None``).
        confidence: Optional ``(N, H, W)`` depth confidence in [0, 1]; ``None`` = 1 wherever depth > 0.
        progress: Show a progress bar over frames.

    Returns:
        ``(N, H, W)`` bool, True on pixels that move relative to the static world. With fewer than two frames
        nothing can be detected and the mask is all False.
    """
    cfg = config or DynamicConfig()
    cfg.validate()
    frames, depth, K = np.asarray(frames), np.asarray(depth, np.float32), np.asarray(K, np.float64)
    poses = np.asarray(poses, np.float64)
    _check_inputs(frames, depth, K, poses, confidence)
    if len(frames) < 2:
        return np.zeros(depth.shape, bool)
    mean, count = _scores(frames, depth, K, poses, cfg, confidence, progress)
    return _clean((count > 0) & (mean > 1.0), cfg)


def _scores(frames: np.ndarray, depth: np.ndarray, K: np.ndarray, poses: np.ndarray, cfg: DynamicConfig,
            confidence: np.ndarray | None, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean clipped normalised residual ``(N, H, W)`` float32 over the pairs with evidence, and their count."""
    n, h, w = depth.shape
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    conf = None if confidence is None else np.asarray(confidence, np.float32)

    gaps = sorted({int(g) for g in cfg.gaps if g < n}) or [n - 1]
    dis = cv2.DISOpticalFlow_create(_PRESETS[cfg.flow_preset])
    dis.setFinestScale(int(min(dis.getFinestScale(), max(0, np.floor(np.log2(min(h, w) / cfg.flow_min_side))))))
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    rays = pixel_rays(torch.as_tensor(K, dtype=torch.float32), h, w).numpy().astype(np.float64)
    v, u = np.mgrid[0:h, 0:w]
    grid = np.stack([u, v], -1).astype(np.float64)
    T = torch.as_tensor(poses)
    T_cw = se3.invert(T)
    cache: dict[int, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {}  # frame -> (prior depth, depth bounds)
    corr: dict[tuple[int, int], np.ndarray] = {}

    def frame_data(a: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        if a not in cache:
            conf_a = None if conf is None else conf[a]
            cache[a] = (_prior_depth(depth[a], conf_a, cfg), _depth_bounds(depth[a], conf_a, cfg))
        return cache[a]

    def flow(a: int, c: int) -> np.ndarray:
        if (a, c) not in corr:
            T_ca = (T_cw[c] @ T[a]).numpy()
            c_ac = _correspondence(gray[a], gray[c], frame_data(a)[0], rays, K, T_ca, grid, dis)
            corr[a, c] = (c_ac - grid).astype(np.float32)
        return corr[a, c]

    from tqdm import tqdm

    score = np.zeros((n, h, w), np.float32)
    count = np.zeros((n, h, w), np.int16)
    for i in tqdm(range(n), desc="dynamic masks", unit="frame", disable=not progress):
        for g in gaps:
            g_sum = np.zeros((h, w), np.float32)
            g_cnt = np.zeros((h, w), np.int16)
            for j in (i - g, i + g):
                if 0 <= j < n:
                    s, ev = _pair_score(flow(i, j), flow(j, i), frame_data(i)[1], frame_data(j)[1][3], rays, K,
                                        (T_cw[j] @ T[i]).numpy(), grid, cfg)
                    g_sum += np.minimum(s, cfg.score_clip)
                    g_cnt += ev
            score[i] += g_sum
            count[i] += g_cnt
        for key in [k for k in corr if min(k) <= i - max(gaps)]:
            del corr[key]  # keep only what later frames still need
        for key in [k for k in cache if k <= i - max(gaps)]:
            del cache[key]
    score /= np.maximum(count, 1)
    return score, count


def degrade_depth(depth: np.ndarray, seed: int = 0, noise: float = 0.05, hole_fraction: float = 0.1,
                  blur: int = 5) -> np.ndarray:
    """A stand-in for MVS depth: ``(N, H, W)`` metres with multiplicative noise, blob holes (0) and blurred edges.

    Args:
        depth: Exact ``(N, H, W)`` float32 z-depth, 0 = none.
        seed: Seed of the noise and holes.
        noise: Standard deviation of the multiplicative Gaussian noise.
        hole_fraction: Approximate fraction of pixels set to 0 (blobs of ~8 pixels and more).
        blur: Box-filter size (pixels) averaging depth across edges (0 = none); missing depth stays missing.
    """
    rng = np.random.default_rng(seed)
    out = np.asarray(depth, np.float32).copy()
    n, h, w = out.shape
    if blur > 1:
        for i in range(n):
            valid = (out[i] > 0).astype(np.float32)
            num = cv2.blur(out[i] * valid, (blur, blur))
            den = cv2.blur(valid, (blur, blur))
            out[i] = np.where(valid > 0, num / np.maximum(den, 1e-6), 0.0)
    out *= (1.0 + noise * rng.standard_normal(out.shape)).astype(np.float32).clip(0.5, 1.5)
    if hole_fraction > 0:
        coarse = rng.random((n, max(1, h // 8), max(1, w // 8))).astype(np.float32)
        blobs = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in coarse])
        out[blobs < np.quantile(blobs, hole_fraction)] = 0.0
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure the masks against an oracle scene: ``python -m inspatio_sim.recon.dynamic --scene room``."""
    from inspatio_sim.config import compose
    from inspatio_sim.scene_source import load_scene

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--scene", default="room", help="scene preset (room, courtyard, small, tiny)")
    ap.add_argument("--degrade", action="store_true", help="degrade the exact depth like an MVS estimate")
    ap.add_argument("--no-mover-depth", action="store_true",
                    help="also remove the depth of the moving objects (as MVS consistency checks often do)")
    ap.add_argument("overrides", nargs="*", help="DynamicConfig fields as key=value (e.g. gaps=[1,2])")
    args = ap.parse_args(argv)
    import yaml

    cfg = DynamicConfig(**{k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)})
    scene = load_scene(compose([f"scene={args.scene}"]).scene)
    depth = degrade_depth(scene.depth) if args.degrade else scene.depth.copy()
    if args.no_mover_depth:
        depth[scene.dynamic_mask] = 0.0
    t0 = time.perf_counter()
    pred = dynamic_masks(scene.frames, depth, scene.K, scene.poses, cfg, progress=False)
    dt = (time.perf_counter() - t0) / len(pred)
    s = mask_scores(pred, scene.dynamic_mask)
    kind = ("degraded" if args.degrade else "exact") + (", none on movers" if args.no_mover_depth else "")
    print(f"{args.scene} depth={kind}: IoU {s['iou']:.3f}  recall "
          f"{s['recall']:.3f}  FP rate (static pixels) {s['fp_rate']:.5f}  {dt:.3f} s/frame")


if __name__ == "__main__":
    main()
