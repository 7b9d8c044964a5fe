"""The transfer gap: ``inspatio-sim eval transfer`` (``eval.transfer.*``, ``train.ppo.*``).

How much does a policy trained in a World **reconstructed from video** lose when it meets the **real** place? The
stand-in for the real place is the World built from the exact oracle Scene (``scene.oracle.*``); the video-derived
World is the reconstruction of the oracle's rendered clip (as ``make demo`` does: ``{out}/oracle_{preset}.mp4`` ->
``{out}/recon_{preset}/``, reused when it exists; or ``eval.transfer.recon_scene``). PPO is trained once in each
World (``eval.transfer.train_steps`` / ``train_minutes``), then both checkpoints are evaluated on one fixed episode
set of each World (``eval.transfer.episodes`` episodes drawn with ``eval.seed``; the reconstruction has its own
world frame, so each World has its own set). Writes ``{out}/transfer/bench_transfer.json`` and ``.md`` with the
headline keys ``transfer_success_recon_to_exact`` and ``transfer_success_exact_to_exact`` (plus SPL, the other
direction and the drop).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from envs.episodes import EpisodeSet
from inspatio_sim.errors import ConfigError
from policies.episode_sets import make_episode_set
from policies.evaluate import make_eval_env, run_episodes, summarize
from policies.ppo import PPOPolicy, env_kwargs, train

WORLDS = ("recon", "exact")


def recon_scene(cfg: DictConfig) -> Path:
    """The Scene reconstructed from the oracle's rendered clip (reconstructed once, then reused)."""
    if cfg.eval.transfer.recon_scene:
        return Path(str(cfg.eval.transfer.recon_scene))
    preset = str(cfg.scene.oracle.preset)
    out = Path(cfg.out) / f"recon_{preset}"
    if (out / "scene.npz").is_file():
        return out
    from inspatio_sim.recon.pipeline import format_report, reconstruct
    from inspatio_sim.scene_source import load_scene
    from inspatio_sim.video_io import write_video

    gt = load_scene(OmegaConf.to_container(cfg.scene, resolve=True))
    video = write_video(gt.frames, Path(cfg.out) / f"oracle_{preset}.mp4", gt.meta.fps)
    recon_cfg = OmegaConf.to_container(cfg.recon, resolve=True)
    recon_cfg["camera_height"] = float(np.median(gt.poses[:, 2, 3]))  # what a user would measure and type
    print(f"transfer: reconstructing {video} (the oracle's rendered clip) ...")
    _, report = reconstruct(video, out, recon_cfg, device=str(cfg.device))
    print(format_report(report))
    return out


def run_transfer(cfg: DictConfig, overrides: list[str], progress: bool = True) -> dict[str, float]:
    """Train in each World, evaluate each checkpoint in each World; write the report; return the metrics."""
    if cfg.scene.path:
        raise ConfigError("eval transfer compares a reconstruction with the exact oracle Scene: leave scene.path "
                          "unset and choose the oracle with scene=room|courtyard|plain (scene.oracle.*)")
    t = cfg.eval.transfer
    out = Path(cfg.out) / "transfer"
    worlds = {"exact": list(overrides), "recon": [*overrides, f"scene.path={recon_scene(cfg)}"]}
    p = copy.deepcopy(cfg.train.ppo)
    p.total_steps, p.minutes = int(t.train_steps), float(t.train_minutes)
    t0 = time.perf_counter()
    checkpoints, minutes = {}, {}
    for name, ov in worlds.items():
        q = copy.deepcopy(p)
        q.run_dir = str(out / f"ppo_{name}")
        result = train(q, q.run_dir, ov, device=str(cfg.device), progress=progress)
        checkpoints[name], minutes[name] = result["checkpoint"], result["minutes_total"]
    episode_sets: dict[str, EpisodeSet] = {}
    for name, ov in worlds.items():
        ecfg = OmegaConf.merge(cfg, {"episodes": {"task": str(p.task), "count": int(t.episodes),
                                                  "seed": int(cfg.eval.seed), "action_model": str(p.action_model)}})
        episode_sets[name] = make_episode_set(ecfg, ov, progress=False)
        episode_sets[name].save(out / f"episodes_{name}.json.gz")
    metrics: dict[str, float] = {}
    rows = []
    for trained in WORLDS:
        for evaluated in WORLDS:
            env = make_eval_env(str(p.task), min(int(cfg.eval.num_envs), int(t.episodes)),
                                episodes=episode_sets[evaluated], max_steps=int(cfg.eval.max_steps),
                                env_kwargs=env_kwargs(p), overrides=worlds[evaluated])
            try:
                policy = PPOPolicy.load(checkpoints[trained], env)
                records, _ = run_episodes(env, policy, len(episode_sets[evaluated]), seed=int(cfg.eval.seed),
                                          progress=progress, desc=f"{trained}->{evaluated}")
            finally:
                env.close()
            m, ci = summarize(records)
            key = f"{trained}_to_{evaluated}"
            metrics[f"transfer_success_{key}"] = float(m["success"] or 0.0)
            metrics[f"transfer_spl_{key}"] = float(m["spl"] or 0.0)
            rows.append([trained, evaluated, m["success"], f"[{ci['success'][0]:.3f}, {ci['success'][1]:.3f}]",
                         m["spl"], m["collisions_per_episode"]])
    metrics["transfer_success_drop"] = metrics["transfer_success_exact_to_exact"] - \
        metrics["transfer_success_recon_to_exact"]
    metrics["transfer_train_minutes_recon"] = float(minutes["recon"])
    metrics["transfer_train_minutes_exact"] = float(minutes["exact"])
    from inspatio_sim.bench.report import write_report

    config = {"train_ppo": OmegaConf.to_container(p, resolve=True), "transfer": OmegaConf.to_container(t),
              "scene": OmegaConf.to_container(cfg.scene, resolve=True), "recon_scene": worlds["recon"][-1],
              "checkpoints": checkpoints, "seconds": round(time.perf_counter() - t0, 1)}
    json_path, _ = write_report(
        "transfer", out, config, metrics, str(cfg.device),
        [("PointNav success of PPO by training and evaluation World", ["trained in", "evaluated in", "success",
                                                                      "95 % interval", "SPL", "collisions/ep"],
          rows)],
        notes=["The exact World stands in for the real place; the reconstructed one is what a user gets from "
               "video. Each World has its own fixed episode set (episodes_*.json.gz beside this file)."])
    width = max(len(k) for k in metrics)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4g}")
    print(f"wrote {json_path} and .md")
    return metrics

