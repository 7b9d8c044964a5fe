"""The random baseline: uniform actions from the environment's action space, reproducible for a seed."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from policies.base import Policy


class RandomPolicy(Policy):
    """Uniform random actions (continuous: uniform in ``[-1, 1]``; discrete: every action, ``stop`` included).

    Args:
        env: The native vector environment (its ``single_action_space`` and ``num_envs``).
        seed: Seed of the action stream (the same seed gives the same actions).
    """

    name = "random"

    def __init__(self, env: Any, seed: int = 0) -> None:
        self.space = env.single_action_space
        self.num_envs = env.num_envs
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        if isinstance(self.space, spaces.Discrete):
            return self.rng.integers(0, int(self.space.n), self.num_envs)
        low, high = self.space.low, self.space.high
        return self.rng.uniform(low, high, (self.num_envs, *self.space.shape)).astype(np.float32)
