"""``inspatio-sim bench env``: steps/s and frames/s of the native vector env vs. Gymnasium's Sync/AsyncVectorEnv.

Every case steps ``InSpatio/VideoWorld-v0`` (ground model, random actions from a seeded generator) on the
default World; the native vector env steps all ``B`` agents in one Simulator call, SyncVectorEnv and
AsyncVectorEnv step ``B`` single environments (one spawned process each for Async, each building its World).
Native cases and the Sync case are timed in interleaved rounds, Async afterwards on its own (its idle workers
keep spinning and would slow the others); medians are reported. Frames/s = env steps/s x B (one camera frame per
agent per step). Memory per env: peak resident memory while stepping (the peak is reset after the World is
built) of a fresh process running the native env at 128x128 with B=64, minus that with B=1, over 63.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import envs  # noqa: F401  (registers the ids)
from inspatio_sim.bench.report import write_report
from inspatio_sim.bench.timing import interleaved_rates

ENV_ID = "InSpatio/VideoWorld-v0"

_PEAK_RSS_SCRIPT = """
import sys, gymnasium as gym, numpy as np, envs
b, res, device, overrides = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
vec = gym.make_vec("InSpatio/VideoWorld-v0", num_envs=b, width=res, height=res, device=device, overrides=overrides)
vec.reset(seed=0)
rng = np.random.default_rng(0)
vec.step(rng.uniform(-1, 1, (b, 2)).astype(np.float32))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current resident size (after the World)
for _ in range(5):
    vec.step(rng.uniform(-1, 1, (b, 2)).astype(np.float32))
print([int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def _stepper(vec: Any, b: int, seed: int) -> Callable[[], object]:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (64, b, 2)).astype(np.float32)
    state = {"i": 0}

    def step() -> object:
        state["i"] = (state["i"] + 1) % len(actions)
        return vec.step(actions[state["i"]])

    return step


def peak_rss_kb(b: int, res: int, device: str, overrides: list[str]) -> int:
    """Peak resident memory (kB) while stepping, in a fresh process running the native env with ``b`` agents."""
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(b), str(res), device, *overrides],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = "null" if v is None else v
    return out


def run(cfg: DictConfig, quick: bool, device: str, out_dir: str) -> dict[str, float]:
    """Run the env benchmark; write ``bench_env.json``/``.md`` to ``out_dir``; return the metrics."""
    bcfg = OmegaConf.to_container(cfg.bench.env, resolve=True)
    if quick:
        bcfg.update(batch_sizes=[b for b in bcfg["batch_sizes"] if b <= 64], seconds_per_case=1.0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    cases: dict[object, tuple[Callable[[], object], int]] = {}
    opened = []
    for res in tqdm(bcfg["resolutions"], desc="make envs", unit="res"):
        for b in bcfg["batch_sizes"]:
            vec = gym.make_vec(ENV_ID, num_envs=b, width=res, height=res, device=device)
            vec.reset(seed=0)
            opened.append(vec)
            cases[("native", res, b)] = (_stepper(vec, b, 1), b)
    compare_b = bcfg["compare_batch"]
    vec = gym.make_vec(ENV_ID, num_envs=compare_b, vectorization_mode="sync", width=64, height=64)
    vec.reset(seed=0)
    opened.append(vec)
    cases[("sync", 64, compare_b)] = (_stepper(vec, compare_b, 2), compare_b)
    fps = interleaved_rates(cases, bcfg["seconds_per_case"], sync,
                            progress=lambda r: tqdm(r, desc="env speed", unit="round"))
    for vec in opened:
        vec.close()
    # AsyncVectorEnv runs in a phase of its own: its idle workers' thread pools keep spinning for a while after each
    # step and would slow whatever is timed next. Workers are spawned: forking a process whose torch thread pool
    # is running deadlocks the children.
    vec = gym.make_vec(ENV_ID, num_envs=compare_b, vectorization_mode="async", width=64, height=64,
                       vector_kwargs={"context": "spawn"})
    vec.reset(seed=0)
    fps.update(interleaved_rates({("async", 64, compare_b): (_stepper(vec, compare_b, 2), compare_b)},
                                 bcfg["seconds_per_case"], sync))
    vec.close()
    scene = [f"scene.{k}={v}" for k, v in _flatten(OmegaConf.to_container(cfg.scene, resolve=True)).items()]
    hwm1 = peak_rss_kb(1, 128, device, scene)
    hwm64 = peak_rss_kb(64, 128, device, scene)

    metrics: dict[str, float] = {}
    for (mode, res, b), v in fps.items():
        metrics[f"{mode}_fps_{res}_b{b}"] = v
    for mode in ("sync", "async"):
        metrics[f"speedup_vs_{mode}_64_b{compare_b}"] = fps[("native", 64, compare_b)] / fps[(mode, 64, compare_b)]
    metrics["mem_mb_per_env_128"] = max(hwm64 - hwm1, 0) / 63 / 1024
    metrics["peak_mb_128_b1"] = hwm1 / 1024
    rows = [[mode, f"{res}x{res}", b, round(v, 1), round(v / b, 1)] for (mode, res, b), v in fps.items()]
    config = {"quick": quick, "device": device, "env": ENV_ID, "bench": bcfg,
              "scene": OmegaConf.to_container(cfg.scene), "control": OmegaConf.to_container(cfg.control)}
    notes = [f"Frames/s = env steps/s x B; {ENV_ID}, ground model, random actions; device {device}. "
             "Reproduce: `inspatio-sim bench env" + (" --quick" if quick else "") + f" --device {device}`."]
    write_report("env", out_dir, config, metrics, device,
                 [("Speed", ["vectorisation", "resolution", "B", "frames/s", "steps/s"], rows)], notes)
    return metrics
