"""The environments with the learned STAR completer (``model="star"``): Gymnasium's checker, and the native vector
env equal to single envs step for step (per-agent caches and noise generators seeded from the env seed)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.network import NetConfig, STARNet


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.manual_seed(0)
    net = STARNet(NetConfig(patch=8, dim=32, layers=2, heads=2))
    with torch.no_grad():
        net.head.weight.normal_(0, 0.05)  # outputs depend on the noise and the inputs
    path = ckpt.save(tmp_path_factory.mktemp("star") / "star.pt", {"student": net}, {})
    return {"overrides": ["scene=small", f"model.star.checkpoint={path}", "model.star.steps=2"], "width": 32,
            "height": 24, "model": "star"}


def test_env_checker_passes_with_the_star_model(small):
    env = gym.make("InSpatio/PointNav-v0", **small)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.simulator.model.completer.name == "star"
    env.close()


def test_vector_env_with_star_equals_single_envs_across_autoresets(small):
    vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=3, max_episode_steps=3, autoreset_mode="same_step",
                       **small)
    obs, _ = vec.reset(seed=11)
    singles = [gym.make("InSpatio/VideoWorld-v0", max_episode_steps=3, **small) for _ in range(3)]
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
    assert filled > 0
    assert ended >= 3
    vec.close()
    for e in singles:
        e.close()
