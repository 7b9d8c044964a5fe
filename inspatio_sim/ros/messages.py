"""What the node and the recorder publish, as plain data, and one builder for both message back-ends.

Frames (REP-103 axes, REP-105 names):
  * ``map``: the World frame (gravity-aligned, x forward, y left, z up, metres);
  * ``odom``: identical to ``map`` (the simulator's odometry is perfect; ``map -> odom`` is the identity);
  * ``base_link``: the agent's body at the camera centre (x forward, y left, z up; its orientation is the ESCM's
    ``Rz(yaw) Ry(pitch) Rx(roll)``);
  * ``camera_optical_frame``: OpenCV optical axes (x right, y down, z forward) at the same origin as ``base_link``.

Topics (relative names resolve under the node's namespace): ``camera/image_raw`` (rgb8), ``camera/camera_info``,
``camera/depth/image_raw`` (32FC1 z-depth in metres), ``odom`` (pose of ``base_link`` in ``odom``, realised body
twist in ``base_link``), ``camera/pose`` (``T_world_camera`` as a PoseStamped in ``map``), ``/clock`` (sim time),
``/tf`` and ``/tf_static``. Every message of one step carries the same stamp.

This module imports neither rclpy nor rosbags: :func:`build_messages` takes a namespace of message classes
(:class:`MsgKit`) so the node (rclpy classes) and the recorder (rosbags classes) build identical messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from inspatio_sim.conventions import R_BODY_CAMERA
from inspatio_sim.errors import ConfigError

FRAME_MAP = "map"
FRAME_ODOM = "odom"
FRAME_BASE = "base_link"
FRAME_CAMERA = "camera_optical_frame"

TOPIC_IMAGE = "camera/image_raw"
TOPIC_CAMERA_INFO = "camera/camera_info"
TOPIC_DEPTH = "camera/depth/image_raw"
TOPIC_ODOM = "odom"
TOPIC_POSE = "camera/pose"
TOPIC_CLOCK = "/clock"
TOPIC_TF = "/tf"
TOPIC_TF_STATIC = "/tf_static"
TOPIC_CMD_VEL = "cmd_vel"
TOPIC_RESET = "reset"

MSGTYPES: dict[str, str] = {
    TOPIC_IMAGE: "sensor_msgs/msg/Image",
    TOPIC_CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    TOPIC_DEPTH: "sensor_msgs/msg/Image",
    TOPIC_ODOM: "nav_msgs/msg/Odometry",
    TOPIC_POSE: "geometry_msgs/msg/PoseStamped",
    TOPIC_CLOCK: "rosgraph_msgs/msg/Clock",
    TOPIC_TF: "tf2_msgs/msg/TFMessage",
    TOPIC_TF_STATIC: "tf2_msgs/msg/TFMessage",
    TOPIC_CMD_VEL: "geometry_msgs/msg/Twist",
}
"""ROS 2 type of every topic the node publishes (and ``cmd_vel``, which the recorder also writes)."""

MODELS = ("none", "classical", "star")
DEPTH_NO_DATA = ("nan", "zero")


@dataclass
class RosSettings:
    """The ``ros`` config node (schema: ``inspatio_sim.config_schema.RosSection``, which adds ``ros.bench``)."""

    rate: float = 10.0  # publish rate (Hz); the node steps the Simulator once per tick with dt = 1/rate
    model: str | None = None  # world-model completer of the node: none | classical | star (null: the model.name key)
    sim_time: bool = False  # publish /clock (rosgraph_msgs/Clock) and stamp every message with simulation time
    cmd_timeout: float = 0.5  # seconds after the last cmd_vel until the node commands zero velocity
    seed: int = 0  # seed of the start pose and of the poses drawn on reset
    depth_no_data: str = "nan"  # depth pixels without data: nan (REP 118) or zero (the project's convention)
    publish_tf: bool = True  # publish /tf and /tf_static when tf2_msgs is importable (it has no PyPI wheel)
    warn_period: float = 2.0  # seconds between repeated warnings (dropped NaN/inf cmd_vel)
    threads: int = 1  # CPU threads of torch and the renderer (ros, record; 1 leaves cores to DDS; 0 = render.threads)

    def validate(self) -> None:
        if self.model is not None and self.model not in MODELS:
            raise ConfigError(f"ros.model must be one of {', '.join(MODELS)} or null, got '{self.model}'")
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and 0 < self.rate <= 1000):
            raise ConfigError(f"ros.rate must be a publish rate in (0, 1000] Hz, got {self.rate}")
        if not self.cmd_timeout > 0:
            raise ConfigError(f"ros.cmd_timeout must be > 0 seconds, got {self.cmd_timeout}")
        if int(self.threads) < 0:
            raise ConfigError(f"ros.threads must be >= 0 (0 = torch's default), got {self.threads}")
        if self.depth_no_data not in DEPTH_NO_DATA:
            raise ConfigError(f"ros.depth_no_data must be one of {', '.join(DEPTH_NO_DATA)}, "
                              f"got '{self.depth_no_data}'")


def twist_to_action(linear: tuple[float, float, float], angular: tuple[float, float, float],
                    action_model: str) -> np.ndarray | None:
    """A Twist in ``base_link`` (m/s, rad/s) as one agent's ESCM action, or ``None`` when it is not finite.

    ``ground``: ``(linear.x, angular.z)`` = (forward speed m/s, yaw rate rad/s, counter-clockwise positive); the
    other components are ignored. ``fly``: the full body twist ``(vx, vy, vz, wx, wy, wz)``. The ESCM applies its
    speed and acceleration limits (``control.max_*``); units are physical, not normalised like the Gymnasium envs.
    """
    values = np.array([*linear, *angular], dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    if action_model == "ground":
        return np.array([values[0], values[5]], dtype=np.float32)
    if action_model == "fly":
        return values.astype(np.float32)
    raise ConfigError(f"cmd_vel drives control.action_model=ground or fly, not '{action_model}'")


def zero_action(action_model: str) -> np.ndarray:
    """The action that commands no motion."""
    return np.zeros(2 if action_model == "ground" else 6, dtype=np.float32)


@dataclass
class StepFrame:
    """One step's sensor data and state (agent 0), in the frames of the module docstring.

    Attributes:
        stamp_ns: Stamp of every message of the step (nanoseconds; sim time or wall time).
        rgb: ``(H, W, 3)`` uint8 RGB.
        depth: ``(H, W)`` float32 z-depth in metres; pixels without data hold NaN or 0 (``ros.depth_no_data``).
        K: ``(3, 3)`` intrinsics in pixels (pixel centres at integer coordinates, as ROS CameraInfo).
        T_world_camera: ``(4, 4)`` camera-to-``map`` transform (optical camera axes).
        T_world_base: ``(4, 4)`` ``base_link``-to-``map`` transform.
        twist: ``(6,)`` realised body twist ``(vx, vy, vz, wx, wy, wz)`` in ``base_link`` (m/s, rad/s).
    """

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    T_world_camera: np.ndarray
    T_world_base: np.ndarray
    twist: np.ndarray


def base_from_camera_pose(T_world_camera: np.ndarray) -> np.ndarray:
    """``T_world_base`` of a camera pose: same origin, body (REP-103) axes."""
    T = np.array(T_world_camera, dtype=np.float64, copy=True)
    T[:3, :3] = T[:3, :3] @ R_BODY_CAMERA.T
    return T


def realised_twist(T_prev: np.ndarray | None, T_new: np.ndarray, dt: float) -> np.ndarray:
    """Body twist ``(6,)`` in the previous ``base_link`` frame that moved ``T_prev`` to ``T_new`` in ``dt`` s."""
    if T_prev is None or dt <= 0:
        return np.zeros(6)
    R = T_prev[:3, :3]
    v = R.T @ (T_new[:3, 3] - T_prev[:3, 3]) / dt
    w = Rotation.from_matrix(R.T @ T_new[:3, :3]).as_rotvec() / dt
    return np.r_[v, w]


class FrameMaker:
    """Turns the Simulator's agent 0 into :class:`StepFrame` s (renders it; keeps the previous pose for the twist).

    Args:
        depth_no_data: ``nan`` (REP 118) or ``zero`` (the project's convention) for pixels without depth.
    """

    def __init__(self, depth_no_data: str = "nan") -> None:
        self.depth_no_data = depth_no_data
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous pose (after a reset the twist starts at zero)."""
        self._prev = None

    def capture(self, sim: Any, stamp_ns: int, dt: float) -> StepFrame:
        """Render agent 0 of ``sim`` and package its state."""
        out = sim.observe()
        rgb = out.rgb[0].cpu().numpy()
        depth = out.depth[0].float().cpu().numpy()
        if self.depth_no_data == "nan":
            depth = np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)
        T_wc = sim.poses()[0].double().cpu().numpy()
        T_wb = base_from_camera_pose(T_wc)
        twist = realised_twist(self._prev, T_wb, dt)
        self._prev = T_wb
        return StepFrame(stamp_ns=int(stamp_ns), rgb=np.ascontiguousarray(rgb), depth=np.ascontiguousarray(depth),
                         K=np.asarray(sim.K, dtype=np.float64), T_world_camera=T_wc, T_world_base=T_wb, twist=twist)


