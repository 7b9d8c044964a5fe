"""The explicit 4D World built from a Scene."""

from inspatio_sim.ground import GroundPlane
from inspatio_sim.world.occupancy import OccupancyGrid
from inspatio_sim.world.splats import SplatCloud
from inspatio_sim.world.timeline import TIME_MODES
from inspatio_sim.world.world import World, WorldConfig, build_world

__all__ = ["TIME_MODES", "GroundPlane", "OccupancyGrid", "SplatCloud", "World", "WorldConfig", "build_world"]
