import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scene_cache(tmp_path_factory):
    """Keep generated oracle scenes out of the user's home: a per-run cache unless INSPATIO_CACHE is set (CI)."""
    if "INSPATIO_CACHE" not in os.environ:
        os.environ["INSPATIO_CACHE"] = str(tmp_path_factory.mktemp("inspatio-cache"))
    yield


@pytest.fixture(autouse=True, scope="session")
def _compiled_render_kernel():
    """Compile the fused render kernel once, before any test starts a subprocess that renders (CLI, ROS node)."""
    from inspatio_sim.render.fused import warm_up

    warm_up()
    yield
