"""Tasks: rewards, terminations, goals and metrics on top of a batched Simulator (all agents at once).

* ``videoworld``: free motion, reward 0, episodes end only by time limit or the trusted-region policy.
* ``pointnav``: reach a goal given in the agent frame (``pointgoal`` = distance in metres, bearing in radians,
  counter-clockwise from the heading). Reward = geodesic progress - step penalty - collision penalty, + success
  bonus. Success: within ``success_radius`` (geodesic); the discrete model must also call ``stop``, which ends the
  episode either way. SPL = success * shortest / max(path length, shortest) (Anderson et al., 2018). Goals are
  drawn uniformly among the traversable cells ``min_geodesic``..``max_geodesic`` from the start (never the start;
  a start with no such goal, or off the navigation grid, is drawn again). Settings: :class:`PointNavConfig`
  (``task_kwargs``).
* ``explore``: reward = newly observed floor-plan area (m^2, cells of the occupancy grid hit by the agent's depth,
  the episode's first frame included, so the first step is rewarded for what it adds); ``coverage`` = observed
  cells / observable cells.

Unknown tasks and settings raise :class:`~inspatio_sim.errors.ConfigError` (:func:`task_settings`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from scipy import ndimage

from inspatio_sim.camera import pixel_rays
from inspatio_sim.control import StepOutcome
from inspatio_sim.errors import ConfigError, WorldError
from inspatio_sim.navigation import NavGrid, build_nav_grid
from inspatio_sim.render import RenderOutput
from inspatio_sim.simulator import Simulator

TASKS = ("videoworld", "pointnav", "explore")
START_REDRAWS = 20


@dataclass
class PointNavConfig:
    """PointNav settings (``task_kwargs`` of ``InSpatio/PointNav-v0``); distances in metres.

    Attributes:
        success_radius: Success when the geodesic distance to the goal is at most this.
        min_geodesic, max_geodesic: Goals are drawn uniformly among the traversable cells this far (geodesic) from
            the start; ``min_geodesic`` must exceed ``success_radius``.
        success_reward: Bonus on success.
        step_penalty: Subtracted every step.
        collision_penalty: Subtracted on every step the ESCM reports a collision.
    """

    success_radius: float = 0.5
    min_geodesic: float = 1.0
    max_geodesic: float = 6.0
    success_reward: float = 2.5
    step_penalty: float = 0.01
    collision_penalty: float = 0.05

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"pointnav setting {f.name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.success_radius < self.min_geodesic <= self.max_geodesic:
            raise ConfigError("pointnav settings need 0 < success_radius < min_geodesic <= max_geodesic, got "
                              f"{self.success_radius}, {self.min_geodesic}, {self.max_geodesic}")


@dataclass
class NoSettings:
    """Settings of a task that has none (``videoworld``, ``explore``)."""

    def validate(self) -> None:
        """Nothing to check."""


TASK_SETTINGS: dict[str, type] = {"videoworld": NoSettings, "pointnav": PointNavConfig, "explore": NoSettings}


class Task:
    """Base task: free motion (``videoworld``)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def observation_spaces(self) -> dict[str, spaces.Space]:
        """Extra single-agent observation entries."""
        return {}

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator], goals: np.ndarray | None = None) -> None:
        """Start new episodes for the agents ``idx`` (after the Simulator placed them); ``goals (len(idx), 2)``:
        fixed goals (world x, y) of tasks that have goals."""

    def begin(self, frame: RenderOutput, idx: np.ndarray) -> None:
        """See the first frame of the episodes of the agents ``idx`` (after :meth:`reset`, before any step)."""

    def observe(self) -> dict[str, np.ndarray]:
        """Extra observation entries, batched ``(B, ...)``."""
        return {}

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(B,)`` float32, terminations ``(B,)`` bool and metrics after a Simulator step."""
        b = self.sim.num_agents
        return np.zeros(b, np.float32), outcome.terminated.cpu().numpy(), {}


def agent_nav_grid(sim: Simulator) -> NavGrid:
    """The navigation grid of ``sim``'s agents: their camera sphere at camera height (the ``robot`` model: its
    camera height, and a sphere standing in for its body)."""
    robot = sim.escm.robot
    if robot is not None:
        radius = min(robot.footprint_radius, robot.camera_height - 0.1)
        return build_nav_grid(sim.world, radius, robot.camera_height)
    cfg = sim.escm.config
    return build_nav_grid(sim.world, cfg.radius, cfg.camera_height)


class PointNavTask(Task):
    """Point-goal navigation (see module docstring)."""

    def __init__(self, sim: Simulator, config: PointNavConfig | None = None) -> None:
        super().__init__(sim)
        self.config = config or PointNavConfig()
        self.config.validate()
        self.nav: NavGrid = agent_nav_grid(sim)
        b = sim.num_agents
        self.goal = np.zeros((b, 3))
        self.maps = np.zeros((b, *self.nav.traversable.shape))  # geodesic distance to each agent's goal (m)
        self.start_geodesic = np.ones(b)
        self.previous = np.ones(b)
        self.path_length = np.zeros(b)
        self.last_xy = np.zeros((b, 2))

    def observation_spaces(self) -> dict[str, spaces.Space]:
        return {"pointgoal": spaces.Box(np.array([0.0, -math.pi], np.float32), np.array([np.inf, math.pi], np.float32),
                                        dtype=np.float32)}

    def agent_xy(self, poses: torch.Tensor | None = None) -> np.ndarray:
        """``(B, 2)`` float64 world x, y of the agents' camera centres (``poses`` ``(B, 4, 4)``, default now)."""
        poses = self.sim.poses() if poses is None else poses
        return poses[:, :2, 3].cpu().numpy().astype(np.float64)

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator], goals: np.ndarray | None = None) -> None:
        """Draw each agent's goal uniformly among the traversable cells ``min_geodesic``..``max_geodesic`` away;
        from a start with none (a pocket of free space), draw another start (up to :data:`START_REDRAWS` times).
        ``goals (len(idx), 2)`` world x, y: use these goals instead (fixed episodes; nothing is redrawn).

        Raises:
            WorldError: No such goal is reachable from any of the starts drawn.
        """
        cfg = self.config
        if goals is not None:
            for i, goal_xy in zip(idx, np.asarray(goals, dtype=np.float64).reshape(-1, 2), strict=True):
                self._start(int(i), goal_xy, self.agent_xy()[i])
            return
        for i in idx:
            for _ in range(START_REDRAWS):
                xy = self.agent_xy()[i]
                dist = self._distances_from(xy)
                ok = np.isfinite(dist) & (dist >= cfg.min_geodesic) & (dist <= cfg.max_geodesic)
                cells = np.argwhere(ok & self.nav.traversable)
                if len(cells):
                    break
                one = torch.zeros(self.sim.num_agents, dtype=torch.bool, device=self.sim.device)
                one[int(i)] = True
                self.sim.reset(one, rngs)
            else:
                reach = dist[np.isfinite(dist)]
                farthest = f"{reach.max():.2f} m" if reach.size else "nowhere (it is not on navigable floor)"
                raise WorldError(
                    f"pointnav: from none of {START_REDRAWS} start poses is a goal {cfg.min_geodesic}-"
                    f"{cfg.max_geodesic} m (geodesic) reachable; from the last, at ({xy[0]:.2f}, {xy[1]:.2f}), the "
                    f"floor reaches {farthest}; lower task_kwargs min_geodesic or use a larger world")
            self._start(int(i), self.nav.centre(cells[rngs[i].integers(len(cells))]), xy)

    def _start(self, i: int, goal_xy: np.ndarray, xy: np.ndarray) -> None:
        """Begin agent ``i``'s episode at ``xy (2,)`` towards ``goal_xy (2,)`` (world metres)."""
        self.maps[i] = self._fill(self.nav.distance_map(goal_xy))
        self.start_geodesic[i] = self.previous[i] = float(self.nav.geodesic(self.maps[i], xy[None])[0])
        (cell,), _ = self.nav.cell_of(goal_xy[None])
        self.goal[i] = [*goal_xy, self.nav.height[cell[0], cell[1]]]
        self.path_length[i] = 0.0
        self.last_xy[i] = xy

    def _distances_from(self, xy: np.ndarray) -> np.ndarray:
        """``(X, Y)`` geodesic distance (metres) of an agent at ``xy (2,)`` to a goal in each cell: the value
        ``_fill(distance_map(goal))`` gives at ``xy`` (an agent off the traversable cells, touching a wall, is one
        cell from its traversable neighbours)."""
        (c,), inside = self.nav.cell_of(xy[None])
        if not inside[0]:
            return np.full(self.nav.traversable.shape, np.inf)
        if self.nav.traversable[c[0], c[1]]:
            return self.nav.distance_map(xy)
        lo = np.maximum(c - 1, 0)
        near = np.argwhere(self.nav.traversable[lo[0]:c[0] + 2, lo[1]:c[1] + 2]) + lo
        if len(near) == 0:
            return np.full(self.nav.traversable.shape, np.inf)
        return self.nav.distance_map(self.nav.centre(near)) + self.nav.cell

    def _fill(self, dmap: np.ndarray) -> np.ndarray:
        """Extend distances one cell into the non-traversable border (agents touching walls stand there)."""
        grown = ndimage.minimum_filter(dmap, size=3) + self.nav.cell
        return np.where(np.isfinite(dmap), dmap, grown)

    def _geodesic(self, xy: np.ndarray) -> np.ndarray:
        ij, inside = self.nav.cell_of(xy)
        return np.where(inside, self.maps[np.arange(len(xy)), ij[:, 0], ij[:, 1]], np.inf)

    def observe(self) -> dict[str, np.ndarray]:
        rel = self.goal[:, :2] - self.agent_xy()
        bearing = np.arctan2(rel[:, 1], rel[:, 0]) - self.sim.heading().cpu().numpy()
        bearing = (bearing + np.pi) % (2 * np.pi) - np.pi
        return {"pointgoal": np.stack([np.linalg.norm(rel, axis=1), bearing], 1).astype(np.float32)}

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        xy = self.agent_xy(outcome.poses)
        self.path_length += np.linalg.norm(xy - self.last_xy, axis=1)
        self.last_xy = xy
        geo = self._geodesic(xy)
        geo_reward = np.where(np.isfinite(geo), self.previous - geo, 0.0)
        self.previous = np.where(np.isfinite(geo), geo, self.previous)
        cfg = self.config
        near = geo <= cfg.success_radius
        if self.sim.escm.config.action_model == "discrete":
            stop = actions.cpu().numpy() == 0
            success, done = near & stop, stop
        else:
            success, done = near, near
        collided = outcome.collided.cpu().numpy()
        reward = (geo_reward - cfg.step_penalty - cfg.collision_penalty * collided
                  + cfg.success_reward * success).astype(np.float32)
        efficiency = self.start_geodesic / np.maximum(self.path_length, self.start_geodesic).clip(min=1e-9)
        spl = success * efficiency
        # soft-SPL (Datta et al., 2021): progress towards the goal in place of the binary success
        progress = np.where(np.isfinite(geo), 1.0 - geo / np.maximum(self.start_geodesic, 1e-9), 0.0).clip(0, 1)
        terminated = done | outcome.terminated.cpu().numpy()
        return reward, terminated, {"success": success, "spl": spl.astype(np.float32),
                                    "soft_spl": (progress * efficiency).astype(np.float32),
                                    "distance_to_goal": geo.astype(np.float32),
                                    "path_length": self.path_length.astype(np.float32),
                                    "geodesic_start": self.start_geodesic.astype(np.float32)}


