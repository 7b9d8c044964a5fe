"""Single-agent Gymnasium environment: the native vector environment with one agent, unbatched.

Sharing the vector code path guarantees that ``gymnasium.make`` and ``gymnasium.make_vec`` see the same world:
with the same seeds they produce the same observations. The inner vector env runs with ``autoreset_mode=disabled``:
a single environment never resets by itself, and stepping it after its episode terminated raises
:class:`~envs.errors.ResetNeededError` (``max_episode_steps`` truncation is Gymnasium's ``TimeLimit`` wrapper's).
``env.unwrapped.np_random`` is the generator that draws the episodes' start poses and goals.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.vector_env import InSpatioVectorEnv
from inspatio_sim.errors import ConfigError


class InSpatioEnv(gym.Env):
    """One agent of a task in a video-derived World; keyword arguments as :class:`InSpatioVectorEnv`.

    ``max_episode_steps`` is applied by Gymnasium's ``TimeLimit`` wrapper (from the registration), not here.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("max_episode_steps", None)
        for name in ("num_envs", "autoreset_mode"):
            if name in kwargs:
                raise ConfigError(f"{name} is a setting of the vector environment (gymnasium.make_vec), not of a "
                                  "single one")
        self._vec = InSpatioVectorEnv(num_envs=1, render_mode=render_mode, autoreset_mode="disabled", **kwargs)
        self.render_mode = render_mode
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.metadata = {**self.metadata, "render_fps": self._vec.metadata["render_fps"]}

    @property
    def simulator(self) -> Any:
        return self._vec.sim

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self._vec.reset(seed=seed, options=options)
        self._np_random, self._np_random_seed = self._vec.rng(0), self._vec.rng_seeds[0]
        return _first(obs), _first(info)

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        batched = action.unsqueeze(0) if hasattr(action, "unsqueeze") else np.asarray(action)[None]
        obs, reward, terminated, truncated, info = self._vec.step(batched)
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), _first(info)

    def render(self) -> np.ndarray | None:
        frames = self._vec.render()
        return None if frames is None else frames[0]

    def close(self) -> None:
        """Release the Simulator (pybullet client of the ``robot`` model) and the hold on the shared World."""
        self._vec.close()
        super().close()


def _first(batch: dict[str, Any]) -> dict[str, Any]:
    """Env 0 of a vector observation or ``info`` (keys whose ``_key`` mask excludes env 0 are left out)."""
    out = {}
    for key, value in batch.items():
        if key.startswith("_") or (f"_{key}" in batch and not bool(batch[f"_{key}"][0])):
            continue
        out[key] = _first(value) if isinstance(value, dict) else value[0]
    return out
