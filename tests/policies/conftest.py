import pytest

from inspatio_sim.assemble import world_from_config
from inspatio_sim.config import compose


@pytest.fixture(autouse=True, scope="session")
def _small_world():
    """Hold the small World for the session (the per-process cache shares a World only while something uses it)."""
    world = world_from_config(compose(["scene=small"]))
    yield world
