"""The policy interface every baseline implements: batched actions for a native vector environment.

A policy is bound to one :class:`envs.vector_env.InSpatioVectorEnv` (``B`` agents) and is called with the batched
observation and ``info`` the environment returned; it never steps the environment itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inspatio_sim.conventions import R_BODY_CAMERA


class Policy:
    """Base policy: ``reset`` at the start of episodes, ``act`` each step.

    Attributes:
        name: Short name used in reports (``random``, ``oracle``, ``ppo``).
    """

    name = "policy"

    def reset(self, mask: np.ndarray) -> None:
        """New episodes begin for the envs in ``mask (B,)`` bool (after their first observation)."""

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        """Actions ``(B, ...)`` for the batched observation ``obs`` and ``info`` (numpy or torch, as the env's)."""
        raise NotImplementedError


def unwrap(env: Any) -> Any:
    """The native vector environment under Gymnasium wrappers."""
    while hasattr(env, "env") and not hasattr(env, "navigation"):
        env = env.env
    return getattr(env, "unwrapped", env) if not hasattr(env, "navigation") else env


def yaw_of(poses: np.ndarray) -> np.ndarray:
    """``(B,)`` body headings (radians, counter-clockwise from world +x) of camera poses ``(B, 4, 4)``."""
    forward = np.asarray(poses)[:, :3, :3] @ R_BODY_CAMERA.T[:, 0]
    return np.arctan2(forward[:, 1], forward[:, 0])


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to ``[-pi, pi)``."""
    return (np.asarray(a) + math.pi) % (2 * math.pi) - math.pi


def to_numpy(x: Any) -> np.ndarray:
    """A numpy copy of an array or tensor."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
