"""The environments with the classical world model (``model="classical"``): Gymnasium's checker, and the native
vector env equal to single envs step for step (the model state is per agent; resets of some envs do not step the
others' models)."""

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)

SMALL = {"overrides": ["scene=small"], "width": 32, "height": 24, "model": "classical"}


def test_env_checker_passes_with_the_classical_model():
    env = gym.make("InSpatio/PointNav-v0", **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.simulator.model is not None
    env.close()


def test_vector_env_with_the_model_equals_single_envs_across_autoresets():
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=3, max_episode_steps=3, autoreset_mode="same_step",
                       **SMALL)
    obs, _ = vec.reset(seed=11)
    singles = [gym.make("InSpatio/VideoWorld-v0", max_episode_steps=3, **SMALL) for _ in range(3)]
    single_obs = [e.reset(seed=11 + i)[0] for i, e in enumerate(singles)]
    rng = np.random.default_rng(0)
    filled, ended = 0, 0
    for step in range(7):
        for i in range(3):
            np.testing.assert_array_equal(obs["rgb"][i], single_obs[i]["rgb"], err_msg=f"env {i} step {step}")
        filled += int(vec.unwrapped.sim.model.last.filled.sum())
        actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        obs, _, terminated, truncated, _ = vec.step(actions)
        ended += int((terminated | truncated).sum())
        for i, e in enumerate(singles):
            single_obs[i], _, term, trunc, _ = e.step(actions[i])
            if term or trunc:
                single_obs[i], _ = e.reset()
    assert filled > 0  # the model did complete holes along the way
    assert ended >= 3  # and some envs restarted while the others went on
    vec.close()
    for e in singles:
        e.close()
