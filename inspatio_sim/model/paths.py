"""Camera paths near a recorded video for evaluation and training data: off-path trajectories and revisit loops.

Poses are ``T_world_camera`` in the oracle's (ground-truth) frame; clearance is checked against the oracle's exact
geometry.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from inspatio_sim.errors import WorldError
from inspatio_sim.metrics import carry_poses
from inspatio_sim.oracle import Oracle
from inspatio_sim.scene import Scene

MIN_CLEARANCE = 0.3
"""Cameras stay at least this far (metres) from geometry."""


def _yaw(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _sample_clear(gt: Scene, oracle: Oracle, count: int, rng: np.random.Generator, what: str,
                  make: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``count`` paths ``make(start pose, rng) -> (T, 4, 4)`` from random recorded poses, each at least
    :data:`MIN_CLEARANCE` from geometry, and their scene times ``(count, T)`` at the video's frame rate from the
    start frame's time (wrapped at the video's end)."""
    paths, times = [], []
    tries = 0
    while len(paths) < count:
        tries += 1
        if tries > 200 * count:
            raise WorldError(f"no {what} clear of geometry after {tries} tries")
        i = int(rng.integers(gt.num_frames))
        path = make(gt.poses[i].copy(), rng)
        if oracle.clearance(path[:, :3, 3]).min() < MIN_CLEARANCE:
            continue
        paths.append(path)
        t0 = gt.timestamps[i] - gt.timestamps[0]
        times.append((t0 + np.arange(len(path)) / gt.meta.fps) % max(gt.duration, 1e-9))
    return np.stack(paths), np.stack(times)


def trajectories(gt: Scene, oracle: Oracle, count: int, steps: int, rng: np.random.Generator,
                 offsets: tuple[float, float] = (0.25, 1.0), max_turn_deg: float = 4.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` trajectories of ``steps`` poses ``(count, steps, 4, 4)`` (oracle frame) starting ``offsets`` metres
    off the recorded path (horizontally), moving 4 cm a step and turning up to ``max_turn_deg`` a step, at least
    :data:`MIN_CLEARANCE` from geometry; and their scene times ``(count, steps)`` (seconds since the first frame)."""

    def make(T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = rng.uniform(-math.pi, math.pi)
        T[:2, 3] += rng.uniform(*offsets) * np.array([math.cos(a), math.sin(a)])
        turn = _yaw(np.deg2rad(rng.uniform(-max_turn_deg, max_turn_deg)))
        poses = []
        for _ in range(steps):
            poses.append(T.copy())
            forward = T[:3, 2].copy()
            forward[2] = 0.0
            T[:3, 3] += 0.04 * forward / max(np.linalg.norm(forward), 1e-9)
            T[:3, :3] = turn @ T[:3, :3]
        return np.stack(poses)

    return _sample_clear(gt, oracle, count, rng, "off-path trajectory", make)


def revisit_loops(gt: Scene, oracle: Oracle, count: int, half: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Loops ``(count, 2 * half + 1, 4, 4)``: from a path pose, move 0.5 m while turning 150 degrees (into space the
    video never showed), then retrace the same poses back to the start; times ``(count, 2 * half + 1)``."""

    def make(T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = rng.uniform(-math.pi, math.pi)
        turn = _yaw(np.deg2rad(150.0) * rng.choice([-1.0, 1.0]) / half)
        out = [T.copy()]
        for _ in range(half):
            T[:2, 3] += 0.5 / half * np.array([math.cos(a), math.sin(a)])
            T[:3, :3] = turn @ T[:3, :3]
            out.append(T.copy())
        return np.stack(out + out[-2::-1])

    return _sample_clear(gt, oracle, count, rng, "revisit loop", make)


def carry_trajectories(traj: np.ndarray, gt: Scene, rec: Scene, index: np.ndarray, scale: float) -> np.ndarray:
    """Trajectories ``(N, T, 4, 4)`` from the oracle frame into a reconstruction's, each relative to the recorded
    camera nearest to its first pose (one anchor per trajectory: no jumps between anchors along it).

    ``index (N_rec,)``: the reconstruction's frames in ``gt``; ``scale``: metres of the oracle frame per
    reconstruction unit (the path's Sim(3) scale).
    """
    ref, target = gt.poses[index], rec.poses
    out = np.empty_like(traj)
    for n, poses in enumerate(traj):
        k = int(np.argmin(np.linalg.norm(ref[:, :3, 3] - poses[0, :3, 3], axis=1)))
        out[n] = carry_poses(poses, ref[k:k + 1], target[k:k + 1], scale)
    return out
