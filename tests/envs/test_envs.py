import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs
from inspatio_sim.errors import ActionError, ConfigError

SMALL = {"overrides": ["scene=small"], "width": 32, "height": 24}


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
@pytest.mark.parametrize("model", ["ground", "fly", "discrete", "robot"])
def test_env_checker_passes(env_id, model):
    env = gym.make(env_id, action_model=model, depth=True, render_mode="rgb_array", **SMALL)
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=3)
    assert obs["rgb"].shape == (24, 32, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (24, 32, 1) and obs["depth"].dtype == np.float32
    assert env.render().shape == (24, 32, 3)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["pose"].shape == (4, 4) and {"collided", "limited", "left_region"} <= set(info)


def test_seeded_resets_and_rollouts_reproduce_exactly():
    runs = []
    for _ in range(2):
        env = gym.make("InSpatio/PointNav-v0", **SMALL)
        env.action_space.seed(0)
        obs, _ = env.reset(seed=11)
        frames = [obs["rgb"], obs["pointgoal"]]
        for _ in range(5):
            obs, reward, *_ = env.step(env.action_space.sample())
            frames += [obs["rgb"], obs["pointgoal"], np.float32(reward)]
        runs.append(frames)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    other, _ = gym.make("InSpatio/PointNav-v0", **SMALL).reset(seed=12)
    assert not np.array_equal(other["rgb"], runs[0][0])


@pytest.mark.parametrize("model", ["ground", "robot"])
def test_native_vector_env_matches_single_envs(model):
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=3, action_model=model, **SMALL)
    assert isinstance(vec.unwrapped, envs.InSpatioVectorEnv)
    assert vec.observation_space["rgb"].shape == (3, 24, 32, 3)
    assert vec.action_space.shape == (3, 2)
    obs, _ = vec.reset(seed=5)
    singles = [gym.make("InSpatio/VideoWorld-v0", action_model=model, **SMALL) for _ in range(3)]
    single_obs = [e.reset(seed=5 + i)[0] for i, e in enumerate(singles)]
    actions = np.array([[1.0, 0.2], [0.5, -0.5], [0.0, 1.0]], np.float32)
    for _ in range(4):
        for i in range(3):
            np.testing.assert_array_equal(obs["rgb"][i], single_obs[i]["rgb"])
        obs, *_ = vec.step(actions)
        single_obs = [e.step(actions[i])[0] for i, e in enumerate(singles)]


def test_next_step_autoreset_and_partial_reset():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, max_episode_steps=3, **SMALL)
    _obs0, _info0 = vec.reset(seed=0)
    act = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    for _ in range(2):
        _, _, term, trunc, _ = vec.step(act)
        assert not (term | trunc).any()
    _, _, term, trunc, _ = vec.step(act)
    assert trunc.all() and not term.any()
    _obs, reward, term, trunc, info = vec.step(act)  # the reset step: action ignored, reward 0
    assert (reward == 0).all() and not (term | trunc).any()
    assert (info["time"] == 0).all()
    for _ in range(2):  # the new episode has its full 3 steps
        _, _, term, trunc, _ = vec.step(act)
        assert not (term | trunc).any()
    _, _, term, trunc, _ = vec.step(act)
    assert trunc.all()
    vec.step(act)
    # partial reset: only env 1 goes back to a (new) start pose
    vec.step(act)
    pose_before = vec.unwrapped.sim.poses().clone()
    _, info = vec.reset(options={"reset_mask": np.array([False, True])})
    after = vec.unwrapped.sim.poses()
    assert torch.equal(after[0], pose_before[0]) and not torch.equal(after[1], pose_before[1])
    assert info["time"][0] > 0 and info["time"][1] == 0


