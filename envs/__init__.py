"""Gymnasium environments over the inspatio-sim Simulator.

Importing this package registers (namespace ``InSpatio``):

* ``InSpatio/VideoWorld-v0``: free motion in the World;
* ``InSpatio/PointNav-v0``: reach a goal given in the agent frame (success, SPL on geodesic distances);
* ``InSpatio/Explore-v0``: observe as much of the floor plan as possible (coverage).

Each has a native vector entry point: ``gymnasium.make_vec(id, num_envs=64, device="cuda")`` steps all agents in
one Simulator call. Keyword arguments: see :class:`envs.vector_env.InSpatioVectorEnv` and
:class:`envs.factory.SimulatorSpec`. Giving ``worlds=[...]`` makes the Ray vector env instead (sub-batches in Ray
actors across worlds and machines, :class:`envs.ray_vector_env.RayVectorEnv`; needs ``pip install .[ray]``).
"""

from gymnasium.envs.registration import register

from envs.vector_env import InSpatioVectorEnv
from envs.world_env import InSpatioEnv

ENV_IDS = {"InSpatio/VideoWorld-v0": ("videoworld", 500), "InSpatio/PointNav-v0": ("pointnav", 500),
           "InSpatio/Explore-v0": ("explore", 500)}

for _env_id, (_task, _steps) in ENV_IDS.items():
    register(id=_env_id, entry_point="envs.world_env:InSpatioEnv",
             vector_entry_point="envs.ray_vector_env:make_vector_env", max_episode_steps=_steps,
             kwargs={"task": _task})

__all__ = ["ENV_IDS", "InSpatioEnv", "InSpatioVectorEnv"]
