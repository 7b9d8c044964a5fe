"""A client of ``inspatio_world_node`` for tests and benches: the node in a child process, a probe node here.

:func:`start_node` runs ``inspatio-sim ros`` in a subprocess and :func:`stop_node` stops it with a signal;
:class:`Probe` is an rclpy node in its own context, spun in a background thread, that records receive times and
stamps of what the world node publishes and sends ``cmd_vel`` / ``reset``. Receive times are
``time.perf_counter()`` seconds in this process. A node and its probe share a ROS domain that no other process
using :func:`reserve_domain` holds meanwhile, on loopback only (:func:`node_env`), so parallel test runs and
benches never see each other's topics.

For soak runs: :meth:`Probe.wait_for_node` (the node is up), :class:`CmdVelFlood` (a background ``cmd_vel``
flood), :meth:`Probe.window_rate` / :meth:`Received.rate` (achieved publish rate), :func:`rss_bytes` (the node's
resident memory from ``/proc/PID/status``), :func:`stop_node` (its exit code).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

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

from inspatio_sim.errors import ConfigError
from inspatio_sim.ros import messages as M

DOMAIN_IDS = range(101, 233)
"""ROS domain ids handed out by :func:`reserve_domain`: the upper part of what Fast DDS allows (0-232), away from
the default 0 and the small ids robots are usually given."""


@contextlib.contextmanager
def reserve_domain() -> Iterator[int]:
    """A ROS domain id held by this process for the ``with`` block (an exclusive lock on a file per id in the
    temporary directory), so concurrent test runs and benches on one machine never share a domain.

    Raises:
        ConfigError: Every id of :data:`DOMAIN_IDS` is held.
    """
    for domain in DOMAIN_IDS:
        lock = open(Path(tempfile.gettempdir()) / f"inspatio-sim-ros-domain-{domain}.lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield domain
        finally:
            lock.close()  # releases the lock
        return
    raise ConfigError(f"every ROS domain id {DOMAIN_IDS.start}-{DOMAIN_IDS.stop - 1} is held by another "
                      "inspatio-sim test or bench; wait for them to end")


def node_env(domain_id: int) -> dict[str, str]:
    """This process's environment for a node child: loopback-only discovery (``ROS_AUTOMATIC_DISCOVERY_RANGE=
    LOCALHOST``) in ROS domain ``domain_id``."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(int(domain_id))
    return env


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
    """A probe node (own rclpy context, background spin thread) in ROS domain ``domain_id`` (default: the
    ``ROS_DOMAIN_ID`` of the environment). Use as a context manager.

    Attributes:
        topics: :class:`Received` per topic name of :mod:`inspatio_sim.ros.messages`.
        odoms: ``(receive time, stamp ns, position (3,), yaw, realised yaw rate)`` per ``odom`` message.
    """

    def __init__(self, name: str = "inspatio_probe", domain_id: int | None = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(args=["inspatio_probe"], context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
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
        self._stop = threading.Event()
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
            while not self._stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, rclpy.executors.ShutdownException):
            pass

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
        """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def wait_for_node(self, proc: subprocess.Popen, log_file: str | Path, timeout: float = 120.0) -> None:
        """Wait until the node of ``proc`` publishes (an image and an ``odom``).

        Raises:
            ConfigError: The node exited or sent nothing within ``timeout`` seconds (the message ends with the
                tail of its log).
        """
        def up() -> bool:
            return proc.poll() is not None or (self.count(M.TOPIC_IMAGE) > 0 and len(self.odoms) > 0)

        self.wait_for(up, timeout)
        if proc.poll() is not None or not up():
            what = f"exited with code {proc.returncode}" if proc.poll() is not None else \
                f"published no image within {timeout:g} s"
            raise ConfigError(f"the ROS node {what}; the end of its log {log_file}:\n"
                              + Path(log_file).read_text(errors="replace")[-2000:])

    def window_rate(self, topic: str, seconds: float, during: Callable[[], None] | None = None,
                    settle: float = 0.2) -> float:
        """Messages per second received on ``topic`` over the next ``seconds`` (the first ``settle`` s not counted).

        ``during`` is called in a loop meanwhile (e.g. to publish); otherwise this sleeps.
        """
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            if during is None:
                time.sleep(0.01)
            else:
                during()
        return self.topics[topic].rate(t0 + settle, end)

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
        """Stop the spin thread, then tear the node and its context down (in that order: the executor is not
        shut down under a running ``spin_once``)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CmdVelFlood:
    """Publish ``cmd_vel`` from a background thread of ``probe`` until closed (a context manager).

    Args:
        probe: The publishing probe.
        linear, angular: The twist sent every time (m/s, rad/s in ``base_link``; zero by default).
        rate: Messages per second, or ``None``: as fast as this process can publish.

    Attributes:
        sent: Messages published so far.
    """

    def __init__(self, probe: Probe, linear: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 angular: tuple[float, float, float] = (0.0, 0.0, 0.0), rate: float | None = None) -> None:
        self.probe, self.linear, self.angular = probe, linear, angular
        self.period = None if rate is None else 1.0 / float(rate)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            self.probe.send_twist(self.linear, self.angular)
            self.sent += 1
            if self.period is not None:
                next_t += self.period
                self._stop.wait(max(0.0, next_t - time.perf_counter()))

    def close(self) -> None:
        """Stop publishing (returns once the thread has ended)."""
        self._stop.set()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> CmdVelFlood:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (``VmRSS`` of ``/proc/PID/status``; Linux).

    Raises:
        ProcessLookupError: No such process (it has exited) or no ``/proc`` on this system.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ProcessLookupError(f"no process {pid} in /proc (exited, or not Linux)") from e
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise ProcessLookupError(f"process {pid} has no VmRSS (a zombie: it has exited)")


def start_node(overrides: list[str], log_file: str | Path, domain_id: int) -> subprocess.Popen:
    """Start ``inspatio-sim ros OVERRIDES`` in a child process in ROS domain ``domain_id`` on loopback (stdout and
    stderr to ``log_file``)."""
    with open(log_file, "wb") as log:  # the child holds its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "inspatio_sim.cli", "ros", *overrides], stdout=log,
                                stderr=subprocess.STDOUT, env=node_env(domain_id))


def stop_node(proc: subprocess.Popen, timeout: float = 15.0, sig: int = signal.SIGINT) -> int:
    """Stop the node with ``sig`` (default SIGINT, as Ctrl-C) and return its exit code: 0 after a clean stop,
    128 + signal before ROS started, -9 when it had to be killed after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return int(proc.returncode)
