"""A Gymnasium ``VectorEnv`` whose sub-batches run in Ray actors: rollouts across many worlds and machines.

Each actor holds one World and a native batched vector env (:class:`envs.vector_env.InSpatioVectorEnv`, one
Simulator call per step for its ``B_a`` agents, on its own device: with ``device=cuda`` each actor declares
``actor_gpus`` GPUs and Ray gives it its own). :meth:`RayVectorEnv.step` sends every actor its slice of the
actions at once, the actors step concurrently (on as many nodes as the cluster has: actors are spread over the
nodes), and one batch of ``num_envs = sum B_a`` comes back.

Construction: ``gymnasium.make_vec("InSpatio/PointNav-v0", num_envs=32, worlds=["worlds/a", "worlds/b"])`` (any
``InSpatio/*`` id; giving ``worlds`` selects this env) or ``RayVectorEnv(num_envs=32, worlds=[...], ...)``.

World assignment (documented rule): env ``i`` belongs to actor ``a`` when it falls into that actor's contiguous
slice (``numpy.array_split`` of ``range(num_envs)`` into ``num_actors`` nearly equal parts, ``num_actors`` =
``len(worlds)`` by default); ``world_assignment="round_robin"`` gives actor ``a`` world ``worlds[a % len(worlds)]``,
``"sampled"`` draws each actor's world uniformly from ``worlds`` with ``numpy.random.default_rng(world_seed)`` when
the env is built (domain randomisation across clips, reproducible from ``world_seed``). :attr:`RayVectorEnv.worlds`
lists the world of each env. An actor's world is fixed for its lifetime (a world change means a new World build).

Semantics are the native vector env's, env for env: the same spaces (checked equal across actors), the same
autoreset modes, ``reset(seed=s)`` seeds env ``i`` with ``s + i`` (a list: one seed per env), ``reset_mask``
options, masked ``info`` keys. Actor ``a``'s envs therefore see exactly what a native vector env over
``worlds[a]`` with ``B_a`` agents would see when reset with seed ``s + offset_a``: a seeded run is reproducible.
Observations and ``info`` arrays are numpy, or with ``torch_obs=True`` torch tensors on ``obs_device``.

A dead actor (its process or node died) is replaced by a new one (same world, same settings); its envs' episodes
end there: the step returns them ``truncated`` with their last observation (reward 0) and
``info["actor_restarted"]`` (bool ``(B,)``, mask ``_actor_restarted``) set, and ``info["actor_error"]`` gives the
reason. They restart like any other ended episode: with ``next_step`` on the next step, with ``same_step`` at once
(``final_obs`` = the last observation), with ``disabled`` after ``reset(options={"reset_mask": ...})``. A
replacement's envs are reseeded from ``SeedSequence([seed, actor, restarts])`` when the env was reset with an int
seed (reproducible), else from fresh entropy. :attr:`RayVectorEnv.restarts` counts replacements per actor.

Ray: an already initialised Ray (a cluster the caller joined) is used; else ``address`` (``auto``,
``HOST:PORT``) is joined, else a local instance is started (and shut down by :meth:`close`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.errors import ClosedEnvironmentError
from envs.factory import SimulatorSpec
from envs.tasks import task_settings
from envs.vector_env import _OWN_ARGS, AUTORESET_MODES, InSpatioVectorEnv, reset_mask
from inspatio_sim.cluster.session import ClusterError, require_ray
from inspatio_sim.errors import ActionError, ConfigError, InSpatioError

log = logging.getLogger(__name__)
WORLD_ASSIGNMENTS = ("round_robin", "sampled")
_RAY_ARGS = ("worlds", "num_actors", "world_assignment", "world_seed", "actor_cpus", "actor_gpus", "address",
             "obs_device")


class SubBatch:
    """The body of one Ray actor: a native vector env of ``num_envs`` agents over one World (numpy outputs)."""

    def __init__(self, num_envs: int, kwargs: dict[str, Any]) -> None:
        self.env = InSpatioVectorEnv(num_envs=num_envs, **kwargs)

    def describe(self) -> dict[str, Any]:
        import ray

        return {"observation": self.env.single_observation_space, "action": self.env.single_action_space,
                "render_fps": self.env.metadata["render_fps"], "node": ray.get_runtime_context().get_node_id(),
                "device": str(self.env.device)}

    def reset(self, seed: Any, options: dict[str, Any] | None) -> tuple[Any, Any]:
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        return self.env.step(np.array(actions))  # a writable copy of Ray's read-only buffer

    def close(self) -> None:
        self.env.close()


class RayVectorEnv(VectorEnv):
    """``num_envs`` agents of one task over ``worlds``, in Ray actors (see the module docstring).

    Args:
        num_envs: Total agents ``B`` (split over the actors in contiguous, nearly equal slices).
        worlds: Scene directories / ``.npz`` files (e.g. ``reconstruct-many`` output folders), at least one.
        num_actors: Ray actors (default ``len(worlds)``), at most ``num_envs``.
        world_assignment: ``round_robin`` or ``sampled`` (see the module docstring).
        world_seed: Seed of the ``sampled`` assignment.
        actor_cpus, actor_gpus: Resources each actor declares (GPUs only with a ``cuda`` device).
        address: Ray cluster to join when Ray is not initialised (``None``: a local instance).
        obs_device: Torch device of the returned tensors with ``torch_obs``.
        task, max_episode_steps, autoreset_mode, torch_obs, render_mode, task_kwargs, **spec: As
            :class:`envs.vector_env.InSpatioVectorEnv` (``spec`` without ``world``).

    Raises:
        ConfigError: Invalid arguments (before any actor starts). ClusterError: Ray is missing or unreachable.
    """

    def __init__(self, num_envs: int = 2, worlds: list[str] | tuple[str, ...] | None = None,
                 num_actors: int | None = None, task: str = "videoworld", max_episode_steps: int | None = None,
                 autoreset_mode: str | AutoresetMode = "next_step", torch_obs: bool = False,
                 render_mode: str | None = None, task_kwargs: dict[str, Any] | None = None,
                 world_assignment: str = "round_robin", world_seed: int = 0, actor_cpus: float = 1.0,
                 actor_gpus: float = 1.0, address: str | None = None, obs_device: str = "cpu", **spec: Any) -> None:
        if isinstance(worlds, str) or not worlds:
            raise ConfigError(f"worlds must be a non-empty list of Scene folders or .npz files, got {worlds!r}")
        if "world" in spec:
            raise ConfigError("give the Ray vector env its worlds as worlds=[...], not world=")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        n_act = len(worlds) if num_actors is None else num_actors
        if isinstance(n_act, bool) or not isinstance(n_act, int | np.integer) or not 1 <= n_act <= num_envs:
            raise ConfigError(f"num_actors must be an integer in [1, num_envs={num_envs}], got {n_act!r}")
        if world_assignment not in WORLD_ASSIGNMENTS:
            raise ConfigError(f"world_assignment must be one of {', '.join(WORLD_ASSIGNMENTS)}, got "
                              f"'{world_assignment}'")
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else AUTORESET_MODES.get(autoreset_mode)
        if mode is None:
            raise ConfigError(f"autoreset_mode must be one of {', '.join(AUTORESET_MODES)}, got '{autoreset_mode}'")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be 'rgb_array' or None, got '{render_mode}'")
        task_settings(task, task_kwargs)
        settings = SimulatorSpec.from_kwargs(spec, accepted=(*_OWN_ARGS, *_RAY_ARGS))
        self.num_envs = int(num_envs)
        self.sizes = [len(s) for s in np.array_split(np.arange(self.num_envs), int(n_act))]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        if world_assignment == "round_robin":
            self.actor_worlds = [str(worlds[a % len(worlds)]) for a in range(n_act)]
        else:
            rng = np.random.default_rng(world_seed)
            self.actor_worlds = [str(worlds[int(i)]) for i in rng.integers(0, len(worlds), n_act)]
        self.worlds = [w for w, n in zip(self.actor_worlds, self.sizes, strict=True) for _ in range(n)]
        self.autoreset_mode, self.torch_obs, self.render_mode = mode, bool(torch_obs), render_mode
        self.max_episode_steps, self.obs_device = max_episode_steps, torch.device(obs_device)
        self._actor_kwargs = [dict(spec, world=w, task=task, max_episode_steps=max_episode_steps,
                                   autoreset_mode=mode, torch_obs=False, task_kwargs=task_kwargs)
                              for w in self.actor_worlds]
        gpu = str(settings.device or "cpu").startswith("cuda")
        self._actor_options = {"num_cpus": float(actor_cpus), "num_gpus": float(actor_gpus) if gpu else 0.0,
                               "max_restarts": 0, "scheduling_strategy": "SPREAD"}

        ray = self._ray = require_ray()
        self._own_ray = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False if address is None else None,
                         log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ClusterError(f"cannot start or join Ray ({address or 'local'}): {e}") from e
            self._own_ray = True
        self._remote = ray.remote(SubBatch)
        self.actors: list[Any] = [None] * n_act
        self.restarts = [0] * n_act
        self.nodes: list[str] = [""] * n_act
        self.actor_devices: list[str] = [""] * n_act
        try:
            described = self._gather([self._start(a) for a in range(n_act)], what="start")
        except BaseException:
            self.close()
            raise
        first = described[0]
        for a, d in enumerate(described):
            if d["observation"] != first["observation"] or d["action"] != first["action"]:
                self.close()
                raise ConfigError(f"the worlds give different spaces: actor 0 ({self.actor_worlds[0]}) has "
                                  f"{first['observation']}, actor {a} ({self.actor_worlds[a]}) {d['observation']}")
            self.nodes[a], self.actor_devices[a] = d["node"], d["device"]
        self.single_observation_space: spaces.Dict = first["observation"]
        self.single_action_space: spaces.Space = first["action"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": mode, "render_modes": ["rgb_array"], "render_fps": first["render_fps"]}
        self._last_obs: list[dict[str, np.ndarray] | None] = [None] * n_act
        self._pending: list[bool] = [False] * n_act  # replaced actor: reset on the next step (next_step mode)
        self._base_seed: int | None = None
        self._closed = False

    # -- Gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        self._check_open()
        seeds = self._seeds(seed)
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            self._base_seed = int(seed)
        mask = reset_mask(options, self.num_envs)
        chosen = [a for a in range(len(self.actors)) if mask[self._slice(a)].any()]
        results: dict[int, tuple[Any, Any]] = {}
        for _ in range(2):  # an actor found dead is replaced and reset once more
            todo = [a for a in chosen if a not in results]
            refs = {a: self.actors[a].reset.remote(list(seeds[self._slice(a)]),
                                                     self._sub_options(options, mask, a))
                    for a in todo}
            for a, res in self._collect(refs).items():
                if res is not None:
                    results[a] = res
        for a in chosen:
            if a not in results:
                raise ClusterError(f"actor {a} ({self.actor_worlds[a]}) died twice while resetting")
            self._last_obs[a] = results[a][0]
            self._pending[a] = False
        obs_parts, info_parts = [], []
        for a in range(len(self.actors)):
            if a in results:
                obs_parts.append(results[a][0])
                info_parts.append(results[a][1])
            else:  # not reset: its last observation, nothing in info
                obs_parts.append(self._obs_or_zeros(a))
                info_parts.append({})
        return self._out(_concat_obs(obs_parts)), self._out(merge_infos(info_parts, self.sizes))

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        self._check_open()
        acts = self._actions(actions)
        refs: dict[int, Any] = {}
        for a in range(len(self.actors)):
            if self._pending[a]:
                refs[a] = self.actors[a].reset.remote(self._replacement_seeds(a), None)
            else:
                refs[a] = self.actors[a].step.remote(acts[self._slice(a)])
        results = self._collect(refs)
        parts: list[tuple[Any, ...]] = []
        for a in range(len(self.actors)):
            n = self.sizes[a]
            res = results[a]
            if res is None:  # died: replaced; its episodes end here (truncated), restarting per the autoreset mode
                parts.append(self._restart_outcome(a))
            elif self._pending[a]:  # the replacement's reset step (next_step autoreset)
                self._pending[a] = False
                parts.append((res[0], np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool), res[1]))
            else:
                parts.append(res)
            self._last_obs[a] = parts[-1][0]
        obs = _concat_obs([p[0] for p in parts])
        reward = np.concatenate([p[1] for p in parts]).astype(np.float32)
        terminated = np.concatenate([p[2] for p in parts]).astype(bool)
        truncated = np.concatenate([p[3] for p in parts]).astype(bool)
        info = merge_infos([p[4] for p in parts], self.sizes)
        if self.torch_obs:
            dev = self.obs_device
            return (self._out(obs), torch.as_tensor(reward, device=dev), torch.as_tensor(terminated, device=dev),
                    torch.as_tensor(truncated, device=dev), self._out(info))
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The last observed RGB frames ``(B, H, W, 3)`` uint8 (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array" or any(o is None for o in self._last_obs):
            return None
        return np.concatenate([o["rgb"] for o in self._last_obs])  # type: ignore[index]

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the actors (releasing their Worlds); a Ray started by this env is shut down."""
        if getattr(self, "_closed", True) and not getattr(self, "actors", None):
            return
        ray = self._ray
        for actor in self.actors:
            if actor is not None:
                with contextlib.suppress(Exception):  # already gone
                    ray.kill(actor)
        self.actors = []
        self._closed = True
        if self._own_ray and ray.is_initialized():
            ray.shutdown()

    # -- actors --------------------------------------------------------------------------------------------------
    def _start(self, a: int) -> Any:
        self.actors[a] = self._remote.options(**self._actor_options).remote(self.sizes[a], self._actor_kwargs[a])
        return self.actors[a].describe.remote()

    def _gather(self, refs: list[Any], what: str) -> list[Any]:
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, InSpatioError):
                raise cause from None
            raise ClusterError(f"a Ray actor failed to {what}: {_reason(e)}") from e
        except ray.exceptions.RayActorError as e:  # its __init__ raised (e.g. a World that cannot load)
            raise ClusterError(f"a Ray actor failed to {what}: {_reason(e)}") from e

    def _collect(self, refs: dict[int, Any]) -> dict[int, Any]:
        """``ray.get`` of each actor's call; an actor that died is replaced and gets ``None``."""
        ray = self._ray
        out: dict[int, Any] = {}
        for a, ref in refs.items():
            try:
                out[a] = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._replace(a, e)
                out[a] = None
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                if isinstance(cause, InSpatioError):
                    raise cause from None
                raise
        return out

    def _replace(self, a: int, error: Exception) -> None:
        ray = self._ray
        reason = _reason(error)
        self.restarts[a] += 1
        self._errors = getattr(self, "_errors", {})
        self._errors[a] = f"actor {a} ({self.actor_worlds[a]}) died and was replaced: {reason}"
        log.warning("%s", self._errors[a])
        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actors[a])
        d = self._gather([self._start(a)], what="restart")[0]
        self.nodes[a], self.actor_devices[a] = d["node"], d["device"]

    def _replacement_seeds(self, a: int) -> list[int | None]:
        if self._base_seed is None:
            return [None] * self.sizes[a]
        state = np.random.SeedSequence([self._base_seed, a, self.restarts[a]]).generate_state(self.sizes[a])
        return [int(s) for s in state]

    def _restart_outcome(self, a: int) -> tuple[Any, ...]:
        """The step result of the envs of replaced actor ``a``: episodes truncated, restarting per the mode."""
        n = self.sizes[a]
        last = self._obs_or_zeros(a)
        restarted = {"actor_restarted": np.ones(n, bool), "_actor_restarted": np.ones(n, bool),
                     "actor_error": np.full(n, self._errors[a], dtype=object), "_actor_error": np.ones(n, bool)}
        truncated = np.ones(n, bool)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            refs = {a: self.actors[a].reset.remote(self._replacement_seeds(a), None)}
            res = self._collect(refs)[a]
            if res is None:
                raise ClusterError(f"actor {a} ({self.actor_worlds[a]}) died again while restarting")
            final_obs = np.empty(n, dtype=object)
            for i in range(n):
                final_obs[i] = {k: v[i] for k, v in last.items()}
            info = {"final_obs": final_obs, "_final_obs": np.ones(n, bool), **res[1], **restarted}
            return res[0], np.zeros(n, np.float32), np.zeros(n, bool), truncated, info
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._pending[a] = True
        return last, np.zeros(n, np.float32), np.zeros(n, bool), truncated, restarted

    # -- helpers -------------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedEnvironmentError("this environment was closed; make a new one")

    def _slice(self, a: int) -> slice:
        return slice(int(self.offsets[a]), int(self.offsets[a + 1]))

    def _obs_or_zeros(self, a: int) -> dict[str, np.ndarray]:
        last = self._last_obs[a]
        if last is not None:
            return last
        return {k: np.zeros((self.sizes[a], *s.shape), s.dtype) for k, s in self.single_observation_space.items()}

    def _seeds(self, seed: int | list[int | None] | None) -> np.ndarray:
        """One seed (or ``None``) per env, as the native env: ``s + i`` for an int, a list as given."""
        if seed is None:
            return np.full(self.num_envs, None, object)
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            if seed < 0:
                raise ConfigError(f"reset seeds must be integers >= 0 (or None), got {seed!r}")
            return np.array([int(seed) + i for i in range(self.num_envs)], object)
        if isinstance(seed, list | tuple) and len(seed) == self.num_envs:
            return np.array(list(seed), object)
        raise ConfigError(f"reset seed must be an int or a list of {self.num_envs} ints/None, got {seed!r}")

    def _sub_options(self, options: dict[str, Any] | None, mask: np.ndarray, a: int) -> dict[str, Any] | None:
        if not options:
            return None
        sub = {k: v for k, v in options.items() if k != "reset_mask"}
        if "reset_mask" in options:
            sub["reset_mask"] = mask[self._slice(a)].copy()
        return sub

    def _actions(self, actions: Any) -> np.ndarray:
        arr = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        expected = (self.num_envs, *self.single_action_space.shape)
        if arr.shape != expected:
            raise ActionError(f"actions must have shape {expected}, got {arr.shape}")
        return arr

    def _out(self, value: Any) -> Any:
        if not self.torch_obs:
            return value
        if isinstance(value, dict):
            return {k: self._out(v) for k, v in value.items()}
        if isinstance(value, np.ndarray) and value.dtype != object:
            return torch.as_tensor(value, device=self.obs_device)
        return value


