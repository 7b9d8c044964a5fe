"""Conversions between Simulator outputs and ROS messages, and the ros.* settings (no middleware needed)."""

import numpy as np
import pytest

from inspatio_sim.config import compose
from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.errors import ConfigError
from inspatio_sim.ros import messages as M
from inspatio_sim.ros.commands import ros_settings


def test_twist_maps_to_the_escm_units_of_each_action_model():
    ground = M.twist_to_action((0.7, 0.3, -0.2), (0.1, 0.2, -0.9), "ground")
    np.testing.assert_allclose(ground, [0.7, -0.9])  # (forward m/s, yaw rate rad/s), physical units
    fly = M.twist_to_action((0.7, 0.3, -0.2), (0.1, 0.2, -0.9), "fly")
    np.testing.assert_allclose(fly, [0.7, 0.3, -0.2, 0.1, 0.2, -0.9])
    for bad in ((float("nan"), 0, 0), (0, float("inf"), 0)):
        assert M.twist_to_action(bad, (0, 0, 0), "ground") is None
        assert M.twist_to_action((0, 0, 0), bad, "fly") is None
    with pytest.raises(ConfigError, match="ground or fly"):
        M.twist_to_action((0, 0, 0), (0, 0, 0), "discrete")


def test_realised_twist_and_frames():
    T0 = np.eye(4)
    T1 = np.eye(4)
    yaw = 0.1
    T1[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
    T1[:3, 3] = [0.2, 0.0, 0.0]
    tw = M.realised_twist(T0, T1, 0.1)
    np.testing.assert_allclose(tw, [2.0, 0, 0, 0, 0, 1.0], atol=1e-9)
    # base_link shares the camera's origin; its x axis is the optical z axis
    T_wc = np.eye(4)
    T_wc[:3, :3] = M.R_BODY_CAMERA
    T_wb = M.base_from_camera_pose(T_wc)
    np.testing.assert_allclose(T_wb, np.eye(4), atol=1e-12)


def test_ros_model_chooses_the_completer():
    assert ros_settings(compose([])).model is None  # null: the model.name key decides
    assert ros_settings(compose(["ros.model=none"])).model == "none"
    assert ros_settings(compose(["ros.model=classical"])).model == "classical"
    assert ros_settings(compose(["ros.model=star"])).model == "star"
    with pytest.raises(ConfigError, match="one of none, classical, star"):
        ros_settings(compose(["ros.model=diffusion"]))
    with pytest.raises(ConfigError, match=r"ros\.rate"):
        ros_settings(compose(["ros.rate=0"]))


def test_rclpy_messages_carry_one_stamp_and_the_render_intrinsics():
    pytest.importorskip("rclpy", reason="ROS 2 wheels absent (pip install -e .[ros])")
    from inspatio_sim.ros.node import RCLPY_KIT

    K = intrinsics_from_fov(64, 48, 90.0)
    depth = np.full((48, 64), np.nan, np.float32)
    depth[10:20] = 2.5
    frame = M.StepFrame(stamp_ns=3_250_000_000, rgb=np.zeros((48, 64, 3), np.uint8), depth=depth, K=K,
                        T_world_camera=np.eye(4), T_world_base=M.base_from_camera_pose(np.eye(4)),
                        twist=np.zeros(6))
    msgs = M.build_messages(RCLPY_KIT, frame)
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for t, m in msgs.items() if t != M.TOPIC_CLOCK}
    assert stamps == {(3, 250_000_000)}
    img, dep, info = msgs[M.TOPIC_IMAGE], msgs[M.TOPIC_DEPTH], msgs[M.TOPIC_CAMERA_INFO]
    assert (img.width, img.height, img.encoding, img.step, len(img.data)) == (64, 48, "rgb8", 192, 64 * 48 * 3)
    assert (dep.encoding, dep.step, dep.header.frame_id) == ("32FC1", 256, M.FRAME_CAMERA)
    d = np.frombuffer(bytes(dep.data), np.float32).reshape(48, 64)
    assert np.all(d[10:20] == 2.5) and np.isnan(d[0, 0])
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), K)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], K)
    assert msgs[M.TOPIC_ODOM].header.frame_id == M.FRAME_ODOM and msgs[M.TOPIC_ODOM].child_frame_id == M.FRAME_BASE
    assert msgs[M.TOPIC_POSE].header.frame_id == M.FRAME_MAP
