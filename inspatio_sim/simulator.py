"""Simulator: batched stepping of B agents in one World (actions -> ESCM -> poses -> render -> observations).

Everything the Gymnasium environments and the ROS node need, nothing Gymnasium- or ROS-specific. Start poses are
drawn from the recorded camera path (random frame, random heading, small offset), kept only where the camera
sphere is clear of geometry and inside the trusted region, else the nearest such place found by a scan of the grid;
a World with no such place raises :class:`~inspatio_sim.errors.WorldError` (for the ``robot`` model: a random
place where the robot body fits on the floor, see :meth:`RobotFleet.start_cells`). Every random choice comes from
the caller's seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from inspatio_sim import se3
from inspatio_sim.control import ESCM, ESCMConfig, StepOutcome
from inspatio_sim.conventions import R_BODY_CAMERA, intrinsics_from_fov
from inspatio_sim.errors import ConfigError, WorldError
from inspatio_sim.model import ModelConfig, ModelStep, ReferenceFrames
from inspatio_sim.render import RenderConfig, RenderOutput, render_world
from inspatio_sim.world import World

START_TRIES = 64


@dataclass
class CameraConfig:
    """Output camera (hydra node ``render.camera``): ``width`` x ``height`` pixels, horizontal fov in degrees."""

    width: int = 128  # output image width in pixels
    height: int = 128  # output image height in pixels
    hfov_deg: float = 90.0  # horizontal field of view (degrees); principal point at the image centre

    def validate(self) -> None:
        if int(self.width) < 1 or int(self.height) < 1:
            raise ConfigError(f"render.camera width/height must be positive, got {self.width}x{self.height}")
        if not 0 < self.hfov_deg < 180:
            raise ConfigError(f"render.camera.hfov_deg must be within (0, 180), got {self.hfov_deg}")


class Simulator:
    """``B`` agents in one World on the World's device.

    Args:
        world: The World.
        num_agents: Batch size ``B``.
        control: Constraint-module settings (action model, limits, radius, ...).
        render: Renderer settings.
        camera: Output camera.
        model: World-model step (``model.name``: ``none`` renders only; ``classical`` completes the render's holes
            from the cache and writes them back).
        references: The recorded frames the model reads (:meth:`ReferenceFrames.from_scene` of the World's Scene);
            required unless ``model.name`` is ``none``.
    """

    def __init__(self, world: World, num_agents: int, control: ESCMConfig | None = None,
                 render: RenderConfig | None = None, camera: CameraConfig | None = None,
                 model: ModelConfig | None = None, references: ReferenceFrames | None = None) -> None:
        self.world = world
        self.camera = camera or CameraConfig()
        self.camera.validate()
        self.render_config = render or RenderConfig()
        self.render_config.validate()
        self.escm = ESCM(world, num_agents, control)
        self.num_agents = num_agents
        self.device = world.device
        self.K = intrinsics_from_fov(self.camera.width, self.camera.height, self.camera.hfov_deg)
        self.time = torch.zeros(num_agents, dtype=torch.float64, device=self.device)
        self._start_positions: np.ndarray | None = None
        self.model_config = model or ModelConfig()
        self.model_config.validate()
        self.model: ModelStep | None = None
        if self.model_config.name != "none":
            if references is None:
                raise ConfigError(f"model={self.model_config.name} needs the World's recorded frames (references)")
            self.model = ModelStep(references, num_agents, self.camera.height, self.camera.width, self.K,
                                   self.model_config, self.render_config, world.config.block_size)

    @property
    def dt(self) -> float:
        return self.escm.config.dt

    def poses(self) -> torch.Tensor:
        """``(B, 4, 4)`` current ``T_world_camera``."""
        return self.escm.camera_poses()

    def sample_start_poses(self, count: int, rng: np.random.Generator) -> torch.Tensor:
        """``(count, 4, 4)`` start poses ``T_world_camera``, clear of geometry and in the trusted region.

        Near the recorded path: up to :data:`START_TRIES` draws of a random recorded frame, a random heading and a
        random horizontal offset of up to 0.3 m; when none is clear, the clear position nearest to a random
        recorded camera (see :meth:`start_positions`). The check uses the position the ESCM will place the camera
        at (ground-following models: ``camera_height`` above the ground). The ``robot`` model places its body with
        :meth:`RobotFleet.sample_start_pose`.

        Raises:
            WorldError: No position in this World is clear of geometry and trusted.
        """
        if self.escm.robot is not None:
            robot = self.escm.robot
            poses = np.stack([robot.sample_start_pose(rng) for _ in range(count)])
            return torch.as_tensor(poses, dtype=torch.float32, device=self.device)
        path = self.world.poses.cpu().numpy().astype(np.float64)
        out = np.zeros((count, 4, 4))
        for k in range(count):
            for _ in range(START_TRIES):
                T = path[rng.integers(path.shape[0])].copy()
                T[:3, :3] = Rotation.from_euler("z", rng.uniform(-math.pi, math.pi)).as_matrix() @ T[:3, :3]
                T[:3, 3] = self._placed(T[None, :3, 3] + np.r_[rng.uniform(-0.3, 0.3, 2), 0.0])[0]
                if self.clear(T[None, :3, 3])[0]:
                    break
            else:  # the nearest clear position to a random recorded camera
                candidates = self.start_positions()
                T = path[rng.integers(path.shape[0])].copy()
                T[:3, :3] = Rotation.from_euler("z", rng.uniform(-math.pi, math.pi)).as_matrix() @ T[:3, :3]
                T[:3, 3] = candidates[np.argmin(np.linalg.norm(candidates - T[:3, 3], axis=1))]
            out[k] = T
        return torch.as_tensor(out, dtype=torch.float32, device=self.device)

    def clear(self, positions: np.ndarray) -> np.ndarray:
        """Whether camera centres ``positions (N, 3)`` (world metres) may start an episode ``(N,)`` bool: the camera
        sphere (``control.radius``, plus one voxel of margin) is clear of geometry and the centre is trusted."""
        occ = self.world.occupancy
        p = torch.as_tensor(np.asarray(positions).reshape(-1, 3), dtype=torch.float32, device=self.device)
        ok = (occ.sdf_at(p) > self.escm.config.radius + occ.voxel) & occ.is_trusted(p)
        return ok.cpu().numpy()

    def start_positions(self) -> np.ndarray:
        """``(M, 3)`` float64 every camera centre on the occupancy grid that passes :meth:`clear`: voxel centres
        for ``fly``, each grid column at ``camera_height`` above the ground for the ground-following models.

        Raises:
            WorldError: There is none (the World has no trusted free space wider than the camera sphere).
        """
        if self._start_positions is None:
            occ = self.world.occupancy
            axes = [occ.origin[i] + (np.arange(n) + 0.5) * occ.voxel for i, n in enumerate(occ.shape)]
            if self.escm.config.action_model == "fly":
                grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
            else:
                xy = np.stack(np.meshgrid(axes[0], axes[1], indexing="ij"), -1).reshape(-1, 2)
                grid = self._placed(np.c_[xy, np.zeros(len(xy))])
            ok = np.concatenate([self.clear(chunk) for chunk in np.array_split(grid, max(1, len(grid) // 500_000))])
            if not ok.any():
                raise WorldError(
                    f"no start pose: no place in this World is both trusted and clear of geometry for a camera sphere "
                    f"of radius {self.escm.config.radius} m (control.radius); lower control.radius or "
                    "world.trusted_min_views, or record more views of the free space")
            self._start_positions = grid[ok]
        return self._start_positions

    def _placed(self, positions: np.ndarray) -> np.ndarray:
        """Where the ESCM puts camera centres ``positions (N, 3)`` on reset: unchanged for ``fly``, else moved
        vertically to ``camera_height`` above the ground plane."""
        p = np.array(positions, dtype=np.float64).reshape(-1, 3)
        ground = self.world.ground
        if self.escm.config.action_model != "fly" and ground is not None:
            p[:, 2] += self.escm.config.camera_height - ground.height(p) / ground.normal[2]
        return p

    def reset(self, mask: torch.Tensor | None, rngs: list[np.random.Generator],
              poses: torch.Tensor | None = None) -> None:
        """Re-draw start poses (agent ``i`` from ``rngs[i]``) and zero the time of the agents in ``mask (B,)``
        (all when ``None``); ``poses (B, 4, 4)`` ``T_world_camera`` places them there instead (fixed episodes)."""
        m = torch.ones(self.num_agents, dtype=torch.bool, device=self.device) if mask is None else mask
        idx = m.nonzero().squeeze(1).tolist()
        if not idx:
            return
        if poses is not None:
            poses = torch.as_tensor(poses, dtype=torch.float32, device=self.device)
        else:
            poses = self.poses().clone()
            for i in idx:
                poses[i] = self.sample_start_poses(1, rngs[i])[0]
        self.escm.reset(poses, m)
        self.time = torch.where(m, torch.zeros_like(self.time), self.time)
        if self.model is not None:
            self.model.reset(m, rngs)

    def step(self, actions: torch.Tensor) -> StepOutcome:
        """Apply actions (see :class:`~inspatio_sim.control.ESCM`) and advance every agent's clock by ``dt``."""
        outcome = self.escm.step(actions)
        self.time = self.time + self.dt
        return outcome

    def snapshot(self) -> tuple[Any, ...]:
        """The agents' state (position, orientation, velocity, time, robot bodies), for :meth:`restore`."""
        e = self.escm
        return e.position.clone(), e.euler.clone(), e.velocity.clone(), self.time.clone(), e.robot_state()

    def restore(self, state: tuple[Any, ...], mask: torch.Tensor) -> None:
        """Put the agents in ``mask (B,)`` back into a :meth:`snapshot` state."""
        e = self.escm
        m = mask[:, None]
        e.position = torch.where(m, state[0], e.position)
        e.euler = torch.where(m, state[1], e.euler)
        e.velocity = torch.where(m, state[2], e.velocity)
        self.time = torch.where(mask, state[3], self.time)
        e.restore_robot(state[4], mask)

    def observe(self, agents: torch.Tensor | None = None) -> RenderOutput:
        """Every agent's observation at its current pose and time: the explicit render, completed by the world
        model when one is configured.

        Args:
            agents: ``(B,)`` bool, the agents whose observation is new (they stepped or were reset since their last
                one); ``None`` = all. With a world model, each call is one model step of these agents (their caches
                and written-back content are updated); the others get their previous observation again.
        """
        poses = self.poses()
        frame = render_world(self.world, poses, self.time, self.K, self.camera.height, self.camera.width,
                             self.render_config)
        if self.model is None:
            return frame
        scene_time = self.world.timestamps[self.world.frame_at(self.time)]
        return self.model(frame, poses, scene_time, agents)

    def pose_at(self, position: np.ndarray, yaw: np.ndarray) -> torch.Tensor:
        """``(N, 4, 4)`` camera poses ``T_world_camera`` of bodies at ``position (N, 3)`` (world metres) heading
        ``yaw (N,)`` (radians, as :meth:`heading`), level (the ESCM applies the configured pitch on reset)."""
        yaw = torch.as_tensor(np.asarray(yaw, dtype=np.float64).reshape(-1), dtype=torch.float32, device=self.device)
        euler = torch.stack([torch.zeros_like(yaw), torch.zeros_like(yaw), yaw], 1)
        R = se3.euler_zyx_to_matrix(euler) @ torch.as_tensor(R_BODY_CAMERA, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(np.asarray(position, dtype=np.float64).reshape(-1, 3), dtype=torch.float32,
                            device=self.device)
        return se3.from_rotation_translation(R, t)

    def heading(self) -> torch.Tensor:
        """``(B,)`` yaw of the agents' bodies (radians, world frame, 0 = +x, counter-clockwise)."""
        return self.escm.euler[:, 2]

    def close(self) -> None:
        """Release what the Simulator holds outside Python's memory: the ``robot`` model's pybullet client.

        The World is shared (:mod:`inspatio_sim.assemble`) and released when no Simulator references it.
        """
        if self.escm.robot is not None:
            self.escm.robot.close()
