import pytest
import torch

from inspatio_sim.control.collision import sweep_sphere
from inspatio_sim.world import WorldConfig, build_world
from tests.helpers import wall_scene

R = 0.2


@pytest.fixture(scope="module")
def wall_sdf():
    world = build_world(wall_scene(n=3, h=96, w=128, distance=3.0), WorldConfig(occupancy_voxel=0.05))
    occ = world.occupancy
    return occ.sdf_at, occ.voxel


def sweep(sdf_voxel, start, delta):
    sdf, voxel = sdf_voxel
    return sweep_sphere(sdf, torch.tensor(start), torch.tensor(delta), R, margin=voxel / 2, gradient_step=voxel)


@pytest.mark.parametrize("speed", [1.5, 2.0, 10.0, 1000.0])
def test_sphere_stops_at_the_wall_at_any_speed(wall_sdf, speed):
    out = sweep(wall_sdf, [[1.5, 0.0, 1.5]], [[speed, 0.0, 0.0]])
    x = out.position[0, 0].item()
    assert out.collided.item()
    assert x <= 3.0 - R  # never closer than the radius, never through
    assert x >= 3.0 - R - 2 * wall_sdf[1]  # and stopped within two voxels of contact
    assert out.position[0, 1:].tolist() == pytest.approx([0.0, 1.5], abs=2e-3)  # head-on: no sideways drift


def test_free_motion_is_exact_and_batched(wall_sdf):
    out = sweep(wall_sdf, [[1.5, 0.0, 1.5], [1.0, 0.2, 1.5]], [[-0.3, 0.1, 0.05], [0.0, 0.0, 0.0]])
    assert not out.collided.any()
    torch.testing.assert_close(out.position, torch.tensor([[1.2, 0.1, 1.55], [1.0, 0.2, 1.5]]))


def test_oblique_motion_slides_along_the_wall(wall_sdf):
    out = sweep(wall_sdf, [[2.5, 0.0, 1.5]], [[2.0, 0.4, 0.0]])
    assert out.collided.item()
    assert out.position[0, 0].item() <= 3.0 - R
    assert out.position[0, 1].item() == pytest.approx(0.4, abs=0.02)  # the tangential part survives
    # and moving away from the wall afterwards works
    back = sweep(wall_sdf, out.position.tolist(), [[-0.5, 0.0, 0.0]])
    assert not back.collided.item()
    assert back.position[0, 0].item() == pytest.approx(out.position[0, 0].item() - 0.5, abs=1e-5)
