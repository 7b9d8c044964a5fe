"""The measurements of ``bench model`` on analytic views: flicker is zero for consistent frames and grows with
inconsistency; revisit PSNR is capped for identical frames."""

import numpy as np

from inspatio_sim.bench.model_bench import REVISIT_CAP_DB, _revisit_psnr, flicker
from inspatio_sim.conventions import intrinsics_from_fov
from tests.model.scenes import camera, view

H, W = 48, 64
K = intrinsics_from_fov(W, H, 70.0)


def _sequence():
    poses = np.stack([camera(0.0, 0.0), camera(0.05, 0.03, yaw_deg=2.0), camera(0.1, 0.06, yaw_deg=4.0)])
    views = [view(p, K, H, W) for p in poses]
    rgb = np.stack([v[0].numpy() for v in views])[None]
    depth = np.stack([v[1].numpy() for v in views])[None]
    return poses[None], rgb, depth


def test_flicker_is_near_zero_for_consistent_frames_and_grows_with_noise():
    poses, rgb, depth = _sequence()
    hole = np.ones(depth.shape, bool)
    dynamic = np.zeros(depth.shape, bool)
    steady = flicker(rgb, hole, depth, dynamic, poses, K)
    noisy = rgb.copy()
    noisy[0, 1:] = np.clip(noisy[0, 1:].astype(int) + np.random.default_rng(0).integers(-40, 40, noisy[0, 1:].shape),
                           0, 255).astype(np.uint8)
    assert steady < 3.0  # only bilinear resampling of a smooth texture
    assert flicker(noisy, hole, depth, dynamic, poses, K) > steady + 10.0
    # pixels that were not holes do not count
    assert np.isnan(flicker(noisy, np.zeros_like(hole), depth, dynamic, poses, K))


def test_revisit_psnr_is_capped_for_identical_frames_and_ignores_moving_pixels():
    _, rgb, _ = _sequence()
    loop = np.concatenate([rgb, rgb[:, :1]], axis=1)  # returns to the first frame exactly
    assert _revisit_psnr(loop, np.zeros(loop.shape[:4], bool)) == REVISIT_CAP_DB
    changed = loop.copy()
    changed[0, -1, :10] = 0
    dyn = np.zeros(loop.shape[:4], bool)
    assert _revisit_psnr(changed, dyn) < 30.0
    dyn[0, -1, :10] = True  # the changed pixels were moving objects: not counted
    assert _revisit_psnr(changed, dyn) == REVISIT_CAP_DB
