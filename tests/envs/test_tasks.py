"""Start poses, PointNav goals and rewards, Explore coverage and rewards."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
import inspatio_sim.simulator as simulator_module
from inspatio_sim.assemble import build_simulator
from inspatio_sim.config import compose
from inspatio_sim.control import ESCMConfig
from inspatio_sim.errors import WorldError
from inspatio_sim.simulator import Simulator
from inspatio_sim.world import WorldConfig, build_world
from tests.helpers import wall_scene

SMALL = {"overrides": ["scene=small"], "width": 32, "height": 24}


def _assert_clear(sim, positions):
    occ = sim.world.occupancy
    p = torch.as_tensor(positions, dtype=torch.float32)
    assert (occ.sdf_at(p) > sim.escm.config.radius + occ.voxel).all()
    assert occ.is_trusted(p).all()


@pytest.mark.parametrize("model", ["ground", "fly"])
@pytest.mark.parametrize("tries", [simulator_module.START_TRIES, 0])
def test_start_poses_are_clear_trusted_and_where_the_escm_puts_them(model, tries, monkeypatch):
    monkeypatch.setattr(simulator_module, "START_TRIES", tries)  # 0: every pose comes from the scan fallback
    sim = build_simulator(compose(["scene=small", f"control.action_model={model}", "control.radius=0.3",
                                   "render.camera.width=8", "render.camera.height=8"]), 6)
    for seed in range(4):
        rngs = [np.random.default_rng(100 * seed + i) for i in range(6)]
        sim.reset(None, rngs)
        pos = sim.poses()[:, :3, 3].double().numpy()
        _assert_clear(sim, pos)
        if model == "ground":
            np.testing.assert_allclose(sim.world.ground.height(pos), sim.escm.config.camera_height, atol=1e-3)
        if tries == 0:
            candidates = sim.start_positions()
            assert np.min(np.linalg.norm(candidates[None] - pos[:, None], axis=2), axis=1).max() < 1e-5


def test_a_world_without_clear_trusted_space_refuses_to_place_an_agent():
    world = build_world(wall_scene(n=3, h=48, w=64, distance=3.0), WorldConfig(trusted_min_views=1))
    ok = Simulator(world, 1, control=ESCMConfig(action_model="fly", radius=0.25))
    pose = ok.sample_start_poses(1, np.random.default_rng(0))[0]
    _assert_clear(ok, pose[None, :3, 3].numpy())
    huge = Simulator(world, 1, control=ESCMConfig(action_model="fly", radius=4.0))  # the wall is 3 m away
    with pytest.raises(WorldError, match=r"no start pose.*control\.radius"):
        huge.sample_start_poses(1, np.random.default_rng(0))


def test_pointnav_goals_lie_in_the_geodesic_range_and_never_at_the_start():
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=4, task_kwargs={"min_geodesic": 1.5, "max_geodesic": 3.0},
                       **SMALL)
    task = vec.unwrapped.task
    for seed in range(3):
        obs, _ = vec.reset(seed=10 * seed)
        assert ((task.start_geodesic >= 1.5) & (task.start_geodesic <= 3.0)).all()
        assert (np.linalg.norm(task.goal[:, :2] - task.agent_xy(), axis=1) > task.nav.cell).all()
        np.testing.assert_allclose(obs["pointgoal"][:, 0], np.linalg.norm(task.goal[:, :2] - task.agent_xy(), axis=1),
                                   rtol=1e-5)
    with pytest.raises(WorldError, match=r"none of 20 start poses is a goal 40\.0-50\.0 m"):
        gym.make("InSpatio/PointNav-v0", task_kwargs={"min_geodesic": 40.0, "max_geodesic": 50.0},
                 **SMALL).reset(seed=0)


def _goal_here(task, i=0):
    """Put agent ``i``'s goal at its own position (the next step succeeds)."""
    xy = task.agent_xy()[i]
    task.goal[i, :2] = xy
    task.maps[i] = task._fill(task.nav.distance_map(xy))
    task.previous[i] = task.nav.geodesic(task.maps[i], xy[None])[0]


