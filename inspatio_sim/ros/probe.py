"""A client of ``inspatio_world_node`` for tests and ``bench ros``: the node in a child process, a probe node here.

:func:`start_node` runs ``inspatio-sim ros`` in a subprocess; :class:`Probe` is an rclpy node in its own context,
spun in a background thread, that records receive times and stamps of what the world node publishes and sends
``cmd_vel`` / ``reset``. Receive times are ``time.perf_counter()`` seconds in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Empty

from inspatio_sim.ros import messages as M


def stamp_ns(msg: Any) -> int:
    """Header stamp of a stamped message (nanoseconds)."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def odom_position_yaw(msg: Odometry) -> tuple[np.ndarray, float]:
    """``base_link`` position ``(3,)`` in ``odom`` (metres) and yaw (radians, counter-clockwise from +x)."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    yaw = float(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_euler("ZYX")[0])
    return np.array([p.x, p.y, p.z]), yaw


@dataclass
class Received:
    """Receive times and stamps of one topic, and its latest message."""

    times: list[float] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    last: Any = None

    def add(self, msg: Any, stamp: int) -> None:
        self.last = msg
        self.stamps.append(stamp)
        self.times.append(time.perf_counter())

    def rate(self, since: float, until: float) -> float:
        """Messages per second received in ``[since, until]`` (perf_counter seconds)."""
        n = sum(1 for t in self.times if since <= t <= until)
        return n / (until - since)


class Probe:
    """A probe node (own rclpy context, background spin thread). Use as a context manager.

    Attributes:
        topics: :class:`Received` per topic name of :mod:`inspatio_sim.ros.messages`.
        odoms: ``(receive time, stamp ns, position (3,), yaw, realised yaw rate)`` per ``odom`` message.
    """

    def __init__(self, name: str = "inspatio_probe") -> None:
        self.context = rclpy.Context()
        rclpy.init(args=["inspatio_probe"], context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.topics: dict[str, Received] = {}
        self.odoms: list[tuple[float, int, np.ndarray, float, float]] = []
        sensor = qos_profile_sensor_data
        for topic, cls, qos in ((M.TOPIC_IMAGE, Image, sensor), (M.TOPIC_DEPTH, Image, sensor),
                                (M.TOPIC_CAMERA_INFO, CameraInfo, 10), (M.TOPIC_ODOM, Odometry, 10),
                                (M.TOPIC_POSE, PoseStamped, 10), (M.TOPIC_CLOCK, Clock, 10)):
            rec = self.topics[topic] = Received()
            self.node.create_subscription(cls, topic, self._callback(topic, rec), qos)
        self.cmd_pub = self.node.create_publisher(Twist, M.TOPIC_CMD_VEL, 10)
        self.reset_pub = self.node.create_publisher(Empty, M.TOPIC_RESET, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _callback(self, topic: str, rec: Received) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            if topic == M.TOPIC_CLOCK:
                rec.add(msg, int(msg.clock.sec) * 1_000_000_000 + int(msg.clock.nanosec))
                return
            rec.add(msg, stamp_ns(msg))
            if topic == M.TOPIC_ODOM:
                pos, yaw = odom_position_yaw(msg)
                self.odoms.append((rec.times[-1], rec.stamps[-1], pos, yaw, float(msg.twist.twist.angular.z)))
        return cb

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
        """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def count(self, topic: str) -> int:
        return len(self.topics[topic].times)

    def send_twist(self, linear: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   angular: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        """Publish one ``cmd_vel`` (m/s, rad/s in ``base_link``)."""
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.linear.z = (float(v) for v in linear)
        msg.angular.x, msg.angular.y, msg.angular.z = (float(v) for v in angular)
        self.cmd_pub.publish(msg)

    def send_reset(self) -> None:
        self.reset_pub.publish(Empty())

    def latest_pose(self) -> tuple[np.ndarray, float]:
        """Latest ``odom`` position and yaw."""
        return self.odoms[-1][2], self.odoms[-1][3]

    def latency_to_image(self, yaw_rate: float, timeout: float = 5.0) -> float | None:
        """Seconds from publishing ``cmd_vel`` (yaw rate) to receiving the first image of a step that obeyed it.

        The step is the first one whose ``odom`` reports a non-zero realised yaw rate; its image has the same
        stamp. Call while the agent stands still. ``None`` when nothing arrived within ``timeout``.
        """
        n0 = len(self.odoms)
        t0 = time.perf_counter()
        self.send_twist(angular=(0.0, 0.0, yaw_rate))
        moved: list[int] = []

        def obeyed() -> bool:
            for _, stamp, _, _, rate in self.odoms[n0:]:
                if abs(rate) > 1e-6:
                    moved.append(stamp)
                    return True
            return False

        if not self.wait_for(obeyed, timeout, poll=0.001):
            return None
        images = self.topics[M.TOPIC_IMAGE]
        if not self.wait_for(lambda: moved[0] in images.stamps, timeout, poll=0.001):
            return None
        return images.times[images.stamps.index(moved[0])] - t0

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def start_node(overrides: list[str], log_file: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``inspatio-sim ros OVERRIDES`` in a child process (stdout and stderr to ``log_file``)."""
    log: IO[bytes] = open(log_file, "wb")  # noqa: SIM115 - owned by the child process
    return subprocess.Popen([sys.executable, "-m", "inspatio_sim.cli", "ros", *overrides], stdout=log,
                            stderr=subprocess.STDOUT, env=env or dict(os.environ))


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """Ctrl-C the node (SIGINT) and return its exit code (killed after ``timeout`` s: -9)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return int(proc.returncode)
