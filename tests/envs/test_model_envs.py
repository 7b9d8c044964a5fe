"""The environments with the classical world model (``model="classical"``): Gymnasium's checker, and the native
vector env equal to single envs step for step (the model state is per agent; resets of some envs do not step the
others' models)."""

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from tests.envs.checks import assert_vector_equals_single_envs

SMALL = {"overrides": ["scene=small"], "width": 32, "height": 24, "model": "classical"}


def test_env_checker_passes_with_the_classical_model():
    env = gym.make("InSpatio/PointNav-v0", **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.simulator.model is not None
    env.close()


def test_vector_env_with_the_model_equals_single_envs_across_autoresets():
    assert_vector_equals_single_envs(SMALL)
