"""Shared checks of the environment tests."""

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)


def assert_vector_equals_single_envs(kwargs: dict, num_envs: int = 3, steps: int = 7) -> None:
    """``gym.make_vec`` with seed 11 equals single envs seeded 11, 12, ... step for step (``same_step`` autoreset,
    episodes of 3 steps, so some envs restart while the others go on), with a world model that completed holes."""
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=num_envs, max_episode_steps=3, autoreset_mode="same_step",
                       **kwargs)
    obs, _ = vec.reset(seed=11)
    singles = [gym.make("InSpatio/VideoWorld-v0", max_episode_steps=3, **kwargs) for _ in range(num_envs)]
    single_obs = [e.reset(seed=11 + i)[0] for i, e in enumerate(singles)]
    rng = np.random.default_rng(0)
    filled, ended = 0, 0
    for step in range(steps):
        for i in range(num_envs):
            np.testing.assert_array_equal(obs["rgb"][i], single_obs[i]["rgb"], err_msg=f"env {i} step {step}")
        filled += int(vec.unwrapped.sim.model.last.filled.sum())
        actions = rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32)
        obs, _, terminated, truncated, _ = vec.step(actions)
        ended += int((terminated | truncated).sum())
        for i, e in enumerate(singles):
            single_obs[i], _, term, trunc, _ = e.step(actions[i])
            if term or trunc:
                single_obs[i], _ = e.reset()
    assert filled > 0  # the model did complete holes along the way
    assert ended >= num_envs  # and some envs restarted while the others went on
    vec.close()
    for e in singles:
        e.close()
