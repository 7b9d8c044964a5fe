import numpy as np
import pytest
import torch

from inspatio_sim.errors import ConfigError, WorldError
from inspatio_sim.render import render_world
from inspatio_sim.world import WorldConfig, build_world
from tests.helpers import wall_scene


def test_static_layer_is_fused_and_deduplicated():
    scene = wall_scene(n=3, distance=3.0)
    world = build_world(scene)
    finest, _ = world.static.points(level=0)
    # three overlapping views of one wall: fusion keeps about one point per voxel, not one per pixel observation
    assert finest.shape[0] < 1.5 * scene.height * scene.width
    np.testing.assert_allclose(finest[:, 0].numpy(), 3.0, atol=1e-5)  # all on the wall x = 3
    assert world.static.chunk_frame.eq(-1).all()
    assert world.dynamic.num_points == 0


def test_occupancy_sdf_and_trusted_region_of_a_wall():
    scene = wall_scene(n=3, distance=3.0)
    world = build_world(scene, WorldConfig(occupancy_voxel=0.05, trusted_min_views=3))
    occ = world.occupancy
    assert occ.sdf.dtype == torch.float32 and occ.occupied.shape == occ.sdf.shape
    front = torch.tensor([[2.0, 0.0, 1.5], [1.0, 0.0, 1.5], [2.5, 0.05, 1.4]])
    np.testing.assert_allclose(occ.sdf_at(front).numpy(), [1.0, 2.0, 0.5], atol=0.05)
    behind = torch.tensor([[3.3, 0.0, 1.5]])
    assert occ.sdf_at(behind).item() < 0
    assert occ.sdf_at(torch.tensor([[50.0, 0.0, 0.0]])).item() < 0  # outside the grid: unknown
    assert occ.is_trusted(front).all() and not occ.is_trusted(behind).any()
    ijk, inside = occ.voxel_index(torch.tensor([[3.0, 0.0, 1.5]]))
    assert inside.all() and occ.occupied[tuple(ijk[0].tolist())]


def test_dynamic_pixels_go_to_the_dynamic_layer_per_frame():
    scene = wall_scene(n=3)
    scene.dynamic_mask[1, 10:20, 10:20] = True
    scene.depth[1, 10:20, 10:20] = 1.5
    scene.frames[1, 10:20, 10:20] = [255, 0, 0]
    world = build_world(scene)
    assert world.dynamic.chunk_frame.tolist() == [1]
    assert world.dynamic.num_points > 50
    assert (world.static.points()[0][:, 0] > 2.9).all()  # the moving patch did not enter the static layer
    poses, K = scene.poses[1:2], scene.K
    at_frame1 = render_world(world, poses, scene.timestamps[1], K, scene.height, scene.width)
    at_frame0 = render_world(world, poses, scene.timestamps[0], K, scene.height, scene.width)
    assert at_frame1.rgb[0, 15, 15].tolist() == [255, 0, 0]
    assert at_frame1.depth[0, 15, 15].item() == pytest.approx(1.5, rel=1e-4)
    assert at_frame0.depth[0, 15, 15].item() == pytest.approx(3.0, rel=1e-4)


def test_low_confidence_and_empty_scenes():
    scene = wall_scene()
    scene.confidence[:] = 0.2
    with pytest.raises(WorldError, match="empty"):
        build_world(scene)
    scene = wall_scene()
    scene.depth[:] = 0
    with pytest.raises(WorldError, match="empty"):
        build_world(scene)


def test_config_validation():
    with pytest.raises(ConfigError, match="time_mode"):
        build_world(wall_scene(), WorldConfig(time_mode="backwards"))
    with pytest.raises(ConfigError, match="voxel_size"):
        build_world(wall_scene(), WorldConfig(voxel_size=-1.0))


def test_occupied_shell_is_watertight_even_when_pixels_are_coarser_than_voxels():
    scene = wall_scene(n=3, distance=3.0)  # 64x48 px: a pixel covers ~6.6 cm of wall, voxels are 5 cm
    world = build_world(scene, WorldConfig(occupancy_voxel=0.05))
    occ = world.occupancy
    yy, zz = torch.meshgrid(torch.linspace(-1.0, 1.0, 60), torch.linspace(0.8, 2.2, 40), indexing="ij")
    wall = torch.stack([torch.full_like(yy, 3.0), yy, zz], -1).reshape(-1, 3)
    # every wall point's voxel or its neighbour along x is occupied: no gap a sphere could slip through
    ijk, inside = occ.voxel_index(wall)
    hit = occ.occupied[ijk[:, 0], ijk[:, 1], ijk[:, 2]] | occ.occupied[ijk[:, 0] - 1, ijk[:, 1], ijk[:, 2]]
    assert inside.all() and hit.all()


def test_backdrop_keeps_depthless_colours_in_every_direction_and_never_collides():
    scene = wall_scene(n=3, h=48, w=64, distance=3.0)
    hole = (slice(None), slice(30, 46), slice(20, 44))  # below the horizon: the camera looks along +x, level
    scene.depth[hole] = 0.0
    scene.confidence[hole] = 0.0
    # far content (what has no depth: the view through a window): its colour depends on the viewing direction only
    v, u = np.mgrid[30:46, 20:44]
    rays = np.stack([(u - scene.K[0, 2]) / scene.K[0, 0], (v - scene.K[1, 2]) / scene.K[1, 1], np.ones(u.shape)], -1)
    dirs = rays @ scene.poses[0, :3, :3].T  # every frame has the same orientation
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    scene.frames[hole] = np.clip(128 + 400 * dirs[None, ..., [1, 2, 1]] * [1, 1, -1], 0, 255).astype(np.uint8)
    world = build_world(scene)
    xyz, _ = world.sky.points(level=0)
    assert xyz.shape[0] > 50
    centre = world.poses[:, :3, 3].mean(0)
    np.testing.assert_allclose((xyz - centre).norm(dim=1).numpy(), world.sky_distance, rtol=1e-3)
    assert (xyz[:, 2] < centre[2]).all()  # the depth-less pixels look down: the backdrop is not only a sky
    # a recorded view gets its own colours back there, with no geometric depth
    out = render_world(world, scene.poses[1:2], scene.timestamps[1] - scene.timestamps[0], scene.K, 48, 64)
    inner = np.zeros((48, 64), bool)
    inner[32:44, 26:38] = True  # the other frames see the hole's rim (they are 4 px apart)
    assert out.valid[0].numpy()[inner].all() and (out.depth[0].numpy()[inner] == 0).all()
    err = out.rgb[0].numpy()[inner].astype(float) - scene.frames[1][inner].astype(float)
    assert np.abs(err).mean() < 2.0
    without = render_world(build_world(scene, WorldConfig(sky=False)), scene.poses[1:2], 0.1, scene.K, 48, 64)
    assert without.valid[0].numpy()[inner].mean() < 0.2
    # depth-less content never enters the occupancy grid or the signed distance field
    plain = build_world(scene, WorldConfig(sky=False))
    assert torch.equal(world.occupancy.occupied, plain.occupancy.occupied)
    assert torch.equal(world.occupancy.sdf, plain.occupancy.sdf)
    ijk, inside = world.occupancy.voxel_index(xyz)
    assert not world.occupancy.occupied[ijk[..., 0], ijk[..., 1], ijk[..., 2]][inside].any()
    assert (world.occupancy.sdf_at(xyz) <= 0).all()  # unknown out there: an agent can never reach it
