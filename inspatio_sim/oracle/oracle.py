"""Ground-truth renderer: textured pybullet scenes (DIRECT mode, TinyRenderer) with exact depth and dynamic masks.

Conventions are those of :mod:`inspatio_sim.conventions`: poses are ``T_world_camera`` with an OpenCV optical camera,
world z up, metres, seconds; depth is z-depth with ``0`` where no surface is hit (sky).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pybullet as pb
import pybullet_data
from scipy.spatial.transform import Rotation

from inspatio_sim.camera import backproject
from inspatio_sim.conventions import DEPTH_INVALID, OPENGL_FROM_OPENCV, intrinsics_from_fov, look_at, scale_intrinsics
from inspatio_sim.errors import ConfigError
from inspatio_sim.oracle import textures as tx
from inspatio_sim.oracle.presets import FACES, PRESETS, Block, PresetSpec, UrdfObject, build_preset, face_extent
from inspatio_sim.scene import Scene, SceneMeta
from inspatio_sim.validation import check_intrinsics, check_poses

MESH_TILE_M: float = 1.0
"""Faces are split into quads at most this size (keeps triangles small for the rasteriser)."""

SKY_HORIZON: tuple[float, float, float] = (205.0, 222.0, 240.0)
SKY_ZENITH: tuple[float, float, float] = (105.0, 150.0, 215.0)

_PROBE_RADIUS = 0.01
_MAX_CLEARANCE = 100.0


@dataclass
class OracleFrames:
    """A batch of ground-truth renders.

    Attributes:
        rgb: ``(B, H, W, 3)`` uint8.
        depth: ``(B, H, W)`` float32 z-depth in metres, ``0`` where no surface (sky, beyond the far plane).
        dynamic: ``(B, H, W)`` bool, True on moving objects.
    """

    rgb: np.ndarray
    depth: np.ndarray
    dynamic: np.ndarray


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL projection (4x4, row-major) that makes TinyRenderer honour the full ``K`` of conventions.py.

    TinyRenderer samples output pixel ``(u, v)`` (row 0 at the top) at window coordinates ``(u, H - 1 - v)`` (integer
    positions, not ``+0.5`` centres; measured), so a camera point lands exactly at ``u = fx x / z + cx`` with
    ``P[0, 2] = 1 - 2 cx / W`` and ``P[1, 2] = 2 (cy + 1) / H - 1``.

    Args:
        K: ``(3, 3)`` intrinsics in pixels for ``(height, width)``.
        width: Image width in pixels.
        height: Image height in pixels.
        near: Near plane, metres.
        far: Far plane, metres.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * fx / width
    P[0, 2] = 1.0 - 2.0 * cx / width
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = 2.0 * (cy + 1.0) / height - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def view_matrix(T_world_camera: np.ndarray) -> np.ndarray:
    """OpenGL view matrix (world -> OpenGL camera, 4x4 row-major) of an OpenCV ``T_world_camera``."""
    T = np.array(T_world_camera, dtype=np.float64)
    R = T[:3, :3] @ OPENGL_FROM_OPENCV
    V = np.eye(4)
    V[:3, :3] = R.T
    V[:3, 3] = -R.T @ T[:3, 3]
    return V


def _gl(M: np.ndarray) -> list[float]:
    """Column-major flat list, as pybullet expects."""
    return [float(x) for x in np.asarray(M, dtype=np.float64).T.reshape(-1)]


def _block_mesh(block: Block, pad: int = 2) -> tuple[dict[str, list[Any]], np.ndarray]:
    """Vertices/indices/uvs/normals (body frame) of the drawn faces of ``block`` and their texture atlas."""
    names = list(block.faces)
    imgs = [block.faces[n] for n in names]
    Ha = max(i.shape[0] for i in imgs) + 2 * pad
    Wa = sum(i.shape[1] + 2 * pad for i in imgs)
    atlas = np.zeros((Ha, Wa, 3), dtype=np.uint8)
    half = 0.5 * np.asarray(block.size, dtype=np.float64)
    verts: list[np.ndarray] = []
    uvs: list[np.ndarray] = []
    normals: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    x = 0
    for name, img in zip(names, imgs, strict=True):
        h, w = img.shape[:2]
        atlas[: h + 2 * pad, x: x + w + 2 * pad] = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        u0, u1 = (x + pad) / Wa, (x + pad + w) / Wa
        v0, v1 = 1.0 - (pad + h) / Ha, 1.0 - pad / Ha  # texture v = 1 is image row 0 (measured)
        x += w + 2 * pad
        n, up = (np.asarray(a, dtype=np.float64) for a in FACES[name])
        right = np.cross(up, n)
        fw, fh = face_extent(block.size, name)
        nx, ny = max(1, math.ceil(fw / MESH_TILE_M)), max(1, math.ceil(fh / MESH_TILE_M))
        s, t = np.meshgrid(np.linspace(0, 1, nx + 1), np.linspace(0, 1, ny + 1), indexing="xy")
        s, t = s.reshape(-1), t.reshape(-1)
        centre = n * (np.abs(n) @ half)
        base = len(np.concatenate(verts)) if verts else 0
        verts.append(centre + ((s - 0.5) * fw)[:, None] * right + ((t - 0.5) * fh)[:, None] * up)
        uvs.append(np.stack([u0 + s * (u1 - u0), v0 + t * (v1 - v0)], axis=1))
        normals.append(np.repeat(n[None], len(s), axis=0))
        i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")
        a = (j * (nx + 1) + i).reshape(-1)
        b, c, d = a + 1, a + nx + 2, a + nx + 1  # counter-clockwise seen from outside
        indices.append(base + np.stack([a, b, c, a, c, d], axis=1).reshape(-1))
    mesh = {
        "vertices": np.concatenate(verts).tolist(),
        "indices": [int(k) for k in np.concatenate(indices)],
        "uvs": np.concatenate(uvs).tolist(),
        "normals": np.concatenate(normals).tolist(),
    }
    return mesh, atlas


@dataclass
class _Body:
    uid: int
    name: str
    position: np.ndarray  # rest position of the base, world
    yaw: float
    base_quat: np.ndarray  # xyzw orientation before the yaw
    motion: Any


class Oracle:
    """A ground-truth scene: textured boxes and ``pybullet_data`` objects rendered by pybullet's TinyRenderer.

    One pybullet DIRECT client per instance. Geometry, textures, motions and the camera path are deterministic for a
    given ``(preset, seed)``. Lighting is Lambertian with a fixed world light direction (no specular, no shadows), so a
    surface point has the same colour from every viewpoint.

    Example::

        with Oracle("room", seed=0) as oracle:
            poses, times = oracle.camera_path(60, fps=15.0)
            frames = oracle.render(poses[:4], times[:4], K, 320, 240)

    Args:
        preset: One of :data:`PRESETS`.
        seed: Seed for placement jitter, texture crops and camera-path wobble.

    Raises:
        ConfigError: Unknown preset or non-integer seed.
    """

    def __init__(self, preset: str = "room", seed: int = 0) -> None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown oracle preset {preset!r}; choose one of {', '.join(PRESETS)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"oracle seed must be a non-negative integer, got {seed!r}")
        self.preset: str = preset
        self.seed: int = int(seed)
        self.spec: PresetSpec = build_preset(preset, self.seed)
        self._client: int | None = pb.connect(pb.DIRECT)
        self._bodies: list[_Body] = []
        self._time: float | None = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.dynamic_body_ids: tuple[int, ...] = tuple(b.uid for b in self._bodies if b.motion is not None)
        self._probe = pb.createCollisionShape(pb.GEOM_SPHERE, radius=_PROBE_RADIUS, physicsClientId=self.client)
        self.set_time(0.0)

    # -- lifecycle -------------------------------------------------------------------------------------------------
    @property
    def client(self) -> int:
        """The pybullet physics client id of this oracle."""
        if self._client is None:
            raise ConfigError("this Oracle is closed; create a new one")
        return self._client

    def close(self) -> None:
        """Disconnect the pybullet client (idempotent)."""
        if self._client is not None:
            with contextlib.suppress(pb.error):
                pb.disconnect(physicsClientId=self._client)
            self._client = None

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"Oracle(preset={self.preset!r}, seed={self.seed})"

    # -- scene construction ----------------------------------------------------------------------------------------
    def _build(self) -> None:
        cid = self.client
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        for block in self.spec.blocks:
            mesh, atlas = _block_mesh(block)
            tex = pb.loadTexture(str(tx.write_png(atlas)), physicsClientId=cid)
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[s / 2 for s in block.size], physicsClientId=cid)
            vis = pb.createVisualShape(pb.GEOM_MESH, rgbaColor=[1, 1, 1, 1], physicsClientId=cid, **mesh)
            if tex < 0 or col < 0 or vis < 0:
                raise RuntimeError(f"pybullet failed to create block {block.name!r}")
            quat = np.array(pb.getQuaternionFromEuler([0.0, 0.0, block.yaw]))
            uid = pb.createMultiBody(0.0, col, vis, list(block.position), list(quat), physicsClientId=cid)
            pb.changeVisualShape(uid, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
            self._bodies.append(_Body(uid, block.name, np.asarray(block.position, float), block.yaw,
                                      np.array([0.0, 0.0, 0.0, 1.0]), block.motion))
        for obj in self.spec.urdfs:
            self._bodies.append(self._load_urdf(obj))

    def _load_urdf(self, obj: UrdfObject) -> _Body:
        cid = self.client
        base_quat = np.array(pb.getQuaternionFromEuler(list(obj.rpy)))
        quat = (Rotation.from_euler("z", obj.yaw) * Rotation.from_quat(base_quat)).as_quat()
        uid = pb.loadURDF(obj.file, [0.0, 0.0, 0.0], list(quat), useFixedBase=True, globalScaling=obj.scale,
                          physicsClientId=cid)
        if uid < 0:
            raise RuntimeError(f"pybullet failed to load {obj.file}")
        # resetBasePositionAndOrientation places the base inertial frame (not the URDF link frame): measure the
        # AABB after a reset so later resets (motions) use the same reference.
        pb.resetBasePositionAndOrientation(uid, [0.0, 0.0, 0.0], list(quat), physicsClientId=cid)
        lo, hi = self._aabb(uid)
        z = obj.position[2] - lo[2] if obj.lift else obj.position[2]
        pos = np.array([obj.position[0] - (lo[0] + hi[0]) / 2, obj.position[1] - (lo[1] + hi[1]) / 2, z])
        pb.resetBasePositionAndOrientation(uid, list(pos), list(quat), physicsClientId=cid)
        return _Body(uid, obj.name, pos, obj.yaw, base_quat, obj.motion)

    def _aabb(self, uid: int) -> tuple[np.ndarray, np.ndarray]:
        cid = self.client
        links = range(-1, pb.getNumJoints(uid, physicsClientId=cid))
        boxes = [pb.getAABB(uid, link, physicsClientId=cid) for link in links]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def set_time(self, t: float) -> None:
        """Move every dynamic object to its pose at scene time ``t`` (seconds)."""
        t = float(t)
        if self._time == t:
            return
        for body in self._bodies:
            if body.motion is None:
                continue
            offset, dyaw = body.motion.offset(t)
            quat = (Rotation.from_euler("z", body.yaw + dyaw) * Rotation.from_quat(body.base_quat)).as_quat()
            pb.resetBasePositionAndOrientation(body.uid, list(body.position + offset), list(quat),
                                               physicsClientId=self.client)
        self._time = t

    # -- rendering -------------------------------------------------------------------------------------------------
    def render(self, poses: np.ndarray, times: np.ndarray, K: np.ndarray, width: int, height: int,
               supersample: int = 3) -> OracleFrames:
        """Render RGB, exact z-depth and the dynamic mask at the given camera poses and scene times.

        Args:
            poses: ``(B, 4, 4)`` (or ``(4, 4)``) ``T_world_camera``, OpenCV optical camera, world z up, metres.
            times: ``(B,)`` (or scalar) scene time in seconds for each pose (sets the moving objects).
            K: ``(3, 3)`` intrinsics in pixels for ``(height, width)``; any fx, fy, cx, cy.
            width: Output width in pixels.
            height: Output height in pixels.
            supersample: Odd factor ``ss``: renders at ``ss`` times the resolution, RGB is area-averaged down, depth
                and the dynamic mask are the exact centre sub-samples of each ``ss x ss`` block.

        Returns:
            :class:`OracleFrames` with ``(B, height, width, ...)`` arrays.

        Raises:
            ConfigError: Malformed poses, times, K, resolution or supersample.
        """
        poses, times, K, width, height, ss = _check_render_args(poses, times, K, width, height, supersample)
        B = poses.shape[0]
        Wr, Hr = width * ss, height * ss
        Kr = scale_intrinsics(K, ss, ss)
        P = _gl(projection_matrix(Kr, Wr, Hr, self.spec.near, self.spec.far))
        rgb = np.empty((B, height, width, 3), np.uint8)
        depth = np.empty((B, height, width), np.float32)
        dynamic = np.empty((B, height, width), bool)
        c = ss // 2
        for b in range(B):
            img, z, seg = self._render_one(poses[b], float(times[b]), Kr, Wr, Hr, P)
            rgb[b] = img if ss == 1 else cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
            depth[b] = z[c::ss, c::ss]
            dynamic[b] = np.isin(seg[c::ss, c::ss], self.dynamic_body_ids)
        return OracleFrames(rgb=rgb, depth=depth, dynamic=dynamic)

    def _render_one(self, pose: np.ndarray, t: float, K: np.ndarray, W: int, H: int, P: list[float]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One full-resolution render: RGB (H, W, 3) uint8, z-depth (H, W) float32, segmentation (H, W) int."""
        self.set_time(t)
        spec = self.spec
        _, _, rgba, zbuf, seg = pb.getCameraImage(
            W, H, _gl(view_matrix(pose)), P, renderer=pb.ER_TINY_RENDERER, shadow=0,
            lightDirection=list(spec.light_direction), lightColor=[1.0, 1.0, 1.0], lightDistance=10.0,
            lightAmbientCoeff=spec.ambient, lightDiffuseCoeff=spec.diffuse, lightSpecularCoeff=0.0,
            physicsClientId=self.client,
        )
        rgb = np.array(np.reshape(rgba, (H, W, 4))[..., :3], dtype=np.uint8)
        zbuf = np.reshape(zbuf, (H, W)).astype(np.float64)
        seg = np.reshape(seg, (H, W))
        near, far = spec.near, spec.far
        empty = (seg < 0) | (zbuf >= 1.0)
        z = far * near / (far - (far - near) * np.where(empty, 0.0, zbuf))
        z = np.where(empty, DEPTH_INVALID, z).astype(np.float32)
        if empty.any():
            rgb[empty] = self._background(pose, K, empty)
        return rgb, z, seg

    def _background(self, pose: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Colours (M, 3) uint8 of the masked pixels: a sky gradient over ray elevation (black for indoor presets)."""
        v, u = np.nonzero(mask)
        if not self.spec.sky:
            return np.zeros((len(u), 3), np.uint8)
        rays = backproject(u.astype(np.float64), v.astype(np.float64), K)
        d = rays @ pose[:3, :3].T
        elev = np.clip(d[:, 2] / np.linalg.norm(d, axis=1), 0.0, 1.0) ** 0.6
        col = np.asarray(SKY_HORIZON)[None] * (1 - elev[:, None]) + np.asarray(SKY_ZENITH)[None] * elev[:, None]
        return np.round(col).astype(np.uint8)

    # -- camera path -----------------------------------------------------------------------------------------------
    def camera_path(self, num_frames: int, fps: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
        """A smooth handheld-like loop through the scene, looking outward and slightly down.

        The loop (an ellipse around the scene centre, one turn over the clip) carries seeded low-frequency sums of
        sines on position (a few cm) and rotation (a few degrees). Objects are placed away from its envelope, so the
        camera keeps >= 0.5 m from all geometry (moving objects included) for every seed.

        Args:
            num_frames: Number of frames ``N`` (>= 1).
            fps: Frame rate; timestamps are ``arange(N) / fps`` seconds.

        Returns:
            ``(poses (N, 4, 4) float64 T_world_camera, timestamps (N,) float64 seconds)``.
        """
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ConfigError(f"camera_path: num_frames must be a positive integer, got {num_frames!r}")
        if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
            raise ConfigError(f"camera_path: fps must be a positive finite number, got {fps!r}")
        n = int(num_frames)
        spec = self.spec.path
        rng = np.random.default_rng([self.seed, zlib.crc32(self.preset.encode()), zlib.crc32(b"camera_path")])
        phase0 = rng.uniform(0, 2 * np.pi)
        s = 2 * np.pi * np.arange(n) / n + phase0  # loop parameter, one turn over the clip

        def wobble(amplitude: float) -> np.ndarray:
            freqs = rng.uniform(0.8, 3.5, size=3)  # cycles per loop
            weights = rng.uniform(0.3, 1.0, size=3)
            phases = rng.uniform(0, 2 * np.pi, size=3)
            weights *= amplitude / weights.sum()
            return (weights[None] * np.sin(freqs[None] * s[:, None] + phases[None])).sum(axis=1)

        dx, dy, dz = (wobble(a) for a in spec.pos_wobble)
        dyaw, dpitch, droll = (wobble(np.deg2rad(a)) for a in spec.rot_wobble_deg)
        a, b = spec.semi_axes
        eye = np.stack([spec.centre[0] + a * np.cos(s) + dx, spec.centre[1] + b * np.sin(s) + dy,
                        spec.height + dz], axis=1)
        yaw = s + np.deg2rad(spec.yaw_offset_deg) + dyaw
        pitch = np.deg2rad(spec.pitch_deg) + dpitch
        fwd = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)
        poses = np.empty((n, 4, 4))
        for i in range(n):
            T = look_at(eye[i], eye[i] + fwd[i])
            T[:3, :3] = T[:3, :3] @ Rotation.from_euler("z", droll[i]).as_matrix()
            poses[i] = T
        return poses, np.arange(n, dtype=np.float64) / float(fps)

    # -- geometry queries ------------------------------------------------------------------------------------------
    def clearance(self, positions: np.ndarray, times: float | np.ndarray = 0.0) -> np.ndarray:
        """Distance from each point to the nearest scene geometry (static and moving objects at ``times``).

        Args:
            positions: ``(M, 3)`` world points, metres.
            times: Scalar or ``(M,)`` scene times in seconds at which moving objects are placed.

        Returns:
            ``(M,)`` float64 metres; ``0`` inside geometry.
        """
        pts = np.asarray(positions, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or not np.isfinite(pts).all():
            raise ConfigError(f"clearance: positions must be a finite (M, 3) array, got shape {pts.shape}")
        ts = np.broadcast_to(np.asarray(times, dtype=np.float64), (pts.shape[0],))
        if not np.isfinite(ts).all():
            raise ConfigError("clearance: times must be finite")
        out = np.full(pts.shape[0], _MAX_CLEARANCE)
        cid = self.client
        for t in np.unique(ts):
            self.set_time(float(t))
            for m in np.nonzero(ts == t)[0]:
                for body in self._bodies:
                    res = pb.getClosestPoints(bodyA=-1, bodyB=body.uid, distance=_MAX_CLEARANCE,
                                              collisionShapeA=self._probe, collisionShapePositionA=list(pts[m]),
                                              physicsClientId=cid)
                    if res:
                        out[m] = min(out[m], min(r[8] for r in res) + _PROBE_RADIUS)
        return np.maximum(out, 0.0)

    # -- Scene -----------------------------------------------------------------------------------------------------
    def make_scene(self, num_frames: int = 60, width: int = 320, height: int = 240, hfov_deg: float = 70.0,
                   fps: float = 15.0, supersample: int = 3, progress: bool = True) -> Scene:
        """Render a ground-truth :class:`~inspatio_sim.scene.Scene` along :meth:`camera_path`.

        Depth and the dynamic mask are exact; confidence is 1 where depth > 0, else 0; K comes from
        :func:`~inspatio_sim.conventions.intrinsics_from_fov`.

        Args:
            num_frames: Number of frames.
            width: Image width in pixels.
            height: Image height in pixels.
            hfov_deg: Horizontal field of view, degrees.
            fps: Frame rate (timestamps ``arange(N) / fps``).
            supersample: Odd supersampling factor (see :meth:`render`).
            progress: Show a tqdm progress bar.
        """
        from tqdm import tqdm

        if not (isinstance(hfov_deg, (int, float, np.number)) and 0 < hfov_deg < 180):
            raise ConfigError(f"make_scene: hfov_deg must be in (0, 180), got {hfov_deg!r}")
        _check_resolution(width, height)
        K = intrinsics_from_fov(int(width), int(height), float(hfov_deg))
        poses, ts = self.camera_path(num_frames, fps)
        frames = np.empty((len(ts), height, width, 3), np.uint8)
        depth = np.empty((len(ts), height, width), np.float32)
        dynamic = np.empty((len(ts), height, width), bool)
        for i in tqdm(range(len(ts)), desc=f"oracle:{self.preset}", unit="frame", disable=not progress):
            out = self.render(poses[i: i + 1], ts[i: i + 1], K, width, height, supersample)
            frames[i], depth[i], dynamic[i] = out.rgb[0], out.depth[0], out.dynamic[0]
        meta = SceneMeta(
            source=f"oracle:{self.preset}", fps=float(fps), scale_origin="exact",
            extra={"preset": self.preset, "seed": self.seed, "num_frames": int(num_frames), "width": int(width),
                   "height": int(height), "hfov_deg": float(hfov_deg), "supersample": int(supersample),
                   "renderer": "pybullet.ER_TINY_RENDERER", "near": self.spec.near, "far": self.spec.far},
        )
        scene = Scene(frames=frames, timestamps=ts, K=K, poses=poses, depth=depth,
                      confidence=(depth > 0).astype(np.float32), dynamic_mask=dynamic, meta=meta)
        scene.validate()
        return scene


def _check_resolution(width: Any, height: Any) -> None:
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name} must be a positive integer number of pixels, got {v!r}")


def _check_render_args(poses: Any, times: Any, K: Any, width: Any, height: Any, supersample: Any
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Validate and normalise :meth:`Oracle.render` arguments; raise :class:`ConfigError` naming the problem."""
    try:
        poses = np.asarray(poses, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"render: poses, times and K must be numeric arrays ({e})") from e
    if poses.shape == (4, 4):
        poses = poses[None]
    check_poses(poses, what="render: poses", error=ConfigError)
    times = np.broadcast_to(times, (poses.shape[0],)) if times.ndim == 0 else times
    if times.shape != (poses.shape[0],):
        raise ConfigError(f"render: times must have shape ({poses.shape[0]},) to match poses, got {times.shape}")
    if not np.isfinite(times).all():
        raise ConfigError("render: times contain NaN or inf")
    check_intrinsics(K, what="render: K", error=ConfigError)
    _check_resolution(width, height)
    if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) or supersample < 1 \
            or supersample % 2 == 0:
        raise ConfigError(f"render: supersample must be an odd positive integer (1, 3, 5, ...), got {supersample!r}")
    return poses, times, K, int(width), int(height), int(supersample)
