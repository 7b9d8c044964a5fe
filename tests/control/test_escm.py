import math

import numpy as np
import pytest
import torch

from inspatio_sim.control import ESCM, ESCMConfig
from inspatio_sim.errors import ActionError, ConfigError, WorldError
from inspatio_sim.oracle import Oracle
from inspatio_sim.world import WorldConfig, build_world
from tests.helpers import wall_scene


@pytest.fixture(scope="module")
def room():
    with Oracle("room", seed=0) as oracle:
        scene = oracle.make_scene(num_frames=24, width=96, height=72, progress=False)
        world = build_world(scene, WorldConfig(trusted_min_views=1))
        yield oracle, scene, world


def start_poses(scene, n):
    return torch.as_tensor(scene.poses[np.linspace(0, scene.num_frames - 1, n).astype(int)], dtype=torch.float32)


def test_ground_model_follows_the_ground_at_camera_height(room):
    _, scene, world = room
    escm = ESCM(world, 4, ESCMConfig(action_model="ground", camera_height=1.3, ground_pitch_deg=10.0))
    escm.reset(start_poses(scene, 4))
    for _ in range(10):
        out = escm.step(torch.tensor([[0.5, 0.2]] * 4))
        height = world.ground.height(out.poses[:, :3, 3].double().numpy())
        np.testing.assert_allclose(height, 1.3, atol=2e-3)
        optical = out.poses[:, :3, 2]  # camera z axis in the world: 10 degrees below the horizon
        np.testing.assert_allclose(torch.rad2deg(torch.asin(-optical[:, 2])).numpy(), 10.0, atol=0.2)
        x_axis = out.poses[:, :3, 0]
        np.testing.assert_allclose(x_axis[:, 2].numpy(), 0.0, atol=1e-5)  # no roll


@pytest.mark.parametrize("max_speed", [1.5, 50.0])
def test_driving_into_walls_never_gets_closer_than_the_radius(room, max_speed):
    oracle, scene, world = room
    cfg = ESCMConfig(action_model="ground", radius=0.25, max_speed=max_speed, max_accel=1e4)
    escm = ESCM(world, 6, cfg)
    poses = start_poses(scene, 6)
    escm.reset(poses)
    stopped = torch.zeros(6, dtype=torch.bool)
    for _ in range(60):
        out = escm.step(torch.tensor([[max_speed, 0.0]] * 6))
        stopped |= out.collided | out.left_region
        clearance = oracle.clearance(out.poses[:, :3, 3].double().numpy())
        assert clearance.min() > cfg.radius - 0.005  # ground truth: the sphere never enters geometry
    assert stopped.all()  # every agent was stopped by geometry or by the edge of the trusted region


def test_sliding_keeps_the_tangential_motion():
    scene = wall_scene(n=3, h=96, w=128, distance=3.0)  # the wall x = 3, free space in front of it
    world = build_world(scene, WorldConfig(trusted_min_views=1))
    cfg = ESCMConfig(action_model="fly", max_speed=1.0, max_accel=100.0, region_policy="allow")
    escm = ESCM(world, 1, cfg)
    pose = torch.as_tensor(scene.poses[:1], dtype=torch.float32).clone()
    pose[0, :3, 3] = torch.tensor([2.4, 0.0, 1.5])
    escm.reset(pose)
    escm.euler[0, 2] = math.radians(30.0)  # heading 30 degrees off the wall normal
    for _ in range(5):
        out = escm.step(torch.tensor([[1.0, 0, 0, 0, 0, 0]]))
    assert out.collided.item()
    assert escm.position[0, 0].item() <= 3.0 - cfg.radius
    before = escm.position.clone()
    out = escm.step(torch.tensor([[1.0, 0, 0, 0, 0, 0]]))
    dy = (escm.position - before)[0, 1].item()
    assert dy == pytest.approx(0.1 * math.sin(math.radians(30.0)), abs=0.01)  # the tangential part survives


def test_discrete_steps(room):
    _, scene, world = room
    escm = ESCM(world, 1, ESCMConfig(action_model="discrete", pitch_limit_deg=25.0))
    escm.reset(start_poses(scene, 1))
    yaw0 = escm.euler[0, 2].item()
    escm.step(torch.tensor([2]))
    assert escm.euler[0, 2].item() == pytest.approx(yaw0 + math.radians(10.0), abs=1e-5)
    escm.step(torch.tensor([3]))
    escm.step(torch.tensor([3]))
    assert escm.euler[0, 2].item() == pytest.approx(yaw0 - math.radians(10.0), abs=1e-5)
    for _ in range(5):
        out = escm.step(torch.tensor([4]))  # look up, clamped at 25 degrees
    assert escm.euler[0, 1].item() == pytest.approx(-math.radians(25.0), abs=1e-5) and out.limited.item()
    p1 = escm.position.clone()
    escm.step(torch.tensor([0]))
    assert torch.equal(escm.position, p1)


def _sdf_ahead(world, position, yaw, distances):
    """Signed distance at points ``distances`` (metres) ahead of ``position (3,)`` along heading ``yaw``."""
    d = torch.as_tensor(distances, dtype=torch.float32)[:, None]
    pts = position[None] + d * torch.tensor([math.cos(yaw), math.sin(yaw), 0.0])
    return world.occupancy.sdf_at(pts)


