"""Policies (scripted, learned) that act in inspatio-sim environments."""
