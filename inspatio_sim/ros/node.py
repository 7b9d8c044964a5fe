"""``inspatio_world_node``: an rclpy node over the Simulator (camera topics out, ``cmd_vel`` and ``reset`` in).

A wall-clock timer at ``ros.rate`` Hz drives everything: each tick applies the latest finite ``cmd_vel`` (zero once
it is older than ``ros.cmd_timeout`` s), steps the Simulator by ``dt = 1 / ros.rate`` (so simulated time runs in
real time), renders agent 0 and publishes every topic with one stamp (sim time when ``ros.sim_time``, else the
node's clock). Subscriptions only store the latest command (KEEP_LAST 1), so a flood of ``cmd_vel`` cannot stall
publishing; the executor serves due timers before subscriptions. Frames and topics: :mod:`inspatio_sim.ros.messages`.
"""

from __future__ import annotations

import array
import time
from typing import Any

import numpy as np
import torch
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (
    Point,
    Pose,
    PoseStamped,
    PoseWithCovariance,
    Quaternion,
    Transform,
    TransformStamped,
    Twist,
    TwistWithCovariance,
    Vector3,
)
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Empty, Header

from inspatio_sim.ros import messages as M
from inspatio_sim.simulator import Simulator

try:  # not available as a PyPI wheel; /tf is published only where a ROS 2 installation provides it
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the installation
    TFMessage = None

RCLPY_KIT = M.MsgKit(
    Time=Time, Header=Header, Image=Image, CameraInfo=CameraInfo, RegionOfInterest=RegionOfInterest,
    Odometry=Odometry, PoseWithCovariance=PoseWithCovariance, TwistWithCovariance=TwistWithCovariance, Pose=Pose,
    Point=Point, Quaternion=Quaternion, Twist=Twist, Vector3=Vector3, PoseStamped=PoseStamped, Clock=Clock,
    TransformStamped=TransformStamped, Transform=Transform, TFMessage=TFMessage,
    bytes_u8=lambda a: array.array("B", a.tobytes()),
    seq_f64=lambda v: array.array("d", v),
    arr_f64=lambda v: np.asarray(v, dtype=np.float64),
)
"""Message classes of the rclpy back-end."""

_TYPES = {M.TOPIC_IMAGE: Image, M.TOPIC_CAMERA_INFO: CameraInfo, M.TOPIC_DEPTH: Image, M.TOPIC_ODOM: Odometry,
          M.TOPIC_POSE: PoseStamped}


