"""Gymnasium adapters and tasks over the inspatio-sim Simulator (issue 4: ESCM + envs)."""
