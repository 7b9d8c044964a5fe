"""Scripted oracles, the upper reference: they see the privileged navigation grid the environment exposes.

* :class:`PointNavOracle` follows the geodesic shortest path to the goal on the navigation grid
  (``env.navigation()``, ``env.goals()``): descend the goal's geodesic distance map from the agent's cell, aim at
  the point :attr:`PointNavOracle.lookahead` metres down that path, steer towards it. ``ground`` / ``robot`` /
  ``fly``: yaw rate proportional to the bearing, forward speed falling off with the bearing; ``discrete``: turn
  until the bearing is within half a turn step, else ``move_forward``; ``stop`` once within the success radius.
* :class:`ExploreOracle` is frontier-based: it drives (as above) to the nearest (geodesic) traversable cell that
  no agent observation has covered yet (``env.seen_cells()``), picking a new one when that is seen or reached, and
  turns in place when none is left. Cells near where the agent has been count as explored (the floor right
  around the camera is never in its view).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from inspatio_sim.navigation import NavGrid
from policies.base import Policy, to_numpy, unwrap, wrap_angle, yaw_of

# 8-connected neighbour offsets
_NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def filled_distance_map(nav: NavGrid, goal_xy: np.ndarray) -> np.ndarray:
    """Geodesic distance map (metres) to ``goal_xy (2,)``, extended one cell into the non-traversable border (an
    agent touching a wall stands there), ``inf`` where unreachable ``(X, Y)``."""
    dmap = nav.distance_map(goal_xy)
    grown = ndimage.minimum_filter(dmap, size=3) + nav.cell
    return np.where(np.isfinite(dmap), dmap, grown)


def distances_from(nav: NavGrid, xy: np.ndarray) -> np.ndarray | None:
    """Geodesic distance (metres) from an agent at ``xy (2,)`` to every cell ``(X, Y)``; an agent off the
    traversable cells (touching a wall) starts from its traversable neighbours; ``None`` when it has none."""
    (c,), inside = nav.cell_of(xy[None])
    if not inside[0]:
        return None
    if nav.traversable[c[0], c[1]]:
        return nav.distance_map(xy)
    lo = np.maximum(c - 1, 0)
    near = np.argwhere(nav.traversable[lo[0]:c[0] + 2, lo[1]:c[1] + 2]) + lo
    return nav.distance_map(nav.centre(near)) + nav.cell if len(near) else None


def waypoint(nav: NavGrid, dmap: np.ndarray, xy: np.ndarray, lookahead: float) -> tuple[np.ndarray, float]:
    """The point ``lookahead`` metres down the shortest path from ``xy (2,)`` on ``dmap`` (steepest descent over
    8-connected cells), and the geodesic distance at ``xy`` (``inf``: no path)."""
    (c,), inside = nav.cell_of(xy[None])
    if not inside[0] or not np.isfinite(dmap[c[0], c[1]]):
        return xy.copy(), float("inf")
    here = float(dmap[c[0], c[1]])
    shape = np.array(dmap.shape)
    trav = nav.traversable
    cell = c.copy()
    path = []
    travelled = 0.0
    while travelled < lookahead:
        nb = cell + _NEIGHBOURS
        nb = nb[np.all((nb >= 0) & (nb < shape), axis=1)]
        nb = nb[trav[nb[:, 0], nb[:, 1]]]  # stay on traversable cells (the border fill only serves the start)
        if len(nb) == 0:
            break
        values = dmap[nb[:, 0], nb[:, 1]]
        k = int(np.argmin(values))
        if not values[k] < dmap[cell[0], cell[1]]:
            break  # the goal cell
        travelled += nav.cell * float(np.linalg.norm(nb[k] - cell))
        cell = nb[k]
        path.append(cell)
    # aim at the farthest path cell in straight-line sight over traversable cells (no corner cutting)
    for target in reversed(path):
        if _clear_line(nav, xy, nav.centre(target[None])[0]):
            return nav.centre(target[None])[0], here
    return (nav.centre(path[0][None])[0] if path else nav.centre(cell[None])[0]), here


def _clear_line(nav: NavGrid, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the segment ``a``-``b`` (world x, y) crosses only traversable cells (its first cell excepted)."""
    n = max(2, int(np.ceil(np.linalg.norm(b - a) / (nav.cell / 2))) + 1)
    pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
    ij, inside = nav.cell_of(pts)
    (c0,), _ = nav.cell_of(a[None])
    ok = nav.traversable[ij[:, 0], ij[:, 1]] & inside
    ok |= np.all(ij == c0, axis=1)
    return bool(ok.all())


