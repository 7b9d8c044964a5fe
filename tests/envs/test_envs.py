import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from envs.errors import ResetNeededError
from inspatio_sim.errors import ActionError, ConfigError, InSpatioError

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
    _obs0, info0 = vec.reset(seed=0)
    assert info0["_pose"].all() and info0["_time"].all() and "collided" not in info0
    act = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    for _ in range(2):
        _, _, term, trunc, info = vec.step(act)
        assert not (term | trunc).any() and info["_collided"].all()
    _, _, term, trunc, _ = vec.step(act)
    assert trunc.all() and not term.any()
    _obs, reward, term, trunc, info = vec.step(act)  # the reset step: action ignored, reward 0
    assert (reward == 0).all() and not (term | trunc).any()
    assert (info["time"] == 0).all() and info["_time"].all()
    assert not info["_collided"].any() and not info["collided"].any()  # reset info: no step keys
    for _ in range(2):  # the new episode has its full 3 steps
        _, _, term, trunc, _ = vec.step(act)
        assert not (term | trunc).any()
    _, _, term, trunc, _ = vec.step(act)
    assert trunc.all()
    vec.step(act)
    # partial reset: only env 1 goes back to a (new) start pose; info describes env 1 only
    vec.step(act)
    pose_before = vec.unwrapped.sim.poses().clone()
    _, info = vec.reset(options={"reset_mask": np.array([False, True])})
    after = vec.unwrapped.sim.poses()
    assert torch.equal(after[0], pose_before[0]) and not torch.equal(after[1], pose_before[1])
    assert info["_time"].tolist() == [False, True] and info["time"][1] == 0
    np.testing.assert_array_equal(info["pose"][1], after[1].numpy())
    assert vec.unwrapped.sim.time[0] > 0
    with pytest.raises(ConfigError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([0, 1])})
    with pytest.raises(ConfigError, match="at least one"):
        vec.reset(options={"reset_mask": np.zeros(2, bool)})


def test_same_step_autoreset_reports_final_observation_and_info_of_the_new_episode():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, max_episode_steps=2, autoreset_mode="same_step",
                       **SMALL)
    sim = vec.unwrapped.sim
    vec.reset(seed=0)
    obs, *_ = vec.step(np.zeros((2, 2), np.float32))
    vec.reset(options={"reset_mask": np.array([False, True])})  # env 1 now ends one step after env 0
    act = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    last = sim.observe().rgb.numpy()  # what env 0 sees before its ending step ...
    obs, _, _, trunc, info = vec.step(act)
    assert trunc.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False] and info["_final_info"].tolist() == [True, False]
    assert info["final_obs"][1] is None and set(info["final_obs"][0]) == {"rgb"}
    assert not np.array_equal(info["final_obs"][0]["rgb"], last[0])  # ... it moved, then ended
    assert info["final_info"]["time"][0] == pytest.approx(2 * sim.dt) and info["final_info"]["_collided"][0]
    assert not info["final_info"]["_time"][1]
    # info describes the returned observation: env 0's new episode (time 0, reset info), env 1's step
    assert info["time"].tolist() == pytest.approx([0.0, sim.dt]) and info["_time"].all()
    assert info["_collided"].tolist() == [False, True]
    np.testing.assert_array_equal(info["pose"], sim.poses().numpy())
    np.testing.assert_array_equal(obs["rgb"], sim.observe().rgb.numpy())
    assert not np.array_equal(info["final_obs"][0]["rgb"], obs["rgb"][0])
    obs, _, _, trunc, info = vec.step(act)
    assert trunc.tolist() == [False, True] and info["_final_obs"].tolist() == [False, True]


def test_disabled_autoreset_refuses_to_step_an_ended_env_until_it_is_reset():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, max_episode_steps=1, autoreset_mode="disabled",
                       **SMALL)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    vec.reset(seed=0)
    act = np.zeros((2, 2), np.float32)
    _, _, _, trunc, info = vec.step(act)
    assert trunc.all() and "final_obs" not in info
    with pytest.raises(ResetNeededError, match="0, 1 ended"):
        vec.step(act)
    vec.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ResetNeededError, match="env\\(s\\) 1 ended"):
        vec.step(act)
    vec.reset(options={"reset_mask": np.array([False, True])})
    _, _, _, trunc, _ = vec.step(act)
    assert trunc.all()


def test_stepping_before_reset_or_after_close_raises_clearly():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=2, **SMALL)
    with pytest.raises(ResetNeededError, match="never reset") as e:
        vec.step(np.zeros((2, 2), np.float32))
    assert isinstance(e.value, gym.error.ResetNeeded) and isinstance(e.value, InSpatioError)
    vec.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ResetNeededError, match="env\\(s\\) 1 were never reset"):
        vec.step(np.zeros((2, 2), np.float32))
    vec.close()
    with pytest.raises(gym.error.ClosedEnvironmentError, match="closed"):
        vec.reset(seed=0)
    single = gym.make("InSpatio/PointNav-v0", action_model="discrete", **SMALL)
    with pytest.raises(gym.error.ResetNeeded):
        single.step(1)
    single.reset(seed=0)
    _, _, term, _, info = single.step(0)  # discrete "stop" ends the episode
    assert term and set(info) >= {"pose", "collided", "success"} and not any(k.startswith("_") for k in info)
    with pytest.raises(ResetNeededError, match="ended"):
        single.step(1)
    single.reset()
    single.step(1)


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
