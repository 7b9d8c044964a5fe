import numpy as np
import pytest
import torch

from inspatio_sim.conventions import intrinsics_matrix, look_at
from inspatio_sim.errors import RenderError
from inspatio_sim.metrics import psnr
from inspatio_sim.render import RenderConfig, render, render_world
from inspatio_sim.world import build_world
from inspatio_sim.world.splats import SplatCloud, build_frame_cloud, build_lod_cloud, concat_clouds
from tests.helpers import wall_scene

RAW = RenderConfig(fill_radius=0, fill_holes=False)


def cloud_of(xyz, rgb, chunk=1.0, levels=1, voxel=0.001):
    xyz = torch.as_tensor(xyz, dtype=torch.float32).reshape(-1, 3)
    rgb = torch.as_tensor(rgb, dtype=torch.float32).reshape(-1, 3)
    return build_lod_cloud(xyz, rgb, torch.ones(len(xyz)), voxel0=voxel, num_levels=levels, chunk_size=chunk)


@pytest.mark.parametrize("K", [intrinsics_matrix(50.0, 50.0, 31.5, 23.5), intrinsics_matrix(40.0, 55.0, 20.2, 30.7)])
def test_point_lands_on_expected_pixel_with_exact_depth(K):
    T = look_at([1.0, 2.0, 1.5], [4.0, 1.0, 1.2])  # an arbitrary camera
    p_cam = np.array([0.31, -0.214, 2.5])
    p_world = T[:3, :3] @ p_cam + T[:3, 3]
    out = render(cloud_of(p_world, [200, 10, 30]), T[None], K, 48, 64, config=RAW)
    vs, us = np.nonzero(out.valid[0].numpy())
    u = K[0, 0] * p_cam[0] / p_cam[2] + K[0, 2]
    v = K[1, 1] * p_cam[1] / p_cam[2] + K[1, 2]
    assert (us.tolist(), vs.tolist()) == ([round(u)], [round(v)])
    assert out.depth[0, vs[0], us[0]].item() == pytest.approx(2.5, rel=1e-6)
    assert out.rgb[0, vs[0], us[0]].tolist() == [200, 10, 30]
    assert out.rgb.dtype == torch.uint8 and out.rgb.shape == (1, 48, 64, 3)
    assert out.depth.dtype == torch.float32 and out.depth.shape == (1, 48, 64)
    assert (out.depth[~out.valid] == 0).all()


def test_points_behind_or_outside_the_frustum_are_not_drawn():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    pts = [[0, 0, -2.0], [5.0, 0, 2.0], [0, -3.0, 2.0], [0, 0, 0.01]]  # behind, right, above, nearer than near
    out = render(cloud_of(pts, [[255, 255, 255]] * 4), np.eye(4)[None], K, 48, 64, config=RAW)
    assert not out.valid.any()


def test_nearest_surface_wins_and_same_depth_points_average():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    pts = [[0, 0, 2.0], [0, 0, 4.0], [0.001, 0, 2.0]]
    out = render(cloud_of(pts, [[100, 0, 0], [0, 255, 0], [200, 0, 0]]), np.eye(4)[None], K, 48, 64, config=RAW)
    assert out.rgb[0, 24, 32].tolist() == [150, 0, 0]  # both near points averaged, far one hidden
    assert out.depth[0, 24, 32].item() == pytest.approx(2.0)


def test_training_view_reproduces_frame_and_depth():
    scene = wall_scene(n=3)
    world = build_world(scene)
    for i in range(3):
        out = render_world(world, scene.poses[i:i + 1], scene.timestamps[i], scene.K, scene.height, scene.width)
        assert out.valid.all()
        assert psnr(out.rgb[0].numpy(), scene.frames[i]) > 35.0
        np.testing.assert_allclose(out.depth[0].numpy(), 3.0, rtol=1e-5)


def test_batch_equals_individual_renders_and_culling_changes_nothing():
    scene = wall_scene(n=3)
    world = build_world(scene)
    rng = np.random.default_rng(0)
    poses = np.stack([look_at(rng.uniform([-0.5, -0.5, 1.0], [0.5, 0.5, 2.0]), [3.0, rng.uniform(-1, 1), 1.5])
                      for _ in range(5)])
    batch = render(world.cloud(), poses, scene.K, 40, 56)
    for i in range(5):
        one = render(world.cloud(), poses[i:i + 1], scene.K, 40, 56)
        assert torch.equal(one.rgb[0], batch.rgb[i]) and torch.equal(one.depth[0], batch.depth[i])
    xyz, rgb = world.cloud().points(level=0)
    fine = cloud_of(xyz, rgb, chunk=0.25, voxel=1e-4)
    whole = build_lod_cloud(xyz, rgb, torch.ones(len(xyz)), voxel0=1e-4, num_levels=1, chunk_size=100.0,
                            block_size=len(xyz))
    assert fine.chunk_center.shape[0] > 50 and whole.chunk_center.shape[0] <= 8 and whole.num_blocks <= 9
    a, b = render(fine, poses, scene.K, 40, 56, config=RAW), render(whole, poses, scene.K, 40, 56, config=RAW)
    assert torch.equal(a.valid, b.valid)
    assert (a.rgb.int() - b.rgb.int()).abs().max() <= 1  # only float summation order differs


