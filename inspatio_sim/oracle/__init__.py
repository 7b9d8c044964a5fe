"""Ground-truth scene oracle: textured pybullet scenes with exact depth, poses and dynamic masks.

Example::

    from inspatio_sim.oracle import Oracle

    with Oracle("room", seed=0) as oracle:
        scene = oracle.make_scene(num_frames=60, width=320, height=240)
"""

from inspatio_sim.oracle.oracle import Oracle, OracleFrames, projection_matrix, view_matrix
from inspatio_sim.oracle.presets import PRESETS

__all__ = ["PRESETS", "Oracle", "OracleFrames", "projection_matrix", "view_matrix"]
