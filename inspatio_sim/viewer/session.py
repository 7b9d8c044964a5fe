"""The viewer's simulation side: one agent of a task environment, driven by held keys or a policy.

:class:`ViewerSession` owns a one-agent :class:`envs.vector_env.InSpatioVectorEnv` (so the viewer steps the very
Simulator the Gymnasium environments and the ROS node step, built by :func:`inspatio_sim.assemble.build_simulator`),
turns the keys a browser holds into that environment's normalised actions, and keeps what the page shows: the last
observation, the pose trail, frames/s and step latency, and a recording. It knows nothing about viser or HTTP
(:mod:`inspatio_sim.viewer.app` serves it); every public method is thread-safe (one lock).

Keys (lower case): ``w``/``s`` forward/back, ``a``/``d`` turn left/right, ``q``/``e`` up/down (``fly``), ``r`` reset,
``space`` pause. With the ``discrete`` action model each press of ``w``/``a``/``d``/``q``/``e`` is one action
(``move_forward``, ``turn_left``, ``turn_right``, ``look_up``, ``look_down``) and ``s`` is ``stop``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspatio_sim.errors import ConfigError, InSpatioError

log = logging.getLogger(__name__)

DRIVE_KEYS = ("w", "s", "a", "d", "q", "e")
COMMAND_KEYS = ("r", "space")
KEYS = DRIVE_KEYS + COMMAND_KEYS
VIEWS = ("rgb", "depth", "holes", "completer")
TASKS = ("videoworld", "pointnav", "explore")
POLICIES = ("keyboard", "random", "oracle", "ppo")
DISCRETE_KEY_ACTION = {"s": 0, "w": 1, "a": 2, "d": 3, "q": 4, "e": 5}  # index into control.DISCRETE_ACTIONS


class Policy:
    """What "play policy" runs, bound to the session's one-agent vector environment (the interface of
    ``policies.base.Policy``): ``act(obs, info)`` with the batched (``B = 1``) observation and ``info`` the
    environment returned gives batched actions; ``reset(mask)`` when new episodes begin."""

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self, mask: np.ndarray) -> None:
        """New episodes begin for the envs in ``mask (B,)``."""


class RandomPolicy(Policy):
    """Uniform random actions from a seeded generator (used when the ``policies`` package is not there)."""

    def __init__(self, env: Any, seed: int) -> None:
        self.space = env.action_space
        self.space.seed(seed)

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        return self.space.sample()


def load_policy(name: str, env: Any, checkpoint: str | None, seed: int) -> Policy:
    """The policy ``name`` (``random``, ``oracle``, ``ppo``) bound to ``env`` (a one-agent native vector env).

    The hook: ``policies.evaluate.make_policy(name, env, seed=, checkpoint=)`` of the ``policies`` package (random,
    the PointNav / Explore oracles, a PPO checkpoint). Without it, ``random`` is built in here and the others are
    one clear :class:`ConfigError` line.
    """
    try:
        from policies.evaluate import make_policy
    except ImportError as e:
        if name == "random":
            return RandomPolicy(env, seed)
        raise ConfigError(f"policy '{name}' needs the policies package's make_policy (policies.evaluate: {e}); "
                          "use random or the keyboard") from e
    policy = make_policy(name, env, seed=seed, checkpoint=checkpoint)
    if not callable(getattr(policy, "act", None)):
        raise ConfigError(f"policies.evaluate.make_policy('{name}') returned an object without act(obs, info)")
    return policy  # type: ignore[no-any-return]


@dataclass
class Recording:
    """Frames shown while recording (RGB uint8 ``(H, W, 3)``) and, with a bag, every step's sensor frame."""

    started: float
    frames: list[np.ndarray] = field(default_factory=list)
    bag: Any = None
    bag_path: Path | None = None
    maker: Any = None
    steps: int = 0