@dataclass
class MsgKit:
    """Message classes and field adapters of one back-end (rclpy or rosbags); attribute names = ROS type names.

    ``bytes_u8`` turns a uint8 numpy array into the back-end's ``uint8[]``; ``seq_f64`` a float list into its
    ``float64[]`` (variable length); ``arr_f64`` into its fixed-size ``float64[N]``.
    """

    Time: Any
    Header: Any
    Image: Any
    CameraInfo: Any
    RegionOfInterest: Any
    Odometry: Any
    PoseWithCovariance: Any
    TwistWithCovariance: Any
    Pose: Any
    Point: Any
    Quaternion: Any
    Twist: Any
    Vector3: Any
    PoseStamped: Any
    Clock: Any
    TransformStamped: Any
    Transform: Any
    TFMessage: Any | None
    bytes_u8: Callable[[np.ndarray], Any]
    seq_f64: Callable[[list[float]], Any]
    arr_f64: Callable[[list[float]], Any]


def _time(kit: MsgKit, ns: int) -> Any:
    return kit.Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def _header(kit: MsgKit, ns: int, frame: str) -> Any:
    return kit.Header(stamp=_time(kit, ns), frame_id=frame)


def _pose(kit: MsgKit, T: np.ndarray) -> Any:
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    return kit.Pose(position=kit.Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                    orientation=kit.Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))


