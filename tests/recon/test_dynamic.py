"""Dynamic masks: observed flow vs. rigid flow of depth + camera motion (inspatio_sim.recon.dynamic)."""

from __future__ import annotations

import numpy as np
import pytest

from inspatio_sim.config import compose, to_dataclass
from inspatio_sim.errors import ConfigError, SceneError
from inspatio_sim.recon.dynamic import DynamicConfig, degrade_depth, dynamic_masks, mask_scores
from tests.helpers import checker, wall_scene

# measured on scene=small (exact depth): IoU 0.454, false-positive rate < 1e-5; degraded depth: IoU 0.14, FP < 1e-5
SMALL_MIN_IOU = 0.3
MAX_FP_RATE = 0.002


def _smooth_checker(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(checker(h, w, 4, seed=seed), (3, 3), 0.8)


def test_config_defaults_validate_and_come_from_the_yaml():
    DynamicConfig().validate()
    cfg = compose()
    assert "dynamic" in cfg.recon, "configs/recon/default.yaml lacks the dynamic: block"
    assert to_dataclass(DynamicConfig, cfg.recon.dynamic, "recon.dynamic") == DynamicConfig()


@pytest.mark.parametrize("bad", [
    {"gaps": []}, {"gaps": [0]}, {"gaps": [1.5]}, {"flow_preset": "slow"}, {"threshold_px": 0.0},
    {"threshold_rel": -0.1}, {"depth_window": 4}, {"depth_window": 0}, {"min_confidence": 1.5},
    {"min_depth": 0.0}, {"open_radius": -1}, {"min_area": 1.0}, {"score_clip": 0.0}, {"flow_min_side": 0},
])
def test_invalid_config_raises_config_error(bad):
    with pytest.raises(ConfigError, match="recon.dynamic." + next(iter(bad))):
        DynamicConfig(**bad).validate()


def test_bad_inputs_raise_scene_error():
    s = wall_scene(n=3)
    with pytest.raises(SceneError, match="depth"):
        dynamic_masks(s.frames, s.depth[:, :-1], s.K, s.poses, progress=False)
    with pytest.raises(SceneError, match="uint8"):
        dynamic_masks(s.frames.astype(np.float32), s.depth, s.K, s.poses, progress=False)
    with pytest.raises(SceneError, match="poses"):
        dynamic_masks(s.frames, s.depth, s.K, s.poses[:2], progress=False)
    with pytest.raises(SceneError, match="finite"):
        dynamic_masks(s.frames, s.depth, s.K, np.full_like(s.poses, np.nan), progress=False)


def test_shapes_dtype_and_single_frame():
    s = wall_scene(n=4, h=48, w=64)
    out = dynamic_masks(s.frames, s.depth, s.K, s.poses, progress=False)
    assert out.shape == (4, 48, 64) and out.dtype == bool
    one = dynamic_masks(s.frames[:1], s.depth[:1], s.K, s.poses[:1], progress=False)
    assert one.shape == (1, 48, 64) and one.dtype == bool and not one.any()


def test_static_camera_static_scene_has_no_dynamic_pixels():
    rng = np.random.default_rng(0)
    n, h, w = 6, 96, 128
    base = _smooth_checker(h, w, seed=3).astype(np.int16)
    frames = np.clip(base[None] + rng.integers(-2, 3, (n, h, w, 3)), 0, 255).astype(np.uint8)  # sensor noise
    s = wall_scene(n=n, h=h, w=w)
    poses = np.repeat(s.poses[:1], n, axis=0)
    out = dynamic_masks(frames, s.depth, s.K, poses, progress=False)
    assert out.mean() < 1e-3


def test_moving_camera_static_scene_has_no_dynamic_pixels():
    """The wall scene's camera translates 4 px/frame: observed and rigid flow agree (conventions are consistent)."""
    s = wall_scene(n=6, h=96, w=128)
    depth = degrade_depth(s.depth, seed=1, noise=0.05, hole_fraction=0.1, blur=5)
    assert dynamic_masks(s.frames, s.depth, s.K, s.poses, progress=False).mean() < 1e-3
    assert dynamic_masks(s.frames, depth, s.K, s.poses, progress=False).mean() < 1e-3


def test_sticker_sliding_across_the_wall_is_detected():
    """A 24x24 textured patch slides 3 px/frame down the wall (across the horizontal epipolar lines)."""
    s = wall_scene(n=6, h=96, w=128)
    frames = s.frames.copy()
    patch = _smooth_checker(24, 24, seed=7)
    truth = np.zeros(s.depth.shape, bool)
    for i in range(len(frames)):
        v0, u0 = 20 + 3 * i, 50
        frames[i, v0:v0 + 24, u0:u0 + 24] = patch
        truth[i, v0:v0 + 24, u0:u0 + 24] = True
    out = dynamic_masks(frames, s.depth, s.K, s.poses, progress=False)
    scores = mask_scores(out, truth)
    assert scores["iou"] > 0.6, scores
    assert scores["fp_rate"] < 0.01, scores


def test_degrade_depth_keeps_shape_and_makes_holes():
    d = np.full((2, 40, 48), 2.0, np.float32)
    out = degrade_depth(d, seed=0, noise=0.05, hole_fraction=0.1, blur=5)
    assert out.shape == d.shape and out.dtype == np.float32
    assert 0.05 < (out == 0).mean() < 0.15
    assert abs(np.std(out[out > 0] / 2.0) - 0.05) < 0.01


def test_iou_against_the_oracle_small_scene():
    from inspatio_sim.scene_source import load_scene

    scene = load_scene(compose(["scene=small"]).scene)
    truth = scene.dynamic_mask
    assert truth.any()
    pred = dynamic_masks(scene.frames, scene.depth, scene.K, scene.poses, progress=False)
    scores = mask_scores(pred, truth)
    assert scores["iou"] > SMALL_MIN_IOU, scores
    assert scores["fp_rate"] < MAX_FP_RATE, scores
    noisy = degrade_depth(scene.depth, seed=0)
    scores = mask_scores(dynamic_masks(scene.frames, noisy, scene.K, scene.poses, progress=False), truth)
    assert scores["fp_rate"] < MAX_FP_RATE, scores