class ViewerSession:
    """One agent in the World of the composed configuration, for the viewer.

    Args:
        overrides: The ``key=value`` overrides the configuration was composed from (the environment composes them
            again, so the viewer and ``gymnasium.make`` see the same World).
        settings: The ``viewer`` config node (:class:`inspatio_sim.config_schema.ViewerConfig`).
        env_kwargs: Extra keyword arguments of the environment (tests: ``width``/``height``).
    """

    def __init__(self, overrides: list[str], settings: Any, env_kwargs: dict[str, Any] | None = None) -> None:
        self.overrides = list(overrides)
        self.settings = settings
        self.env_kwargs = dict(env_kwargs or {})
        self.lock = threading.RLock()
        self.held: dict[str, float] = {}  # key -> monotonic time of its last "down"
        self.pending: deque[int] = deque(maxlen=16)  # discrete presses not stepped yet
        self.queue: deque[tuple[str, Any]] = deque(maxlen=64)  # commands for the loop's thread
        self.wake = threading.Event()  # set by a new key press or command: the loop steps at once, not next period
        self._snapshot: dict[str, Any] = {}
        self.paused = False
        self.policy_name = "keyboard"
        self.policy: Policy | None = None
        self.recording: Recording | None = None
        self.seed = int(settings.seed)
        self.episode = 0
        self.steps = 0
        self.frame_id = 0
        self.step_ms = 0.0
        self._stamps: deque[float] = deque(maxlen=32)
        self.trail: deque[np.ndarray] = deque(maxlen=int(settings.trail))
        self.last_info: dict[str, Any] = {}
        self.episode_return = 0.0
        self._episode_steps = 0
        self.last_episode: dict[str, Any] | None = None  # metrics of the last episode that ended by itself
        self.warnings = 0
        self.env: Any = None
        self._world: Any = None  # keeps the shared World alive while the task changes
        self.task = ""
        self.set_task(settings.task)

    # -- environment ---------------------------------------------------------------------------------------------
    def set_task(self, task: str) -> None:
        """Switch to ``task`` (``videoworld``, ``pointnav``, ``explore``): a new environment over the same World."""
        from envs.vector_env import InSpatioVectorEnv

        with self.lock:
            if task == self.task and self.env is not None:
                return
            env = InSpatioVectorEnv(num_envs=1, task=task, autoreset_mode="same_step", depth=True,
                                    overrides=self.overrides, **self.env_kwargs)
            if self.env is not None:
                self.env.close()
            self.env, self.task = env, task
            self._world = env.sim.world
            self.action_model = env.sim.escm.config.action_model
            self.nav = getattr(env.task, "nav", None)
            if self.nav is None:
                from inspatio_sim.navigation import build_nav_grid

                c = env.sim.escm.config
                self.nav = build_nav_grid(env.sim.world, c.radius, c.camera_height)
            if self.policy_name != "keyboard":
                self.policy = load_policy(self.policy_name, env, self.settings.checkpoint, self.seed)
            self.reset()

    @property
    def sim(self) -> Any:
        return self.env.sim

    def reset(self) -> None:
        """A new episode (seeds ``viewer.seed``, ``viewer.seed + 1``, ... for successive episodes)."""
        with self.lock:
            obs, info = self.env.reset(seed=self.seed + self.episode)
            self.episode += 1
            self.episode_return = 0.0
            self._episode_steps = 0
            self.trail.clear()
            self.pending.clear()
            self._take(obs, info, 0.0)
            if self.policy is not None:
                self.policy.reset(np.ones(1, bool))

    def _take(self, obs: dict[str, np.ndarray], info: dict[str, Any], step_s: float) -> None:
        self.batch = (obs, info)  # as the environment returned them, for a policy
        self.obs = {k: v[0] for k, v in obs.items()}
        self.last_info = {k: v[0] for k, v in info.items() if not k.startswith("_") and isinstance(v, np.ndarray)
                          and v.dtype != object}
        self.pose = np.asarray(info["pose"][0], dtype=np.float64)
        self.trail.append(self.pose[:3, 3].copy())
        self.frame_id += 1
        now = time.perf_counter()
        self._stamps.append(now)
        self.step_ms = 1000.0 * step_s
        self.frame_time = now
        self._publish()

    # -- input ---------------------------------------------------------------------------------------------------
    def key(self, key: Any, down: Any) -> bool:
        """A key event from a client; False (and one warning line) when it is not a key or ``down`` not a bool.

        Called from the servers' threads: it never waits for a step (held keys are a dict; ``r`` is queued)."""
        if not isinstance(key, str) or not isinstance(down, bool):
            self.warn(f"ignored a malformed key event (key={key!r}, down={down!r})")
            return False
        k = {" ": "space", "spacebar": "space"}.get(key.lower(), key.lower())
        if k == "*":  # the page lost focus: release everything
            self.held.clear()
            return True
        if k not in KEYS:
            self.warn(f"ignored unknown key {key!r} (keys: {', '.join(KEYS)})")
            return False
        if not down:
            self.held.pop(k, None)
            return True
        first = k not in self.held
        self.held[k] = time.monotonic()
        if first:
            self.wake.set()
            if k == "r":
                self.queue.append(("reset", None))
            elif k == "space":
                self.paused = not self.paused
            elif self.action_model == "discrete":
                self.pending.append(DISCRETE_KEY_ACTION[k])
        return True

    def command(self, name: Any, value: Any = None) -> bool:
        """A button or API command, queued for the next :meth:`tick`: ``reset``, ``pause`` (toggle, or a bool),
        ``task`` (a name of :data:`TASKS`), ``policy`` (a name of :data:`POLICIES`), ``record`` (bool), ``press`` (a
        drive key held for one step); False and one warning line for anything else."""
        ok = (name in ("reset", "record") or (name == "pause" and value in (None, True, False))
              or (name == "task" and value in TASKS) or (name == "policy" and value in POLICIES)
              or (name == "press" and value in DRIVE_KEYS))
        if not ok:
            self.warn(f"ignored unknown command {name!r} (value {value!r})")
            return False
        if name == "pause":
            self.paused = (not self.paused) if value is None else bool(value)
        else:
            self.queue.append((name, value))
        self.wake.set()
        return True

    def process(self) -> None:
        """Run the queued commands (the loop's thread, before each step); a configuration problem (a policy that
        is not available, a task this World cannot host) is one warning line."""
        if not self.queue:
            return
        while self.queue:
            name, value = self.queue.popleft()
            try:
                if name == "reset":
                    self.reset()
                elif name == "task":
                    self.set_task(value)
                elif name == "policy":
                    self.set_policy(value)
                elif name == "record":
                    self.set_recording(bool(value))
                elif name == "press":
                    self.press(value)
            except InSpatioError as e:
                self.warn(f"{name} {value!r}: {e}")
        self._publish()

    def press(self, key: str) -> None:
        """Drive key ``key`` for exactly one step (the page's buttons)."""
        with self.lock:
            if self.action_model == "discrete":
                self.pending.append(DISCRETE_KEY_ACTION[key])
            else:
                self.held[key] = time.monotonic() - self.settings.key_timeout + 1e-3  # expires after this step
                self._press_once = key

    def set_policy(self, name: str) -> None:
        """Who drives: ``keyboard`` or a policy name (see :func:`load_policy`)."""
        if name not in POLICIES:
            raise ConfigError(f"viewer policy must be one of {', '.join(POLICIES)}, got '{name}'")
        with self.lock:
            self.policy = None if name == "keyboard" else load_policy(name, self.env, self.settings.checkpoint,
                                                                      self.seed)
            self.policy_name = name

    def warn(self, message: str) -> None:
        """One warning line (the viewer keeps serving)."""
        self.warnings += 1
        log.warning("viewer: %s", message)

    # -- stepping ------------------------------------------------------------------------------------------------
    def action(self) -> Any:
        """The action of the held keys (or the next discrete press; ``None``: nothing to do this tick)."""
        now = time.monotonic()
        for k, t in list(self.held.items()):  # a key whose "up" never came (tab closed) is released
            if now - t > self.settings.key_timeout:
                del self.held[k]
        h = {k: 1.0 if k in self.held else 0.0 for k in DRIVE_KEYS}
        if self.action_model == "discrete":
            return self.pending.popleft() if self.pending else None
        forward, turn, up = h["w"] - h["s"], h["a"] - h["d"], h["q"] - h["e"]
        if self.action_model == "fly":
            return np.array([forward, 0.0, up, 0.0, 0.0, turn], np.float32)
        return np.array([forward, turn], np.float32)

    def _at_rest(self) -> bool:
        """The agent has no velocity left (the ESCM's acceleration limits make it coast after a key is released)."""
        return bool(self.sim.escm.velocity.abs().max() < 1e-4)

    def tick(self) -> bool:
        """One step of the agent unless paused (keyboard or policy); True when a new observation was made.

        With the keyboard and no key held, the agent steps only while it still moves, unless ``viewer.idle_steps``.
        """
        with self.lock:
            self.process()
            if self.paused:
                return False
            if self.policy is not None:
                act = self.policy.act(*self.batch)
            else:
                act = self.action()
                if act is None or (not self.settings.idle_steps and not np.any(act) and self._at_rest()):
                    return False
            if hasattr(self, "_press_once"):
                self.held.pop(self._press_once, None)
                del self._press_once
            t0 = time.perf_counter()
            if self.policy is None:
                act = np.asarray(act)[None]  # the keys' action, for the one agent
            obs, reward, terminated, truncated, info = self.env.step(act)
            self.steps += 1
            self._episode_steps += 1
            self.episode_return += float(reward[0])
            ended = bool(terminated[0] or truncated[0])
            if ended:  # same_step autoreset: obs is the new episode's first; the ended one's metrics are kept
                final = info.get("final_info") or {}
                self.last_episode = {"episode": self.episode, "steps": int(self._episode_steps),
                                     "return": self.episode_return, "terminated": bool(terminated[0]),
                                     **{k: float(np.asarray(final[k])[0]) for k in ("success", "spl", "coverage")
                                        if k in final}}
                self._episode_steps = 0
                self.episode += 1
                self.episode_return = 0.0
                self.trail.clear()
            self._take(obs, info, time.perf_counter() - t0)
            if ended and self.policy is not None:
                self.policy.reset(np.ones(1, bool))
            if self.recording is not None:
                self._record_step()
            return True

    @property
    def fps(self) -> float:
        """New observations per second over the last (up to 32) of them."""
        s = self._stamps
        if len(s) < 2 or time.perf_counter() - s[-1] > 1.0:
            return 0.0
        return (len(s) - 1) / max(s[-1] - s[0], 1e-9)

    # -- what the page shows -------------------------------------------------------------------------------------
    def view(self, name: str) -> np.ndarray:
        """The camera image ``(H, W, 3)`` uint8 of view ``name`` (see :data:`VIEWS`).

        ``depth``: z-depth, near bright, no data black; ``holes``: the rgb with the pixels the explicit render left
        empty (no geometry, depth 0) in magenta; ``completer``: the rgb with the pixels the world model filled tinted
        by where they came from (green: a reference video frame or written-back content, orange: inpainted); without
        a model it is the ``holes`` view.
        """
        with self.lock:
            rgb = np.asarray(self.obs["rgb"], dtype=np.uint8)
            depth = np.asarray(self.obs["depth"], dtype=np.float32)[..., 0]
            if name == "depth":
                valid = depth > 0
                if not valid.any():
                    return np.zeros_like(rgb)
                far = float(np.percentile(depth[valid], 98)) or 1.0
                v = np.where(valid, 1.0 - np.clip(depth / far, 0, 1) * 0.85, 0.0)
                return np.repeat((v * 255).astype(np.uint8)[..., None], 3, axis=2)
            if name == "holes" or (name == "completer" and self.sim.model is None):
                out = rgb.copy()
                out[depth <= 0] = (255, 0, 255)
                return out
            if name == "completer":
                last = self.sim.model.last
                out = rgb.astype(np.float32)
                filled = last.filled[0].cpu().numpy()
                source = last.source[0].cpu().numpy()
                from inspatio_sim.model.classical import SOURCE_INPAINT

                tint = np.where((source == SOURCE_INPAINT)[..., None], np.array([255, 140, 0]), np.array([0, 220, 0]))
                out[filled] = 0.5 * out[filled] + 0.5 * tint[filled]
                return out.astype(np.uint8)
            return rgb.copy()

    def state(self) -> dict[str, Any]:
        """What the page and the tests read back (JSON-ready); never waits for a step (the state after the last
        observation, plus the live frames/s, held keys and pause flag)."""
        st = dict(self._snapshot)
        st.update(fps=self.fps, held=sorted(self.held), paused=self.paused, warnings=self.warnings,
                  queued=len(self.queue))
        return st

    def _publish(self) -> None:
        """Store :meth:`state`'s view of the current observation (the loop's thread, after each change)."""
        T = self.pose
        rgb = np.asarray(self.obs["rgb"])
        state: dict[str, Any] = {
            "task": self.task, "action_model": self.action_model, "model": self.sim.model_config.name,
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "episode": self.episode, "steps": self.steps, "frame_id": self.frame_id,
            "frame_hash": hashlib.blake2b(rgb.tobytes(), digest_size=8).hexdigest(),
            "frame_mean": float(rgb.mean()), "frame_std": float(rgb.std()),
            "position": [float(x) for x in T[:3, 3]], "yaw": float(self.sim.heading()[0]), "pose": T.tolist(),
            "time": float(self.sim.time[0]), "policy": self.policy_name, "step_ms": self.step_ms,
            "return": self.episode_return, "recording": self.recording is not None,
            "last_recording": str(getattr(self, "last_recording", "") or ""),
            "last_episode": self.last_episode,
        }
        goal = getattr(self.env.task, "goal", None)
        if goal is not None:
            state["goal"] = [float(x) for x in goal[0]]
        for k in ("collided", "success", "spl", "coverage", "distance_to_goal"):
            if k in self.last_info:
                state[k] = self.last_info[k].item()
        self._snapshot = state

    def top_down(self, size: int = 200) -> np.ndarray:
        """The navigation map ``(size, size', 3)`` uint8: traversable floor light, the rest dark, the trail blue,
        the agent red with its heading, the PointNav goal green (x right, y up)."""
        with self.lock:
            nav = self.nav
            base = np.where(nav.traversable, 225, 60).astype(np.uint8)  # (X, Y)
            img = np.repeat(base.T[::-1][..., None], 3, axis=2).copy()  # rows: y up, columns: x
            rows, cols = img.shape[:2]

            def px(xy: np.ndarray) -> tuple[int, int]:
                ij = (np.asarray(xy[:2]) - nav.origin) / nav.cell
                return int(np.clip(rows - 1 - ij[1], 0, rows - 1)), int(np.clip(ij[0], 0, cols - 1))

            for p in self.trail:
                r, c = px(p)
                img[r, c] = (40, 90, 255)
            goal = getattr(self.env.task, "goal", None)
            if goal is not None:
                r, c = px(goal[0])
                img[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = (0, 200, 0)
            r, c = px(self.pose[:3, 3])
            img[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = (230, 0, 0)
            yaw = float(self.sim.heading()[0])
            for s in range(2, 5):
                rr, cc = round(r - s * math.sin(yaw)), round(c + s * math.cos(yaw))
                if 0 <= rr < rows and 0 <= cc < cols:
                    img[rr, cc] = (230, 0, 0)
            scale = max(1, round(size / max(rows, cols)))
            return np.kron(img, np.ones((scale, scale, 1), np.uint8))

    # -- recording -----------------------------------------------------------------------------------------------
    def set_recording(self, on: bool) -> Path | None:
        """Start (``on``) or stop a recording; stopping writes ``{viewer.out}/view-<time>.mp4`` (the rgb view) and,
        with ``viewer.record_bag``, a rosbag2 of every recorded step (the ROS node's topics); returns the mp4 path."""
        with self.lock:
            if on:
                if self.recording is None:
                    self.recording = Recording(started=time.time())
                    if self.settings.record_bag:
                        self._open_bag()
                    self._record_step()
                return None
            rec, self.recording = self.recording, None
        if rec is None or not rec.frames:
            return None
        from inspatio_sim.video_io import write_video

        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(rec.started))
        out = Path(self.settings.out)
        out.mkdir(parents=True, exist_ok=True)
        path = write_video(rec.frames, out / f"view-{stamp}.mp4", self.settings.fps)
        if rec.bag is not None:
            rec.bag.__exit__(None, None, None)
            log.info("viewer: wrote %d steps to the bag %s", rec.steps, rec.bag_path)
        log.info("viewer: wrote %d frames to %s", len(rec.frames), path)
        self.last_recording = path
        return path

    def _open_bag(self) -> None:
        try:
            from inspatio_sim.ros import messages as M
            from inspatio_sim.ros.bag import BagWriter, bag_location
        except ImportError as e:
            raise ConfigError(f"viewer.record_bag needs rosbags ({e}); run `pip install -e .[ros]`") from e
        assert self.recording is not None
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.recording.started))
        Path(self.settings.out).mkdir(parents=True, exist_ok=True)
        path, storage = bag_location(str(Path(self.settings.out) / f"view-{stamp}.mcap"), None)
        bag = BagWriter(path, storage)
        bag.__enter__()
        bag.write_static_tf(0)
        self.recording.bag, self.recording.bag_path = bag, path
        self.recording.maker = M

    def _record_step(self) -> None:
        rec = self.recording
        assert rec is not None
        rec.frames.append(np.asarray(self.obs["rgb"], np.uint8).copy())
        if rec.bag is not None:
            M = rec.maker
            depth = np.asarray(self.obs["depth"], np.float32)[..., 0]
            depth = np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)
            T_wb = M.base_from_camera_pose(self.pose)
            prev = getattr(rec, "prev", None)
            twist = M.realised_twist(prev, T_wb, self.sim.dt)
            rec.prev = T_wb  # type: ignore[attr-defined]
            stamp = round(rec.steps * self.sim.dt * 1e9)
            frame = M.StepFrame(stamp_ns=stamp, rgb=np.ascontiguousarray(self.obs["rgb"]), depth=depth,
                                K=np.asarray(self.sim.K, np.float64), T_world_camera=self.pose, T_world_base=T_wb,
                                twist=twist)
            rec.bag.write_step(frame, np.zeros(6))
        rec.steps += 1

    def close(self) -> None:
        """Stop a recording (writing it) and release the environment."""
        if self.recording is not None:
            self.set_recording(False)
        with self.lock:
            if self.env is not None:
                self.env.close()
                self.env = None
