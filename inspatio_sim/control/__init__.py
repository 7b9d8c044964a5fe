"""Explicit Spatial Constraint Module: actions -> physically plausible camera poses."""

from inspatio_sim.control.collision import SweepResult, sweep_sphere
from inspatio_sim.control.escm import ACTION_MODELS, DISCRETE_ACTIONS, ESCM, ESCMConfig, StepOutcome

__all__ = ["ACTION_MODELS", "DISCRETE_ACTIONS", "ESCM", "ESCMConfig", "StepOutcome", "SweepResult", "sweep_sphere"]