def test_same_step_autoreset_reports_final_observation():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, max_episode_steps=2, autoreset_mode="same_step",
                       **SMALL)
    vec.reset(seed=0)
    vec.step(np.zeros((2, 2), np.float32))
    obs, _, _, trunc, info = vec.step(np.array([[1.0, 0.0], [1.0, 0.0]], np.float32))
    assert trunc.all() and "final_obs" in info
    assert (info["time"] == 0).all() or (vec.unwrapped.sim.time == 0).all()
    assert not np.array_equal(info["final_obs"]["rgb"], obs["rgb"])


def test_torch_observations_stay_on_the_device():
    vec = gym.make_vec("InSpatio/PointNav-v0", num_envs=2, torch_obs=True, depth=True, **SMALL)
    obs, _ = vec.reset(seed=1)
    assert isinstance(obs["rgb"], torch.Tensor) and obs["rgb"].dtype == torch.uint8
    assert obs["depth"].shape == (2, 24, 32, 1) and obs["pointgoal"].device.type == "cpu"
    _, reward, _term, _trunc, _ = vec.step(torch.zeros(2, 2))
    assert isinstance(reward, torch.Tensor) and reward.shape == (2,)


def test_pointnav_spl_of_a_straight_line_episode():
    env = gym.make("InSpatio/PointNav-v0", action_model="fly", **SMALL).unwrapped
    env.reset(seed=0)
    sim, task = env.simulator, env._vec.task
    start = sim.poses()[0, :3, 3].numpy().astype(np.float64)
    # a heading with 1.5 m of traversable cells straight ahead; turn the agent that way and put the goal there
    for yaw in np.deg2rad(np.arange(0, 360, 10)):
        ray = start[:2] + np.outer(np.linspace(0, 1.8, 40), [np.cos(yaw), np.sin(yaw)])
        ij, inside = task.nav.cell_of(ray)
        if inside.all() and task.nav.traversable[ij[:, 0], ij[:, 1]].all():
            break
    else:
        raise AssertionError("the start pose has no free straight corridor in any direction")
    sim.escm.euler[0, 2] = float(yaw)
    goal = start + 1.5 * np.array([np.cos(yaw), np.sin(yaw), 0.0])
    task.goal[0] = goal
    task.maps[0] = task._fill(task.nav.distance_map(goal[:2]))
    task.start_geodesic[0] = task.previous[0] = task.nav.geodesic(task.maps[0], start[None, :2])[0]
    obs = env._vec._observation(sim.observe())
    assert obs["pointgoal"][0, 0] == pytest.approx(1.5, abs=1e-3) and abs(obs["pointgoal"][0, 1]) < 1e-3
    info = {}
    for _ in range(40):
        _, _, term, _, info = env.step(np.array([1.0, 0, 0, 0, 0, 0], np.float32))
        if term:
            break
    assert term and info["success"]
    expected = task.start_geodesic[0] / max(task.path_length[0], task.start_geodesic[0])
    assert info["spl"] == pytest.approx(expected, rel=1e-5)
    assert info["spl"] > 0.9  # a straight flight is (nearly) the shortest path


def test_bad_actions_and_settings():
    env = gym.make("InSpatio/VideoWorld-v0", **SMALL)
    env.reset(seed=0)
    with pytest.raises(ActionError, match="NaN or inf"):
        env.step(np.array([np.nan, 0.0], np.float32))
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3, np.float32))
    pose = env.unwrapped.simulator.poses()
    assert torch.isfinite(pose).all()
    _, _, _, _, info = env.step(np.array([50.0, -50.0], np.float32))  # out of space: clipped, documented
    assert np.isfinite(info["pose"]).all()
    with pytest.raises(ConfigError, match=r"control\.nope"):
        gym.make("InSpatio/VideoWorld-v0", overrides=["scene=small", "control.nope=1"])
    with pytest.raises(ConfigError, match="autoreset_mode"):
        gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, autoreset_mode="sometimes", **SMALL)
    with pytest.raises(gym.error.Error):
        gym.make("InSpatio/Nope-v0")
