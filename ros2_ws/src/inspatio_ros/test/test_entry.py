"""The colcon package's console entry reaches inspatio_sim (run by `colcon test`)."""

from inspatio_ros.world_node import main


def test_missing_world_exits_nonzero():
    assert main(["scene.path=/nonexistent/world"]) == 2
