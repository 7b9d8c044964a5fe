"""Depth completion of textureless regions, on analytic scenes whose true depth is known in closed form.

The matching stage is simulated the way plane-sweep MVS behaves: depth where the 7x7 window holds texture (so on
textured surfaces and on the rim of plain faces, where the window sees their edge), none on plain interiors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from inspatio_sim.conventions import intrinsics_from_fov, look_at
from inspatio_sim.errors import ConfigError
from inspatio_sim.recon.completion import CompletionConfig, complete_depth

W, H = 160, 120
K = intrinsics_from_fov(W, H, 70.0)


def _cells(p: np.ndarray, size: float, seed: int) -> np.ndarray:
    """Random colours (M, 3) of a 2-D grid of ``size`` m cells at plane coordinates ``p (M, 2)``."""
    rng = np.random.default_rng(seed)
    table = rng.integers(30, 230, size=(64, 64, 3))
    ij = np.floor(p / size).astype(int) % 64
    return table[ij[:, 0], ij[:, 1]].astype(np.float64)


def _render(poses: np.ndarray, surfaces: list) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(N, H, W, 3)`` uint8 and z-depth ``(N, H, W)`` of planar ``surfaces`` (nearest hit wins).

    A surface is ``(normal, offset, inside(X) -> bool, colour(X) -> (M, 3))`` with the plane ``normal . X = offset``.
    """
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    frames, depths = [], []
    for T in poses:
        d = rays @ T[:3, :3].T
        best = np.full(len(d), np.inf)
        col = np.zeros((len(d), 3))
        for n, off, inside, colour in surfaces:
            dn = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (off - n @ T[:3, 3]) / dn  # z-depth: rays have z = 1 in the camera frame
            X = T[:3, 3] + d * z[:, None]
            hit = (z > 0) & np.isfinite(z) & inside(X) & (z < best)
            best[hit] = z[hit]
            col[hit] = colour(X[hit])
        frames.append(np.clip(col, 0, 255).reshape(H, W, 3).astype(np.uint8))
        depths.append(np.where(np.isfinite(best), best, 0.0).reshape(H, W))
    return np.stack(frames), np.stack(depths).astype(np.float32)