def _reason(error: BaseException) -> str:
    """One line saying why a Ray call failed: the raised exception's last line (``Type: message``), or Ray's."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip() and not ln.strip().startswith(("^", "File "))]
    exc = [ln for ln in lines if ln.split(":", 1)[0].rsplit(".", 1)[-1].endswith(("Error", "Exception"))]
    line = exc[-1] if exc else (lines[0] if lines else type(error).__name__)
    head, _, msg = line.partition(": ")
    return f"{head.rsplit('.', 1)[-1]}: {msg}" if msg and " " not in head else line


def _concat_obs(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """One vector ``info`` from the actors' ``info`` dicts (``parts[a]`` describes ``sizes[a]`` envs).

    A key an actor lacks gets zeros (``None`` in object arrays, ``False`` in ``_key`` masks) for its envs; nested
    dicts (``final_info``) merge the same way.
    """
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out: dict[str, Any] = {}
    for key in keys:
        ref = next(p[key] for p in parts if key in p)
        if isinstance(ref, dict):
            out[key] = merge_infos([p.get(key, {}) for p in parts], sizes)
            continue
        ref = np.asarray(ref)
        chunks = []
        for p, n in zip(parts, sizes, strict=True):
            if key in p:
                chunks.append(np.asarray(p[key]))
            elif ref.dtype == object:
                chunks.append(np.full((n, *ref.shape[1:]), None, object))
            else:
                chunks.append(np.zeros((n, *ref.shape[1:]), ref.dtype))
        out[key] = np.concatenate(chunks)
    return out


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """The vector entry point of the ``InSpatio/*`` ids: :class:`RayVectorEnv` when ``worlds`` is given, else the
    native :class:`InSpatioVectorEnv`."""
    if kwargs.get("worlds") is not None:
        return RayVectorEnv(num_envs=num_envs, **kwargs)
    return InSpatioVectorEnv(num_envs=num_envs, **kwargs)
