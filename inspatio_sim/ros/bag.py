"""rosbag2 recording with rosbags (pure Python, no ROS installation): MCAP or sqlite3, the node's topics and types.

A bag is a directory (``metadata.yaml`` + one storage file named after it), written under a temporary name next
to its destination and renamed when complete, so an interrupted recording never leaves a half-written bag.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from inspatio_sim.errors import ConfigError
from inspatio_sim.fileio import atomic_write
from inspatio_sim.ros import messages as M

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
SUFFIXES = {"mcap": ".mcap", "sqlite3": ".db3"}


def _kit() -> M.MsgKit:
    t = TYPESTORE.types

    def cls(name: str) -> Any:
        return t[name]

    return M.MsgKit(
        Time=cls("builtin_interfaces/msg/Time"), Header=cls("std_msgs/msg/Header"), Image=cls("sensor_msgs/msg/Image"),
        CameraInfo=cls("sensor_msgs/msg/CameraInfo"), RegionOfInterest=cls("sensor_msgs/msg/RegionOfInterest"),
        Odometry=cls("nav_msgs/msg/Odometry"), PoseWithCovariance=cls("geometry_msgs/msg/PoseWithCovariance"),
        TwistWithCovariance=cls("geometry_msgs/msg/TwistWithCovariance"), Pose=cls("geometry_msgs/msg/Pose"),
        Point=cls("geometry_msgs/msg/Point"), Quaternion=cls("geometry_msgs/msg/Quaternion"),
        Twist=cls("geometry_msgs/msg/Twist"), Vector3=cls("geometry_msgs/msg/Vector3"),
        PoseStamped=cls("geometry_msgs/msg/PoseStamped"), Clock=cls("rosgraph_msgs/msg/Clock"),
        TransformStamped=cls("geometry_msgs/msg/TransformStamped"), Transform=cls("geometry_msgs/msg/Transform"),
        TFMessage=cls("tf2_msgs/msg/TFMessage"),
        bytes_u8=lambda a: np.ascontiguousarray(a, dtype=np.uint8).reshape(-1),
        seq_f64=lambda v: np.asarray(v, dtype=np.float64),
        arr_f64=lambda v: np.asarray(v, dtype=np.float64),
    )


ROSBAGS_KIT = _kit()
"""Message classes of the rosbags back-end."""


def bag_location(bag: str | Path, storage: str | None) -> tuple[Path, str]:
    """The bag directory and storage for ``--bag``/``--storage``.

    ``run.mcap`` -> directory ``run/`` holding ``run.mcap`` (storage mcap); ``run.db3`` -> ``run/`` holding
    ``run.db3`` (sqlite3); any other name is the directory itself (storage mcap unless given).
    """
    path = Path(bag)
    suffix = path.suffix.lower()
    if storage is None:
        storage = "sqlite3" if suffix == ".db3" else "mcap"
    if storage not in STORAGES:
        raise ConfigError(f"--storage must be one of {', '.join(STORAGES)}, got '{storage}'")
    if suffix in (".mcap", ".db3"):
        if suffix != SUFFIXES[storage]:
            raise ConfigError(f"--bag {bag} ends in {suffix} but --storage is {storage}")
        path = path.with_suffix("")
    return path, storage


class BagWriter:
    """Writes :class:`~inspatio_sim.ros.messages.StepFrame` s (and the commanded twists) as a rosbag2.

    Topics are absolute (``/camera/image_raw``, ...); timestamps are the frames' stamps (ns). Use as a context
    manager: the bag appears at ``path`` only when the block completes.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        self.path = Path(path)
        if self.path.exists():
            raise ConfigError(f"bag {self.path} exists already; remove it or choose another --bag")
        self._storage = STORAGES[storage]
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._stack = ExitStack()

    def __enter__(self) -> BagWriter:
        with ExitStack() as stack:  # written to a temporary path, moved into place when the block completes
            writer = Writer(stack.enter_context(atomic_write(self.path)), version=9, storage_plugin=self._storage)
            writer.open()
            stack.callback(writer.close)
            for topic, msgtype in M.MSGTYPES.items():
                name = topic if topic.startswith("/") else "/" + topic
                self._conns[topic] = writer.add_connection(name, msgtype, typestore=TYPESTORE)
                self.counts[name] = 0
            self._writer = writer
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Serialise ``msg`` (a rosbags message of ``topic``'s type) at ``stamp_ns``."""
        conn = self._conns[topic]
        self._writer.write(conn, int(stamp_ns), TYPESTORE.serialize_cdr(msg, conn.msgtype))
        self.counts[conn.topic] += 1

    def write_static_tf(self, stamp_ns: int) -> None:
        """``/tf_static``: ``map -> odom`` and ``base_link -> camera_optical_frame``."""
        kit = ROSBAGS_KIT
        self.write(M.TOPIC_TF_STATIC, kit.TFMessage(transforms=M.static_transforms(kit, stamp_ns)), stamp_ns)

    def write_step(self, frame: M.StepFrame, cmd_twist: np.ndarray) -> None:
        """Every topic of one step, plus ``/cmd_vel`` (the commanded body twist, ``(6,)``)."""
        msgs = M.build_messages(ROSBAGS_KIT, frame, depth=True, tf=True)
        msgs[M.TOPIC_CMD_VEL] = M.twist_msg(ROSBAGS_KIT, cmd_twist)
        for topic, msg in msgs.items():
            self.write(topic, msg, frame.stamp_ns)