def best_bearing(nav: NavGrid, dmap: np.ndarray, xy: np.ndarray, yaw: float, step: float, resolution: float,
                 prefer: float | None = None, short: float = 0.0) -> float | None:
    """The bearing (radians, a multiple of ``resolution``, counter-clockwise from ``yaw``) of the straight move of
    ``step`` metres, over traversable cells only, that lands lowest on ``dmap``; turning costs a little, so straight
    ahead wins ties, and the heading nearest to ``prefer`` (absolute, the last choice) gets a bonus of two cells, so
    two near-equal ways round an obstacle do not alternate. A move needs a straight line over traversable cells, or,
    when ``step < short``, only a traversable end cell. ``None`` when no such move exists (boxed in)."""
    k = np.arange(-int(np.ceil(np.pi / resolution)), int(np.ceil(np.pi / resolution)) + 1)
    headings = yaw + k * resolution
    ends = xy + step * np.stack([np.cos(headings), np.sin(headings)], 1)
    ij, inside = nav.cell_of(ends)
    value = np.where(inside, dmap[ij[:, 0], ij[:, 1]], np.inf) + 0.002 * np.abs(k * resolution)
    if prefer is not None:
        value[np.argmin(np.abs(wrap_angle(headings - prefer)))] -= 2 * nav.cell
    for n in np.argsort(value):
        if not np.isfinite(value[n]):
            break
        # a move shorter than the blocked band around geometry (twice the sphere radius) cannot cross a wall: the
        # end cell decides (the ESCM checks the trusted region at the end only, so crossing a trust hole is fine)
        (c,), _ = nav.cell_of(ends[n][None])
        if nav.traversable[c[0], c[1]] if step < short else _clear_line(nav, xy, ends[n]):
            return float(k[n] * resolution)
    return None


def discrete_step(nav: NavGrid, dmap: np.ndarray, xy: np.ndarray, yaw: float, step: float, turn: float,
                  prefer: float | None = None, short: float = 0.0) -> tuple[int, float | None]:
    """The discrete action (1 ``move_forward``, 2 ``turn_left``, 3 ``turn_right``) towards :func:`best_bearing`
    at the turn step's resolution (``turn_left`` when boxed in), and the absolute heading chosen."""
    bearing = best_bearing(nav, dmap, xy, yaw, step, turn, prefer, short)
    if bearing is None:
        return 2, None
    return (1 if abs(bearing) < turn / 2 else (2 if bearing > 0 else 3)), yaw + bearing


