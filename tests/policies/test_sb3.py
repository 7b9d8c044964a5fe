"""The SB3 VecEnv adapter over the native batch: SB3's checks, equal to the native env step for step, trains."""

import gymnasium as gym
import numpy as np

import envs  # noqa: F401
from policies.sb3 import InSpatioSB3VecEnv, check_vec_env

KW = {"num_envs": 3, "width": 64, "height": 48, "depth": True, "max_episode_steps": 6, "overrides": ["scene=small"]}


def test_the_adapter_passes_the_vec_env_checks():
    venv = InSpatioSB3VecEnv(env_id="InSpatio/PointNav-v0", **KW)
    check_vec_env(venv, steps=8)  # episodes of 6 steps: terminal observations are checked too
    venv.close()


def test_the_adapter_equals_the_native_env_step_for_step():
    venv = InSpatioSB3VecEnv(env_id="InSpatio/PointNav-v0", **KW)
    native = gym.make_vec("InSpatio/PointNav-v0", autoreset_mode="same_step", **KW)
    venv.seed(7)
    obs_a = venv.reset()
    obs_b, _ = native.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(9):
        for k in obs_b:
            np.testing.assert_array_equal(obs_a[k], obs_b[k])
        actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        obs_a, rew_a, done_a, infos = venv.step(actions)
        obs_b, rew_b, term, trunc, info = native.step(actions)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, term | trunc)
        for i in np.flatnonzero(done_a):
            np.testing.assert_array_equal(infos[i]["terminal_observation"]["rgb"], info["final_obs"][i]["rgb"])
            assert infos[i]["TimeLimit.truncated"] == bool(trunc[i] and not term[i])
    venv.close()
    native.close()


def test_sb3_ppo_trains_a_few_hundred_steps_on_the_adapter():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(InSpatioSB3VecEnv(env_id="InSpatio/PointNav-v0", **{**KW, "num_envs": 4}))
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, verbose=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not np.allclose(a.numpy(), b.detach().numpy()) for a, b in zip(before, model.policy.parameters(),
                                                                                 strict=True))
    venv.close()


def test_a_single_rgb_key_gives_a_box_space_for_cnn_policy():
    venv = InSpatioSB3VecEnv(env_id="InSpatio/PointNav-v0", obs_keys=("rgb",), **KW)
    assert isinstance(venv.observation_space, gym.spaces.Box) and venv.observation_space.shape == (48, 64, 3)
    assert venv.reset().shape == (3, 48, 64, 3)
    venv.close()