def test_lod_uses_fewer_points_far_away_without_losing_coverage():
    rng = np.random.default_rng(0)
    yz = rng.uniform(-2, 2, size=(400_000, 2))
    xyz = np.c_[np.zeros(len(yz)), yz]
    rgb = rng.uniform(0, 255, size=(len(yz), 3))
    cloud = build_lod_cloud(torch.tensor(xyz, dtype=torch.float32), torch.tensor(rgb, dtype=torch.float32),
                            torch.ones(len(yz)), voxel0=0.008, num_levels=5, chunk_size=1.0)
    K = intrinsics_matrix(32.0, 32.0, 31.5, 31.5)
    for dist in (1.0, 8.0):
        T = look_at([-dist, 0, 0], [0, 0, 0])
        out = render(cloud, T[None], K, 64, 64)
        w = 32.0 * 2.0 / dist  # half-width 2 m projected
        inner = slice(int(32 - w) + 2, int(32 + w) - 2)
        assert out.valid[0, inner, inner].all()
    counts = torch.stack([torch.isfinite(cloud.xyz[0, cloud.block_level == level]).sum() for level in range(5)]).float()
    assert (counts[1:] < 0.7 * counts[:-1]).all()  # each sqrt(2) level has about half the points of the finer one


def test_dynamic_segments_only_show_at_their_frame():
    static = cloud_of([[0, 0, 5.0]], [[10, 10, 10]])
    dyn = build_frame_cloud(torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0]]), torch.tensor([[255.0, 0, 0]] * 2),
                            torch.tensor([0, 3]), voxel0=0.001)
    cloud = concat_clouds([static, dyn])
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    poses = np.repeat(np.eye(4)[None], 3, axis=0)
    out = render(cloud, poses, K, 48, 64, frames=torch.tensor([0, 3, 1]), config=RAW)
    assert out.rgb[0, 24, 32].tolist() == [255, 0, 0] and not out.valid[0, 24, 44]
    assert out.rgb[1, 24, 32].tolist() == [10, 10, 10] and out.valid[1, 24, 44]
    assert out.rgb[2, 24, 32].tolist() == [10, 10, 10] and not out.valid[2, 24, 44]
    static_only = render(cloud, poses[:1], K, 48, 64, config=RAW)
    assert static_only.rgb[0, 24, 32].tolist() == [10, 10, 10]


def test_gap_fill_closes_pinholes_and_hides_leaking_background():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    u, v = np.meshgrid(np.arange(64), np.arange(48))
    keep = ~((u == 30) & (v == 20))  # one missing pixel in the front wall
    z = 2.0
    front = np.c_[(u[keep] - 31.5) / 50 * z, (v[keep] - 23.5) / 50 * z, np.full(keep.sum(), z)]
    back = [[(30 - 31.5) / 50 * 6.0, (20 - 23.5) / 50 * 6.0, 6.0]]  # far point visible through the hole
    cloud = cloud_of(np.r_[front, back], np.r_[np.full((keep.sum(), 3), 100.0), [[255.0, 255, 255]]])
    raw = render(cloud, np.eye(4)[None], K, 48, 64, config=RAW)
    assert raw.rgb[0, 20, 30].tolist() == [255, 255, 255]  # the leak, without gap filling
    out = render(cloud, np.eye(4)[None], K, 48, 64)
    assert out.valid.all()
    assert out.rgb[0, 20, 30].tolist() == [100, 100, 100]
    assert out.depth[0, 20, 30].item() == pytest.approx(2.0, rel=1e-4)


def test_large_holes_stay_invalid_but_get_colour():
    K = intrinsics_matrix(50.0, 50.0, 31.5, 23.5)
    u, v = np.meshgrid(np.arange(64), np.arange(48))
    keep = u < 32
    z = 2.0
    pts = np.c_[(u[keep] - 31.5) / 50 * z, (v[keep] - 23.5) / 50 * z, np.full(keep.sum(), z)]
    out = render(cloud_of(pts, np.full((keep.sum(), 3), 80.0)), np.eye(4)[None], K, 48, 64)
    assert out.valid[0, :, :32].all() and not out.valid[0, :, 34:].any()
    assert (out.depth[0, :, 34:] == 0).all()
    assert (out.rgb[0, :, 34:] == 80).all()  # push-pull extends the only colour there is


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poses": np.zeros((0, 4, 4))}, "B=0"),
        ({"poses": np.full((1, 4, 4), np.nan)}, "NaN"),
        ({"poses": np.eye(4)}, r"\(B, 4, 4\)"),
        ({"height": 0}, "resolution"),
        ({"width": -3}, "resolution"),
        ({"K": np.eye(3)[None].repeat(2, 0)}, "K must be"),
        ({"K": np.zeros((3, 3))}, "positive focal"),
        ({"frames": torch.tensor([0, 1])}, "one entry per pose"),
    ],
)
def test_bad_render_requests(kwargs, message):
    args = {"cloud": cloud_of([[0, 0, 2.0]], [[1, 1, 1]]), "poses": np.eye(4)[None],
            "K": intrinsics_matrix(50.0, 50.0, 31.5, 23.5), "height": 48, "width": 64}
    args.update(kwargs)
    with pytest.raises(RenderError, match=message):
        render(**args)


def test_empty_cloud_is_an_error():
    with pytest.raises(RenderError, match="empty"):
        render(SplatCloud.empty(), np.eye(4)[None], intrinsics_matrix(50, 50, 31.5, 23.5), 48, 64)
