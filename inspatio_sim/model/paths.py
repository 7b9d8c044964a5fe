"""Camera paths near a recorded video for evaluation and training data: off-path trajectories and revisit loops.

Poses are ``T_world_camera`` in the oracle's (ground-truth) frame; clearance is checked against the oracle's exact
geometry.
"""

from __future__ import annotations

import math

import numpy as np

from inspatio_sim.errors import WorldError
from inspatio_sim.oracle import Oracle
from inspatio_sim.scene import Scene

MIN_CLEARANCE = 0.3
"""Cameras stay at least this far (metres) from geometry."""


def trajectories(gt: Scene, oracle: Oracle, count: int, steps: int, rng: np.random.Generator,
                 offsets: tuple[float, float] = (0.25, 1.0), max_turn_deg: float = 4.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` trajectories of ``steps`` poses ``(count, steps, 4, 4)`` (oracle frame) starting ``offsets`` metres
    off the recorded path (horizontally), moving 4 cm a step and turning up to ``max_turn_deg`` a step, at least
    :data:`MIN_CLEARANCE` from geometry; and their scene times ``(count, steps)`` (seconds since the first frame)."""
    out, times = [], []
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 200 * count:
            raise WorldError(f"no off-path trajectory clear of geometry after {tries} tries")
        i = int(rng.integers(gt.num_frames))
        a = rng.uniform(-math.pi, math.pi)
        T = gt.poses[i].copy()
        T[:2, 3] += rng.uniform(*offsets) * np.array([math.cos(a), math.sin(a)])
        yaw_rate = np.deg2rad(rng.uniform(-max_turn_deg, max_turn_deg))
        poses = []
        for _ in range(steps):
            poses.append(T.copy())
            forward = T[:3, 2].copy()
            forward[2] = 0.0
            T[:3, 3] += 0.04 * forward / max(np.linalg.norm(forward), 1e-9)
            c, s = math.cos(yaw_rate), math.sin(yaw_rate)
            T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ T[:3, :3]
        poses_a = np.stack(poses)
        if oracle.clearance(poses_a[:, :3, 3]).min() < MIN_CLEARANCE:
            continue
        out.append(poses_a)
        t0 = gt.timestamps[i] - gt.timestamps[0]
        times.append((t0 + np.arange(steps) / gt.meta.fps) % max(gt.duration, 1e-9))
    return np.stack(out), np.stack(times)


def revisit_loops(gt: Scene, oracle: Oracle, count: int, half: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Loops ``(count, 2 * half + 1, 4, 4)``: from a path pose, move 0.5 m while turning 150 degrees (into space the
    video never showed), then retrace the same poses back to the start; times ``(count, 2 * half + 1)``."""
    poses_out, times_out = [], []
    tries = 0
    while len(poses_out) < count:
        tries += 1
        if tries > 200 * count:
            raise WorldError(f"no revisit loop clear of geometry after {tries} tries")
        i = int(rng.integers(gt.num_frames))
        a = rng.uniform(-math.pi, math.pi)
        T = gt.poses[i].copy()
        turn = np.deg2rad(150.0) * rng.choice([-1.0, 1.0]) / half
        out = [T.copy()]
        for _ in range(half):
            T[:2, 3] += 0.5 / half * np.array([math.cos(a), math.sin(a)])
            c, s = math.cos(turn), math.sin(turn)
            T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ T[:3, :3]
            out.append(T.copy())
        loop = np.stack(out + out[-2::-1])
        if oracle.clearance(loop[:, :3, 3]).min() < MIN_CLEARANCE:
            continue
        poses_out.append(loop)
        t0 = gt.timestamps[i] - gt.timestamps[0]
        times_out.append((t0 + np.arange(len(loop)) / gt.meta.fps) % max(gt.duration, 1e-9))
    return np.stack(poses_out), np.stack(times_out)