PENALTIES = {"step_penalty": 0.1, "collision_penalty": 0.7, "success_reward": 3.0}


def test_pointnav_reward_is_progress_minus_step_and_collision_penalties():
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=1, action_model="ground", task_kwargs=PENALTIES,
                       **SMALL)
    task = vec.unwrapped.task
    vec.reset(seed=3)
    previous = float(task.start_geodesic[0])
    _, reward, *_ = vec.step(np.zeros((1, 2), np.float32))
    assert reward[0] == pytest.approx(-0.1, abs=1e-6)  # standing still: only the step penalty
    seen = set()
    for _ in range(80):
        _, reward, term, _, info = vec.step(np.array([[1.0, 0.0]], np.float32))  # straight ahead, into a wall
        geo, hit = float(info["distance_to_goal"][0]), bool(info["collided"][0])
        progress = previous - geo if math.isfinite(geo) else 0.0
        previous = geo if math.isfinite(geo) else previous
        expected = progress - 0.1 - 0.7 * hit + 3.0 * bool(info["success"][0])
        assert reward[0] == pytest.approx(expected, abs=1e-4)
        seen.add(hit)
        if term[0]:
            break
    assert seen == {True, False}  # both branches of the collision term were checked


@pytest.mark.parametrize("model", ["ground", "discrete"])
def test_pointnav_success_bonus_and_the_discrete_stop(model):
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=1, action_model=model, task_kwargs=PENALTIES, **SMALL)
    task = vec.unwrapped.task
    vec.reset(seed=5)
    still = np.zeros(1, np.int64) if model == "discrete" else np.zeros((1, 2), np.float32)
    if model == "discrete":
        _, reward, term, _, info = vec.step(still)  # stop far from the goal: ends, no success
        assert term[0] and not info["success"][0] and reward[0] == pytest.approx(-0.1, abs=1e-6)
        vec.reset(seed=5)
        _goal_here(task)
        _, reward, term, _, info = vec.step(np.array([2]))  # at the goal but turning, not stopping
        assert not term[0] and not info["success"][0] and reward[0] == pytest.approx(-0.1, abs=1e-4)
    _goal_here(task)
    _, reward, term, _, info = vec.step(still)
    assert term[0] and info["success"][0]
    assert reward[0] == pytest.approx(3.0 - 0.1, abs=1e-4)


def test_explore_rewards_newly_observed_floor_and_reports_coverage():
    vec = gym.make_vec("InSpatio/Explore-v0", num_envs=2, action_model="ground", **SMALL)
    task = vec.unwrapped.task
    cells = int(task.observable.sum())
    vec.reset(seed=2)
    start = task.seen.sum((1, 2)).numpy()
    assert (start > 0).all()  # the first frame counts as observed
    _, reward, _, _, info = vec.step(np.zeros((2, 2), np.float32))
    assert (reward == 0).all()  # standing still adds nothing
    np.testing.assert_allclose(info["coverage"], start / cells, rtol=1e-6)
    coverage = info["coverage"]
    total = np.zeros(2)
    for _ in range(12):  # turn in place: new floor comes into view
        _, reward, _, _, info = vec.step(np.array([[0.0, 1.0], [0.0, -1.0]], np.float32))
        assert (reward >= 0).all()
        np.testing.assert_allclose(reward, (info["coverage"] - coverage) * cells * task.cell**2, rtol=1e-4,
                                   atol=1e-5)
        coverage = info["coverage"]
        total += reward
    assert (total > 0).all() and (coverage <= 1).all()
    vec.reset(options={"reset_mask": np.array([True, False])})
    _, _, _, _, info = vec.step(np.zeros((2, 2), np.float32))
    assert info["coverage"][0] < coverage[0] and info["coverage"][1] == pytest.approx(coverage[1])
