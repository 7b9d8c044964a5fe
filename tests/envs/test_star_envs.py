"""The environments with the learned STAR completer (``model="star"``): Gymnasium's checker, and the native vector
env equal to single envs step for step (per-agent caches and noise generators seeded from the env seed)."""

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.network import NetConfig, STARNet
from tests.envs.checks import assert_vector_equals_single_envs


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
    assert_vector_equals_single_envs(small)
