"""Tasks: rewards, terminations, goals and metrics on top of a batched Simulator (all agents at once).

* ``videoworld``: free motion, reward 0, episodes end only by time limit or the trusted-region policy.
* ``pointnav``: reach a goal given in the agent frame (``pointgoal`` = distance in metres, bearing in radians,
  counter-clockwise from the heading). Reward = geodesic progress - step penalty - collision penalty, + success
  bonus. Success: within ``success_radius`` (geodesic); the discrete model must also call ``stop``, which ends the
  episode either way. SPL = success * shortest / max(path length, shortest) (Anderson et al., 2018).
* ``explore``: reward = newly observed floor-plan area (m^2, cells of the occupancy grid hit by the agent's depth);
  ``coverage`` = observed cells / observable cells.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from scipy import ndimage

from inspatio_sim.camera import pixel_rays
from inspatio_sim.control import StepOutcome
from inspatio_sim.navigation import NavGrid, build_nav_grid
from inspatio_sim.render import RenderOutput
from inspatio_sim.simulator import Simulator

TASKS = ("videoworld", "pointnav", "explore")
GOAL_TRIES = 200


class Task:
    """Base task: free motion (``videoworld``)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def observation_spaces(self) -> dict[str, spaces.Space]:
        """Extra single-agent observation entries."""
        return {}

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Start new episodes for the agents ``idx`` (after the Simulator placed them)."""

    def observe(self) -> dict[str, np.ndarray]:
        """Extra observation entries, batched ``(B, ...)``."""
        return {}

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(B,)`` float32, terminations ``(B,)`` bool and metrics after a Simulator step."""
        b = self.sim.num_agents
        return np.zeros(b, np.float32), outcome.terminated.cpu().numpy(), {}


