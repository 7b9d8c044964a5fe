"""``inspatio-sim episodes make``: write a fixed episode set for the configured World (``episodes.*`` keys)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from envs.episodes import EpisodeSet, episodes_for_env
from envs.vector_env import InSpatioVectorEnv


def world_name(cfg: Any) -> str:
    """A short name of the configured World: the Scene directory's name, or the oracle preset."""
    if cfg.scene.path:
        p = Path(str(cfg.scene.path))
        return p.stem if p.suffix == ".npz" else p.name
    return str(cfg.scene.oracle.preset)


def make_episode_set(cfg: Any, overrides: list[str], progress: bool = True) -> EpisodeSet:
    """The episode set ``cfg.episodes`` describes, drawn in the configured World."""
    e = cfg.episodes
    env = InSpatioVectorEnv(num_envs=1, task=str(e.task), width=8, height=8, action_model=str(e.action_model),
                            overrides=list(overrides))
    try:
        return episodes_for_env(env, int(e.count), bins=list(e.bins), seed=int(e.seed), split=str(e.split),
                                progress=progress)
    finally:
        env.close()


def make_episode_file(cfg: Any, overrides: list[str], progress: bool = True) -> Path:
    """Write the set to ``episodes.output`` (default ``{out}/episodes/{world}_{task}_{split}.json.gz``), print a
    summary, return the path."""
    from inspatio_sim.paths import check_output_path

    e = cfg.episodes
    path = Path(e.output) if e.output else Path(cfg.out) / "episodes" / f"{world_name(cfg)}_{e.task}_{e.split}.json.gz"
    check_output_path(path, "file", what="episodes.output")
    t0 = time.perf_counter()
    episodes = make_episode_set(cfg, overrides, progress)
    episodes.save(path)
    line = f"wrote {len(episodes)} {e.task} episodes ({e.split}, seed {e.seed}) to {path} in " \
           f"{time.perf_counter() - t0:.1f} s"
    if e.task == "pointnav":
        counts = Counter(ep.bin for ep in episodes.episodes)
        edges = episodes.bins
        line += "; per geodesic bin: " + ", ".join(f"{edges[b]:g}-{edges[b + 1]:g} m: {counts.get(b, 0)}"
                                                   for b in range(len(edges) - 1))
    print(line)
    return path
