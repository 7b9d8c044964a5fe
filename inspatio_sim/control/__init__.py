"""Explicit Spatial Constraint Module: actions -> physically plausible camera poses."""

from inspatio_sim.control.collision import SweepResult, sweep_sphere
from inspatio_sim.control.escm import ACTION_MODELS, DISCRETE_ACTIONS, ESCM, ESCMConfig, StepOutcome
from inspatio_sim.control.robot import RobotConfig, RobotFleet, world_mesh

__all__ = ["ACTION_MODELS", "DISCRETE_ACTIONS", "ESCM", "ESCMConfig", "RobotConfig", "RobotFleet", "StepOutcome",
           "SweepResult", "sweep_sphere", "world_mesh"]