def test_discrete_forward_step_moves_its_length_when_clear_and_stops_at_the_radius_when_blocked(room):
    oracle, scene, world = room
    cfg = ESCMConfig(action_model="discrete", radius=0.25, forward_step=0.25)
    escm = ESCM(world, 1, cfg)
    escm.reset(start_poses(scene, 1))
    p0 = escm.position[0].clone()
    margin = cfg.radius + 2 * world.occupancy.voxel
    yaws = np.deg2rad(np.arange(0, 360, 5))
    clear = next(y for y in yaws if _sdf_ahead(world, p0, y, np.linspace(0, 0.3, 13)).min() > margin)
    escm.euler[0, 2] = float(clear)
    out = escm.step(torch.tensor([1]))
    assert not out.collided.item()
    assert (escm.position[0] - p0)[:2].norm().item() == pytest.approx(0.25, abs=1e-4)
    # blocked: stand where the wall ahead is 0.1 m beyond the sphere's radius, then step 0.25 m towards it
    ts = np.linspace(0, 4, 161)
    for yaw in yaws:
        sdf = _sdf_ahead(world, p0, yaw, ts).numpy()
        near = np.flatnonzero(sdf < cfg.radius + 0.1)
        if near.size and near[0] > 0 and (sdf[:near[0]] > margin).all():
            break
    else:
        raise AssertionError("no wall ahead of the start in any direction")
    pose = start_poses(scene, 1).clone()
    pose[0, :2, 3] = p0[:2] + float(ts[near[0] - 1]) * torch.tensor([math.cos(yaw), math.sin(yaw)])
    escm.reset(pose)
    escm.euler[0, 2] = float(yaw)
    before = escm.position[0].clone()
    out = escm.step(torch.tensor([1]))
    moved = (escm.position[0] - before)[:2].norm().item()
    assert out.collided.item() and moved < 0.25 - 0.05
    assert oracle.clearance(escm.position.double().numpy())[0] > cfg.radius - 0.005


def test_fly_limits_speed_and_acceleration(room):
    _, scene, world = room
    cfg = ESCMConfig(action_model="fly", max_speed=1.0, max_accel=2.0, dt=0.1)
    escm = ESCM(world, 2, cfg)
    escm.reset(start_poses(scene, 2))
    out = escm.step(torch.tensor([[10.0, 0, 0, 0, 0, 0], [0.1, 0, 0, 0, 0, 0]]))
    assert out.limited.tolist() == [True, False]
    assert escm.velocity[0, 0].item() == pytest.approx(0.2)  # acceleration-limited: 2 m/s^2 * 0.1 s
    for _ in range(10):
        escm.step(torch.tensor([[10.0, 0, 0, 0, 0, 0]] * 2))
    assert escm.velocity[:, :3].norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)


def test_trusted_region_policies():
    scene = wall_scene(n=3, h=96, w=128, distance=3.0)
    world = build_world(scene, WorldConfig(trusted_min_views=3))
    poses = torch.as_tensor(scene.poses[:1], dtype=torch.float32)
    for policy, expect_moved, expect_term in (("clamp", False, False), ("allow", True, False),
                                              ("terminate", True, True)):
        escm = ESCM(world, 1, ESCMConfig(action_model="fly", region_policy=policy, max_accel=100.0, max_speed=6.0))
        escm.reset(poses)
        p0 = escm.position.clone()
        # 0.6 m sideways: out of the seen frusta and of the free sphere around the recorded camera
        out = escm.step(torch.tensor([[0.0, 6.0, 0.0, 0.0, 0.0, 0.0]]))
        assert out.left_region.item()
        assert (not torch.equal(escm.position, p0)) == expect_moved
        assert out.terminated.item() == expect_term


def test_partial_reset_and_bad_input(room):
    _, scene, world = room
    escm = ESCM(world, 2, ESCMConfig(action_model="fly"))
    poses = start_poses(scene, 2)
    escm.reset(poses)
    escm.step(torch.tensor([[1.0, 0, 0, 0, 0, 0.5]] * 2))
    moved = escm.position.clone()
    escm.reset(poses, mask=torch.tensor([True, False]))
    torch.testing.assert_close(escm.camera_poses()[0], poses[0], atol=1e-5, rtol=0)
    assert torch.equal(escm.position[1], moved[1]) and escm.velocity[0].abs().sum() == 0
    before = escm.position.clone()
    with pytest.raises(ActionError, match="NaN or inf"):
        escm.step(torch.tensor([[float("nan"), 0, 0, 0, 0, 0], [0.0] * 6]))
    with pytest.raises(ActionError, match="shape"):
        escm.step(torch.zeros(2, 2))
    assert torch.equal(escm.position, before) and torch.isfinite(escm.camera_poses()).all()
    discrete = ESCM(world, 1, ESCMConfig(action_model="discrete"))
    with pytest.raises(ActionError, match="integers"):
        discrete.step(torch.tensor([1.0]))
    with pytest.raises(ActionError, match=r"in \[0, 5\]"):
        discrete.step(torch.tensor([7]))
    with pytest.raises(ConfigError, match="action_model"):
        ESCM(world, 1, ESCMConfig(action_model="hover"))
    with pytest.raises(WorldError, match="no ground plane"):
        ESCM(build_world(wall_scene()), 1, ESCMConfig(action_model="ground"))
