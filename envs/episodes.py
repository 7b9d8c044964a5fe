"""Fixed episode sets: start poses and goals that make numbers comparable across policies and machines.

An episode file (JSON, ``*.json`` or ``*.json.gz``) holds, for one World and one task, a list of episodes, each a
start position (world metres, the camera centre), a start heading (radians, counter-clockwise from +x, as
:meth:`inspatio_sim.simulator.Simulator.heading`) and, for PointNav, a goal (world x, y, z) with its geodesic
distance from the start. Goals are drawn in geodesic-distance bins (``episodes.bins``), round-robin, so every bin
holds the same share of the set (as Habitat's episode datasets); every start is on the navigation grid (clear of
geometry, trusted) and every goal reachable from its start.

Layout (``version`` :data:`VERSION`)::

    {"format": "inspatio-sim/episodes", "version": 1, "task": "pointnav", "split": "val", "seed": 0,
     "world": {"source": "...", "fingerprint": "..."}, "settings": {...}, "bins": [1.0, 2.5, 4.0, 6.0],
     "episodes": [{"id": 0, "start": [x, y, z], "yaw": 0.3, "goal": [x, y, z], "geodesic": 2.1, "bin": 0}, ...]}

:func:`make_episodes` writes one, :func:`load_episodes` reads and validates one (version, fields, numbers) and
:func:`check_episodes` validates it against an environment's navigation grid (start on free floor, goal reachable);
every problem is one :class:`EpisodeError` line naming the file and the episode.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspatio_sim.errors import InSpatioError
from inspatio_sim.fileio import atomic_write
from inspatio_sim.navigation import NavGrid

FORMAT = "inspatio-sim/episodes"
VERSION = 1
EPISODE_TASKS = ("pointnav", "explore")
MAX_DRAWS = 200  # start draws per episode before giving up on a bin


class EpisodeError(InSpatioError):
    """An episode file is missing, malformed, of another version, or does not fit the environment's World."""


@dataclass
class Episode:
    """One fixed episode.

    Attributes:
        id: Index in the set.
        start: ``(3,)`` camera centre at the start (world metres).
        yaw: Start heading (radians, counter-clockwise from world +x).
        goal: ``(3,)`` goal (world metres; PointNav), else ``None``.
        geodesic: Geodesic start-goal distance (metres; PointNav), else ``None``.
        bin: Index of the geodesic-distance bin (PointNav), else ``None``.
    """

    id: int
    start: list[float]
    yaw: float
    goal: list[float] | None = None
    geodesic: float | None = None
    bin: int | None = None


@dataclass
class EpisodeSet:
    """A versioned set of episodes of one task in one World (see the module docstring)."""

    task: str
    episodes: list[Episode]
    split: str = "val"
    seed: int = 0
    world: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    bins: list[float] = field(default_factory=list)
    path: str | None = None

    def __len__(self) -> int:
        return len(self.episodes)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "task": self.task, "split": self.split, "seed": self.seed,
                "world": self.world, "settings": self.settings, "bins": self.bins,
                "episodes": [asdict(e) for e in self.episodes]}

    def save(self, path: str | Path) -> Path:
        """Write the set to ``path`` (``.json`` or ``.json.gz``) atomically; return the path."""
        target = Path(path)
        data = json.dumps(self.to_json(), indent=1).encode()
        if target.name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as tmp:
            Path(tmp).write_bytes(data)
        self.path = str(target)
        return target


def nav_fingerprint(nav: NavGrid) -> str:
    """A short hash of a navigation grid (origin, cell, traversable cells): which World an episode set was made in."""
    h = hashlib.sha1()
    h.update(np.asarray(nav.origin, np.float64).round(4).tobytes())
    h.update(np.float64(round(nav.cell, 6)).tobytes())
    h.update(np.asarray(nav.traversable.shape, np.int64).tobytes())
    h.update(np.packbits(nav.traversable).tobytes())
    return h.hexdigest()[:16]


