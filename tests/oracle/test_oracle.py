"""Tests of the ground-truth oracle: camera conventions, exact depth, determinism, motion, shading, Scene output."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pybullet as pb
import pytest

from inspatio_sim.conventions import intrinsics_from_fov, intrinsics_matrix, look_at, scale_intrinsics
from inspatio_sim.errors import ConfigError, InSpatioError
from inspatio_sim.oracle import PRESETS, Oracle
from inspatio_sim.scene import Scene

ROOM_CEILING = 2.8


@pytest.fixture(scope="module")
def room() -> Iterator[Oracle]:
    with Oracle("room", seed=0) as oracle:
        yield oracle


@pytest.fixture(scope="module")
def courtyard() -> Iterator[Oracle]:
    with Oracle("courtyard", seed=0) as oracle:
        yield oracle


def _rolled(T: np.ndarray, roll_deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(roll_deg)), np.sin(np.deg2rad(roll_deg))
    T = T.copy()
    T[:3, :3] = T[:3, :3] @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return T


def _plane_depth(T: np.ndarray, K: np.ndarray, w: int, h: int, normal: np.ndarray, offset: float) -> np.ndarray:
    """Analytic z-depth (h, w) of the plane ``normal . p = offset`` seen by camera ``T`` at pixel centres."""
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)  # z = 1
    d = rays @ T[:3, :3].T
    return (offset - normal @ T[:3, 3]) / (d @ normal)


@pytest.fixture(scope="module")
def plain() -> Iterator[Oracle]:
    with Oracle("plain", seed=0) as oracle:
        yield oracle


def test_presets_listed() -> None:
    assert set(PRESETS) >= {"room", "courtyard", "plain"}


def _flat_fraction(rgb: np.ndarray, mask: np.ndarray, window: int = 7, std: float = 0.01) -> float:
    """Fraction of ``mask`` pixels whose grey-level standard deviation over a ``window`` box is below ``std``."""
    g = rgb.astype(np.float32).mean(-1) / 255.0
    flat = []
    for im in g:
        mu = cv2.blur(im, (window, window))
        flat.append(np.sqrt(np.maximum(cv2.blur(im * im, (window, window)) - mu * mu, 0.0)) < std)
    return float(np.stack(flat)[mask].mean())


def test_plain_preset_is_mostly_textureless_with_a_depthless_outside(plain: Oracle, room: Oracle) -> None:
    K = intrinsics_from_fov(160, 120, 70.0)
    poses, ts = plain.camera_path(20, 15.0)
    out = plain.render(poses, ts, K, 160, 120, 1)
    ref = room.render(*room.camera_path(20, 15.0), K, 160, 120, 1)
    # most surface pixels are plain (what plane-sweep matching cannot lock on); the textured room is not
    assert _flat_fraction(out.rgb, out.depth > 0) > 0.45
    assert _flat_fraction(ref.rgb, ref.depth > 0) < 0.05
    # but not perfectly flat: mild shading varies the colour of a painted wall across the frame
    assert _flat_fraction(out.rgb, out.depth > 0, window=31, std=0.002) < 0.5
    # the window and the door show a uniform bright outside without depth, also below the horizon
    sky = out.depth == 0
    assert 0.02 < sky.mean() < 0.3 and sky.any(axis=(1, 2)).sum() >= 3
    assert sky[:, 60:].any()
    col = out.rgb[sky].astype(int)
    assert col.std(axis=0).max() < 20 and (col.mean(axis=0) > 180).all()
    assert np.isfinite(out.depth).all() and (out.depth >= 0).all()


@pytest.mark.parametrize("ss", [1, 3])
def test_floor_depth_matches_ray_plane_intersection(room: Oracle, ss: int) -> None:
    w, h = 96, 72
    K = intrinsics_matrix(80.0, 74.0, 41.3, 38.6)  # non-square pixels, off-centre principal point
    T = _rolled(look_at(np.array([0.1, -0.2, 1.4]), np.array([0.5, 0.1, 0.0])), 25.0)
    out = room.render(T[None], np.zeros(1), K, w, h, supersample=ss)
    expected = _plane_depth(T, K, w, h, np.array([0.0, 0.0, 1.0]), 0.0)
    assert out.depth.shape == (1, h, w) and out.depth.dtype == np.float32
    rel = np.abs(out.depth[0] - expected) / expected
    assert rel.max() < 1e-3, rel.max()
    # the same camera shifted by half a pixel would be off by far more than the tolerance
    shifted = _plane_depth(T, K + np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]), w, h, np.array([0, 0, 1.0]), 0.0)
    assert (np.abs(out.depth[0] - shifted) / shifted).max() > 3e-3


def test_wall_and_ceiling_depth(room: Oracle) -> None:
    w, h = 64, 48
    K = intrinsics_from_fov(w, h, 60.0)
    # looking at the ceiling from below, rolled: depth follows the plane z = 2.8
    T = _rolled(look_at(np.array([0.0, 0.0, 1.5]), np.array([0.3, 0.2, 2.8])), -40.0)
    out = room.render(T, 0.0, K, w, h, supersample=1)
    expected = _plane_depth(T, K, w, h, np.array([0.0, 0.0, 1.0]), ROOM_CEILING)
    np.testing.assert_allclose(out.depth[0], expected, rtol=1e-3)
    # facing the +x wall (x = 3) head-on from 2 m: constant depth 2 m where the wall is seen above the objects
    T = look_at(np.array([1.0, -0.3, 1.9]), np.array([3.0, -0.3, 1.9]))
    out = room.render(T, 0.0, K, w, h, supersample=1)
    np.testing.assert_allclose(out.depth[0, : h // 2], 2.0, rtol=1e-3)


def test_known_point_projects_where_K_says() -> None:
    w, h = 160, 120
    K = intrinsics_matrix(120.0, 110.0, 71.4, 66.2)
    T = _rolled(look_at(np.array([0.0, 0.0, 1.4]), np.array([2.0, 0.4, 1.0])), 15.0)
    points = [np.array([1.6, 0.55, 1.25]), np.array([1.8, -0.35, 0.95]), np.array([1.2, 0.2, 0.75])]
    with Oracle("room", seed=0) as oracle:
        before = oracle.render(T, 0.0, K, w, h, supersample=1).depth[0]
        for p in points:
            vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=0.06, rgbaColor=[1, 0, 0, 1],
                                       physicsClientId=oracle.client)
            pb.createMultiBody(0, -1, vis, basePosition=p.tolist(), physicsClientId=oracle.client)
        after = oracle.render(T, 0.0, K, w, h, supersample=1).depth[0]
    changed = np.abs(after - before) > 0.05
    Tcw = np.linalg.inv(T)
    for p in points:
        pc = Tcw[:3, :3] @ p + Tcw[:3, 3]
        u, v = K[0, 0] * pc[0] / pc[2] + K[0, 2], K[1, 1] * pc[1] / pc[2] + K[1, 2]
        ys, xs = np.nonzero(changed)
        near = (np.abs(xs - u) < 12) & (np.abs(ys - v) < 12)
        assert near.sum() > 20, "sphere not seen near its projection"
        err = np.hypot(xs[near].mean() - u, ys[near].mean() - v)
        assert err < 0.25, f"sphere centroid {err:.3f} px from its projection"
        # the nearest point of the sphere is r closer than its centre along the optical axis (approximately)
        assert abs(after[round(v), round(u)] - (pc[2] - 0.06)) < 0.01


def test_output_shapes_and_supersample_consistency(room: Oracle) -> None:
    poses, times = room.camera_path(60, 15.0)
    K = intrinsics_from_fov(48, 36, 70.0)
    a = room.render(poses[:2], times[:2], K, 48, 36, supersample=1)
    b = room.render(poses[:2], times[:2], K, 48, 36, supersample=3)
    assert a.rgb.shape == (2, 36, 48, 3) and a.rgb.dtype == np.uint8
    assert a.depth.shape == (2, 36, 48) and a.depth.dtype == np.float32
    assert a.dynamic.shape == (2, 36, 48) and a.dynamic.dtype == np.bool_
    # depth is the exact centre sub-sample: identical for ss = 1 and ss = 3 up to float rounding
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4)
    # RGB is area-averaged: close to, but not the same as, the point-sampled image
    diff = np.abs(a.rgb.astype(int) - b.rgb.astype(int))
    assert 0 < diff.mean() < 25


def test_deterministic_and_seed_dependent() -> None:
    K = intrinsics_from_fov(64, 48, 70.0)
    with Oracle("room", seed=0) as o1, Oracle("room", seed=0) as o2, Oracle("room", seed=1) as o3:
        p1, t1 = o1.camera_path(60, 15.0)
        p2, t2 = o2.camera_path(60, 15.0)
        p3, _ = o3.camera_path(60, 15.0)
        assert np.array_equal(p1, p2) and np.array_equal(t1, t2)
        assert not np.allclose(p1, p3)
        idx = [0, 20, 40]
        f1 = o1.render(p1[idx], t1[idx], K, 64, 48, 3)
        f2 = o2.render(p1[idx], t1[idx], K, 64, 48, 3)
        f3 = o3.render(p1[idx], t1[idx], K, 64, 48, 3)
    assert np.array_equal(f1.rgb, f2.rgb) and np.array_equal(f1.depth, f2.depth)
    assert np.array_equal(f1.dynamic, f2.dynamic)
    assert np.abs(f1.rgb.astype(int) - f3.rgb.astype(int)).mean() > 5  # other texture crops / placements


def test_presets_differ(room: Oracle, courtyard: Oracle) -> None:
    K = intrinsics_from_fov(64, 48, 70.0)
    T = look_at(np.array([0.0, 0.0, 1.4]), np.array([3.0, 0.5, 1.0]))
    a = room.render(T, 0.0, K, 64, 48, 1)
    b = courtyard.render(T, 0.0, K, 64, 48, 1)
    assert np.abs(a.depth - b.depth).mean() > 1.0


def test_courtyard_sky_has_no_depth(courtyard: Oracle) -> None:
    K = intrinsics_from_fov(64, 48, 70.0)
    T = look_at(np.array([0.0, 0.0, 1.4]), np.array([3.0, 0.0, 4.0]))  # looking up over the garden wall
    out = courtyard.render(T, 0.0, K, 64, 48, 1)
    sky = out.depth[0] == 0
    assert 0.05 < sky.mean() < 0.95
    # sky is at the top of the image, blue-ish, and there is no sky below the horizon
    assert sky[0].mean() > sky[-1].mean()
    col = out.rgb[0][sky].astype(int)
    assert (col[:, 2] > col[:, 0]).all()
    assert np.isfinite(out.depth).all() and (out.depth >= 0).all()


@pytest.mark.parametrize("preset", ["room", "courtyard", "plain"])
def test_moving_object_moves(preset: str, room: Oracle, courtyard: Oracle, plain: Oracle) -> None:
    oracle = {"room": room, "courtyard": courtyard, "plain": plain}[preset]
    K = intrinsics_from_fov(64, 48, 70.0)
    poses, times = oracle.camera_path(60, 15.0)
    out = oracle.render(poses, times, K, 64, 48, 1)
    seen = out.dynamic.any(axis=(1, 2))
    assert seen.any() and not seen.all(), seen
    i = int(np.argmax(out.dynamic.sum(axis=(1, 2))))
    at = oracle.render(np.stack([poses[i]] * 2), np.array([0.0, 1.5]) + times[i], K, 64, 48, 1)
    assert at.dynamic[0].any() or at.dynamic[1].any()
    assert (at.dynamic[0] != at.dynamic[1]).sum() > 3
    # static pixels are unaffected by time; pixels that change depth are (or were) on the moving object
    changed = np.abs(at.depth[0] - at.depth[1]) > 1e-4
    assert changed.any()
    assert (changed <= (at.dynamic[0] | at.dynamic[1])).all()


@pytest.mark.parametrize("preset", ["room", "courtyard"])
def test_view_independent_shading(preset: str, room: Oracle, courtyard: Oracle) -> None:
    oracle = room if preset == "room" else courtyard
    w, h = 33, 25  # odd: the principal point is an integer pixel, hit exactly by the optical axis
    K = intrinsics_from_fov(w, h, 50.0)
    c = (int(K[1, 2]), int(K[0, 2]))
    # surface points (floor, walls) placed off texel boundaries (texels are 5-10 mm on a grid from the face edge)
    targets = [(0.5517, 0.2483, 0.0), (3.0, 0.3517, 1.9017), (-0.4017, 2.5, 2.2017), (-3.0, -0.3017, 2.3983)] \
        if preset == "room" else [(0.6027, 0.3027, 0.0), (6.0, 0.2027, 1.6027), (-0.7027, -5.0, 3.4973)]
    eyes = [np.array([0.0, 0.0, 1.4]), np.array([-0.6, -0.7, 1.2]), np.array([0.7, 0.6, 1.6])]
    diffs = []
    for target in map(np.array, targets):
        poses = np.stack([look_at(e, target) for e in eyes])
        out = oracle.render(poses, np.zeros(len(eyes)), K, w, h, supersample=1)
        dist = np.array([np.linalg.norm(target - e) for e in eyes])
        z = out.depth[:, c[0], c[1]]
        np.testing.assert_allclose(z, dist, rtol=1e-3)  # the optical axis hits the target itself
        col = out.rgb[:, c[0], c[1]].astype(int)
        diffs.append(np.abs(col - col[0]).max())
    assert max(diffs) <= 3, diffs


def test_make_scene_validates_and_round_trips(tmp_path) -> None:
    with Oracle("courtyard", seed=3) as oracle:
        scene = oracle.make_scene(num_frames=5, width=48, height=36, hfov_deg=70.0, fps=10.0, supersample=1,
                                  progress=False)
        poses, _ = oracle.camera_path(5, 10.0)
    scene.validate()
    assert scene.frames.shape == (5, 36, 48, 3) and scene.num_frames == 5
    np.testing.assert_array_equal(scene.poses, poses)
    np.testing.assert_allclose(scene.timestamps, np.arange(5) / 10.0)
    np.testing.assert_array_equal(scene.K, intrinsics_from_fov(48, 36, 70.0))
    np.testing.assert_array_equal(scene.confidence, (scene.depth > 0).astype(np.float32))
    assert (scene.depth == 0).any() and (scene.depth > 0).mean() > 0.5  # sky and surfaces
    assert scene.meta.source == "oracle:courtyard" and scene.meta.scale_origin == "exact"
    assert scene.meta.extra["preset"] == "courtyard" and scene.meta.extra["seed"] == 3
    assert scene.meta.extra["supersample"] == 1 and scene.meta.fps == 10.0
    loaded = Scene.load(scene.save(tmp_path / "gt"))
    for key in ("frames", "timestamps", "K", "poses", "depth", "confidence", "dynamic_mask"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(scene, key))
    assert loaded.meta == scene.meta


@pytest.mark.parametrize("preset", ["room", "courtyard", "plain"])
@pytest.mark.parametrize("seed", [0, 7])
def test_camera_path_keeps_clear_and_is_smooth(preset: str, seed: int) -> None:
    with Oracle(preset, seed=seed) as oracle:
        poses, ts = oracle.camera_path(60, 15.0)
        clear = oracle.clearance(poses[:, :3, 3], ts)
    assert poses.shape == (60, 4, 4) and poses.dtype == np.float64 and ts.shape == (60,)
    assert clear.min() >= 0.5, clear.min()
    z = poses[:, 2, 3]
    assert (z > 1.2).all() and (z < 1.6).all()
    fwd = poses[:, :3, 2]
    assert (fwd[:, 2] < 0).all() and (fwd[:, 2] > -0.4).all()  # roughly horizontal, slightly down
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    length = step.sum()
    assert (5.0 < length < 9.0) if preset == "courtyard" else (3.0 < length < 5.0)
    assert step.max() < 2.0 * np.median(step)  # smooth: no jumps
    cosang = np.einsum("ni,ni->n", fwd[1:], fwd[:-1])
    assert np.degrees(np.arccos(np.clip(cosang, -1, 1))).max() < 10.0  # strong overlap between frames
    angles = np.arctan2(poses[:, 1, 3], poses[:, 0, 3])
    assert np.ptp(np.unwrap(angles)) > 1.8 * np.pi  # goes around the scene


def test_clearance_values(room: Oracle) -> None:
    pts = np.array([[0.0, 0.0, 2.3], [0.0, 0.0, 0.3], [0.2, 0.1, 1.4]])
    d = room.clearance(pts)
    assert d.shape == (3,) and d.dtype == np.float64
    np.testing.assert_allclose(d[:2], [0.5, 0.3], atol=2e-3)  # ceiling 0.5 m above, floor 0.3 m below
    assert d[2] > 1.2
    # a point inside the moving crate at t = 0 (centre x = -0.3, y = 1.95), outside of it a second later
    inside = np.array([[-0.3, 1.95, 0.25]])
    assert room.clearance(inside, 0.0)[0] == 0.0
    assert room.clearance(inside, 1.0)[0] > 0.2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"poses": np.zeros((0, 4, 4)), "times": np.zeros(0)}, "B=0"),
        ({"poses": np.full((1, 4, 4), np.nan), "times": np.zeros(1)}, "NaN"),
        ({"width": 0}, "width"),
        ({"height": -3}, "height"),
        ({"supersample": 2}, "odd"),
        ({"times": np.zeros(3)}, "times"),
        ({"K": np.eye(2)}, "K"),
        ({"poses": np.diag([2.0, 2.0, 2.0, 1.0])[None]}, "rotation"),
    ],
)
def test_bad_render_arguments(room: Oracle, kwargs: dict, match: str) -> None:
    args = {"poses": np.eye(4)[None], "times": np.zeros(1), "K": intrinsics_from_fov(32, 24, 70.0), "width": 32,
            "height": 24, "supersample": 1}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        room.render(**args)


def test_bad_oracle_arguments(room: Oracle) -> None:
    with pytest.raises(ConfigError, match="unknown oracle preset"):
        Oracle("castle")
    with pytest.raises(ConfigError, match="seed"):
        Oracle("room", seed=-1)
    with pytest.raises(ConfigError, match="num_frames"):
        room.camera_path(0)
    with pytest.raises(ConfigError, match="fps"):
        room.camera_path(10, fps=0.0)
    with pytest.raises(ConfigError, match="positions"):
        room.clearance(np.zeros((3, 2)))
    with pytest.raises(InSpatioError):
        room.make_scene(num_frames=2, width=0, height=10, progress=False)
    with pytest.raises(ConfigError, match="supersample"):
        room.make_scene(num_frames=2, width=8, height=6, supersample=4, progress=False)


def test_closed_oracle_raises() -> None:
    oracle = Oracle("room")
    oracle.close()
    oracle.close()  # idempotent
    with pytest.raises(ConfigError, match="closed"):
        oracle.render(np.eye(4), 0.0, intrinsics_from_fov(8, 6, 70.0), 8, 6, 1)


def test_scale_intrinsics_is_what_supersampling_uses(room: Oracle) -> None:
    # rendering at 3x with scale_intrinsics and taking centre samples equals the ss=3 depth exactly
    K = intrinsics_from_fov(40, 30, 70.0)
    T = look_at(np.array([0.0, 0.3, 1.4]), np.array([2.0, 1.0, 0.6]))
    big = room.render(T, 0.0, scale_intrinsics(K, 3, 3), 120, 90, 1)
    small = room.render(T, 0.0, K, 40, 30, 3)
    np.testing.assert_array_equal(big.depth[0, 1::3, 1::3], small.depth[0])
    np.testing.assert_array_equal(big.dynamic[0, 1::3, 1::3], small.dynamic[0])