class _Steering:
    """Turns a target point per agent into actions of the environment's action model."""

    def __init__(self, env: Any) -> None:
        cfg = env.sim.escm.config
        self.model = cfg.action_model
        self.max_angular = cfg.max_angular_speed
        self.dt = cfg.dt
        self.turn_step = np.radians(cfg.turn_step_deg)
        self.step = cfg.max_speed * cfg.dt  # metres per step at full speed

    def __call__(self, bearing: np.ndarray, distance: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Actions ``(B, ...)`` towards target points at ``bearing (B,)`` (radians, counter-clockwise from the
        heading) ``distance (B,)`` metres away (straight line); ``stop (B,)``: the agent is done (discrete
        ``stop``, else stand still)."""
        b = len(bearing)
        if self.model == "discrete":
            a = np.where(np.abs(bearing) <= self.turn_step / 2, 1, np.where(bearing > 0, 2, 3))
            return np.where(stop, 0, a).astype(np.int64)
        # yaw rate that removes the bearing in about two steps, forward speed only when facing the target
        turn = np.clip(bearing / (2 * self.dt * self.max_angular), -1.0, 1.0)
        # never step past the target point (beyond it the straight line may leave the free space)
        forward = np.clip(np.cos(bearing), 0.0, 1.0) ** 4 * np.clip(distance / self.step, 0.05, 1.0)
        forward = np.where(np.abs(bearing) > np.radians(60), 0.0, forward)
        forward, turn = np.where(stop, 0.0, forward), np.where(stop, 0.0, turn)
        if self.model == "fly":  # body twist: vx forward, yaw rate wz
            out = np.zeros((b, 6), np.float32)
            out[:, 0], out[:, 5] = forward, turn
            return out
        return np.stack([forward, turn], 1).astype(np.float32)


class PointNavOracle(Policy):
    """Follows the geodesic shortest path to the PointNav goal (see the module docstring).

    Args:
        env: The native PointNav vector environment.
        lookahead: How far down the path the agent aims (metres).
        stop_margin: The discrete model calls ``stop`` this far inside the success radius (metres).
    """

    name = "oracle"

    def __init__(self, env: Any, lookahead: float = 0.5, stop_margin: float = 0.1) -> None:
        self.env = unwrap(env)
        if self.env.goals() is None:
            raise TypeError("PointNavOracle needs a PointNav environment")
        self.nav = self.env.navigation()
        self.steer = _Steering(self.env)
        self.lookahead = lookahead
        self.stop_radius = max(self.env.task.config.success_radius - stop_margin, self.nav.cell)
        self.maps: dict[tuple[float, float], np.ndarray] = {}
        self.heading: list[float | None] = [None] * self.env.num_envs  # last chosen heading (discrete)

    def reset(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            self.heading[i] = None

    def _map(self, goal_xy: np.ndarray) -> np.ndarray:
        key = (round(float(goal_xy[0]), 4), round(float(goal_xy[1]), 4))
        if key not in self.maps:
            if len(self.maps) > 256:
                self.maps.clear()
            self.maps[key] = filled_distance_map(self.nav, goal_xy)
        return self.maps[key]

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        poses = to_numpy(info["pose"]).astype(np.float64)
        goals = self.env.goals()
        xy, yaw = poses[:, :2, 3], yaw_of(poses)
        bearing, distance, stop = np.zeros(len(xy)), np.zeros(len(xy)), np.zeros(len(xy), bool)
        for i in range(len(xy)):
            dmap = self._map(goals[i, :2])
            target, geo = waypoint(self.nav, dmap, xy[i], self.lookahead)
            if not np.isfinite(geo):  # off the grid: head straight for the goal
                target, geo = goals[i, :2], float(np.linalg.norm(goals[i, :2] - xy[i]))
            rel = target - xy[i]
            bearing[i] = wrap_angle(np.arctan2(rel[1], rel[0]) - yaw[i])
            distance[i] = np.linalg.norm(rel)
            if not _clear_line(self.nav, xy[i], target):  # no straight line to the waypoint: best short move
                best = best_bearing(self.nav, dmap, xy[i], yaw[i], self.steer.step, np.radians(5))
                bearing[i], distance[i] = (bearing[i], distance[i]) if best is None else (best, self.steer.step)
            stop[i] = geo <= self.stop_radius
        if self.steer.model == "discrete":
            cfg = self.env.sim.escm.config
            steps = np.zeros(len(xy), np.int64)
            for i in range(len(xy)):
                steps[i], self.heading[i] = discrete_step(self.nav, self._map(goals[i, :2]), xy[i], yaw[i],
                                                          cfg.forward_step, self.steer.turn_step, self.heading[i],
                                                          short=2 * cfg.radius)
            return np.where(stop, 0, steps).astype(np.int64)
        return self.steer(bearing, distance, stop)


class ExploreOracle(Policy):
    """Frontier-based exploration (see the module docstring).

    Args:
        env: The native Explore vector environment.
        lookahead: How far down the path to the frontier the agent aims (metres).
        min_distance: Frontier cells nearer than this (metres, geodesic) are not chosen (they are in view soon).
        visit_radius: Cells this near (metres) to where the agent has been count as explored.
    """

    name = "oracle"

    def __init__(self, env: Any, lookahead: float = 0.5, min_distance: float = 1.0, visit_radius: float = 0.75
                 ) -> None:
        self.env = unwrap(env)
        if self.env.seen_cells() is None:
            raise TypeError("ExploreOracle needs an Explore environment")
        self.nav = self.env.navigation()
        self.steer = _Steering(self.env)
        self.lookahead = lookahead
        self.min_distance = min_distance
        b = self.env.num_envs
        self.visit_radius = visit_radius
        self.visited = np.zeros((b, *self.nav.traversable.shape), bool)
        self.target: list[np.ndarray | None] = [None] * b
        self.maps: list[np.ndarray | None] = [None] * b

    def reset(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            self.target[i] = self.maps[i] = None
        self.visited[mask] = False

    def _unseen(self, seen: np.ndarray, i: int) -> np.ndarray:
        """Traversable cells neither observed (the seen grid is the occupancy grid's x-y, as the navigation grid)
        nor near where agent ``i`` has been (the floor under and right around the camera is never in view)."""
        return ~seen & ~self.visited[i] & self.nav.traversable

    def _visit(self, i: int, xy: np.ndarray) -> None:
        (c,), _ = self.nav.cell_of(xy[None])
        r = int(np.ceil(self.visit_radius / self.nav.cell))
        lo = np.maximum(c - r, 0)
        gi, gj = np.mgrid[lo[0]:c[0] + r + 1, lo[1]:c[1] + r + 1]
        near = (gi - c[0]) ** 2 + (gj - c[1]) ** 2 <= r * r
        gi, gj = gi[near], gj[near]
        ok = (gi < self.visited.shape[1]) & (gj < self.visited.shape[2])
        self.visited[i, gi[ok], gj[ok]] = True

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        poses = to_numpy(info["pose"]).astype(np.float64)
        seen = self.env.seen_cells()
        xy, yaw = poses[:, :2, 3], yaw_of(poses)
        b = len(xy)
        bearing, distance = np.zeros(b), np.zeros(b)
        discrete = np.full(b, 2, np.int64)  # look around when there is nothing to drive to
        for i in range(b):
            self._visit(i, xy[i])
            t = self.target[i]
            if t is not None:
                (c,), _ = self.nav.cell_of(t[None])
                if seen[i][c[0], c[1]] or self.visited[i, c[0], c[1]]:
                    t = None
            if t is None:
                here = distances_from(self.nav, xy[i])
                if here is not None:
                    cand = np.argwhere(self._unseen(seen[i], i) & np.isfinite(here) & (here >= self.min_distance))
                    if len(cand):
                        best = cand[np.argmin(here[cand[:, 0], cand[:, 1]])]
                        t = self.nav.centre(best[None])[0]
                        self.maps[i] = filled_distance_map(self.nav, t)
                self.target[i] = t
            if t is None or self.maps[i] is None:  # nothing left (or off the grid): look around
                bearing[i], distance[i] = np.pi / 2, 0.0
                continue
            point, geo = waypoint(self.nav, self.maps[i], xy[i], self.lookahead)
            if not np.isfinite(geo):
                point, geo = t, float(np.linalg.norm(t - xy[i]))
            rel = point - xy[i]
            bearing[i] = wrap_angle(np.arctan2(rel[1], rel[0]) - yaw[i])
            distance[i] = np.linalg.norm(rel)
            if self.steer.model == "discrete":
                cfg = self.env.sim.escm.config
                discrete[i], _ = discrete_step(self.nav, self.maps[i], xy[i], yaw[i], cfg.forward_step,
                                               self.steer.turn_step, short=2 * cfg.radius)
        if self.steer.model == "discrete":
            return discrete
        return self.steer(bearing, distance, np.zeros(b, bool))



def oracle_for(env: Any) -> Policy:
    """The oracle of ``env``'s task (PointNav or Explore)."""
    native = unwrap(env)
    if native.goals() is not None:
        return PointNavOracle(native)
    if native.seen_cells() is not None:
        return ExploreOracle(native)
    raise TypeError("there is an oracle for pointnav and explore only")
