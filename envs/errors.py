"""Errors of the Gymnasium faces: Gymnasium's own error types that are also :class:`InSpatioError` (one clear line).

They live here, not in :mod:`inspatio_sim.errors`, because the core does not import Gymnasium.
"""

from __future__ import annotations

import gymnasium as gym

from inspatio_sim.errors import InSpatioError


class ResetNeededError(InSpatioError, gym.error.ResetNeeded):
    """An environment was stepped before its first ``reset()``, or (``autoreset_mode=disabled``) after it ended."""


class ClosedEnvironmentError(InSpatioError, gym.error.ClosedEnvironmentError):
    """An environment was used after ``close()``."""
