"""The fused CPU kernel (``render.backend=fused``) against the eager torch path (the reference).

Tolerance: identical validity masks, depth within 1e-5 relative, colours PSNR >= 60 dB. On x86-64 with FMA (where
torch's vectorised ``addcmul`` fuses multiply-adds, as the kernel does) the outputs are bit-identical; the
``exact`` checks below hold that where the hand-made scenes make the arithmetic exact.
"""

import dataclasses

import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_from_fov, intrinsics_matrix, look_at
from inspatio_sim.errors import ConfigError, RenderError
from inspatio_sim.metrics import psnr
from inspatio_sim.model.writeback import GeneratedPool, WritebackConfig
from inspatio_sim.render import RenderConfig, render, render_world
from inspatio_sim.render.splat import resolve_backend
from inspatio_sim.world import build_world
from inspatio_sim.world.splats import SplatCloud, build_lod_cloud
from tests.helpers import wall_scene

CONFIGS = {
    "default": RenderConfig(),
    "raw": RenderConfig(fill_radius=0, fill_holes=False),
    "hard_z": RenderConfig(depth_tolerance=0.0),
    "wide_fill": RenderConfig(fill_radius=2, leak_threshold=0.01),
    "hard_z_raw": RenderConfig(depth_tolerance=0.0, fill_radius=0, fill_holes=False),
}


def both(fn, cfg: RenderConfig):
    """``fn(config)`` with the torch and the fused backend."""
    return (fn(dataclasses.replace(cfg, backend="torch", threads="1")),
            fn(dataclasses.replace(cfg, backend="fused", threads="1")))


def assert_same(a, b, exact: bool = False):
    assert a.rgb.shape == b.rgb.shape and a.rgb.dtype == b.rgb.dtype == torch.uint8
    assert a.depth.dtype == b.depth.dtype == torch.float32 and a.valid.dtype == b.valid.dtype == torch.bool
    assert torch.equal(a.valid, b.valid)
    torch.testing.assert_close(a.depth, b.depth, rtol=1e-5, atol=0.0)
    w = a.rgb.shape[2]
    assert psnr(a.rgb.numpy().reshape(-1, w, 3), b.rgb.numpy().reshape(-1, w, 3)) >= 60.0
    if exact:
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)


def cloud_of(xyz, rgb, voxel=0.001):
    xyz = torch.as_tensor(xyz, dtype=torch.float32).reshape(-1, 3)
    rgb = torch.as_tensor(rgb, dtype=torch.float32).reshape(-1, 3)
    return build_lod_cloud(xyz, rgb, torch.ones(len(xyz)), voxel0=voxel, num_levels=1, chunk_size=1.0)


@pytest.fixture(scope="module")
def wall():
    scene = wall_scene(n=3)
    return scene, build_world(scene)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_wall_scene_is_bit_identical(wall, name):
    scene, world = wall
    a, b = both(lambda c: render_world(world, scene.poses, scene.timestamps, scene.K, scene.height, scene.width, c),
                CONFIGS[name])
    assert_same(a, b, exact=True)


def test_hand_made_points_position_depth_z_order_and_fill():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    rng = np.random.default_rng(0)
    # a near square in front of a far plane with a pin-hole grid, plus points outside the frustum and behind
    far = np.stack(np.meshgrid(np.linspace(-3, 3, 90), np.linspace(-2, 2, 60), indexing="xy"), -1).reshape(-1, 2)
    far = np.concatenate([far, np.full((len(far), 1), 5.0)], 1)[rng.random(len(far)) > 0.1]
    near = np.stack(np.meshgrid(np.linspace(-0.4, 0.4, 30), np.linspace(-0.3, 0.3, 22)), -1).reshape(-1, 2)
    near = np.concatenate([near, 2.0 + 0.01 * rng.random((len(near), 1))], 1)
    out = [[0, 0, -2.0], [9.0, 0, 2.0], [0, 0, 0.01]]
    xyz = np.concatenate([far, near, out])
    cloud = cloud_of(xyz, rng.uniform(0, 255, (len(xyz), 3)), voxel=0.01)
    poses = np.stack([np.eye(4), look_at([0.2, 0.1, 0.0], [0.0, 0.0, 5.0]), look_at([0, 0, 0], [-1.0, 0, 0])])
    for cfg in CONFIGS.values():
        a, b = both(lambda c: render(cloud, poses, K, 48, 64, config=c), cfg)
        assert_same(a, b)
        assert a.valid[0].any() and not a.valid[2].any()  # the third camera looks away: all culled


