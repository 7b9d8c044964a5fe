"""Distributed jobs on Ray (optional extra ``pip install inspatio-sim[ray]``): many videos -> many worlds.

* :mod:`inspatio_sim.cluster.session`: start a local Ray instance or join a cluster (``cluster.*`` keys);
* :mod:`inspatio_sim.cluster.reconstruct_many`: ``inspatio-sim reconstruct-many``, one Ray task per clip.

The Ray vector environment (rollouts across worlds and machines) is a face: :mod:`envs.ray_vector_env`.
Nothing here imports ``ray`` at import time; a missing Ray raises :class:`ClusterError` with the install hint.
"""

from inspatio_sim.cluster.session import ClusterConfig, ClusterError, ray_session, require_ray

__all__ = ["ClusterConfig", "ClusterError", "ray_session", "require_ray"]
