"""Native batched Gymnasium vector environment: one Simulator call steps all ``num_envs`` agents on one device.

Actions: ``ground`` and ``robot`` ``(B, 2)`` and ``fly`` ``(B, 6)`` in ``[-1, 1]`` (values outside are clipped),
scaled to the ESCM's ``max_speed`` / ``max_angular_speed``; ``discrete`` ``(B,)`` ints (see ``DISCRETE_ACTIONS``).
NaN or inf actions raise :class:`~inspatio_sim.errors.ActionError`.

Observations: ``rgb`` ``(B, H, W, 3)`` uint8, optional ``depth`` ``(B, H, W, 1)`` float32 metres (0 = no data),
plus the task's vectors (``pointgoal`` for PointNav). They are numpy arrays, or torch tensors on the simulation
device with ``torch_obs=True`` (rewards, terminations and truncations then too). ``info`` holds ``pose``
``(B, 4, 4)``, ``collided``, ``limited``, ``left_region``, ``time`` and the task's metrics.

Autoreset (``autoreset_mode``): ``next_step`` (Gymnasium's default: the step after an episode ended resets that
env, ignores its action and returns reward 0) or ``same_step`` (the env resets within the ending step; the returned
observation is the new episode's first, the last one is in ``info["final_obs"]``). ``reset(options={"reset_mask":
mask})`` resets only the masked envs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.factory import SimulatorSpec, make_simulator
from envs.tasks import make_task
from inspatio_sim.control import DISCRETE_ACTIONS
from inspatio_sim.errors import ActionError, ConfigError

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}


class InSpatioVectorEnv(VectorEnv):
    """``num_envs`` agents of one task in one World (see the module docstring for spaces and options).

    Args:
        num_envs: Number of agents ``B``.
        task: ``videoworld``, ``pointnav`` or ``explore``.
        max_episode_steps: Truncate episodes after this many steps (``None``: never).
        autoreset_mode: ``next_step`` or ``same_step``.
        torch_obs: Return torch tensors on the device instead of numpy arrays.
        render_mode: ``rgb_array`` or ``None``.
        task_kwargs: Extra task settings (e.g. ``success_radius`` for PointNav).
        **spec: World and simulator settings, see :class:`envs.factory.SimulatorSpec`.
    """

    def __init__(self, num_envs: int = 1, task: str = "videoworld", max_episode_steps: int | None = None,
                 autoreset_mode: str = "next_step", torch_obs: bool = False, render_mode: str | None = None,
                 task_kwargs: dict[str, float] | None = None, **spec: Any) -> None:
        if autoreset_mode not in AUTORESET_MODES:
            raise ConfigError(f"autoreset_mode must be one of {', '.join(AUTORESET_MODES)}, got '{autoreset_mode}'")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be 'rgb_array' or None, got '{render_mode}'")
        self.spec_settings = SimulatorSpec(**spec)
        self.sim = make_simulator(self.spec_settings, num_envs)
        self.task = make_task(task, self.sim, **(task_kwargs or {}))
        self.num_envs = num_envs
        self.device = self.sim.device
        self.max_episode_steps = max_episode_steps
        self.torch_obs = torch_obs
        self.render_mode = render_mode
        self.metadata = {"autoreset_mode": AUTORESET_MODES[autoreset_mode], "render_modes": ["rgb_array"],
                         "render_fps": round(1.0 / self.sim.dt)}
        cam = self.sim.camera
        obs: dict[str, spaces.Space] = {
            "rgb": spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)}
        if self.spec_settings.depth:
            obs["depth"] = spaces.Box(0.0, np.inf, (cam.height, cam.width, 1), np.float32)
        obs.update(self.task.observation_spaces())
        self.single_observation_space = spaces.Dict(obs)
        self.single_action_space, scale = _action_space(self.sim)
        self._action_scale = torch.as_tensor(scale, device=self.device)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [np.random.default_rng(i) for i in range(num_envs)]
        self._steps = np.zeros(num_envs, np.int64)
        self._needs_reset = np.ones(num_envs, bool)
        self._last_frame: np.ndarray | None = None

    # -- Gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            seeds = list(seed) if isinstance(seed, list | tuple) else [seed + i for i in range(self.num_envs)]
            if len(seeds) != self.num_envs:
                raise ConfigError(f"reset needs one seed per env ({self.num_envs}), got {len(seeds)}")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        mask = np.ones(self.num_envs, bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], bool).reshape(self.num_envs)
        self._reset_envs(mask)
        frame = self.sim.observe()
        obs = self._observation(frame)
        return obs, self._info(None)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        acts = self._actions(actions)
        pending = self._needs_reset.copy()
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP and pending.any():
            self._reset_envs(pending)
            acts = _neutral(acts, pending)
        start = self.sim.snapshot()
        outcome = self.sim.step(acts)
        if pending.any():  # envs reset on this step stay at their start state
            self.sim.restore(start, torch.as_tensor(pending, device=self.device))
            outcome.poses = self.sim.poses()
        frame = self.sim.observe()
        reward, terminated, metrics = self.task.step(outcome, frame, acts)
        self._steps += ~pending  # the reset step of a NEXT_STEP autoreset is not an episode step
        truncated = (self._steps >= self.max_episode_steps) if self.max_episode_steps else np.zeros_like(terminated)
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            reward = np.where(pending, 0.0, reward).astype(np.float32)
            terminated = terminated & ~pending
            truncated = truncated & ~pending
        done = terminated | truncated
        info = self._info(outcome, metrics)
        obs = self._observation(frame)
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and done.any():
            info["final_obs"] = obs
            info["final_info"] = {k: v for k, v in info.items() if k != "final_obs"}
            self._reset_envs(done)
            obs = self._observation(self.sim.observe())
        next_step = self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        self._needs_reset = done.copy() if next_step else np.zeros_like(done)
        if self.torch_obs:
            dev = self.device
            return (obs, torch.as_tensor(reward, device=dev), torch.as_tensor(terminated, device=dev),
                    torch.as_tensor(truncated, device=dev), info)
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The last observed RGB frames ``(B, H, W, 3)`` (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            return None
        return self._last_frame

    def close_extras(self, **kwargs: Any) -> None:
        self.sim = None  # type: ignore[assignment]

    # -- helpers -------------------------------------------------------------------------------------------------
    def _reset_envs(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        self.sim.reset(torch.as_tensor(mask, device=self.device), self._rngs)
        self.task.reset(idx, self._rngs)
        self._steps[idx] = 0
        self._needs_reset[idx] = False

    def _actions(self, actions: Any) -> torch.Tensor:
        model = self.sim.escm.config.action_model
        if isinstance(actions, torch.Tensor):
            a = actions.to(self.device)
        else:
            arr = np.asarray(actions)
            if model != "discrete" and arr.dtype.kind not in "fiu":
                raise ActionError(f"{model} actions must be numbers, got dtype {arr.dtype}")
            a = torch.as_tensor(arr, device=self.device)
        expected = (self.num_envs, *self.single_action_space.shape)
        if tuple(a.shape) != expected:
            raise ActionError(f"{model} actions must have shape {expected}, got {tuple(a.shape)}")
        if model != "discrete" and a.is_floating_point() and torch.isfinite(a).all():
            # normalised actions: clip to [-1, 1] (documented), then scale to the speed limits
            a = a.float().clamp(-1.0, 1.0) * self._action_scale
        return a

    def _observation(self, frame: Any) -> dict[str, Any]:
        obs: dict[str, Any] = {"rgb": frame.rgb}
        if self.spec_settings.depth:
            obs["depth"] = frame.depth[..., None]
        if not self.torch_obs:
            obs = {k: v.cpu().numpy() for k, v in obs.items()}
        self._last_frame = frame.rgb.cpu().numpy()
        for k, v in self.task.observe().items():
            obs[k] = torch.as_tensor(v, device=self.device) if self.torch_obs else v
        return obs

    def _info(self, outcome: Any, metrics: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"pose": self.sim.poses().cpu().numpy(), "time": self.sim.time.cpu().numpy()}
        if outcome is not None:
            info.update(collided=outcome.collided.cpu().numpy(), limited=outcome.limited.cpu().numpy(),
                        left_region=outcome.left_region.cpu().numpy())
        info.update(metrics or {})
        return info


def _action_space(sim: Any) -> tuple[spaces.Space, np.ndarray]:
    """The single-agent action space and the scale from normalised actions to the ESCM's units."""
    cfg = sim.escm.config
    if cfg.action_model == "discrete":
        return spaces.Discrete(len(DISCRETE_ACTIONS)), np.ones(1, np.float32)
    if cfg.action_model in ("ground", "robot"):
        scale = np.array([cfg.max_speed, cfg.max_angular_speed], np.float32)
    else:
        scale = np.array([cfg.max_speed] * 3 + [cfg.max_angular_speed] * 3, np.float32)
    return spaces.Box(-1.0, 1.0, scale.shape, dtype=np.float32), scale


def _neutral(actions: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """Replace the actions of masked envs by "do nothing" (their action is ignored on the reset step)."""
    a = actions.clone()
    a[torch.as_tensor(mask, device=a.device)] = 0
    return a
