"""Evaluation of a policy on a fixed episode set (or N seeded episodes): metrics with 95 % intervals, JSON, Markdown,
a chart and a video.

PointNav metrics per episode: ``success``, ``spl`` (Anderson et al., 2018), ``soft_spl`` (Datta et al., 2021),
``collisions`` (steps on which the ESCM reported a collision), ``distance_to_goal`` (geodesic, metres, at the end),
``steps``; Explore: ``coverage`` at the end of the episode (``eval.max_steps`` steps). The report's ``metrics`` hold
the means (``success``, ``spl``, ``soft_spl``, ``collisions_per_episode``, ``distance_to_goal``, ``coverage``;
``null`` where the task has no such metric) and ``ci95`` their 95 % bootstrap percentile intervals (2000 resamples,
fixed seed). Episodes run ``eval.num_envs`` at a time in one native vector environment; with an episode file, the
episode each env plays is the file's next, so a deterministic policy scores the same whatever ``num_envs``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from envs.episodes import EpisodeSet, load_episodes
from envs.vector_env import InSpatioVectorEnv
from inspatio_sim.errors import ConfigError
from inspatio_sim.fileio import atomic_write
from policies.base import Policy, to_numpy
from policies.plots import bar_chart

HEADLINE = ("success", "spl", "soft_spl", "collisions_per_episode", "distance_to_goal", "coverage")
SHIPPED = Path(__file__).resolve().parent.parent / "envs" / "episodes"
"""Directory of the bundled episode sets: ``{preset}_{task}_{split}.json.gz``."""


@dataclass
class EpisodeRecord:
    """The outcome of one episode (PointNav fields are NaN for Explore and the other way round)."""

    episode: int
    steps: int
    collisions: int
    success: float = math.nan
    spl: float = math.nan
    soft_spl: float = math.nan
    distance_to_goal: float = math.nan
    geodesic_start: float = math.nan
    path_length: float = math.nan
    coverage: float = math.nan


def shipped_episodes(preset: str, task: str, split: str = "val") -> Path:
    """The bundled episode file of oracle preset ``preset`` (raises :class:`ConfigError` when none ships)."""
    path = SHIPPED / f"{preset}_{task}_{split}.json.gz"
    if not path.is_file():
        have = sorted(p.name.removesuffix(".json.gz") for p in SHIPPED.glob("*.json.gz"))
        raise ConfigError(f"no bundled '{split}' episode set for {task} in the '{preset}' world (bundled: "
                          f"{', '.join(have) or 'none'}); pass episodes=FILE (make one with `inspatio-sim episodes "
                          "make`) or episodes=N for N seeded episodes")
    return path


def resolve_episodes(value: Any, cfg: Any, task: str) -> tuple[EpisodeSet | None, int]:
    """``eval.episodes`` -> (episode set or ``None``, episode count): a file, ``val``/``test`` (the bundled set of
    the configured oracle scene), or a number N (N episodes drawn from ``eval.seed``)."""
    text = str(value).strip()
    if text.isdigit():
        if int(text) < 1:
            raise ConfigError(f"episodes must be a file or a number >= 1, got {text}")
        return None, int(text)
    if text in ("val", "test"):
        if cfg.scene.path:
            raise ConfigError(f"episodes={text} names a bundled set, and scene.path worlds have none: pass "
                              "episodes=FILE or episodes=N")
        text = str(shipped_episodes(cfg.scene.oracle.preset, task, text))
    episodes = load_episodes(text, task)
    return episodes, len(episodes)


def run_episodes(env: InSpatioVectorEnv, policy: Policy, count: int, *, seed: int = 0, video_episodes: int = 0,
                 progress: bool = True, desc: str = "eval") -> tuple[list[EpisodeRecord], list[np.ndarray]]:
    """Play ``count`` episodes of ``policy`` in ``env`` (``autoreset_mode=same_step``; its episode set, if any, in
    order) and return one record per episode (sorted by episode) and the video frames of env 0's first
    ``video_episodes`` episodes (agent view | depth | top-down map).

    Episode ``k`` is the ``k``-th to start (with an episode set: the set's episode ``k mod len``).
    """
    if env.autoreset_mode.name != "SAME_STEP":
        raise ConfigError("run_episodes needs a vector env with autoreset_mode='same_step'")
    b = env.num_envs
    obs, info = env.reset(seed=seed)
    policy.reset(np.ones(b, bool))
    ordinal = np.arange(b)  # the episode each env plays
    started = b
    collisions = np.zeros(b, np.int64)
    steps = np.zeros(b, np.int64)
    records: dict[int, EpisodeRecord] = {}
    video = _Video(env) if video_episodes > 0 else None
    if video is not None:
        video.begin(obs, info)
    bar = tqdm(total=count, desc=desc, unit="ep", disable=not progress)
    while len(records) < count:
        actions = policy.act(obs, info)
        obs, _, terminated, truncated, info = env.step(actions)
        done = np.asarray(to_numpy(terminated) | to_numpy(truncated))
        steps += 1
        collisions += to_numpy(info.get("collided", np.zeros(b, bool))).astype(np.int64)
        final = info.get("final_info", {})
        if video is not None and ordinal[0] < video_episodes:
            video.add(info["final_obs"][0] if done[0] else obs, final if done[0] else info, bool(done[0]))
        for i in np.flatnonzero(done):
            collisions[i] += int(final["collided"][i])
            k = int(ordinal[i])
            if k < count:
                rec = EpisodeRecord(episode=int(env.episode_ids[i]) if env.episodes is not None else k,
                                    steps=int(steps[i]), collisions=int(collisions[i]))
                for name in ("success", "spl", "soft_spl", "distance_to_goal", "geodesic_start", "path_length",
                             "coverage"):
                    if name in final:
                        setattr(rec, name, float(final[name][i]))
                records[k] = rec
                bar.update(1)
            ordinal[i] = started
            started += 1
            collisions[i] = steps[i] = 0
        if done.any():
            policy.reset(done)
            if video is not None and done[0] and ordinal[0] < video_episodes:
                video.begin(obs, info)
    bar.close()
    return [records[k] for k in sorted(records)], (video.frames if video is not None else [])


def bootstrap_ci(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values (N,)`` (NaN, NaN when empty)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (resamples, v.size))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(records: list[EpisodeRecord]) -> tuple[dict[str, float | None], dict[str, list[float] | None]]:
    """Means (``None`` for metrics the task lacks) and 95 % intervals of the headline metrics."""
    columns = {"success": [r.success for r in records], "spl": [r.spl for r in records],
               "soft_spl": [r.soft_spl for r in records],
               "collisions_per_episode": [float(r.collisions) for r in records],
               "distance_to_goal": [r.distance_to_goal for r in records], "coverage": [r.coverage for r in records],
               "steps_per_episode": [float(r.steps) for r in records]}
    metrics: dict[str, float | None] = {}
    ci: dict[str, list[float] | None] = {}
    for name, col in columns.items():
        v = np.asarray(col, np.float64)
        if not np.isfinite(v).any():
            metrics[name] = ci[name] = None
            continue
        metrics[name] = float(np.nanmean(np.where(np.isfinite(v), v, np.nan)))
        ci[name] = list(bootstrap_ci(v))
    return metrics, ci


def write_report(out_dir: str | Path, policy: str, task: str, records: list[EpisodeRecord],
                 frames: list[np.ndarray], meta: dict[str, Any], fps: float = 10.0) -> dict[str, Any]:
    """Write ``eval_<policy>_<task>.json`` / ``.md`` / ``.png`` (and ``.mp4`` when there are frames) to ``out_dir``;
    return the JSON content."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics, ci = summarize(records)
    stem = f"eval_{policy}_{task}"
    report = {"policy": policy, "task": task, "episodes": len(records), "metrics": metrics, "ci95": ci, **meta,
              "per_episode": [_clean(asdict(r)) for r in records]}
    with atomic_write(out / f"{stem}.json") as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    lines = [f"# Evaluation: {policy} on {task}", "", f"{len(records)} episodes ({meta.get('episode_source', '')}); "
             "mean and 95 % bootstrap interval.", "", "| metric | mean | 95 % interval |", "|---|---|---|"]
    for name, value in metrics.items():
        if value is not None:
            lo, hi = ci[name]  # type: ignore[misc]
            lines.append(f"| {name} | {value:.4g} | [{lo:.4g}, {hi:.4g}] |")
    with atomic_write(out / f"{stem}.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    names = [n for n in ("success", "spl", "soft_spl", "coverage") if metrics.get(n) is not None]
    bar_chart(names, [metrics[n] for n in names], [tuple(ci[n]) for n in names],  # type: ignore[misc]
              out / f"{stem}.png", f"{policy} on {task}: {len(records)} episodes (95% interval)", ymax=1.0)
    if frames:
        from inspatio_sim.video_io import write_video

        write_video(frames, out / f"{stem}.mp4", fps)
    return report


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


class _Video:
    """Frames of env 0: agent view | depth | top-down map (navigation grid, path, goal, observed cells)."""

    HEIGHT = 240

    def __init__(self, env: InSpatioVectorEnv) -> None:
        self.env = env
        self.nav = env.navigation()
        self.frames: list[np.ndarray] = []
        self.path: list[np.ndarray] = []
        self.goal: np.ndarray | None = None
        trav = self.nav.traversable.T[::-1]  # rows: +y up; columns: +x right
        self.base = np.where(trav[..., None], np.array([225, 225, 225], np.uint8), np.array([70, 70, 70], np.uint8))
        self.scale = self.HEIGHT / self.base.shape[0]

    def begin(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """A new episode of env 0 starts with the batched ``obs`` / ``info``."""
        self.path = []
        goals = self.env.goals()
        self.goal = None if goals is None else goals[0, :2].copy()
        self.add(obs, info, False)

    def _px(self, xy: np.ndarray) -> tuple[int, int]:
        ij = (np.asarray(xy) - self.nav.origin) / self.nav.cell
        return int(ij[0] * self.scale), int((self.base.shape[0] - ij[1]) * self.scale)

    def add(self, obs: dict[str, Any], info: dict[str, Any], done: bool) -> None:
        """One frame: env 0's observation (batched, or unbatched as in ``final_obs``) and its ``info``."""
        o = {k: to_numpy(v) for k, v in obs.items()}
        if o["rgb"].ndim == 4:
            o = {k: v[0] for k, v in o.items()}
        pose = to_numpy(info["pose"])[0]
        self.path.append(pose[:2, 3].copy())
        h = self.HEIGHT
        rgb = cv2.resize(o["rgb"], (int(o["rgb"].shape[1] * h / o["rgb"].shape[0]), h),
                         interpolation=cv2.INTER_NEAREST)
        panels = [rgb]
        if "depth" in o:
            d = np.clip(o["depth"][..., 0] / 6.0, 0, 1)
            dep = cv2.applyColorMap((255 * (1 - d)).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
            dep[o["depth"][..., 0] <= 0] = 0
            panels.append(cv2.resize(dep, (rgb.shape[1], h), interpolation=cv2.INTER_NEAREST))
        top = cv2.resize(self.base, (int(self.base.shape[1] * self.scale), h), interpolation=cv2.INTER_NEAREST)
        seen = self.env.seen_cells()
        if seen is not None:
            mask = cv2.resize(seen[0].T[::-1].astype(np.uint8), (top.shape[1], h),
                              interpolation=cv2.INTER_NEAREST) > 0
            top[mask] = (0.5 * top[mask] + 0.5 * np.array([120, 200, 120])).astype(np.uint8)
        if self.goal is not None:
            radius = int(self.env.task.config.success_radius / self.nav.cell * self.scale)
            cv2.circle(top, self._px(self.goal), radius, (220, 40, 40), 1, cv2.LINE_AA)
            cv2.circle(top, self._px(self.goal), 4, (220, 40, 40), -1, cv2.LINE_AA)
        pts = np.array([self._px(p) for p in self.path], np.int32)
        if len(pts) > 1:
            cv2.polylines(top, [pts], False, (30, 90, 220), 2, cv2.LINE_AA)
        cv2.circle(top, tuple(pts[-1]), 4, (20, 160, 20), -1, cv2.LINE_AA)
        panels.append(top)
        frame = np.concatenate(panels, 1)
        if done:
            text = "success" if float(to_numpy(info.get("success", [0]))[0]) > 0 else "end"
            cv2.putText(frame, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
        frame = frame[:, : frame.shape[1] // 2 * 2]
        self.frames.append(np.ascontiguousarray(frame))


def make_eval_env(task: str, num_envs: int, *, episodes: EpisodeSet | None, max_steps: int,
                  env_kwargs: dict[str, Any], overrides: list[str]) -> InSpatioVectorEnv:
    """The native vector env evaluation runs in (``same_step`` autoreset, depth on for the video)."""
    kwargs = {"depth": True, **env_kwargs}
    return InSpatioVectorEnv(num_envs=num_envs, task=task, max_episode_steps=max_steps, autoreset_mode="same_step",
                             episodes=episodes, overrides=list(overrides), **kwargs)


def make_policy(name: str, env: InSpatioVectorEnv, *, seed: int = 0, checkpoint: str | None = None,
                device: str | None = None) -> Policy:
    """The policy ``name`` (``random``, ``oracle``, ``ppo``) bound to ``env``."""
    if name == "random":
        from policies.random_policy import RandomPolicy

        return RandomPolicy(env, seed=seed)
    if name == "oracle":
        from policies.oracle import oracle_for

        return oracle_for(env)
    if name == "ppo":
        from policies.ppo import PPOPolicy

        if not checkpoint:
            raise ConfigError("policy=ppo needs checkpoint=PATH (a checkpoint.pt of `inspatio-sim train ppo`)")
        return PPOPolicy.load(checkpoint, env, device=device)
    raise ConfigError(f"unknown policy '{name}'; choose random, oracle or ppo")


def evaluate(cfg: Any, overrides: list[str], progress: bool = True) -> dict[str, Any]:
    """``inspatio-sim eval``: evaluate ``eval.policy`` on ``eval.task`` as configured; write the reports to
    ``out``; return the JSON content."""
    e = cfg.eval
    env_kwargs: dict[str, Any] = {"width": int(e.width), "height": int(e.height), "action_model": str(e.action_model)}
    if e.policy == "ppo":
        from policies.ppo import checkpoint_env_kwargs

        if not e.checkpoint:
            raise ConfigError("policy=ppo needs checkpoint=PATH (a checkpoint.pt of `inspatio-sim train ppo`)")
        env_kwargs.update(checkpoint_env_kwargs(str(e.checkpoint)))
    episodes, count = resolve_episodes(e.episodes, cfg, str(e.task))
    t0 = time.perf_counter()
    env = make_eval_env(str(e.task), min(int(e.num_envs), count), episodes=episodes, max_steps=int(e.max_steps),
                        env_kwargs=env_kwargs, overrides=overrides)
    try:
        policy = make_policy(str(e.policy), env, seed=int(e.seed), checkpoint=e.checkpoint, device=str(cfg.device))
        records, frames = run_episodes(env, policy, count, seed=int(e.seed), video_episodes=int(e.video_episodes),
                                       progress=progress, desc=f"eval {e.policy}")
        fps = env.metadata["render_fps"]
    finally:
        env.close()
    source = episodes.path if episodes is not None else f"{count} episodes drawn with seed {e.seed}"
    meta = {"episode_source": source, "env": env_kwargs, "max_steps": int(e.max_steps),
            "checkpoint": e.checkpoint, "seconds": round(time.perf_counter() - t0, 1)}
    return write_report(cfg.out, str(e.policy), str(e.task), records, frames, meta, fps=fps)