def test_batch_equals_one_camera_at_a_time(wall):
    scene, world = wall
    cfg = RenderConfig(backend="fused")
    together = render_world(world, scene.poses, scene.timestamps, scene.K, scene.height, scene.width, cfg)
    for i in range(scene.num_frames):
        alone = render_world(world, scene.poses[i:i + 1], scene.timestamps[i], scene.K, scene.height, scene.width,
                             cfg)
        assert torch.equal(alone.rgb[0], together.rgb[i]) and torch.equal(alone.valid[0], together.valid[i])
        assert torch.equal(alone.depth[0], together.depth[i])


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (480, 640)])
def test_odd_sizes(wall, h, w):
    scene, world = wall
    K = intrinsics_from_fov(w, h, 70.0)
    a, b = both(lambda c: render_world(world, scene.poses[:1], 0.0, K, h, w, c), RenderConfig())
    assert a.rgb.shape == (1, h, w, 3)
    assert_same(a, b)


def test_single_point_and_empty_world():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    a, b = both(lambda c: render(cloud_of([0.1, -0.05, 2.5], [200, 10, 30]), np.eye(4)[None], K, 48, 64, config=c),
                RenderConfig(fill_radius=0, fill_holes=False))
    assert_same(a, b, exact=True)
    assert int(b.valid.sum()) == 1 and b.rgb[b.valid].tolist() == [[200, 10, 30]]
    with pytest.raises(RenderError, match="empty world"):
        render(SplatCloud.empty(), np.eye(4)[None], K, 48, 64, config=RenderConfig(backend="fused"))


def test_writeback_pool_per_agent_filter():
    """The model's write-back pool renders each camera its own agent's chunks (``frames`` = agent index)."""
    pool = GeneratedPool(3, WritebackConfig(), block_size=64, device=torch.device("cpu"))
    rng = np.random.default_rng(1)
    for agent in range(3):
        xyz = torch.as_tensor(rng.uniform([-1, -1, 3], [1, 1, 3.2], (500, 3)), dtype=torch.float32)
        pool.write(agent, xyz, torch.full((500, 3), 80.0 * agent), spacing=0.02)
    K = torch.as_tensor(intrinsics_matrix(40.0, 40.0, 31.5, 23.5), dtype=torch.float32)
    poses = torch.eye(4).expand(3, 4, 4)
    a, b = both(lambda c: pool.render(poses, K, 48, 64, c), RenderConfig())
    assert_same(a, b)
    for agent in range(3):  # each camera sees only its own writes
        assert set(b.rgb[agent][b.valid[agent]][:, 0].tolist()) == {80 * agent}


def test_unavailable_backend_is_one_clear_error():
    if not torch.cuda.is_available():
        with pytest.raises(RenderError, match=r"render.backend=fused is not available on device 'cuda'"):
            resolve_backend("fused", "cuda")
        assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "cpu") == "fused"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match=r"render\.backend must be one of"):
        RenderConfig(backend="vulkan").validate()
    with pytest.raises(ConfigError, match=r"render\.threads"):
        RenderConfig(threads="many").validate()


@pytest.fixture(scope="module")
def oracle_world():
    from inspatio_sim.oracle import Oracle

    with Oracle("room", seed=0) as oracle:
        scene = oracle.make_scene(num_frames=6, width=64, height=48, progress=False)
    return scene, build_world(scene)


def test_oracle_scene_held_out_views(oracle_world):
    """Novel views of an oracle scene (static, dynamic and backdrop layers; holes and fill)."""
    scene, world = oracle_world
    rng = np.random.default_rng(0)
    poses = scene.poses.copy()
    poses[:, :3, 3] += rng.normal(size=(len(poses), 3)) * 0.3
    times = scene.timestamps - scene.timestamps[0]
    for res in (64, 128):
        K = intrinsics_from_fov(res, res, 90.0)
        a, b = both(lambda c, K=K, r=res: render_world(world, poses, times, K, r, r, c), RenderConfig())
        assert_same(a, b)
        assert 0.02 < (~a.valid).float().mean() < 0.9  # holes and content both present
