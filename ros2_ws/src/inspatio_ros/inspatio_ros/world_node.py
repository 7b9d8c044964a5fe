"""``ros2 run inspatio_ros inspatio_world_node [key=value ...] [--ros-args ...]``: a thin entry into inspatio_sim.

Hydra overrides (``ros.rate=15``, ``scene.path=worlds/clip``, ``render.camera.width=320``, ...) configure the node
exactly as ``inspatio-sim ros`` does; ``--ros-args`` (remapping, namespace, log level) go to rclpy.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from inspatio_sim.ros.commands import node_main
    except ImportError as e:
        print(f"inspatio_world_node: the inspatio-sim package is not importable ({e}); install it into the Python "
              "that runs ROS 2: pip install -e <repository>[ros]", file=sys.stderr)
        return 2
    # run as the console script (no argv given), the node is the whole process: it ends it at once on a stop
    return node_main(sys.argv[1:] if argv is None else argv, own_process=argv is None)


if __name__ == "__main__":
    sys.exit(main())