def make_episodes(nav: NavGrid, start_poses: Any, task: str, count: int, *, bins: list[float],
                  seed: int = 0, split: str = "val", world: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, progress: bool = False) -> EpisodeSet:
    """Draw ``count`` episodes.

    Args:
        nav: The navigation grid of the agents (:func:`envs.tasks.agent_nav_grid`).
        start_poses: ``callable(rng) -> (position (3,), yaw)``: a start pose clear of geometry (the Simulator's).
        task: ``pointnav`` or ``explore``.
        count: Number of episodes.
        bins: PointNav geodesic-distance bin edges (metres, increasing, at least two); episodes are spread over the
            bins round-robin.
        seed: Seed of the draws (the same seed gives the same set).

    Raises:
        EpisodeError: Bad arguments, or a bin that no start can fill (names the farthest reachable distance).
    """
    if task not in EPISODE_TASKS:
        raise EpisodeError(f"episode sets exist for {', '.join(EPISODE_TASKS)}, not '{task}'")
    if count < 1:
        raise EpisodeError(f"episodes.count must be >= 1, got {count}")
    edges = [float(b) for b in bins]
    if task == "pointnav" and (len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges))
                               or edges[0] <= 0):
        raise EpisodeError(f"episodes.bins must be at least two increasing distances > 0 (metres), got {bins}")
    rng = np.random.default_rng(seed)
    episodes: list[Episode] = []
    farthest = 0.0
    from tqdm import tqdm

    for k in tqdm(range(count), desc="episodes", unit="ep", disable=not progress):
        b = k % (len(edges) - 1) if task == "pointnav" else None
        for _ in range(MAX_DRAWS):
            position, yaw = start_poses(rng)
            (cell,), inside = nav.cell_of(np.asarray(position)[None, :2])
            if not inside[0] or not nav.traversable[cell[0], cell[1]]:
                continue
            if task == "explore":
                episodes.append(Episode(k, [float(v) for v in position], float(yaw)))
                break
            dist = nav.distance_map(np.asarray(position)[:2])
            finite = dist[np.isfinite(dist)]
            farthest = max(farthest, float(finite.max()) if finite.size else 0.0)
            ok = np.isfinite(dist) & (dist >= edges[b]) & (dist < edges[b + 1]) & nav.traversable
            cells = np.argwhere(ok)
            if len(cells) == 0:
                continue
            c = cells[rng.integers(len(cells))]
            gx, gy = nav.centre(c[None])[0]
            episodes.append(Episode(k, [float(v) for v in position], float(yaw),
                                    [float(gx), float(gy), float(nav.height[c[0], c[1]])], float(dist[c[0], c[1]]),
                                    int(b)))
            break
        else:
            what = "a start on the navigation grid" if task == "explore" else (
                f"a goal {edges[b]}-{edges[b + 1]} m (geodesic) from a start; the farthest reachable is "
                f"{farthest:.2f} m: lower episodes.bins")
            raise EpisodeError(f"no episode {k} after {MAX_DRAWS} start draws: found no {what}")
    return EpisodeSet(task=task, episodes=episodes, split=split, seed=seed,
                      world={**(world or {}), "fingerprint": nav_fingerprint(nav)}, settings=dict(settings or {}),
                      bins=edges if task == "pointnav" else [])


def _number(value: Any, where: str, n: int | None = None) -> Any:
    if n is None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EpisodeError(f"{where} must be a finite number, got {value!r}")
        return value
    if (not isinstance(value, list) or len(value) != n
            or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value)):
        raise EpisodeError(f"{where} must be a list of {n} finite numbers, got {value!r}")
    return value