class ExploreTask(Task):
    """Exploration: reward newly observed floor-plan cells (see module docstring)."""

    PIXEL_STRIDE = 4

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        occ = sim.world.occupancy
        self.cell = occ.voxel
        self.origin = torch.as_tensor(occ.origin[:2], dtype=torch.float32, device=sim.device)
        self.shape = occ.shape[:2]
        self.observable = (occ.occupied | (occ.free_views > 0)).any(dim=2)  # (X, Y)
        self.seen = torch.zeros(sim.num_agents, *self.shape, dtype=torch.bool, device=sim.device)

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator], goals: np.ndarray | None = None) -> None:
        self.seen[torch.as_tensor(idx, device=self.sim.device)] = False

    def begin(self, frame: RenderOutput, idx: np.ndarray) -> None:
        """The first frame counts as observed (the first step's reward is what it adds)."""
        mask = torch.zeros(self.sim.num_agents, dtype=torch.bool, device=self.sim.device)
        mask[torch.as_tensor(idx, device=self.sim.device)] = True
        self._mark(self.sim.poses(), frame.depth, mask)

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        new = self._mark(outcome.poses, frame.depth, None).cpu().numpy()
        coverage = (self.seen.sum((1, 2)).float() / self.observable.sum().clamp(min=1)).cpu().numpy()
        reward = (new * self.cell**2).astype(np.float32)
        return reward, outcome.terminated.cpu().numpy(), {"coverage": coverage.astype(np.float32)}

    def _mark(self, poses: torch.Tensor, depth_map: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mark the observable cells hit by the depth ``(B, H, W)`` seen from camera ``poses (B, 4, 4)`` of the
        agents in ``mask (B,)`` (all when ``None``); return how many cells each agent newly observed ``(B,)``."""
        s = self.PIXEL_STRIDE
        depth = depth_map[:, ::s, ::s]
        K = torch.as_tensor(self.sim.K, dtype=torch.float32, device=self.sim.device)
        rays = pixel_rays(K, depth_map.shape[1], depth_map.shape[2], stride=s)
        pts = torch.einsum("bij,bhwj->bhwi", poses[:, :3, :3], rays[None] * depth[..., None])
        pts = pts + poses[:, None, None, :3, 3]
        ij = torch.floor((pts[..., :2] - self.origin) / self.cell).long()
        ok = (depth > 0) & (ij >= 0).all(-1) & (ij[..., 0] < self.shape[0]) & (ij[..., 1] < self.shape[1])
        if mask is not None:
            ok &= mask[:, None, None]
        b = torch.arange(depth.shape[0], device=depth.device)[:, None, None].expand_as(depth)
        before = self.seen.sum((1, 2))
        self.seen[b[ok], ij[..., 0][ok], ij[..., 1][ok]] = True
        self.seen &= self.observable
        return self.seen.sum((1, 2)) - before


def task_settings(name: str, kwargs: dict[str, Any] | None = None) -> Any:
    """The validated settings object of task ``name`` from ``kwargs`` (``task_kwargs``).

    Raises:
        ConfigError: Unknown task, unknown setting or invalid value (one line naming it).
    """
    if name not in TASK_SETTINGS:
        raise ConfigError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
    cls = TASK_SETTINGS[name]
    kwargs = dict(kwargs or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        hints = [f"'{k}' (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(k, known, 1)) else f"'{k}'"
                 for k in unknown]
        has = f"its settings are {', '.join(known)}" if known else "it has no settings"
        raise ConfigError(f"unknown {name} task setting(s) {', '.join(hints)}; {has}")
    settings = cls(**kwargs)
    settings.validate()
    return settings


def make_task(name: str, sim: Simulator, **kwargs: Any) -> Task:
    """Task ``name`` (one of :data:`TASKS`) over ``sim`` with settings ``kwargs`` (see :func:`task_settings`)."""
    settings = task_settings(name, kwargs)
    if name == "pointnav":
        return PointNavTask(sim, settings)
    if name == "explore":
        return ExploreTask(sim)
    return Task(sim)
