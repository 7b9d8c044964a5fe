"""Stable-Baselines3 interop on the native batch: a ``VecEnv`` over :class:`envs.vector_env.InSpatioVectorEnv`.

Not a ``DummyVecEnv`` of single environments: each ``step`` is one Simulator call for all ``B`` agents, so
``stable_baselines3.PPO("MultiInputPolicy", InSpatioSB3VecEnv(...))`` trains on B agents per call. The inner
env runs with ``autoreset_mode=same_step``, which is SB3's convention: an ended env's returned observation is
the next episode's first, ``infos[i]["terminal_observation"]`` holds the last one and
``infos[i]["TimeLimit.truncated"]`` says the episode was cut by the time limit. Task metrics (``success``, ``spl``,
``coverage``...) are in each env's info dict; wrap in ``VecMonitor`` for SB3's episode statistics.

``obs_keys`` picks observation entries: all of them give a ``Dict`` space (``MultiInputPolicy``); a single image key
(``obs_keys=("rgb",)``) gives that ``Box`` (``CnnPolicy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from envs.vector_env import InSpatioVectorEnv
from inspatio_sim.errors import ConfigError

_STEP_KEYS = ("collided", "limited", "left_region", "success", "spl", "soft_spl", "distance_to_goal", "coverage")


class InSpatioSB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` over one native vector env (``num_envs`` agents, one Simulator call per step).

    Args:
        env: A native vector env built with ``autoreset_mode="same_step"`` and numpy observations; or ``None`` to
            build one from ``env_id`` and ``kwargs``.
        env_id: Gymnasium id (``InSpatio/PointNav-v0``, ...) when ``env`` is ``None``.
        obs_keys: Observation entries to expose (default: all).
        **kwargs: Arguments of ``gymnasium.make_vec`` (``num_envs``, ``width``, ``depth``, ``max_episode_steps``...).
    """

    def __init__(self, env: InSpatioVectorEnv | None = None, env_id: str | None = None,
                 obs_keys: Sequence[str] | None = None, **kwargs: Any) -> None:
        if env is None:
            if env_id is None:
                raise ConfigError("InSpatioSB3VecEnv needs env or env_id")
            kwargs.setdefault("max_episode_steps", gym.spec(env_id).max_episode_steps)
            env = gym.make_vec(env_id, vectorization_mode="vector_entry_point", autoreset_mode="same_step",
                               **kwargs).unwrapped
        if env.autoreset_mode.name != "SAME_STEP" or env.torch_obs:
            raise ConfigError("InSpatioSB3VecEnv needs a native vector env with autoreset_mode='same_step' and "
                              "numpy observations (torch_obs=False)")
        self.env = env
        full: spaces.Dict = env.single_observation_space
        self.keys = tuple(obs_keys) if obs_keys is not None else tuple(full.spaces)
        unknown = [k for k in self.keys if k not in full.spaces]
        if unknown:
            raise ConfigError(f"unknown observation key(s) {unknown}; the env has {list(full.spaces)}")
        space = full[self.keys[0]] if len(self.keys) == 1 else spaces.Dict({k: full[k] for k in self.keys})
        super().__init__(env.num_envs, space, env.single_action_space)
        self.render_mode = env.render_mode
        self._actions: np.ndarray | None = None

    # -- VecEnv API ---------------------------------------------------------------------------------------------
    def reset(self) -> Any:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, _ = self.env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return self._obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise ConfigError("step_wait() without step_async()")
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        final = info.get("final_info", {})
        for i in range(self.num_envs):
            source = final if dones[i] else info
            for key in _STEP_KEYS:
                if key in source and bool(source.get(f"_{key}", np.ones(self.num_envs, bool))[i]):
                    infos[i][key] = source[key][i].item()
            if dones[i]:
                last = info["final_obs"][i]
                infos[i]["terminal_observation"] = last[self.keys[0]] if len(self.keys) == 1 else \
                    {k: last[k] for k in self.keys}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return self._obs(obs), reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
                   ) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    # -- helpers --------------------------------------------------------------------------------------------------
    def _indices(self, indices: Any) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def _obs(self, obs: dict[str, np.ndarray]) -> Any:
        return obs[self.keys[0]] if len(self.keys) == 1 else {k: obs[k] for k in self.keys}


def check_vec_env(venv: VecEnv, steps: int = 5, seed: int = 0) -> None:
    """SB3's ``check_env`` for a ``VecEnv`` (it only takes gym envs): spaces SB3 supports, ``reset``/``step``
    shapes and dtypes, observations inside the space, the info list, terminal observations of ended envs.

    Raises:
        AssertionError: The first violation.
    """
    from stable_baselines3.common.env_checker import _check_unsupported_spaces  # the checks check_env runs

    class _Probe(gym.Env):
        observation_space, action_space = venv.observation_space, venv.action_space

    _check_unsupported_spaces(_Probe(), venv.observation_space, venv.action_space)
    venv.seed(seed)
    obs = venv.reset()
    _assert_batch(obs, venv.observation_space, venv.num_envs)
    for _ in range(steps):
        actions = np.stack([venv.action_space.sample() for _ in range(venv.num_envs)])
        obs, rewards, dones, infos = venv.step(actions)
        _assert_batch(obs, venv.observation_space, venv.num_envs)
        assert isinstance(rewards, np.ndarray) and rewards.shape == (venv.num_envs,), "rewards must be (B,) array"
        assert np.issubdtype(rewards.dtype, np.floating), "rewards must be floats"
        assert isinstance(dones, np.ndarray) and dones.shape == (venv.num_envs,) and dones.dtype == bool, \
            "dones must be a (B,) bool array"
        assert isinstance(infos, list) and len(infos) == venv.num_envs and all(isinstance(i, dict) for i in infos)
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i], "an ended env must report its terminal_observation"
            _assert_batch(_expand(infos[i]["terminal_observation"]), venv.observation_space, 1)


def _expand(obs: Any) -> Any:
    return {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]


def _assert_batch(obs: Any, space: spaces.Space, n: int) -> None:
    if isinstance(space, spaces.Dict):
        assert isinstance(obs, dict) and set(obs) == set(space.spaces), "observation keys differ from the space"
        for k, s in space.spaces.items():
            _assert_batch(obs[k], s, n)
        return
    assert isinstance(obs, np.ndarray), f"observations must be numpy arrays, got {type(obs).__name__}"
    assert obs.shape == (n, *space.shape), f"observation shape {obs.shape} != {(n, *space.shape)}"
    assert obs.dtype == space.dtype, f"observation dtype {obs.dtype} != {space.dtype}"
    assert all(space.contains(o) for o in obs), "an observation lies outside the observation space"
