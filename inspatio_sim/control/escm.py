"""Explicit Spatial Constraint Module: batched actions -> physically plausible camera poses.

Agent state (batch ``B``, torch): the camera centre ``position (B, 3)`` in the world frame, the body orientation
``euler (B, 3)`` = (roll, pitch, yaw) of ``R_world_body = Rz(yaw) Ry(pitch) Rx(roll)`` with REP-103 body axes
(x forward, y left, z up; positive pitch looks down), and the last commanded body twist ``velocity (B, 6)``
(for acceleration limits). The camera is the body rotated to OpenCV optical axes (z = body x, x = -body y).

Action models (``control.action_model``):
  * ``fly``: ``(B, 6)`` float body twist ``(vx, vy, vz, wx, wy, wz)`` in m/s and rad/s, integrated over ``dt``;
  * ``ground``: ``(B, 2)`` float ``(forward speed m/s, yaw rate rad/s)``; the camera keeps ``camera_height`` above
    the World's ground plane with pitch ``ground_pitch_deg`` and no roll;
  * ``discrete``: ``(B,)`` int, :data:`DISCRETE_ACTIONS` (Habitat-style steps; ground-following like ``ground``);
  * ``robot``: ``(B, 2)`` like ``ground``, driving a URDF robot body in pybullet on a collision mesh of the World
    (:mod:`inspatio_sim.control.robot`); the camera rides on a link, so height, roll and pitch come from the body.
Constraints: speed and acceleration limits, a pitch limit, a camera sphere of ``radius`` swept against the World's
signed distance field (no tunnelling, sliding along walls), and the trusted-region policy (``clamp`` keeps the
agent where it was, ``terminate`` flags the step, ``allow`` only reports it). Every step reports what limited it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from inspatio_sim import se3
from inspatio_sim.control.collision import sweep_sphere
from inspatio_sim.control.robot import RobotConfig, RobotFleet
from inspatio_sim.conventions import R_BODY_CAMERA
from inspatio_sim.errors import ActionError, ConfigError, WorldError
from inspatio_sim.validation import check_poses
from inspatio_sim.world import World

ACTION_MODELS = ("fly", "ground", "discrete", "robot")
DISCRETE_ACTIONS = ("stop", "move_forward", "turn_left", "turn_right", "look_up", "look_down")
REGION_POLICIES = ("clamp", "terminate", "allow")


@dataclass
class ESCMConfig:
    """Constraint module settings (hydra group ``control``).

    Attributes:
        action_model: ``fly``, ``ground``, ``discrete`` or ``robot``.
        dt: Seconds per step.
        radius: Radius of the camera's collision sphere (metres).
        max_speed: Linear speed limit (m/s).
        max_angular_speed: Angular speed limit (rad/s).
        max_accel: Linear acceleration limit (m/s^2).
        max_angular_accel: Angular acceleration limit (rad/s^2).
        pitch_limit_deg: Largest pitch up or down (degrees).
        camera_height: Camera height above the ground plane for ``ground`` and ``discrete`` (metres).
        ground_pitch_deg: Pitch of the ``ground`` camera (degrees, positive looks down).
        forward_step: ``move_forward`` distance of the discrete model (metres).
        turn_step_deg: ``turn_left`` / ``turn_right`` angle (degrees).
        look_step_deg: ``look_up`` / ``look_down`` angle (degrees).
        region_policy: Leaving the trusted region: ``clamp``, ``terminate`` or ``allow``.
        slides: How often one step's motion may be deflected along surfaces.
        robot: :class:`~inspatio_sim.control.robot.RobotConfig` of the ``robot`` model (a dict is converted).
    """

    action_model: str = "ground"
    dt: float = 0.1
    radius: float = 0.2
    max_speed: float = 1.5
    max_angular_speed: float = 2.0
    max_accel: float = 5.0
    max_angular_accel: float = 20.0
    pitch_limit_deg: float = 60.0
    camera_height: float = 1.4
    ground_pitch_deg: float = 0.0
    forward_step: float = 0.25
    turn_step_deg: float = 10.0
    look_step_deg: float = 10.0
    region_policy: str = "clamp"
    slides: int = 2
    robot: RobotConfig = field(default_factory=RobotConfig)

    def __post_init__(self) -> None:
        if isinstance(self.robot, dict):
            names = {f.name for f in fields(RobotConfig)}
            unknown = sorted(set(self.robot) - names)
            if unknown:
                raise ConfigError(f"unknown key(s) {', '.join('control.robot.' + k for k in unknown)}")
            self.robot = RobotConfig(**self.robot)

    def validate(self) -> None:
        if self.action_model not in ACTION_MODELS:
            raise ConfigError(f"control.action_model must be one of {', '.join(ACTION_MODELS)}, "
                              f"got '{self.action_model}'")
        if self.region_policy not in REGION_POLICIES:
            raise ConfigError(f"control.region_policy must be one of {', '.join(REGION_POLICIES)}, "
                              f"got '{self.region_policy}'")
        for key in ("dt", "max_speed", "max_angular_speed", "max_accel", "max_angular_accel", "camera_height",
                    "forward_step"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"control.{key} must be > 0, got {getattr(self, key)}")
        if self.radius < 0 or not 0 < self.pitch_limit_deg < 90:
            raise ConfigError("control.radius must be >= 0 and control.pitch_limit_deg within (0, 90)")
        if self.action_model == "robot":
            self.robot.validate()


@dataclass
class StepOutcome:
    """What one ESCM step realised, per agent.

    Attributes:
        poses: ``(B, 4, 4)`` ``T_world_camera`` after the step.
        collided: ``(B,)`` bool, the collision sphere touched geometry (motion shortened or deflected).
        limited: ``(B,)`` bool, a speed, acceleration or pitch limit clipped the action.
        left_region: ``(B,)`` bool, the motion would end outside the trusted region.
        terminated: ``(B,)`` bool, ``left_region`` under the ``terminate`` policy.
    """

    poses: torch.Tensor
    collided: torch.Tensor
    limited: torch.Tensor
    left_region: torch.Tensor
    terminated: torch.Tensor


class ESCM:
    """Batched constraint module over one World (see the module docstring).

    Args:
        world: The World whose distance field, ground plane and trusted region constrain motion.
        num_agents: Batch size ``B``.
        config: :class:`ESCMConfig`.
    """

    def __init__(self, world: World, num_agents: int, config: ESCMConfig | None = None) -> None:
        self.config = config or ESCMConfig()
        self.config.validate()
        if num_agents < 1:
            raise ConfigError(f"the ESCM needs at least one agent, got {num_agents}")
        if self.config.action_model in ("ground", "discrete", "robot") and world.ground is None:
            raise WorldError(f"action model '{self.config.action_model}' follows the ground, but this World has "
                             "no ground plane; use control.action_model=fly")
        self.world = world
        self.device = world.device
        self.num_agents = num_agents
        dev = self.device
        self.position = torch.zeros(num_agents, 3, device=dev)
        self.euler = torch.zeros(num_agents, 3, device=dev)
        self.velocity = torch.zeros(num_agents, 6, device=dev)
        self._body_from_camera = torch.as_tensor(R_BODY_CAMERA, dtype=torch.float32, device=dev)
        self.robot: RobotFleet | None = None
        if self.config.action_model == "robot":
            self.robot = RobotFleet(world, num_agents, self.config.robot, self.config.dt)
            self._set_camera(torch.as_tensor(self.robot.camera, dtype=torch.float32, device=dev))

    # -- state ---------------------------------------------------------------------------------------------------
    def camera_poses(self) -> torch.Tensor:
        """``(B, 4, 4)`` ``T_world_camera`` of the current state."""
        if self.robot is not None:
            return self._robot_poses.clone()
        R = se3.euler_zyx_to_matrix(self.euler) @ self._body_from_camera
        return se3.from_rotation_translation(R, self.position)

    def reset(self, poses: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Place agents at camera poses ``(B, 4, 4)`` (all, or those where ``mask (B,)`` is True); velocities 0.

        Ground-following models snap the camera to ``camera_height`` above the ground with the configured pitch.
        """
        check_poses(poses, what="reset poses", error=ActionError, count=self.num_agents)
        poses = torch.as_tensor(poses, dtype=torch.float32, device=self.device)
        m = torch.ones(self.num_agents, dtype=torch.bool, device=self.device) if mask is None else mask.bool()
        if self.robot is not None:
            self.robot.reset(poses.double().cpu().numpy(), m.cpu().numpy())
            self._set_camera(torch.as_tensor(self.robot.camera, dtype=torch.float32, device=self.device))
            self.velocity = torch.where(m[:, None], torch.zeros_like(self.velocity), self.velocity)
            return
        euler = se3.matrix_to_euler_zyx(poses[:, :3, :3] @ self._body_from_camera.T)
        position = poses[:, :3, 3].clone()
        if self.config.action_model != "fly":
            euler[:, 0] = 0.0
            euler[:, 1] = math.radians(self.config.ground_pitch_deg)
            position[:, 2] = self._ground_z(position) + self.config.camera_height
        self.position = torch.where(m[:, None], position, self.position)
        self.euler = torch.where(m[:, None], euler, self.euler)
        self.velocity = torch.where(m[:, None], torch.zeros_like(self.velocity), self.velocity)

    # -- stepping ------------------------------------------------------------------------------------------------
    def step(self, actions: torch.Tensor) -> StepOutcome:
        """Apply one batch of actions (shape and dtype per the action model) and return the realised poses."""
        cfg = self.config
        a = self._check_actions(actions)
        if self.robot is not None:
            return self._step_robot(a)
        limited = torch.zeros(self.num_agents, dtype=torch.bool, device=self.device)
        euler = self.euler.clone()
        if cfg.action_model == "fly":
            twist, limited = self._limit_twist(a)
            R = se3.euler_zyx_to_matrix(self.euler)
            delta = (R @ twist[:, :3, None])[..., 0] * cfg.dt
            R_new = R @ se3.axis_angle_to_matrix(twist[:, 3:] * cfg.dt)
            euler = se3.matrix_to_euler_zyx(R_new)
            self.velocity = twist
        elif cfg.action_model == "ground":
            twist6 = torch.zeros(self.num_agents, 6, device=self.device)
            twist6[:, 0], twist6[:, 5] = a[:, 0], a[:, 1]
            twist6, limited = self._limit_twist(twist6)
            euler[:, 2] = euler[:, 2] + twist6[:, 5] * cfg.dt
            heading = torch.stack([euler[:, 2].cos(), euler[:, 2].sin(), torch.zeros_like(euler[:, 2])], 1)
            delta = self._follow_ground(heading * (twist6[:, 0:1] * cfg.dt))
            self.velocity = twist6
        else:
            act = a.long()
            turn = math.radians(cfg.turn_step_deg)
            look = math.radians(cfg.look_step_deg)
            euler[:, 2] += torch.where(act == 2, turn, 0.0) - torch.where(act == 3, turn, 0.0)
            euler[:, 1] += torch.where(act == 5, look, 0.0) - torch.where(act == 4, look, 0.0)
            heading = torch.stack([euler[:, 2].cos(), euler[:, 2].sin(), torch.zeros_like(euler[:, 2])], 1)
            step = torch.where(act == 1, cfg.forward_step, 0.0)[:, None]
            delta = self._follow_ground(heading * step)
        pitch_max = math.radians(cfg.pitch_limit_deg)
        limited |= euler[:, 1].abs() > pitch_max + 1e-6
        euler[:, 1] = euler[:, 1].clamp(-pitch_max, pitch_max)
        euler[:, 2] = torch.remainder(euler[:, 2] + math.pi, 2 * math.pi) - math.pi

        occ = self.world.occupancy
        sweep = sweep_sphere(occ.sdf_at, self.position, delta, cfg.radius, margin=occ.voxel * 3**0.5 / 2,
                             gradient_step=occ.voxel, slides=cfg.slides)
        position = sweep.position
        left = ~occ.is_trusted(position)
        if cfg.region_policy == "clamp":
            position = torch.where(left[:, None], self.position, position)
        self.position, self.euler = position, euler
        terminated = left if cfg.region_policy == "terminate" else torch.zeros_like(left)
        return StepOutcome(poses=self.camera_poses(), collided=sweep.collided, limited=limited, left_region=left,
                           terminated=terminated)

    def _step_robot(self, a: torch.Tensor) -> StepOutcome:
        """The ``robot`` model: limit the (speed, yaw rate) command, drive the bodies, apply the region policy."""
        cfg, robot = self.config, self.robot
        assert robot is not None
        twist6 = torch.zeros(self.num_agents, 6, device=self.device)
        twist6[:, 0], twist6[:, 5] = a[:, 0], a[:, 1]
        twist6, limited = self._limit_twist(twist6)
        self.velocity = twist6
        before = robot.state()
        cmd = twist6.double().cpu().numpy()
        poses, collided = robot.step(cmd[:, 0], cmd[:, 5])
        cam = torch.as_tensor(poses, dtype=torch.float32, device=self.device)
        left = ~self.world.occupancy.is_trusted(cam[:, :3, 3])
        if cfg.region_policy == "clamp" and bool(left.any()):
            robot.set_state(before, left.cpu().numpy(), zero_velocity=True)
            cam = torch.as_tensor(robot.camera, dtype=torch.float32, device=self.device)
        self._set_camera(cam)
        terminated = left if cfg.region_policy == "terminate" else torch.zeros_like(left)
        return StepOutcome(poses=self.camera_poses(), collided=torch.as_tensor(collided, device=self.device),
                           limited=limited, left_region=left, terminated=terminated)

    def _set_camera(self, poses: torch.Tensor) -> None:
        """Store robot camera poses ``(B, 4, 4)`` and mirror them into ``position`` / ``euler``."""
        self._robot_poses = poses
        self.position = poses[:, :3, 3].clone()
        self.euler = se3.matrix_to_euler_zyx(poses[:, :3, :3] @ self._body_from_camera.T)

    def robot_state(self) -> Any:
        """The robot bodies' physical state (``None`` for the other models), for :meth:`restore_robot`."""
        return None if self.robot is None else self.robot.state()

    def restore_robot(self, state: Any, mask: torch.Tensor) -> None:
        """Put the robots in ``mask (B,)`` back into a :meth:`robot_state`."""
        if self.robot is not None and state is not None:
            self.robot.set_state(np.asarray(state), mask.cpu().numpy())
            self._set_camera(torch.as_tensor(self.robot.camera, dtype=torch.float32, device=self.device))

    # -- helpers -------------------------------------------------------------------------------------------------
    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(actions, device=self.device)
        model, b = self.config.action_model, self.num_agents
        shape = {"fly": (b, 6), "ground": (b, 2), "discrete": (b,), "robot": (b, 2)}[model]
        if tuple(a.shape) != shape:
            raise ActionError(f"{model} actions must have shape {shape}, got {tuple(a.shape)}")
        if model == "discrete":
            if a.is_floating_point() or a.dtype == torch.bool:
                raise ActionError(f"discrete actions must be integers in [0, {len(DISCRETE_ACTIONS) - 1}], "
                                  f"got dtype {a.dtype}")
            if ((a < 0) | (a >= len(DISCRETE_ACTIONS))).any():
                raise ActionError(f"discrete actions must be in [0, {len(DISCRETE_ACTIONS) - 1}] "
                                  f"({', '.join(DISCRETE_ACTIONS)})")
            return a
        if not a.is_floating_point():
            a = a.float()
        if not torch.isfinite(a).all():
            bad = int((~torch.isfinite(a)).any(dim=1).nonzero()[0])
            raise ActionError(f"action of agent {bad} contains NaN or inf")
        return a.float()

    def _limit_twist(self, twist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip a body twist ``(B, 6)`` to the speed and acceleration limits; return it and a limited flag."""
        cfg = self.config
        out = twist.clone()
        for sl, speed, accel in ((slice(0, 3), cfg.max_speed, cfg.max_accel),
                                 (slice(3, 6), cfg.max_angular_speed, cfg.max_angular_accel)):
            part = _clip_norm(out[:, sl], speed)
            prev = self.velocity[:, sl]
            out[:, sl] = prev + _clip_norm(part - prev, accel * cfg.dt)
        limited = (out - twist).abs().amax(dim=1) > 1e-6
        return out, limited

    def _ground_z(self, position: torch.Tensor) -> torch.Tensor:
        """Height of the ground plane below ``position (B, 3)``."""
        return self.world.ground.z_at(position[:, 0], position[:, 1])

    def _follow_ground(self, horizontal: torch.Tensor) -> torch.Tensor:
        """Add the vertical motion that keeps the camera ``camera_height`` above the ground after ``horizontal``."""
        target = self.position + horizontal
        dz = self._ground_z(target) + self.config.camera_height - self.position[:, 2]
        return horizontal + torch.stack([torch.zeros_like(dz), torch.zeros_like(dz), dz], 1)


def _clip_norm(v: torch.Tensor, limit: float) -> torch.Tensor:
    n = v.norm(dim=1, keepdim=True)
    return v * torch.clamp(limit / n.clamp(min=1e-12), max=1.0)