class WorldNode(Node):
    """The ``inspatio_world_node``: publishes agent 0 of ``sim`` and obeys ``cmd_vel`` / ``reset``.

    Args:
        sim: A Simulator (``ground`` or ``fly`` action model) whose ``dt`` is ``1 / settings.rate``.
        settings: The ``ros`` config node.
        info: Read-only parameters to declare for introspection (e.g. ``scene_path``, ``action_model``).
        context: rclpy context (default: the global one).
    """

    def __init__(self, sim: Simulator, settings: M.RosSettings, info: dict[str, Any] | None = None,
                 context: Any = None, name: str = "inspatio_world_node") -> None:
        super().__init__(name, context=context)
        self.sim = sim
        self.settings = settings
        self.action_model = sim.escm.config.action_model
        self._zero = M.zero_action(self.action_model)
        M.twist_to_action((0, 0, 0), (0, 0, 0), self.action_model)  # rejects discrete early
        self._cmd = self._zero
        self._cmd_time = -float("inf")
        self._reset_requested = False
        self._rng = np.random.default_rng(settings.seed)
        self._frames = M.FrameMaker(settings.depth_no_data)
        self._sim_ns = 0
        self.dropped_cmds = 0
        self.steps = 0
        model = sim.model_config.name
        params = {"rate": float(settings.rate), "model": model, "sim_time": bool(settings.sim_time),
                  "cmd_timeout": float(settings.cmd_timeout), "action_model": self.action_model,
                  "width": int(sim.camera.width), "height": int(sim.camera.height), **(info or {})}
        for key, value in params.items():  # introspection only: set them through the configuration (ros.*, ...)
            self.declare_parameter(key, value, ParameterDescriptor(read_only=True, description="set via hydra config"))

        self._pubs = {t: self.create_publisher(cls, t, qos_profile_sensor_data if t in (M.TOPIC_IMAGE, M.TOPIC_DEPTH)
                                               else 10) for t, cls in _TYPES.items()}
        self._clock_pub = self.create_publisher(Clock, M.TOPIC_CLOCK, 10) if settings.sim_time else None
        self._tf_pub = None
        if settings.publish_tf and TFMessage is not None:
            static_qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                    reliability=ReliabilityPolicy.RELIABLE)
            self._tf_pub = self.create_publisher(TFMessage, M.TOPIC_TF, 10)
            self._tf_static_pub = self.create_publisher(TFMessage, M.TOPIC_TF_STATIC, static_qos)
            self._tf_static_pub.publish(TFMessage(transforms=M.static_transforms(RCLPY_KIT, self._stamp_ns())))
        elif settings.publish_tf:
            self.get_logger().info("tf2_msgs is not importable (no PyPI wheel): /tf is not published; "
                                   "odom and camera/pose carry the same poses")
        self.create_subscription(Twist, M.TOPIC_CMD_VEL, self._on_cmd_vel, QoSProfile(depth=1))
        self.create_subscription(Empty, M.TOPIC_RESET, self._on_reset, 10)
        self.sim.reset(None, [self._rng])
        # a steady clock drives the ticks, whatever use_sim_time says (the node is the source of /clock)
        steady = RosClock(clock_type=ClockType.STEADY_TIME)
        self.timer = self.create_timer(1.0 / settings.rate, self._tick, clock=steady)
        self.get_logger().info(
            f"publishing {sim.camera.width}x{sim.camera.height} at {settings.rate:g} Hz "
            f"({self.action_model} model, sim_time={'on' if settings.sim_time else 'off'}); cmd_vel in")

    # -- inputs --------------------------------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        lin, ang = msg.linear, msg.angular
        action = M.twist_to_action((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z), self.action_model)
        if action is None:
            self.dropped_cmds += 1
            self.get_logger().warning(f"dropped a cmd_vel with NaN/inf ({self.dropped_cmds} so far)",
                                      throttle_duration_sec=self.settings.warn_period)
            return
        self._cmd, self._cmd_time = action, time.monotonic()

    def _on_reset(self, msg: Empty) -> None:
        self._reset_requested = True

    # -- output --------------------------------------------------------------------------------------------------
    def _stamp_ns(self) -> int:
        return self._sim_ns if self.settings.sim_time else self.get_clock().now().nanoseconds

    def _tick(self) -> None:
        """One step: command -> Simulator -> render -> publish, one stamp for every topic."""
        if self._reset_requested:
            self._reset_requested = False
            self.sim.reset(None, [self._rng])
            self._frames.reset()
            self._cmd, self._cmd_time = self._zero, -float("inf")
        fresh = time.monotonic() - self._cmd_time <= self.settings.cmd_timeout
        action = self._cmd if fresh else self._zero
        self.sim.step(torch.as_tensor(action[None], device=self.sim.device))
        self._sim_ns += round(self.sim.dt * 1e9)
        self.steps += 1
        stamp = self._stamp_ns()
        frame = self._frames.capture(self.sim, stamp, self.sim.dt)
        msgs = M.build_messages(RCLPY_KIT, frame, depth=True, tf=self._tf_pub is not None)
        if self._clock_pub is not None:
            self._clock_pub.publish(msgs[M.TOPIC_CLOCK])
        for topic, pub in self._pubs.items():
            pub.publish(msgs[topic])
        if self._tf_pub is not None:
            self._tf_pub.publish(msgs[M.TOPIC_TF])
