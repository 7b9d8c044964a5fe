"""Native batched Gymnasium vector environment: one Simulator call steps all ``num_envs`` agents on one device.

Actions: ``ground`` and ``robot`` ``(B, 2)`` and ``fly`` ``(B, 6)`` in ``[-1, 1]`` (values outside are clipped),
scaled to the ESCM's ``max_speed`` / ``max_angular_speed``; ``discrete`` ``(B,)`` ints (see ``DISCRETE_ACTIONS``).
NaN or inf actions raise :class:`~inspatio_sim.errors.ActionError`.

Observations: ``rgb`` ``(B, H, W, 3)`` uint8, optional ``depth`` ``(B, H, W, 1)`` float32 metres (0 = no data),
plus the task's vectors (``pointgoal`` for PointNav). ``info`` holds ``pose`` ``(B, 4, 4)`` (``T_world_camera``)
and ``time`` (seconds), after a step also ``collided``, ``limited``, ``left_region`` and the task's metrics; as in
Gymnasium 1.x every key ``k`` comes with a boolean mask ``info["_k"]`` ``(B,)`` saying which envs it describes
(entries outside the mask are zero). ``info`` always describes the observation it is returned with.

``torch_obs=True`` returns exactly what Gymnasium's ``NumpyToTorch`` wrapper would make of the numpy outputs, but
without leaving the device: observations, rewards, terminations, truncations and every ``info`` array (masks too)
are torch tensors on the simulation device. The spaces stay the numpy spaces (as with ``NumpyToTorch``): each
observation tensor has its space's shape and the matching torch dtype, and ``obs[k].cpu().numpy()`` lies in it.

Autoreset (``autoreset_mode``, a string or a ``gymnasium.vector.AutoresetMode``):

* ``next_step`` (Gymnasium's default): the step after an episode ended resets that env, ignores its action and
  returns reward 0, not terminated, not truncated, and the reset ``info`` (only ``pose`` and ``time``).
* ``same_step``: the env resets within the ending step; the returned observation and ``info`` are the new
  episode's first; ``info["final_obs"]`` (object array, ``None`` for envs that did not end) holds the ended
  episodes' last observations and ``info["final_info"]`` their step info, masked by ``_final_obs`` / ``_final_info``.
* ``disabled``: nothing resets by itself; stepping after an env ended raises
  :class:`~envs.errors.ResetNeededError` until ``reset(options={"reset_mask": mask})`` restarts it.

``reset(seed=s)`` seeds env ``i`` with ``s + i`` (a list gives one seed, or ``None``, per env); an unseeded reset
of an env that was never seeded draws fresh entropy, later unseeded resets continue its random stream.
``reset(options={"reset_mask": mask})`` resets only the masked envs (numpy bool ``(B,)``, at least one True).
Stepping before every env was reset raises :class:`~envs.errors.ResetNeededError`; ``close()`` releases the pybullet
client of the ``robot`` model and the environment's hold on its World.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.episodes import EpisodeError, EpisodeSet, check_episodes, load_episodes
from envs.errors import ClosedEnvironmentError, ResetNeededError
from envs.factory import SimulatorSpec, make_simulator
from envs.tasks import ExploreTask, PointNavTask, Task, agent_nav_grid, make_task, task_settings
from inspatio_sim.control import DISCRETE_ACTIONS
from inspatio_sim.errors import ActionError, ConfigError
from inspatio_sim.navigation import NavGrid
from inspatio_sim.simulator import Simulator

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP,
                   "disabled": AutoresetMode.DISABLED}
_OWN_ARGS = ("num_envs", "task", "max_episode_steps", "autoreset_mode", "torch_obs", "render_mode", "task_kwargs",
             "episodes")


class InSpatioVectorEnv(VectorEnv):
    """``num_envs`` agents of one task in one World (see the module docstring for spaces and options).

    Args:
        num_envs: Number of agents ``B``.
        task: ``videoworld``, ``pointnav`` or ``explore``.
        max_episode_steps: Truncate episodes after this many steps (``None``: never).
        autoreset_mode: ``next_step``, ``same_step`` or ``disabled`` (or the ``AutoresetMode`` member).
        torch_obs: Return torch tensors on the device instead of numpy arrays.
        render_mode: ``rgb_array`` or ``None``.
        task_kwargs: Task settings (e.g. ``success_radius`` for PointNav, see :class:`envs.tasks.PointNavConfig`).
        episodes: A fixed episode set (file path or :class:`envs.episodes.EpisodeSet`): resets play its episodes in
            order (env by env, in the order they reset; after the last, the first again) instead of drawing
            start poses and goals; ``episode_ids`` says which episode each env plays. Validated against this
            World's navigation grid on construction (:class:`~envs.episodes.EpisodeError`).
        **spec: World and simulator settings, see :class:`envs.factory.SimulatorSpec`.

    Raises:
        ConfigError: An unknown argument, task, task setting or invalid value (before any World is built).
    """

    def __init__(self, num_envs: int = 1, task: str = "videoworld", max_episode_steps: int | None = None,
                 autoreset_mode: str | AutoresetMode = "next_step", torch_obs: bool = False,
                 render_mode: str | None = None, task_kwargs: dict[str, Any] | None = None,
                 episodes: str | EpisodeSet | None = None, **spec: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else AUTORESET_MODES.get(autoreset_mode)
        if mode is None:
            raise ConfigError(f"autoreset_mode must be one of {', '.join(AUTORESET_MODES)}, got '{autoreset_mode}'")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be 'rgb_array' or None, got '{render_mode}'")
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool) or
                                              not isinstance(max_episode_steps, int | np.integer) or
                                              max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps must be an integer >= 1 or None, got {max_episode_steps!r}")
        task_settings(task, task_kwargs)  # unknown task or setting: fail before the World is built
        if episodes is not None and not isinstance(episodes, EpisodeSet):
            episodes = load_episodes(episodes, task)
        if episodes is not None and episodes.task != task:
            raise EpisodeError(f"the episode set is for task '{episodes.task}', this environment's task is '{task}'")
        self.spec_settings = SimulatorSpec.from_kwargs(spec, accepted=_OWN_ARGS)
        self.num_envs = int(num_envs)
        self.sim: Simulator | None = make_simulator(self.spec_settings, self.num_envs)
        self.task: Task | None = make_task(task, self.sim, **(task_kwargs or {}))
        self.device = self.sim.device
        self.max_episode_steps = max_episode_steps
        self.torch_obs = torch_obs
        self.render_mode = render_mode
        self.autoreset_mode = mode
        self.metadata = {"autoreset_mode": mode, "render_modes": ["rgb_array"], "render_fps": round(1.0 / self.sim.dt)}
        cam = self.sim.camera
        obs: dict[str, spaces.Space] = {"rgb": spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)}
        if self.spec_settings.depth:
            obs["depth"] = spaces.Box(0.0, np.inf, (cam.height, cam.width, 1), np.float32)
        obs.update(self.task.observation_spaces())
        self.single_observation_space = spaces.Dict(obs)
        self.single_action_space, scale = _action_space(self.sim)
        self._action_scale = torch.as_tensor(scale, device=self.device)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self.rng_seeds: list[int | None] = [None] * self.num_envs
        self._steps = np.zeros(self.num_envs, np.int64)
        self._ready = np.zeros(self.num_envs, bool)  # reset at least once
        self._done = np.zeros(self.num_envs, bool)  # ended at the previous step, not reset yet
        self._last_rgb: torch.Tensor | None = None
        self._nav: NavGrid | None = None
        self.episodes: EpisodeSet | None = episodes
        self.episode_ids = np.full(self.num_envs, -1, np.int64)  # episode of the set each env plays (-1: drawn)
        self._next_episode = 0
        if episodes is not None:
            check_episodes(episodes, self.navigation())

    # -- Gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        sim, task = self._open()
        mask = self._reset_mask(options)
        for i, s in zip(np.flatnonzero(mask), np.asarray(self._seeds(seed), object)[mask], strict=True):
            if s is not None or self._rngs[i] is None:  # unseeded and never seeded: fresh entropy
                self._rngs[i], self.rng_seeds[i] = seeding.np_random(s)
        self._reset_envs(mask)
        frame = sim.observe(torch.as_tensor(mask, device=self.device))
        task.begin(frame, np.flatnonzero(mask))
        obs = self._observation(frame)
        return self._out(obs), self._out(_masked(self._state_info(), mask))

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        sim, task = self._open()
        if not self._ready.all():
            raise ResetNeededError(f"env(s) {_names(~self._ready)} were never reset: call reset() before step()")
        mode = self.autoreset_mode
        if mode == AutoresetMode.DISABLED and self._done.any():
            raise ResetNeededError(f"env(s) {_names(self._done)} ended (autoreset_mode=disabled): reset them with "
                              "reset(options={'reset_mask': mask}) before stepping again")
        acts = self._actions(actions)
        pending = self._done.copy() if mode == AutoresetMode.NEXT_STEP else np.zeros(self.num_envs, bool)
        start = None
        if pending.any():  # NEXT_STEP autoreset: these envs restart now and ignore their action
            self._reset_envs(pending)
            acts = _neutral(acts, pending)
            start = sim.snapshot()
        outcome = sim.step(acts)
        if start is not None:  # envs reset on this step stay at their start state
            sim.restore(start, torch.as_tensor(pending, device=self.device))
            outcome.poses = sim.poses()
        frame = sim.observe()
        reward, terminated, metrics = task.step(outcome, frame, acts)
        self._steps += ~pending  # the reset step of a NEXT_STEP autoreset is not an episode step
        truncated = (self._steps >= self.max_episode_steps) if self.max_episode_steps else np.zeros_like(terminated)
        reward = np.where(pending, 0.0, reward).astype(np.float32)
        terminated, truncated = terminated & ~pending, truncated & ~pending
        done = terminated | truncated
        stepped = {"collided": outcome.collided.cpu().numpy(), "limited": outcome.limited.cpu().numpy(),
                   "left_region": outcome.left_region.cpu().numpy(), **metrics}
        obs = self._observation(frame)
        if mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = {k: v[i] for k, v in obs.items()}
            final_info = _masked({**self._state_info(), **stepped}, done)
            self._reset_envs(done)
            frame = sim.observe(torch.as_tensor(done, device=self.device))
            task.begin(frame, np.flatnonzero(done))
            obs = self._observation(frame)
            info = {"final_obs": final_obs, "_final_obs": done.copy(), "final_info": final_info,
                    "_final_info": done.copy(), **_masked(self._state_info(), np.ones_like(done)),
                    **_masked(stepped, ~done)}
        else:
            info = {**_masked(self._state_info(), np.ones_like(done)), **_masked(stepped, ~pending)}
            self._done = done
        if self.torch_obs:
            dev = self.device
            return (obs, torch.as_tensor(reward, device=dev), torch.as_tensor(terminated, device=dev),
                    torch.as_tensor(truncated, device=dev), self._out(info))
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The last observed RGB frames ``(B, H, W, 3)`` uint8 (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array" or self._last_rgb is None:
            return None
        return self._last_rgb.cpu().numpy()

    def close_extras(self, **kwargs: Any) -> None:
        """Release the Simulator (its pybullet client) and this environment's hold on the shared World."""
        if self.sim is not None:
            self.sim.close()
        self.sim = self.task = self._last_rgb = None

    def navigation(self) -> NavGrid:
        """The agents' navigation grid (traversable cells, geodesic distances; built once)."""
        sim, task = self._open()
        if self._nav is None:
            self._nav = task.nav if isinstance(task, PointNavTask) else agent_nav_grid(sim)
        return self._nav

    def goals(self) -> np.ndarray | None:
        """``(B, 3)`` world positions of the agents' PointNav goals (privileged: for oracles and maps), else
        ``None``."""
        _, task = self._open()
        return task.goal.copy() if isinstance(task, PointNavTask) else None

    def seen_cells(self) -> np.ndarray | None:
        """``(B, X, Y)`` bool floor-plan cells each agent has observed this episode (Explore), else ``None``."""
        _, task = self._open()
        return task.seen.cpu().numpy() if isinstance(task, ExploreTask) else None

    def rng(self, i: int) -> np.random.Generator | None:
        """The random generator of env ``i`` (start poses, goals), ``None`` before its first reset."""
        return self._rngs[i]

    # -- helpers -------------------------------------------------------------------------------------------------
    def _open(self) -> tuple[Simulator, Task]:
        if self.sim is None or self.task is None:
            raise ClosedEnvironmentError("this environment was closed; make a new one")
        return self.sim, self.task

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        """One seed (or ``None``) per env: ``s + i`` for an int, the list as given, ``None`` for all."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            seeds: list[Any] = [int(seed) + i for i in range(self.num_envs)]
        elif isinstance(seed, list | tuple) and len(seed) == self.num_envs:
            seeds = list(seed)
        else:
            raise ConfigError(f"reset seed must be an int or a list of {self.num_envs} ints/None, got {seed!r}")
        for s in seeds:
            if s is not None and (isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0):
                raise ConfigError(f"reset seeds must be integers >= 0 (or None), got {s!r}")
        return [None if s is None else int(s) for s in seeds]

    def _reset_mask(self, options: dict[str, Any] | None) -> np.ndarray:
        return reset_mask(options, self.num_envs)

    def _reset_envs(self, mask: np.ndarray) -> None:
        sim, task = self._open()
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        goals = poses = None
        if self.episodes is not None:  # the next episodes of the set, in order
            n = len(self.episodes)
            ids = (self._next_episode + np.arange(idx.size)) % n
            self._next_episode += idx.size
            self.episode_ids[idx] = ids
            chosen = [self.episodes.episodes[k] for k in ids]
            poses = sim.poses().clone()
            poses[torch.as_tensor(idx, device=self.device)] = sim.pose_at(np.array([e.start for e in chosen]),
                                                                          np.array([e.yaw for e in chosen]))
            if chosen[0].goal is not None:
                goals = np.array([e.goal[:2] for e in chosen])  # type: ignore[index]
        sim.reset(torch.as_tensor(mask, device=self.device), self._rngs, poses)  # type: ignore[arg-type]
        task.reset(idx, self._rngs, goals)  # type: ignore[arg-type]
        self._steps[idx] = 0
        self._done[idx] = False
        self._ready[idx] = True

    def _actions(self, actions: Any) -> torch.Tensor:
        sim, _ = self._open()
        model = sim.escm.config.action_model
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
        _, task = self._open()
        obs: dict[str, Any] = {"rgb": frame.rgb}
        if self.spec_settings.depth:
            obs["depth"] = frame.depth[..., None]
        self._last_rgb = frame.rgb
        if not self.torch_obs:
            obs = {k: v.cpu().numpy() for k, v in obs.items()}
        for k, v in task.observe().items():
            obs[k] = torch.as_tensor(v, device=self.device) if self.torch_obs else v
        return obs

    def _state_info(self) -> dict[str, np.ndarray]:
        """``pose`` ``(B, 4, 4)`` and ``time`` ``(B,)`` of the agents now."""
        sim, _ = self._open()
        return {"pose": sim.poses().cpu().numpy(), "time": sim.time.cpu().numpy()}

    def _out(self, value: Any) -> Any:
        """``value`` as returned: numpy arrays become tensors on the device with ``torch_obs`` (object arrays,
        i.e. ``final_obs``, keep their per-env observations, which already are)."""
        if not self.torch_obs:
            return value
        if isinstance(value, dict):
            return {k: self._out(v) for k, v in value.items()}
        if isinstance(value, np.ndarray) and value.dtype != object:
            return torch.as_tensor(value, device=self.device)
        return value


def _masked(values: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """Gymnasium vector info: each key's batch ``(B, ...)`` (zero where ``mask (B,)`` is False) and ``_key``."""
    out: dict[str, np.ndarray] = {}
    for key, v in values.items():
        v = np.asarray(v)
        out[key] = np.where(mask.reshape(-1, *[1] * (v.ndim - 1)), v, np.zeros_like(v))
        out[f"_{key}"] = mask.copy()
    return out


def _names(mask: np.ndarray) -> str:
    return ", ".join(str(i) for i in np.flatnonzero(mask))


def _action_space(sim: Simulator) -> tuple[spaces.Space, np.ndarray]:
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


def reset_mask(options: dict[str, Any] | None, num_envs: int) -> np.ndarray:
    """``options["reset_mask"]`` as a ``(num_envs,)`` bool array, checked like Gymnasium's SyncVectorEnv (all envs
    when absent); numpy or torch. Raises :class:`ConfigError` for a wrong dtype/shape or an empty selection."""
    if not options or "reset_mask" not in options:
        return np.ones(num_envs, bool)
    mask = options["reset_mask"]
    if isinstance(mask, torch.Tensor):
        mask = mask.cpu().numpy()
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (num_envs,):
        raise ConfigError(f"options['reset_mask'] must be a bool array of shape ({num_envs},), got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    if not mask.any():
        raise ConfigError("options['reset_mask'] must select at least one env")
    return mask
