"""Implicit Spatiotemporal Cache: selection by overlap, slot stability, bounded history, reset, time alignment."""

import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache, plucker_rays
from tests.model.scenes import camera, references, view

H, W = 48, 64
K = intrinsics_from_fov(W, H, 70.0)
KT = torch.as_tensor(K, dtype=torch.float32)


def _select(cache, poses, times=None, force=False):
    views = [view(p, K, H, W) for p in poses]
    depth = torch.stack([v[1] for v in views])
    pt = torch.as_tensor(np.stack(poses), dtype=torch.float32)
    t = torch.zeros(len(poses), dtype=torch.float64) if times is None else torch.as_tensor(times, dtype=torch.float64)
    return cache.select(pt, t, depth, torch.zeros_like(depth, dtype=torch.bool), KT, force=force)


def test_selection_picks_the_frames_that_see_the_view_not_merely_the_nearest():
    # 12 frames along a line looking at the wall, and 4 frames right at the query camera looking away from it
    path = [camera(0.0, y) for y in np.linspace(-3, 3, 12)]
    away = [camera(0.0, 0.0, yaw_deg=a) for a in (120, 150, 180, 210)]
    refs = references(path + away)
    cache = SpatiotemporalCache(refs, 1, H, W, CacheConfig(ref_slots=3, candidates=16))
    _select(cache, [camera(-0.3, 0.2)])
    chosen = set(cache.ref_index[0].tolist())
    ys = np.linspace(-3, 3, 12)
    nearest = set(np.argsort(np.abs(ys - 0.2))[:3].tolist())
    assert chosen == nearest, (chosen, nearest)


def test_slots_stay_until_the_camera_moves_and_kept_frames_keep_their_slot():
    refs = references([camera(0.0, y) for y in np.linspace(-3, 3, 25)])
    cache = SpatiotemporalCache(refs, 1, H, W, CacheConfig(ref_slots=4, reselect_distance=0.1))
    _select(cache, [camera(0.0, 0.0)])
    first = cache.ref_index[0].clone()
    assert cache.ref_changed[0].all() and (first >= 0).all()
    assert not _select(cache, [camera(0.0, 0.05)])[0]  # moved 5 cm: nothing re-chosen
    assert torch.equal(cache.ref_index[0], first) and not cache.ref_changed[0].any()
    assert _select(cache, [camera(0.0, 0.3)])[0]  # moved 30 cm: re-chosen
    now = cache.ref_index[0]
    for slot in range(4):
        if int(first[slot]) in now.tolist():
            assert int(now[slot]) == int(first[slot])  # a frame that stays chosen stays in its slot
    assert torch.equal(cache.ref_changed[0], now != first)
    assert _select(cache, [camera(0.0, 0.3, yaw_deg=10.0)])[0]  # turned 10 degrees: re-chosen


def test_history_is_a_bounded_ring_newest_first_and_reset_isolates_agents():
    refs = references([camera(0.0, y) for y in (-1.0, 0.0, 1.0)])
    cache = SpatiotemporalCache(refs, 2, H, W, CacheConfig(ref_slots=2, history_slots=2))
    poses = torch.as_tensor(np.stack([camera(0.0, 0.0)] * 2), dtype=torch.float32)
    for step in range(5):
        rgb = torch.full((2, H, W, 3), step, dtype=torch.uint8)
        cache.push(rgb, torch.full((2, H, W), float(step)), poses, torch.full((2,), float(step)))
    slots = cache.slots()
    hist_rgb, _ = slots.hist_images()
    assert hist_rgb.shape == (2, 2, H, W, 3) and slots.hist_valid.all()
    assert hist_rgb[:, 0].eq(4).all() and hist_rgb[:, 1].eq(3).all()  # newest first
    assert slots.hist_time[0].tolist() == [4.0, 3.0]
    before = cache.nbytes_per_agent()
    _select(cache, [camera(0.0, 0.0)] * 2)
    cache.reset(torch.tensor([True, False]))
    slots = cache.slots()
    assert not slots.hist_valid[0].any() and slots.hist_valid[1].all()
    assert (slots.ref_index[0] == -1).all() and (slots.ref_index[1] >= 0).all()
    assert not slots.ref_valid[0].any() and slots.ref_images()[0][0].eq(0).all()
    assert slots.hist_images()[0][1, 0].eq(4).all()  # the other agent kept its history
    assert cache.nbytes_per_agent() == before  # memory does not grow with steps
    assert before < 2 * H * W * 8 + 4096


def test_dynamic_scenes_prefer_frames_at_the_agents_scene_time():
    same = camera(0.0, 0.0)
    refs = references([same, same, same], times=[0.0, 1.0, 2.0], dynamic=True)
    cache = SpatiotemporalCache(refs, 2, H, W, CacheConfig(ref_slots=1, time_weight=0.5))
    _select(cache, [same, same], times=[2.0, 0.9])
    assert cache.ref_index[:, 0].tolist() == [2, 1]


def test_plucker_rays_are_unit_directions_with_moments_about_the_origin():
    pose = torch.as_tensor(camera(1.0, -2.0, yaw_deg=30.0), dtype=torch.float32)[None]
    rays = plucker_rays(KT, pose, H, W)
    d, m = rays[..., :3], rays[..., 3:]
    assert rays.shape == (1, H, W, 6)
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, H, W), atol=1e-5)
    assert torch.allclose((d * m).sum(-1), torch.zeros(1, H, W), atol=1e-4)  # moment orthogonal to direction
    centre = d[0, (H - 1) // 2, (W - 1) // 2]
    assert centre[0] > 0.8  # the optical axis points along the heading


def test_bad_cache_settings_are_refused():
    with pytest.raises(ConfigError, match="ref_slots"):
        CacheConfig(ref_slots=0).validate()
    with pytest.raises(ConfigError, match="history_slots"):
        CacheConfig(history_slots=-1).validate()