def _matched(frames: np.ndarray, depth: np.ndarray, noise: float = 0.003, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """What plane-sweep matching gives: true depth (with relative noise) where the 7x7 window has texture."""
    rng = np.random.default_rng(seed)
    g = frames.astype(np.float64).mean(-1) / 255.0
    mu = ndimage.uniform_filter(g, (1, 7, 7))
    std = np.sqrt(np.maximum(ndimage.uniform_filter(g * g, (1, 7, 7)) - mu * mu, 0.0))
    ok = (std > 0.02) & (depth > 0)
    d = np.where(ok, depth * (1.0 + noise * rng.standard_normal(depth.shape)), 0.0).astype(np.float32)
    return d, ok.astype(np.float32)


def _neighbors(n: int) -> np.ndarray:
    return np.array([[j for j in range(n) if j != i] for i in range(n)])


def test_textureless_plane_at_a_grazing_angle_gets_depth_within_two_percent():
    """A plain floor seen at 6-21 degrees between two textured rugs: the rugs' rims anchor the floor plane."""
    def floor_colour(X):
        rug = (X[:, 0] < 1.6) | (X[:, 0] > 5.5)
        plain = np.array([176.0, 160.0, 138.0]) * (1.0 + 0.03 * np.sin(X[:, :1] * 1.3))  # mild shading only
        return np.where(rug[:, None], _cells(X[:, :2], 0.08, 1), plain)

    floor = (np.array([0.0, 0.0, 1.0]), 0.0, lambda X: np.ones(len(X), bool), floor_colour)
    poses = np.stack([look_at([0.0, y, 0.6], [4.0, y, 0.0]) for y in (-0.1, 0.0, 0.1)])
    frames, gt = _render(poses, [floor])
    depth, conf = _matched(frames, gt)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    x = poses[:, None, None, 0, 3] + gt * ((u - K[0, 2]) / K[0, 0] * poses[:, None, None, 0, 0]
                                           + (v - K[1, 2]) / K[1, 1] * poses[:, None, None, 0, 1]
                                           + poses[:, None, None, 0, 2])  # world x of each floor pixel
    plain = (gt > 0) & (depth == 0) & (x > 1.6) & (x < 5.5)  # the plain floor between the rugs
    assert plain.sum() > 0.3 * (gt > 0).sum()  # a large plain area without matched depth
    out_d, out_c, completed = complete_depth(frames, K, poses, depth, conf, None, _neighbors(3), CompletionConfig())
    filled = plain & (out_d > 0)
    assert filled.sum() / plain.sum() > 0.95
    rel = np.abs(out_d[filled] - gt[filled]) / gt[filled]
    assert rel.mean() < 0.02 and np.percentile(rel, 99) < 0.02
    assert completed[filled].all() and not completed[depth > 0].any()
    assert ((out_c[filled] >= 0.5) & (out_c[filled] < 0.75)).all()  # weaker than a good match, still used
    np.testing.assert_array_equal(out_d[depth > 0], depth[depth > 0])  # matched depth is kept as it was


def test_textureless_box_in_front_of_a_textured_wall_keeps_a_sharp_depth_edge():
    wall = (np.array([1.0, 0.0, 0.0]), 4.0, lambda X: np.ones(len(X), bool), lambda X: _cells(X[:, 1:], 0.1, 2))
    box_colour = np.array([205.0, 205.0, 200.0])
    box = (np.array([1.0, 0.0, 0.0]), 2.5, lambda X: (np.abs(X[:, 1]) < 0.45) & (np.abs(X[:, 2] - 1.3) < 0.45),
           lambda X: box_colour * (1.0 + 0.02 * np.sin(3.0 * X[:, 1:2])))
    poses = np.stack([look_at([0.0, y, 1.3], [4.0, y, 1.3]) for y in (-0.15, 0.0, 0.15)])
    frames, gt = _render(poses, [box, wall])
    depth, conf = _matched(frames, gt)
    # matching also drops pixels next to depth edges (flying pixels): a strip of the wall beside the box has none
    jump = ndimage.maximum_filter(gt, (1, 5, 5)) > 1.2 * ndimage.minimum_filter(gt, (1, 5, 5))
    on_wall = jump & (gt > 3.0)
    depth[on_wall], conf[on_wall] = 0.0, 0.0
    out_d, _, _ = complete_depth(frames, K, poses, depth, conf, None, _neighbors(3), CompletionConfig())
    is_box = np.abs(gt - 2.5) < 0.01
    inner = ndimage.binary_erosion(is_box, iterations=1)
    assert (depth[inner] == 0).mean() > 0.6  # the plain face had no matched depth inside
    filled = is_box & (out_d > 0)
    assert filled.sum() / is_box.sum() > 0.95
    assert np.abs(out_d[filled] / gt[filled] - 1).max() < 0.02
    # no bleeding: every wall pixel is either without depth or at the wall, never at the box's depth
    wall_px = gt > 3.0
    assert (np.abs(out_d[wall_px & (out_d > 0)] / gt[wall_px & (out_d > 0)] - 1) < 0.02).all()
    # and the edge is sharp: across the box's side, depth jumps from box to wall between two adjacent pixels
    row = out_d[1, H // 2]
    known = row[row > 0]
    assert not ((known > 2.6) & (known < 3.9)).any()


def test_segment_without_anchors_stays_empty_and_bad_config_is_refused():
    """A uniform bright outside seen through a door has no depth and no matched rim: it is not invented."""
    sky = np.array([205.0, 222.0, 240.0])
    frames = np.broadcast_to(sky, (2, H, W, 3)).astype(np.uint8).copy()
    depth = np.zeros((2, H, W), np.float32)
    poses = np.stack([look_at([0.0, y, 1.3], [4.0, y, 1.3]) for y in (0.0, 0.1)])
    out_d, out_c, completed = complete_depth(frames, K, poses, depth, depth.copy(), None, _neighbors(2),
                                             CompletionConfig())
    assert (out_d == 0).all() and (out_c == 0).all() and not completed.any()
    with pytest.raises(ConfigError, match="min_anchors"):
        complete_depth(frames, K, poses, depth, depth, None, _neighbors(2), CompletionConfig(min_anchors=1))
