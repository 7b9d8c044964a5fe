"""Single-agent Gymnasium environment: the native vector environment with one agent, unbatched.

Sharing the vector code path guarantees that ``gymnasium.make`` and ``gymnasium.make_vec`` see the same world:
with the same seeds they produce the same observations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.vector_env import InSpatioVectorEnv


class InSpatioEnv(gym.Env):
    """One agent of a task in a video-derived World; keyword arguments as :class:`InSpatioVectorEnv`.

    ``max_episode_steps`` is applied by Gymnasium's ``TimeLimit`` wrapper (from the registration), not here.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("max_episode_steps", None)
        self._vec = InSpatioVectorEnv(num_envs=1, render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.metadata = {**self.metadata, "render_fps": self._vec.metadata["render_fps"]}

    @property
    def simulator(self) -> Any:
        return self._vec.sim

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and not hasattr(self, "_seeded"):
            seed = int(self.np_random.integers(2**31))
        self._seeded = True
        obs, info = self._vec.reset(seed=seed, options=options)
        return _first(obs), _first(info)

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        batched = np.asarray(action)[None] if not hasattr(action, "unsqueeze") else action.unsqueeze(0)
        obs, reward, terminated, truncated, info = self._vec.step(batched)
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), _first(info)

    def render(self) -> np.ndarray | None:
        frames = self._vec.render()
        return None if frames is None else frames[0]


def _first(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: (_first(v) if isinstance(v, dict) else v[0]) for k, v in batch.items()}
