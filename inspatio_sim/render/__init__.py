"""Batched rendering of a World's explicit geometry."""

from inspatio_sim.render.splat import RenderConfig, RenderOutput, render
from inspatio_sim.render.world_render import render_world

__all__ = ["RenderConfig", "RenderOutput", "render", "render_world"]
