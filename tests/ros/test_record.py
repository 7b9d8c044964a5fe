"""`inspatio-sim record`: a Simulator rollout written as rosbag2 (MCAP and sqlite3) and read back with rosbags."""

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags absent (pip install -e .[ros])")

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from inspatio_sim.cli import main
from inspatio_sim.conventions import intrinsics_from_fov

STEPS = 6
PER_STEP = {
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/camera/depth/image_raw": "sensor_msgs/msg/Image",
    "/odom": "nav_msgs/msg/Odometry",
    "/camera/pose": "geometry_msgs/msg/PoseStamped",
    "/clock": "rosgraph_msgs/msg/Clock",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/cmd_vel": "geometry_msgs/msg/Twist",
}


def _read(path):
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        msgs: dict[str, list] = {}
        for conn, t, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return types, msgs


@pytest.mark.parametrize("bag,storage,extra", [
    ("run.mcap", None, []),
    ("run.db3", None, ["--policy", "random", "control.action_model=fly"]),
    ("rundir", "sqlite3", []),
])
def test_record_writes_a_bag_that_reads_back(tmp_path, capsys, bag, storage, extra):
    args = ["record", "--bag", str(tmp_path / bag), "--steps", str(STEPS), "scene=tiny", "render.camera.width=64",
            "render.camera.height=48", "control.region_policy=allow", *extra]
    args += ["--storage", storage] if storage else []
    assert main(args) == 0
    bagdir = tmp_path / bag.split(".")[0]
    suffix = ".db3" if (storage == "sqlite3" or bag.endswith(".db3")) else ".mcap"
    assert (bagdir / "metadata.yaml").exists() and (bagdir / f"{bagdir.name}{suffix}").exists()
    assert "recorded 6 steps" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary bag left behind"

    types, msgs = _read(bagdir)
    assert types == {**PER_STEP, "/tf_static": "tf2_msgs/msg/TFMessage"}
    assert {t: len(v) for t, v in msgs.items()} == {**{t: STEPS for t in PER_STEP}, "/tf_static": 1}
    dt_ns = 100_000_000  # control.dt
    for topic in ("/camera/image_raw", "/odom", "/camera/pose", "/camera/depth/image_raw"):
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in msgs[topic]]
        assert stamps == [dt_ns * (i + 1) for i in range(STEPS)]
        assert [t for t, _ in msgs[topic]] == stamps
    img = msgs["/camera/image_raw"][-1][1]
    assert (img.width, img.height, img.encoding, img.step, img.data.size) == (64, 48, "rgb8", 192, 64 * 48 * 3)
    assert img.data.std() > 5  # a rendered view, not a blank image
    depth = msgs["/camera/depth/image_raw"][-1][1]
    d = depth.data.view(np.float32).reshape(48, 64)
    assert depth.encoding == "32FC1" and np.nanmedian(d) > 0.1 and np.isfinite(d).mean() > 0.5
    info = msgs["/camera/camera_info"][0][1]
    np.testing.assert_allclose(info.k.reshape(3, 3), intrinsics_from_fov(64, 48, 90.0))
    p = np.array([[m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z] for _, m in msgs["/odom"]])
    assert np.linalg.norm(np.diff(p, axis=0), axis=1).sum() > 0.05  # the agent moved


def test_record_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["record", "--bag", str(tmp_path / "run.mcap"), "--steps", "2", "scene=tiny"]) == 2
    assert "exists already" in capsys.readouterr().err
