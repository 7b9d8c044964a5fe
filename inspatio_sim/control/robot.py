"""Physical robot body: a URDF wheeled base (``pybullet_data``) driving on a collision mesh made from the World.

Frames and units: world frame REP-103 (x forward, y left, z up), metres, seconds, radians. The robot's base frame
is its URDF root link (for the default ``husky/husky.urdf``: ``base_footprint`` on the ground, x forward, z up).
The camera sits at ``camera_offset`` (metres, in ``camera_link``'s URDF frame), pitched down by
``camera_pitch_deg``; it is returned as ``T_world_camera`` with OpenCV optical axes (x right, y down, z forward).

* **Collision mesh** (:func:`world_mesh`): marching cubes (scikit-image) at the zero level of the World's signed
  distance field (free space is positive; unseen space counts as solid, as for the camera sphere of the other
  action models), vertices in world metres, cached per World. It becomes one static concave triangle mesh.
* **Agents**: one pybullet DIRECT client per :class:`RobotFleet` holds ``B`` robots; collision groups make robots
  collide with the world mesh only, never with each other.
* **Drive**: per control step ``dt`` the physics runs ``round(dt * physics_hz)`` fixed sub-steps. Before each one
  the base's velocity along its own forward axis is set to the commanded speed and its rate about its own up axis
  to the commanded yaw rate (plus a correction of the heading lag within the step); velocity along the up axis and
  roll/pitch rates stay with the physics, so gravity and the wheels' contacts make the body follow the floor, and
  contacts with the mesh stop it. The wheels roll freely. (Wheel velocity control of the skid-steer husky was
  measured first: commanding 1 rad/s in place gave 0.16 rad/s with 0.08 m/s of drift; PI feedback and anisotropic
  wheel friction did not make it track, see the README.)
* **What limited a step**: ``collided`` = a contact of a non-wheel link with the mesh (wheels touch the terrain by
  design: the 5 cm voxel steps of a reconstructed floor and the mesh's internal triangle edges give them contact
  normals tilted by up to ~77 degrees on a floor, so their contacts are judged by the motion they allow), or the
  step reached less than half the commanded forward motion or turn, or it would have put the camera centre into
  solid space (``sdf <= 0``; that step is undone).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation

from inspatio_sim.conventions import R_BODY_CAMERA
from inspatio_sim.errors import ConfigError, WorldError
from inspatio_sim.world import World

COLLISION_GROUP_ROBOT = 1
COLLISION_GROUP_WORLD = 2
MIN_CHECKED_MOTION = 0.02  # metres or radians per step under which "failed to reach" is not judged

_MESHES: dict[int, tuple[weakref.ref, tuple[np.ndarray, np.ndarray]]] = {}


@dataclass
class RobotConfig:
    """URDF robot body (hydra node ``control.robot``).

    Attributes:
        urdf: URDF path, absolute or relative to ``pybullet_data`` (a differential or skid-steer base, x forward).
        scale: pybullet ``globalScaling`` of the URDF.
        camera_link: Link carrying the camera (its URDF frame; the root link's name works too).
        camera_offset: Camera centre in ``camera_link``'s frame (metres, x forward, y left, z up).
        camera_pitch_deg: Camera pitch relative to the link (degrees, positive looks down).
        physics_hz: Physics sub-steps per second (each control step runs ``round(dt * physics_hz)``).
    """

    urdf: str = "husky/husky.urdf"
    scale: float = 0.5
    camera_link: str = "base_link"
    camera_offset: list[float] = field(default_factory=lambda: [0.15, 0.0, 0.35])
    camera_pitch_deg: float = 0.0
    physics_hz: float = 240.0

    def validate(self) -> None:
        if not self.scale > 0 or not self.physics_hz > 0:
            raise ConfigError("control.robot.scale and control.robot.physics_hz must be > 0")
        if len(self.camera_offset) != 3 or not np.isfinite(np.asarray(self.camera_offset, float)).all():
            raise ConfigError(f"control.robot.camera_offset must be 3 finite numbers, got {self.camera_offset}")
        if not -90 < self.camera_pitch_deg < 90:
            raise ConfigError(f"control.robot.camera_pitch_deg must be within (-90, 90), got {self.camera_pitch_deg}")
        if not urdf_path(self.urdf).exists():
            raise ConfigError(f"control.robot.urdf '{self.urdf}' not found (absolute, or relative to pybullet_data)")


def urdf_path(urdf: str) -> Path:
    """``urdf`` as given when it exists, else relative to the ``pybullet_data`` directory."""
    import pybullet_data

    path = Path(urdf)
    return path if path.is_absolute() or path.exists() else Path(pybullet_data.getDataPath()) / urdf


def world_mesh(world: World) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the World's SDF zero level: vertices ``(V, 3)`` float64 world metres, faces ``(F, 3)`` int32.

    The grid is padded with one solid voxel, so the surface is closed; cached per World (by identity).
    """
    key = id(world)
    hit = _MESHES.get(key)
    if hit is not None and hit[0]() is world:
        return hit[1]
    from skimage.measure import marching_cubes

    occ = world.occupancy
    sdf = np.pad(occ.sdf.detach().cpu().numpy().astype(np.float32), 1, constant_values=-occ.voxel)
    if not (sdf > 0).any():
        raise WorldError("the World has no free space: cannot build a collision mesh for the robot")
    verts, faces, _, _ = marching_cubes(sdf, 0.0, spacing=(occ.voxel,) * 3)
    # voxel centre i sits at origin + (i + 0.5) * voxel; the padding shifted indices by one
    verts = verts.astype(np.float64) + np.asarray(occ.origin, np.float64) - 0.5 * occ.voxel
    mesh = (verts, faces.astype(np.int32))
    for k in [k for k, (ref, _) in _MESHES.items() if ref() is None]:  # forget the meshes of collected Worlds
        del _MESHES[k]
    _MESHES[key] = (weakref.ref(world), mesh)
    return mesh


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence pybullet's C-level prints (URDF importer warnings such as "No inertial data for link")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured by a non-file object)
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _matrix(pos: tuple[float, ...], quat: tuple[float, ...]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quat).as_matrix()
    T[:3, 3] = pos
    return T


def _wrap(a: np.ndarray | float) -> np.ndarray | float:
    return (np.asarray(a) + math.pi) % (2 * math.pi) - math.pi


class RobotFleet:
    """``B`` URDF robots in one pybullet DIRECT client on the World's collision mesh (see the module docstring).

    Args:
        world: The World (mesh, ground plane, signed distance field).
        num_agents: Batch size ``B``.
        config: :class:`RobotConfig`.
        dt: Control step (seconds).
    """

    def __init__(self, world: World, num_agents: int, config: RobotConfig, dt: float) -> None:
        import pybullet as pb

        if world.ground is None:
            raise WorldError("the robot body needs a World with a ground plane")
        config.validate()
        self.pb = pb
        self.world = world
        self.config = config
        self.num_agents = num_agents
        self.dt = dt
        self.substeps = max(1, round(dt * config.physics_hz))
        self.h = dt / self.substeps
        self._verts, self._faces = world_mesh(world)
        self._vert_list = self._verts.tolist()
        self._index_list = self._faces.ravel().tolist()
        T_cam = np.eye(4)
        T_cam[:3, :3] = Rotation.from_euler("y", math.radians(config.camera_pitch_deg)).as_matrix() @ R_BODY_CAMERA
        T_cam[:3, 3] = config.camera_offset
        self._link_T_camera = T_cam
        self.client = pb.connect(pb.DIRECT)
        self._build()
        self._describe()
        self.camera = np.zeros((num_agents, 4, 4))
        self._start_cells: np.ndarray | None = None

    # -- pybullet world ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        """(Re)create the client's content: gravity, the static world mesh and ``B`` robots at the origin."""
        pb, c = self.pb, self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(0.0, 0.0, -9.81, physicsClientId=c)
        pb.setPhysicsEngineParameter(fixedTimeStep=self.h, deterministicOverlappingPairs=1, physicsClientId=c)
        shape = pb.createCollisionShape(pb.GEOM_MESH, vertices=self._vert_list, indices=self._index_list,
                                        flags=pb.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=c)
        self.mesh_body = pb.createMultiBody(0, shape, physicsClientId=c)
        pb.setCollisionFilterGroupMask(self.mesh_body, -1, COLLISION_GROUP_WORLD, COLLISION_GROUP_ROBOT,
                                       physicsClientId=c)
        self.bodies = [self._load(i) for i in range(self.num_agents)]

    def _load(self, i: int, pos: tuple[float, ...] = (0.0, 0.0, 0.0), quat: tuple[float, ...] = (0, 0, 0, 1)) -> int:
        pb, c = self.pb, self.client
        with _quiet_stdout():
            body = pb.loadURDF(str(urdf_path(self.config.urdf)), pos, quat, globalScaling=self.config.scale,
                               physicsClientId=c)
        for link in range(-1, pb.getNumJoints(body, physicsClientId=c)):
            pb.setCollisionFilterGroupMask(body, link, COLLISION_GROUP_ROBOT, COLLISION_GROUP_WORLD, physicsClientId=c)
        joints = range(pb.getNumJoints(body, physicsClientId=c))
        pb.setJointMotorControlArray(body, list(joints), pb.VELOCITY_CONTROL, forces=[0.0] * len(joints),
                                     physicsClientId=c)  # free-rolling wheels
        return body

    def _describe(self) -> None:
        """Camera link, wheel links, the base's inertial offset and the bounding box at rest (identity pose)."""
        pb, c, body = self.pb, self.client, self.bodies[0]
        names = {pb.getBodyInfo(body, physicsClientId=c)[0].decode(): -1}
        self.wheels: set[int] = set()
        for j in range(pb.getNumJoints(body, physicsClientId=c)):
            info = pb.getJointInfo(body, j, physicsClientId=c)
            names[info[12].decode()] = j
            if info[2] in (pb.JOINT_REVOLUTE, pb.JOINT_SPHERICAL):
                self.wheels.add(j)
        if self.config.camera_link not in names:
            raise ConfigError(f"control.robot.camera_link '{self.config.camera_link}' is not a link of "
                              f"{self.config.urdf}; links: {', '.join(names)}")
        self.camera_link = names[self.config.camera_link]
        dyn = pb.getDynamicsInfo(body, -1, physicsClientId=c)
        self._base_T_inertial = _matrix(dyn[3], dyn[4])  # pybullet reports the base's inertial frame
        lo = np.full(3, np.inf)
        hi = -lo
        for link in range(-1, pb.getNumJoints(body, physicsClientId=c)):
            a, b = pb.getAABB(body, link, physicsClientId=c)
            lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        base = self.base_pose(0)[:3, 3]
        lo, hi = lo - base, hi - base
        self.bottom = float(lo[2])  # lowest point of the robot relative to its base origin (metres)
        self.height = float(hi[2] - lo[2])
        self.footprint_radius = float(np.hypot(max(-lo[0], hi[0]), max(-lo[1], hi[1])))
        self.base_T_camera = np.linalg.inv(self.base_pose(0)) @ self._camera_pose(0)  # at rest, flat ground
        self.camera_height = float(self.base_T_camera[2, 3] - self.bottom)  # above the ground at rest

    def close(self) -> None:
        """Disconnect the pybullet client."""
        if self.client is not None and self.pb.isConnected(self.client):
            self.pb.disconnect(self.client)
        self.client = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # -- state ---------------------------------------------------------------------------------------------------
    def base_pose(self, i: int) -> np.ndarray:
        """``T_world_base`` ``(4, 4)`` of robot ``i`` (its URDF root link frame)."""
        pos, quat = self.pb.getBasePositionAndOrientation(self.bodies[i], physicsClientId=self.client)
        return _matrix(pos, quat) @ np.linalg.inv(self._base_T_inertial)

    def _camera_pose(self, i: int) -> np.ndarray:
        if self.camera_link == -1:
            T_link = self.base_pose(i)
        else:
            s = self.pb.getLinkState(self.bodies[i], self.camera_link, computeForwardKinematics=1,
                                     physicsClientId=self.client)
            T_link = _matrix(s[4], s[5])
        return T_link @ self._link_T_camera

    def camera_poses(self) -> np.ndarray:
        """``(B, 4, 4)`` float64 ``T_world_camera`` of every robot's camera."""
        return np.stack([self._camera_pose(i) for i in range(self.num_agents)])

    def state(self) -> np.ndarray:
        """``(B, S)`` float64 physical state (base pose, base velocity, joint positions and velocities)."""
        pb, c = self.pb, self.client
        rows = []
        for body in self.bodies:
            pos, quat = pb.getBasePositionAndOrientation(body, physicsClientId=c)
            lin, ang = pb.getBaseVelocity(body, physicsClientId=c)
            js = pb.getJointStates(body, range(pb.getNumJoints(body, physicsClientId=c)), physicsClientId=c)
            rows.append(np.r_[pos, quat, lin, ang, [s[0] for s in js], [s[1] for s in js]])
        return np.stack(rows)

    def set_state(self, state: np.ndarray, mask: np.ndarray, zero_velocity: bool = False) -> None:
        """Put robots where ``mask (B,)`` is True back into ``state`` (from :meth:`state`)."""
        pb, c = self.pb, self.client
        for i in np.flatnonzero(mask):
            body, s = self.bodies[i], state[i]
            n = pb.getNumJoints(body, physicsClientId=c)
            v = np.zeros(6 + 2 * n) if zero_velocity else s[7:]
            pb.resetBasePositionAndOrientation(body, s[:3].tolist(), s[3:7].tolist(), physicsClientId=c)
            pb.resetBaseVelocity(body, v[:3].tolist(), v[3:6].tolist(), physicsClientId=c)
            for j in range(n):
                pb.resetJointState(body, j, float(s[13 + j]), float(v[6 + n + j]), physicsClientId=c)
            self.camera[i] = self._camera_pose(i)

    # -- placement -----------------------------------------------------------------------------------------------
    def _camera_xy_offset(self) -> np.ndarray:
        """Camera centre minus base origin, x-y in the base frame, for the robot at rest on flat ground."""
        return self.base_T_camera[:2, 3]

    def _floor_z(self, xy: np.ndarray, z_from: float) -> float:
        """Height of the mesh below ``xy`` (ray cast down from ``z_from``); the ground plane when nothing is hit."""
        pb, c = self.pb, self.client
        hit = pb.rayTest([xy[0], xy[1], z_from], [xy[0], xy[1], z_from - 3.0], physicsClientId=c)[0]
        g = self.world.ground
        plane = float(g.z_at(xy[0], xy[1]))
        return float(hit[3][2]) if hit[0] == self.mesh_body else plane

    def reset(self, poses: np.ndarray, mask: np.ndarray) -> None:
        """Place the robots in ``mask (B,)`` so their cameras stand over ``poses[:, :2, 3]`` with the poses' yaw.

        The body rests on the mesh below (ray cast), velocities zero. Resetting every agent rebuilds the pybullet
        world (so seeded resets reproduce exactly); a partial reset reloads just those robots.
        """
        if mask.all():
            self._build()
        off = self._camera_xy_offset()
        g = self.world.ground
        for i in np.flatnonzero(mask):
            if not mask.all():
                self.pb.removeBody(self.bodies[i], physicsClientId=self.client)
            fwd = poses[i, :3, :3] @ R_BODY_CAMERA.T[:, 0]  # camera body x axis in the world
            yaw = math.atan2(fwd[1], fwd[0])
            c, s = math.cos(yaw), math.sin(yaw)
            xy = poses[i, :2, 3] - np.array([c * off[0] - s * off[1], s * off[0] + c * off[1]])
            ground = float(g.z_at(xy[0], xy[1]))
            z = self._floor_z(xy, ground + self.height + 0.1) - self.bottom + 1e-3
            quat = Rotation.from_euler("z", yaw).as_quat()
            T = np.eye(4)
            T[:3, :3] = Rotation.from_quat(quat).as_matrix()
            T[:3, 3] = [xy[0], xy[1], z]
            T_inertial = T @ self._base_T_inertial
            pos, q = T_inertial[:3, 3], Rotation.from_matrix(T_inertial[:3, :3]).as_quat()
            if mask.all():
                self.pb.resetBasePositionAndOrientation(self.bodies[i], pos.tolist(), q.tolist(),
                                                        physicsClientId=self.client)
            else:
                self.bodies[i] = self._load(i, tuple(pos), tuple(q))
            self.camera[i] = self._camera_pose(i)

    def start_cells(self) -> np.ndarray:
        """``(N, 2)`` world x, y of base positions where the robot fits: the space from 5 cm above the ground to
        the robot's height is free within its footprint radius, there is a floor below, and the camera height is
        in the trusted region."""
        if self._start_cells is not None:
            return self._start_cells
        occ = self.world.occupancy
        sdf = occ.sdf.detach().cpu().numpy()
        trusted = occ.trusted.detach().cpu().numpy()
        g = self.world.ground
        nx, ny, nz = sdf.shape
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        x = occ.origin[0] + (gx + 0.5) * occ.voxel
        y = occ.origin[1] + (gy + 0.5) * occ.voxel
        ground = g.z_at(x, y)
        zc = occ.origin[2] + (np.arange(nz) + 0.5) * occ.voxel
        above = zc[None, None, :] - ground[..., None]
        band = (above > 0.05) & (above < self.height + occ.voxel)
        free = np.where(band, sdf > occ.voxel * 0.5, True).all(2)
        floor = ((above > -3 * occ.voxel) & (above <= 0.05) & (sdf <= 0)).any(2)
        seen = ((np.abs(above - self.camera_height) < occ.voxel) & trusted).any(2)
        r = max(1, math.ceil(self.footprint_radius / occ.voxel))
        disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
        ok = ndimage.binary_erosion(free, structure=disk, border_value=0) & floor & seen
        self._start_cells = np.stack([x[ok], y[ok]], 1)
        return self._start_cells

    def sample_start_pose(self, rng: np.random.Generator) -> np.ndarray:
        """A camera pose ``(4, 4)`` (for :meth:`reset`) whose robot fits at a random start cell, random yaw, with the
        camera in trusted free space; after 64 draws, a random one of the (cell, heading in 10 degree steps) pairs
        that have it.

        Raises:
            WorldError: No start cell fits the robot, or none has its camera in trusted free space.
        """
        cells = self.start_cells()
        if len(cells) == 0:
            raise WorldError(f"no place in this World fits the robot ({self.config.urdf}, footprint radius "
                             f"{self.footprint_radius:.2f} m); try a smaller control.robot.scale")
        for _ in range(64):
            T = self._start_camera(cells[rng.integers(len(cells))][None], np.array([rng.uniform(-math.pi, math.pi)]))
            if self._camera_ok(T)[0]:
                return T[0]
        yaws = np.deg2rad(np.arange(-180.0, 180.0, 10.0))
        xy, yaw = np.repeat(cells, len(yaws), 0), np.tile(yaws, len(cells))
        T = self._start_camera(xy, yaw)
        ok = np.flatnonzero(self._camera_ok(T))
        if ok.size == 0:
            raise WorldError(f"the robot ({self.config.urdf}) fits in this World, but from none of its places does "
                             "its camera stand in trusted free space; check control.robot.camera_offset")
        return T[ok[rng.integers(ok.size)]]

    def _start_camera(self, xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """Camera poses ``(N, 4, 4)`` of robots at rest on the ground plane with base at ``xy (N, 2)``, ``yaw (N,)``."""
        off, g = self._camera_xy_offset(), self.world.ground
        c, s = np.cos(yaw), np.sin(yaw)
        T = np.tile(np.eye(4), (len(xy), 1, 1))
        T[:, :3, :3] = Rotation.from_euler("z", yaw).as_matrix() @ R_BODY_CAMERA
        T[:, :2, 3] = xy + np.stack([c * off[0] - s * off[1], s * off[0] + c * off[1]], 1)
        T[:, 2, 3] = g.z_at(T[:, 0, 3], T[:, 1, 3]) + self.camera_height
        return T

    def _camera_ok(self, T: np.ndarray) -> np.ndarray:
        """Whether the cameras of poses ``T (N, 4, 4)`` are in trusted free space ``(N,)`` bool."""
        occ = self.world.occupancy
        cam = torch.as_tensor(T[:, :3, 3], dtype=torch.float32, device=occ.sdf.device)
        return (occ.is_trusted(cam) & (occ.sdf_at(cam) > 0)).cpu().numpy()

    # -- stepping ------------------------------------------------------------------------------------------------
    def step(self, speed: np.ndarray, yaw_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drive every robot for one control step at ``speed (B,)`` m/s and ``yaw_rate (B,)`` rad/s.

        Returns the camera poses ``(B, 4, 4)`` float64 ``T_world_camera`` and ``collided (B,)`` bool.
        """
        pb, c = self.pb, self.client
        before = self.state()
        start = [self.base_pose(i) for i in range(self.num_agents)]
        yaw0 = np.array([math.atan2(T[1, 0], T[0, 0]) for T in start])
        contact = np.zeros(self.num_agents, bool)
        for k in range(self.substeps):
            for i, body in enumerate(self.bodies):
                _, quat = pb.getBasePositionAndOrientation(body, physicsClientId=c)
                lin, ang = pb.getBaseVelocity(body, physicsClientId=c)
                R = Rotation.from_quat(quat).as_matrix() @ self._base_T_inertial[:3, :3].T
                fwd, up = R[:, 0], R[:, 2]
                lin, ang = np.asarray(lin), np.asarray(ang)
                # close the heading lag of this step (friction of skidding wheels), by at most 1 rad/s extra
                lag = _wrap(yaw0[i] + yaw_rate[i] * k * self.h - math.atan2(R[1, 0], R[0, 0]))
                w = yaw_rate[i] + float(np.clip(0.5 * float(lag) / self.h, -1.0, 1.0))
                new_lin = fwd * speed[i] + up * float(lin @ up)
                new_ang = ang - up * float(ang @ up) + up * w
                pb.resetBaseVelocity(body, new_lin.tolist(), new_ang.tolist(), physicsClientId=c)
            pb.stepSimulation(physicsClientId=c)
            for i, body in enumerate(self.bodies):
                if not contact[i]:
                    contact[i] = any(q[3] not in self.wheels
                                     for q in pb.getContactPoints(body, self.mesh_body, physicsClientId=c))
        end = [self.base_pose(i) for i in range(self.num_agents)]
        failed = np.zeros(self.num_agents, bool)
        for i in range(self.num_agents):
            progress = float((end[i][:3, 3] - start[i][:3, 3]) @ start[i][:3, 0])
            turned = float(_wrap(math.atan2(end[i][1, 0], end[i][0, 0]) - yaw0[i]))
            want, turn = speed[i] * self.dt, yaw_rate[i] * self.dt
            failed[i] = (abs(want) > MIN_CHECKED_MOTION and progress * np.sign(want) < 0.5 * abs(want)) or (
                abs(turn) > MIN_CHECKED_MOTION and turned * np.sign(turn) < 0.5 * abs(turn))
            self.camera[i] = self._camera_pose(i)
        occ = self.world.occupancy
        cam = torch.as_tensor(self.camera[:, :3, 3], dtype=torch.float32, device=occ.sdf.device)
        inside = (occ.sdf_at(cam) <= 0).cpu().numpy()
        if inside.any():  # the camera would be inside solid space: undo the step, the body stops
            self.set_state(before, inside, zero_velocity=True)
        return self.camera.copy(), contact | failed | inside
