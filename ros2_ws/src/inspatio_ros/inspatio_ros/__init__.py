"""ROS 2 package of inspatio-sim: ``inspatio_world_node`` (see :mod:`inspatio_sim.ros`)."""
