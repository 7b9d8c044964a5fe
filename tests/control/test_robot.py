"""The ``robot`` action model: a pybullet URDF body on the World's marching-cubes mesh."""

import math

import numpy as np
import pytest
import torch

from envs.factory import SimulatorSpec, make_simulator
from inspatio_sim.control import ESCMConfig, RobotConfig, world_mesh
from inspatio_sim.errors import ConfigError


@pytest.fixture(scope="module")
def sim():
    return make_simulator(SimulatorSpec(overrides=["scene=small"], width=16, height=12, action_model="robot"), 1)


def test_mesh_lies_on_the_sdf_zero_level(sim):
    world = sim.world
    verts, faces = world_mesh(world)
    assert verts.shape[1] == 3 and faces.shape[1] == 3 and faces.max() < len(verts)
    assert world_mesh(world)[0] is verts  # cached per World
    occ = world.occupancy
    sdf = occ.sdf_at(torch.as_tensor(verts, dtype=torch.float32))
    inside = occ.voxel_index(torch.as_tensor(verts, dtype=torch.float32))[1]
    assert sdf[inside].abs().max().item() < occ.voxel
    # the floor of the room is part of it, near the ground plane (z = 0)
    floor = verts[np.abs(verts[:, 2]) < occ.voxel]
    assert len(floor) > 1000


def _wall_ahead(sim, rng):
    """Reset until some heading has a wall 0.6-2.5 m ahead of the base across the body's width and height.

    Returns the robot state, that heading and the distance (metres) from the base origin to the wall."""
    occ = sim.world.occupancy
    robot = sim.escm.robot
    d = np.linspace(0.0, 2.5, 126)
    for _ in range(20):
        sim.reset(None, [rng])
        base = robot.base_pose(0)[:3, 3]
        best = None
        for yaw in np.deg2rad(np.arange(0, 360, 15)):
            fwd, left = np.array([math.cos(yaw), math.sin(yaw), 0.0]), np.array([-math.sin(yaw), math.cos(yaw), 0.0])
            pts = [base + np.outer(d, fwd) + lat * left + [0, 0, z] for lat in (-0.17, 0.0, 0.17) for z in (0.1, 0.18)]
            s = occ.sdf_at(torch.as_tensor(np.stack(pts), dtype=torch.float32)).numpy().min(0)
            hit = np.flatnonzero(s <= 0)
            if len(hit) and d[hit[0]] > 0.6 and (best is None or d[hit[0]] < best[2]):
                best = (robot.state(), yaw, d[hit[0]])
        if best is not None:
            return best
    raise AssertionError("no start with a wall ahead")


def test_driving_into_a_wall_stops_before_it(sim):
    robot = sim.escm.robot
    state, yaw, dist = _wall_ahead(sim, np.random.default_rng(4))
    robot.set_state(state, np.ones(1, bool))
    for _ in range(40):  # turn towards the wall
        err = (yaw - sim.heading()[0].item() + math.pi) % (2 * math.pi) - math.pi
        if abs(err) < 0.02:
            break
        sim.step(torch.tensor([[0.0, float(np.clip(err / 0.1, -2.0, 2.0))]]))
    occ = sim.world.occupancy
    start = robot.base_pose(0)[:3, 3]
    flags, positions = [], []
    for _ in range(40):
        out = sim.step(torch.tensor([[1.5, 0.0]]))
        assert occ.sdf_at(out.poses[:, :3, 3]).item() > 0  # the camera never enters solid space
        flags.append(bool(out.collided[0]))
        positions.append(robot.base_pose(0)[:3, 3])
    travelled = np.linalg.norm((positions[-1] - start)[:2])
    assert flags[-1] and np.linalg.norm(positions[-1] - positions[-5]) < 0.01  # stopped and says so
    front = 0.25  # the half-size husky's bumper is 0.25 m ahead of its base origin
    assert 0.5 * (dist - front) < travelled < dist - front + occ.voxel  # drove, and its front stopped at the wall


def test_ground_following_and_yaw_direction(sim):
    sim.reset(None, [np.random.default_rng(7)])
    robot = sim.escm.robot
    heights = []
    yaw0 = sim.heading()[0].item()
    start = sim.poses()[0, :2, 3].numpy().copy()
    for _ in range(10):
        out = sim.step(torch.tensor([[0.3, 1.0]]))  # drive an arc to the left (counter-clockwise)
        base = robot.base_pose(0)
        floor = robot._floor_z(base[:2, 3], base[2, 3] + 0.3)
        heights.append(out.poses[0, 2, 3].item() - floor)
        assert abs(out.poses[0, 2, 0].item()) < 0.05  # camera x axis level: no roll
    turned = (sim.heading()[0].item() - yaw0) % (2 * math.pi)
    assert turned == pytest.approx(1.0, abs=0.1)  # 10 steps of 0.1 s at 1 rad/s, counter-clockwise
    np.testing.assert_allclose(heights, robot.camera_height, atol=0.02)  # camera rides at its mount height
    assert np.linalg.norm(out.poses[0, :2, 3].numpy() - start) > 0.1  # it moved over the floor
    sim.step(torch.tensor([[0.0, 0.0]]))
    yaw1 = sim.heading()[0].item()
    for _ in range(5):
        sim.step(torch.tensor([[0.0, -1.0]]))
    assert (yaw1 - sim.heading()[0].item()) % (2 * math.pi) == pytest.approx(0.5, abs=0.08)  # clockwise


def test_seeded_reset_reproduces_the_rollout(sim):
    actions = torch.tensor([[0.8, 0.3], [0.5, -0.6], [1.2, 0.0], [0.0, 1.5]] * 3)
    runs = []
    for warmup in (0, 7):
        sim.reset(None, [np.random.default_rng(2)])
        for _ in range(warmup):  # a different history before the seeded reset
            sim.step(torch.tensor([[1.0, 0.5]]))
        sim.reset(None, [np.random.default_rng(3)])
        runs.append(torch.stack([sim.step(a[None]).poses[0] for a in actions]))
    assert torch.equal(runs[0], runs[1])


def test_bad_robot_config_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"control\.robot\.urdf"):
        ESCMConfig(action_model="robot", robot={"urdf": "no/such.urdf"}).validate()
    with pytest.raises(ConfigError, match=r"control\.robot\.wheels"):
        ESCMConfig(action_model="robot", robot={"wheels": 4})
    with pytest.raises(ConfigError, match="camera_link"):
        make_simulator(SimulatorSpec(overrides=["scene=small", "control.robot.camera_link=nope"], width=8, height=8,
                                     action_model="robot"), 1)
    assert RobotConfig().urdf == "husky/husky.urdf"
