"""Oracles: the PointNav oracle reaches goals around obstacles (hand-made grid, and the real small World)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from inspatio_sim.control import ESCMConfig
from inspatio_sim.conventions import R_BODY_CAMERA
from inspatio_sim.navigation import NavGrid
from policies.evaluate import make_eval_env, run_episodes
from policies.oracle import PointNavOracle, oracle_for


class _HandMadeWorld:
    """A 4 m x 3 m room of 5 cm cells with a wall across the middle (a gap at the top) and a kinematic agent
    (unicycle for ``ground``, Habitat-style steps for ``discrete``) that stops at blocked cells."""

    num_envs = 1

    def __init__(self, action_model: str) -> None:
        trav = np.ones((80, 60), bool)
        trav[:2], trav[-2:], trav[:, :2], trav[:, -2:] = False, False, False, False
        trav[38:42, :45] = False  # the wall at x = 1.9..2.1 m, open for y > 2.25 m
        self.nav = NavGrid(origin=np.zeros(2), cell=0.05, traversable=trav, height=np.full(trav.shape, 1.4, np.float32))
        self.config = ESCMConfig(action_model=action_model)
        self.sim = SimpleNamespace(escm=SimpleNamespace(config=self.config))
        self.task = SimpleNamespace(config=SimpleNamespace(success_radius=0.5))
        self.xy, self.yaw = np.array([0.5, 0.5]), 0.0
        self.goal = np.array([3.5, 0.5, 1.4])

    def navigation(self):
        return self.nav

    def goals(self):
        return self.goal[None].copy()

    def seen_cells(self):
        return None

    def info(self):
        R = np.array([[math.cos(self.yaw), -math.sin(self.yaw), 0], [math.sin(self.yaw), math.cos(self.yaw), 0],
                      [0, 0, 1]]) @ R_BODY_CAMERA
        pose = np.eye(4)
        pose[:3, :3], pose[:2, 3], pose[2, 3] = R, self.xy, 1.4
        return {"pose": pose[None]}

    def step(self, action) -> bool:
        """Move; True when the agent ended on a blocked cell (it never should)."""
        c = self.config
        if c.action_model == "discrete":
            a = int(action[0])
            self.yaw += math.radians(c.turn_step_deg) * ((a == 2) - (a == 3))
            forward = c.forward_step * (a == 1)
        else:
            a = np.clip(action[0], -1, 1)
            self.yaw += a[1] * c.max_angular_speed * c.dt
            forward = a[0] * c.max_speed * c.dt
        self.xy = self.xy + forward * np.array([math.cos(self.yaw), math.sin(self.yaw)])
        (ij,), _ = self.nav.cell_of(self.xy[None])
        return not self.nav.traversable[ij[0], ij[1]]


@pytest.mark.parametrize("action_model", ["ground", "discrete"])
def test_the_pointnav_oracle_goes_around_the_wall_to_the_goal(action_model):
    world = _HandMadeWorld(action_model)
    oracle = PointNavOracle(world)
    path = [world.xy.copy()]
    for _ in range(400):
        action = oracle.act({}, world.info())
        if action_model == "discrete" and action[0] == 0:
            break
        assert not world.step(action), f"the oracle drove into the wall at {world.xy}"
        path.append(world.xy.copy())
        if action_model == "ground" and np.linalg.norm(world.xy - world.goal[:2]) < 0.5:
            break
    assert np.linalg.norm(world.xy - world.goal[:2]) <= 0.5
    path = np.array(path)
    assert path[:, 1].max() > 2.25  # it went through the gap, around the wall
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert length < 1.2 * (2 * math.hypot(1.5, 1.9))  # near the shortest way round (over the gap's corner)


@pytest.mark.parametrize("action_model", ["ground", "discrete"])
def test_the_pointnav_oracle_succeeds_in_the_small_world(action_model):
    env = make_eval_env("pointnav", 4, episodes=None, max_steps=200,
                        env_kwargs={"width": 16, "height": 12, "action_model": action_model}, overrides=["scene=small"])
    records, _ = run_episodes(env, oracle_for(env), 8, seed=5, progress=False)
    env.close()
    assert np.mean([r.success for r in records]) >= 0.95
    assert np.mean([r.spl for r in records]) >= 0.8