def _transform(kit: MsgKit, ns: int, parent: str, child: str, T: np.ndarray) -> Any:
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    tr = kit.Transform(translation=kit.Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                       rotation=kit.Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))
    return kit.TransformStamped(header=_header(kit, ns, parent), child_frame_id=child, transform=tr)


def _vec3(kit: MsgKit, v: np.ndarray) -> Any:
    return kit.Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def twist_msg(kit: MsgKit, twist: np.ndarray) -> Any:
    """A ``geometry_msgs/Twist`` of a ``(6,)`` body twist."""
    return kit.Twist(linear=_vec3(kit, twist[:3]), angular=_vec3(kit, twist[3:]))


def image_msg(kit: MsgKit, ns: int, array: np.ndarray, encoding: str) -> Any:
    """``sensor_msgs/Image`` of an ``(H, W, 3)`` uint8 (``rgb8``) or ``(H, W)`` float32 (``32FC1``) array."""
    h, w = array.shape[:2]
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return kit.Image(header=_header(kit, ns, FRAME_CAMERA), height=h, width=w, encoding=encoding,
                     is_bigendian=0, step=int(data.size // h), data=kit.bytes_u8(data))


def camera_info_msg(kit: MsgKit, ns: int, K: np.ndarray, width: int, height: int) -> Any:
    """``sensor_msgs/CameraInfo``: pinhole ``K`` (no distortion, ``plumb_bob`` with zeros), ``P = [K | 0]``."""
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = kit.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return kit.CameraInfo(header=_header(kit, ns, FRAME_CAMERA), height=int(height), width=int(width),
                          distortion_model="plumb_bob", d=kit.seq_f64([0.0] * 5),
                          k=kit.arr_f64(np.asarray(K, np.float64).reshape(-1).tolist()),
                          r=kit.arr_f64(np.eye(3).reshape(-1).tolist()), p=kit.arr_f64(P.reshape(-1).tolist()),
                          binning_x=0, binning_y=0, roi=roi)


def static_transforms(kit: MsgKit, ns: int) -> list[Any]:
    """``map -> odom`` (identity) and ``base_link -> camera_optical_frame`` (axis change only)."""
    T_bc = np.eye(4)
    T_bc[:3, :3] = R_BODY_CAMERA
    return [_transform(kit, ns, FRAME_MAP, FRAME_ODOM, np.eye(4)), _transform(kit, ns, FRAME_BASE, FRAME_CAMERA, T_bc)]


def build_messages(kit: MsgKit, frame: StepFrame, depth: bool = True, tf: bool = True) -> dict[str, Any]:
    """Every message of one step, keyed by topic (see :data:`MSGTYPES`), all with ``frame.stamp_ns``."""
    ns = frame.stamp_ns
    h, w = frame.rgb.shape[:2]
    zeros36 = [0.0] * 36
    odom = kit.Odometry(
        header=_header(kit, ns, FRAME_ODOM), child_frame_id=FRAME_BASE,
        pose=kit.PoseWithCovariance(pose=_pose(kit, frame.T_world_base), covariance=kit.arr_f64(zeros36)),
        twist=kit.TwistWithCovariance(twist=twist_msg(kit, frame.twist), covariance=kit.arr_f64(zeros36)))
    msgs: dict[str, Any] = {
        TOPIC_CLOCK: kit.Clock(clock=_time(kit, ns)),
        TOPIC_IMAGE: image_msg(kit, ns, frame.rgb, "rgb8"),
        TOPIC_CAMERA_INFO: camera_info_msg(kit, ns, frame.K, w, h),
        TOPIC_ODOM: odom,
        TOPIC_POSE: kit.PoseStamped(header=_header(kit, ns, FRAME_MAP), pose=_pose(kit, frame.T_world_camera)),
    }
    if depth:
        msgs[TOPIC_DEPTH] = image_msg(kit, ns, frame.depth.astype(np.float32), "32FC1")
    if tf and kit.TFMessage is not None:
        msgs[TOPIC_TF] = kit.TFMessage(transforms=[_transform(kit, ns, FRAME_ODOM, FRAME_BASE, frame.T_world_base)])
    return msgs