class PointNavTask(Task):
    """Point-goal navigation (see module docstring)."""

    def __init__(self, sim: Simulator, success_radius: float = 0.5, min_geodesic: float = 1.0,
                 max_geodesic: float = 6.0, success_reward: float = 2.5, step_penalty: float = 0.01,
                 collision_penalty: float = 0.05) -> None:
        super().__init__(sim)
        cfg = sim.escm.config
        robot = sim.escm.robot
        if robot is not None:  # the robot's camera height, and a sphere standing in for its body
            radius = min(robot.footprint_radius, robot.camera_height - 0.1)
            self.nav: NavGrid = build_nav_grid(sim.world, radius, robot.camera_height)
        else:
            self.nav = build_nav_grid(sim.world, cfg.radius, cfg.camera_height)
        self.success_radius, self.min_geodesic, self.max_geodesic = success_radius, min_geodesic, max_geodesic
        self.success_reward, self.step_penalty, self.collision_penalty = success_reward, step_penalty, collision_penalty
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

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator]) -> None:
        xy = self.sim.poses()[:, :2, 3].cpu().numpy().astype(np.float64)
        cells = np.argwhere(self.nav.traversable)
        for i in idx:
            rng = rngs[i]
            best = None
            for _ in range(GOAL_TRIES):
                goal_xy = self.nav.centre(cells[rng.integers(len(cells))])
                dmap = self._fill(self.nav.distance_map(goal_xy))
                d = float(self.nav.geodesic(dmap, xy[i:i + 1])[0])
                if self.min_geodesic <= d <= self.max_geodesic:
                    best = (goal_xy, dmap, d)
                    break
                if np.isfinite(d) and d > 0 and (best is None or abs(d - 2.0) < abs(best[2] - 2.0)):
                    best = (goal_xy, dmap, d)
            if best is None:  # nothing reachable: the goal is where the agent stands (a trivial episode)
                best = (xy[i], self._fill(self.nav.distance_map(xy[i])), 0.0)
            goal_xy, self.maps[i], self.start_geodesic[i] = best
            (cell,), _ = self.nav.cell_of(goal_xy[None])
            self.goal[i] = [*goal_xy, self.nav.height[cell[0], cell[1]]]
            self.previous[i] = self.start_geodesic[i]
            self.path_length[i] = 0.0
            self.last_xy[i] = xy[i]

    def _fill(self, dmap: np.ndarray) -> np.ndarray:
        """Extend distances one cell into the non-traversable border (agents touching walls stand there)."""
        grown = ndimage.minimum_filter(dmap, size=3) + self.nav.cell
        return np.where(np.isfinite(dmap), dmap, grown)

    def _geodesic(self, xy: np.ndarray) -> np.ndarray:
        ij, inside = self.nav.cell_of(xy)
        return np.where(inside, self.maps[np.arange(len(xy)), ij[:, 0], ij[:, 1]], np.inf)

    def observe(self) -> dict[str, np.ndarray]:
        pos = self.sim.poses()[:, :3, 3].cpu().numpy().astype(np.float64)
        rel = self.goal[:, :2] - pos[:, :2]
        bearing = np.arctan2(rel[:, 1], rel[:, 0]) - self.sim.heading().cpu().numpy()
        bearing = (bearing + np.pi) % (2 * np.pi) - np.pi
        return {"pointgoal": np.stack([np.linalg.norm(rel, axis=1), bearing], 1).astype(np.float32)}

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        xy = outcome.poses[:, :2, 3].cpu().numpy().astype(np.float64)
        self.path_length += np.linalg.norm(xy - self.last_xy, axis=1)
        self.last_xy = xy
        geo = self._geodesic(xy)
        geo_reward = np.where(np.isfinite(geo), self.previous - geo, 0.0)
        self.previous = np.where(np.isfinite(geo), geo, self.previous)
        near = geo <= self.success_radius
        if self.sim.escm.config.action_model == "discrete":
            stop = actions.cpu().numpy() == 0
            success, done = near & stop, stop
        else:
            success, done = near, near
        collided = outcome.collided.cpu().numpy()
        reward = (geo_reward - self.step_penalty - self.collision_penalty * collided
                  + self.success_reward * success).astype(np.float32)
        spl = success * self.start_geodesic / np.maximum(self.path_length, self.start_geodesic).clip(min=1e-9)
        terminated = done | outcome.terminated.cpu().numpy()
        return reward, terminated, {"success": success, "spl": spl.astype(np.float32),
                                    "distance_to_goal": geo.astype(np.float32)}


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

    def reset(self, idx: np.ndarray, rngs: list[np.random.Generator]) -> None:
        self.seen[torch.as_tensor(idx, device=self.sim.device)] = False

    def step(self, outcome: StepOutcome, frame: RenderOutput, actions: torch.Tensor
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        s = self.PIXEL_STRIDE
        depth = frame.depth[:, ::s, ::s]
        K = torch.as_tensor(self.sim.K, dtype=torch.float32, device=self.sim.device)
        rays = pixel_rays(K, frame.depth.shape[1], frame.depth.shape[2], stride=s)
        pts = torch.einsum("bij,bhwj->bhwi", outcome.poses[:, :3, :3], rays[None] * depth[..., None])
        pts = pts + outcome.poses[:, None, None, :3, 3]
        ij = torch.floor((pts[..., :2] - self.origin) / self.cell).long()
        ok = (depth > 0) & (ij >= 0).all(-1) & (ij[..., 0] < self.shape[0]) & (ij[..., 1] < self.shape[1])
        b = torch.arange(depth.shape[0], device=depth.device)[:, None, None].expand_as(depth)
        before = self.seen.sum((1, 2))
        self.seen[b[ok], ij[..., 0][ok], ij[..., 1][ok]] = True
        self.seen &= self.observable
        new = (self.seen.sum((1, 2)) - before).cpu().numpy()
        coverage = (self.seen.sum((1, 2)).float() / self.observable.sum().clamp(min=1)).cpu().numpy()
        reward = (new * self.cell**2).astype(np.float32)
        return reward, outcome.terminated.cpu().numpy(), {"coverage": coverage.astype(np.float32)}


def make_task(name: str, sim: Simulator, **kwargs: float) -> Task:
    """Task ``name`` (one of :data:`TASKS`) over ``sim``."""
    if name == "videoworld":
        return Task(sim)
    if name == "pointnav":
        return PointNavTask(sim, **kwargs)
    if name == "explore":
        return ExploreTask(sim)
    raise ValueError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