def load_episodes(path: str | Path, task: str | None = None) -> EpisodeSet:
    """Read and validate an episode file (format, version, fields; ``task``: it must be for this task).

    Raises:
        EpisodeError: Missing file, not an episode file, another version, a malformed episode, another task.
    """
    p = Path(path)
    if not p.is_file():
        raise EpisodeError(f"episode file {p} does not exist (make one with `inspatio-sim episodes make`)")
    try:
        raw = p.read_bytes()
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except (OSError, ValueError) as e:
        raise EpisodeError(f"episode file {p} is not readable JSON: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EpisodeError(f"{p} is not an inspatio-sim episode file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise EpisodeError(f"episode file {p} has version {data.get('version')!r}; this inspatio-sim reads version "
                           f"{VERSION}: remake it with `inspatio-sim episodes make`")
    kind = data.get("task")
    if kind not in EPISODE_TASKS:
        raise EpisodeError(f"episode file {p}: unknown task {kind!r} (one of {', '.join(EPISODE_TASKS)})")
    if task is not None and kind != task:
        raise EpisodeError(f"episode file {p} is for task '{kind}', not '{task}'")
    items = data.get("episodes")
    if not isinstance(items, list) or not items:
        raise EpisodeError(f"episode file {p} holds no episodes")
    episodes = []
    for k, e in enumerate(items):
        where = f"{p}: episode {k}"
        if not isinstance(e, dict):
            raise EpisodeError(f"{where} is not an object")
        start = _number(e.get("start"), f"{where} start", 3)
        yaw = _number(e.get("yaw"), f"{where} yaw")
        goal = geodesic = None
        if kind == "pointnav":
            goal = _number(e.get("goal"), f"{where} goal", 3)
            geodesic = _number(e.get("geodesic"), f"{where} geodesic")
        episodes.append(Episode(int(e.get("id", k)), start, float(yaw), goal, geodesic, e.get("bin")))
    return EpisodeSet(task=kind, episodes=episodes, split=str(data.get("split", "")), seed=int(data.get("seed", 0)),
                      world=dict(data.get("world") or {}), settings=dict(data.get("settings") or {}),
                      bins=list(data.get("bins") or []), path=str(p))


def check_episodes(episodes: EpisodeSet, nav: NavGrid, tolerance: float = 0.5) -> None:
    """Validate ``episodes`` against the navigation grid of the World that will play them.

    Every start must lie on the grid, on or next to a traversable cell; every PointNav goal must be reachable from
    its start, with a geodesic distance within ``tolerance`` (relative) of the recorded one. A different grid
    fingerprint only warns (a World rebuilt on another device may differ by a cell at a wall).

    Raises:
        EpisodeError: The first episode that does not fit, naming it and why.
    """
    name = episodes.path or "episode set"
    made = episodes.world.get("fingerprint")
    if made and made != nav_fingerprint(nav):
        warnings.warn(f"{name} was made for a navigation grid {made}, this World's is {nav_fingerprint(nav)}; "
                      "checking each episode", stacklevel=2)
    trav = nav.traversable
    for e in episodes.episodes:
        where = f"{name}: episode {e.id}"
        (c,), inside = nav.cell_of(np.asarray(e.start[:2])[None])
        lo = np.maximum(c - 1, 0)
        if not inside[0] or not trav[lo[0]:c[0] + 2, lo[1]:c[1] + 2].any():
            raise EpisodeError(f"{where}: the start ({e.start[0]:.2f}, {e.start[1]:.2f}) is not on free floor of "
                               "this World (was the file made for another world?)")
        if e.goal is None:
            continue
        dist = nav.distance_map(np.asarray(e.goal[:2]))
        near = dist[lo[0]:c[0] + 2, lo[1]:c[1] + 2]
        geo = float(near.min()) if near.size else math.inf
        if not math.isfinite(geo):
            raise EpisodeError(f"{where}: the goal ({e.goal[0]:.2f}, {e.goal[1]:.2f}) is unreachable from the start "
                               f"({e.start[0]:.2f}, {e.start[1]:.2f}) in this World")
        if e.geodesic is not None and abs(geo - e.geodesic) > tolerance * max(e.geodesic, nav.cell) + 2 * nav.cell:
            raise EpisodeError(f"{where}: the goal is {geo:.2f} m (geodesic) from the start in this World, the file "
                               f"says {e.geodesic:.2f} m (was it made for another world?)")


def episodes_for_env(env: Any, count: int, *, bins: list[float], seed: int = 0, split: str = "val",
                     progress: bool = False) -> EpisodeSet:
    """:func:`make_episodes` for the World, task and agents of a native vector environment ``env``
    (:class:`envs.vector_env.InSpatioVectorEnv`): starts are the Simulator's start poses (near the recorded path,
    clear of geometry, trusted) with a uniform heading."""
    sim = env.sim
    if sim is None:
        raise EpisodeError("the environment was closed")

    def start(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        pose = sim.sample_start_poses(1, rng)[0].double().cpu().numpy()
        return pose[:3, 3], float(rng.uniform(-math.pi, math.pi))

    task = "pointnav" if env.goals() is not None else "explore"
    cfg = sim.escm.config
    settings = {"action_model": cfg.action_model, "radius": cfg.radius, "camera_height": cfg.camera_height}
    if task == "pointnav":
        settings["success_radius"] = env.task.config.success_radius
    source = str(sim.world.meta.source)
    return make_episodes(env.navigation(), start, task, count, bins=bins, seed=seed, split=split,
                         world={"source": source}, settings=settings, progress=progress)
