"""inspatio_world_node against real ROS 2 (rclpy + Fast DDS, loopback): the node runs in a child process
(`inspatio-sim ros ...`), a probe node in this process subscribes and publishes."""

import importlib.util
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy", reason="ROS 2 wheels absent (pip install -e .[ros]); CI installs them")

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from inspatio_sim.config import compose
from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.ros import messages as M
from inspatio_sim.ros.commands import node_main, ros_settings, simulator_from_config
from inspatio_sim.ros.probe import CmdVelFlood, Probe, node_env, reserve_domain, rss_bytes, start_node, stop_node

RATE = 15
W, H = 64, 48
CMD_TIMEOUT = 0.3
OVERRIDES = ["scene=tiny", f"ros.rate={RATE}", f"render.camera.width={W}", f"render.camera.height={H}",
             "control.region_policy=allow", f"ros.cmd_timeout={CMD_TIMEOUT}", "ros.warn_period=5"]
RADIUS = 0.2  # control.radius
STOP_S = 5.0  # a stop signal ends the node process within this (measured: < 1 s with two busy processes on 2 cores)
ROS2_PKG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "inspatio_ros"


@pytest.fixture(scope="module")
def world_sim():
    """The node's World, built here too: its signed distance field is the ground truth for collisions."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield simulator_from_config(compose(OVERRIDES), dt=1.0 / RATE)
    finally:
        torch.set_num_threads(threads)


def _running_node(log: Path):
    """A node child process and a probe, in a ROS domain of their own; the probe has received the first image."""
    with reserve_domain() as domain:
        proc = start_node(OVERRIDES, log, domain)
        probe = Probe(domain_id=domain)
        try:
            probe.wait_for_node(proc, log, 90.0)
            yield proc, probe, log
        finally:
            probe.close()
            stop_node(proc)


@pytest.fixture(scope="module")
def node(tmp_path_factory, world_sim):
    """A node shared by the tests that only drive it; each leaves it running (none stops it)."""
    yield from _running_node(tmp_path_factory.mktemp("node") / "node.log")


@pytest.fixture
def own_node(tmp_path):
    """A node of the test's own, for tests that stop it or count what it logged."""
    yield from _running_node(tmp_path / "node.log")


def _rate_near(probe: Probe, lowest: float, highest: float, seconds: float, tries: int = 3) -> list[float]:
    """Image rates of up to ``tries`` windows of ``seconds``, stopping at the first inside ``[lowest, highest]`` Hz.

    A busy machine can starve the node for a while (other processes on 2 cores); a node that cannot keep its
    rate at all fails every window.
    """
    rates: list[float] = []
    for _ in range(tries):
        rates.append(probe.window_rate(M.TOPIC_IMAGE, seconds))
        if lowest <= rates[-1] <= highest:
            break
    return rates


def _settle() -> None:
    """Wait until whatever an earlier test commanded has expired (ros.cmd_timeout) and the agent stands still."""
    time.sleep(CMD_TIMEOUT + 3.0 / RATE)


def test_images_arrive_at_the_configured_rate_with_size_encoding_and_camera_info(node):
    _proc, probe, _ = node
    rates = _rate_near(probe, 0.85 * RATE, 1.15 * RATE, 3.2)
    assert 0.85 * RATE <= rates[-1] <= 1.15 * RATE, f"{rates} Hz received, {RATE} Hz configured (ros.rate={RATE})"
    img = probe.topics[M.TOPIC_IMAGE].last
    assert (img.width, img.height, img.encoding, img.step, len(img.data)) == (W, H, "rgb8", 3 * W, 3 * W * H)
    assert img.header.frame_id == M.FRAME_CAMERA and np.frombuffer(bytes(img.data), np.uint8).std() > 5
    info = probe.topics[M.TOPIC_CAMERA_INFO].last
    assert (info.width, info.height, info.header.frame_id) == (W, H, M.FRAME_CAMERA)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), intrinsics_from_fov(W, H, 90.0))
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], intrinsics_from_fov(W, H, 90.0))
    depth = probe.topics[M.TOPIC_DEPTH].last
    d = np.frombuffer(bytes(depth.data), np.float32).reshape(H, W)
    assert (depth.encoding, depth.step) == ("32FC1", 4 * W)
    assert np.isfinite(d).mean() > 0.5 and np.nanmin(d) > 0 and np.nanmax(d) < 20  # metres, inside the room
    # one stamp per step: every odom stamp has an image, a camera info and a pose with the same stamp
    stamps = {t: set(probe.topics[t].stamps) for t in (M.TOPIC_IMAGE, M.TOPIC_CAMERA_INFO, M.TOPIC_POSE)}
    odom_stamps = probe.topics[M.TOPIC_ODOM].stamps[-20:-2]
    for t, s in stamps.items():
        assert sum(o in s for o in odom_stamps) >= len(odom_stamps) - 1, t
    assert probe.odoms[-1][2][2] == pytest.approx(1.4, abs=0.05)  # control.camera_height above the ground z = 0


def test_a_flood_of_cmd_vel_does_not_stall_publishing(node):
    _proc, probe, _ = node
    # zero twists, 1000 per second (67 per tick; unthrottled, the publishing thread alone takes a core of a 2-core
    # machine, so the test would measure the machine; the soak bench floods unthrottled)
    with CmdVelFlood(probe, rate=1000) as flood:
        time.sleep(0.3)
        t0, sent0 = time.perf_counter(), flood.sent
        rates = _rate_near(probe, 0.85 * RATE, math.inf, 2.5)
        per_s = (flood.sent - sent0) / (time.perf_counter() - t0)
    assert per_s > 400, f"only {per_s:.0f} cmd_vel messages per second: not a flood"
    assert rates[-1] >= 0.85 * RATE, f"{rates} Hz during a flood of {per_s:.0f} cmd_vel/s"


def test_nan_twists_are_dropped_and_do_not_move_the_node(node):
    proc, probe, _ = node
    _settle()
    p0, yaw0 = probe.latest_pose()
    n0 = probe.count(M.TOPIC_IMAGE)
    for _ in range(20):
        probe.send_twist((math.nan, 0.0, 0.0), (0.0, 0.0, 0.5))
        probe.send_twist((0.5, 0.0, 0.0), (0.0, 0.0, math.inf))
        time.sleep(0.02)
    time.sleep(0.6)
    p1, yaw1 = probe.latest_pose()
    assert np.all(np.isfinite(p1)) and np.linalg.norm(p1 - p0) < 1e-6 and abs(yaw1 - yaw0) < 1e-6
    assert proc.poll() is None
    assert probe.count(M.TOPIC_IMAGE) - n0 >= 0.8 * RATE * 1.0  # still publishing


def _drive(probe: Probe, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0), seconds: float = 1.0,
           until=None) -> None:
    """Publish a twist at 20 Hz for ``seconds`` (or until ``until()`` holds)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until and until()):
        probe.send_twist(linear, angular)
        time.sleep(0.05)


def test_twist_turns_and_moves_the_pose_in_the_commanded_direction_and_stops_at_a_wall(node, world_sim):
    _proc, probe, _ = node
    occ = world_sim.world.occupancy

    def sdf(points) -> np.ndarray:
        return occ.sdf_at(torch.as_tensor(np.atleast_2d(points), dtype=torch.float32)).numpy()

    _settle()
    p0, yaw0 = probe.latest_pose()
    _drive(probe, angular=(0.0, 0.0, 1.0), seconds=0.6)  # counter-clockwise yaw
    time.sleep(0.6)  # cmd_timeout 0.3 s: the node stops on its own
    p1, yaw1 = probe.latest_pose()
    turned = (yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi
    assert 0.2 < turned < 1.0 and np.linalg.norm(p1 - p0) < 0.01

    heading = np.array([math.cos(yaw1), math.sin(yaw1)])
    n0 = len(probe.odoms)
    def touching() -> bool:
        return bool(RADIUS - 0.03 < sdf(probe.latest_pose()[0])[0] < RADIUS + 0.1)

    _drive(probe, linear=(1.5, 0.0, 0.0), seconds=12.0, until=touching)
    n_contact = len(probe.odoms)
    _drive(probe, linear=(1.5, 0.0, 0.0), seconds=1.5)  # keep pushing: 2.25 m more than the wall allows
    track = np.array([p for _, _, p, _, _ in probe.odoms[n0:]])
    pushed = np.array([p for _, _, p, _, _ in probe.odoms[n_contact:]])
    away = track[np.linalg.norm(track[:, :2] - p1[:2], axis=1) > 0.3]
    assert len(away), "the pose did not move under a forward twist"
    first = (away[0, :2] - p1[:2]) / np.linalg.norm(away[0, :2] - p1[:2])
    assert first @ heading > 0.9, "moved away from the commanded heading"
    # pushed on for 1.5 s after touching geometry, the camera stays on it: neither through it nor away (it may slide)
    d = sdf(pushed)
    assert len(pushed) > 10 and d.max() < RADIUS + 0.12 and d.min() > RADIUS - 0.03, d
    # and it never passed the oracle room's walls (a 6 x 5 m box around the origin)
    assert np.all(np.abs(track[:, 0]) < 3.0 - RADIUS + 0.05) and np.all(np.abs(track[:, 1]) < 2.5 - RADIUS + 0.05)
    assert np.all(np.abs(track[:, 2] - 1.4) < 0.05)  # the ground model keeps the camera height

    probe.send_reset()  # std_msgs/Empty: a new start pose clear of geometry
    time.sleep(0.5)
    p2, _ = probe.latest_pose()
    assert float(occ.sdf_at(torch.as_tensor(p2[None], dtype=torch.float32))[0]) > RADIUS + occ.voxel


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_stop_signal_ends_the_node_at_once_with_code_0_and_nan_warnings_are_throttled(own_node, sig):
    proc, probe, log = own_node
    for _ in range(20):  # 40 bad twists in about 1 s; ros.warn_period=5: one warning (two if a period ends)
        probe.send_twist((math.nan, 0.0, 0.0), (0.0, 0.0, 0.5))
        probe.send_twist((0.5, 0.0, 0.0), (0.0, 0.0, math.inf))
        time.sleep(0.05)
    assert probe.wait_for(lambda: "dropped a cmd_vel with NaN/inf" in log.read_text(), 10.0), log.read_text()
    with CmdVelFlood(probe):  # the signal lands while cmd_vel keeps arriving
        time.sleep(0.3)
        rss = rss_bytes(proc.pid)  # what the soak bench samples
        assert 100 * 2**20 < rss < 8 * 2**30, f"{rss} bytes resident: not torch + rclpy"
        t0 = time.perf_counter()
        code = stop_node(proc, timeout=30.0, sig=sig)
        took = time.perf_counter() - t0
    text = log.read_text()
    assert code == 0 and took < STOP_S, f"exit code {code} after {took:.1f} s; log:\n{text}"
    assert "Traceback" not in text and f"steps ({signal.Signals(sig).name})" in text, text
    assert 1 <= text.count("dropped a cmd_vel with NaN/inf") <= 2, text
    with pytest.raises(ProcessLookupError):
        rss_bytes(proc.pid)


# run in a child process: the World is built over and over after a marker, so a signal lands inside a build
_BUILDING = """
import sys
from inspatio_sim.cli import main
from inspatio_sim.ros import commands

build = commands._build_simulator

def building(*args, **kwargs):
    build(*args, **kwargs)  # a first build fills the scene cache on a fresh clone
    print("test: building the World", flush=True)
    while True:
        build(*args, **kwargs)

commands._build_simulator = building
sys.exit(main(["ros", *sys.argv[1:]]))
"""


def test_ctrl_c_while_the_world_is_built_ends_the_node_at_once_with_one_line(tmp_path, ros_domain):
    sig = signal.SIGINT  # SIGTERM takes the same path (tests/ros/test_shutdown.py)
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _BUILDING, *OVERRIDES], stdout=out, stderr=subprocess.STDOUT,
                                env=node_env(ros_domain))
    try:
        started = Probe.wait_for(lambda: "test: building" in log.read_text() or proc.poll() is not None, 90)
        assert started and proc.poll() is None, log.read_text()
        time.sleep(0.2)
        t0 = time.perf_counter()
        code = stop_node(proc, timeout=30.0, sig=sig)
        took = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert code == 128 + sig and took < STOP_S, f"exit code {code} after {took:.1f} s; log: {lines}"
    name = signal.Signals(sig).name  # one line after the marker (a fresh clone logs the scene generation before)
    assert lines[lines.index("test: building the World") + 1:] == [
        f"WARNING inspatio_sim.ros.commands: stopped by {name} while starting, before ROS started"], lines


def test_sim_time_publishes_clock_and_stamps_every_topic_with_it(world_sim, ros_domain):
    cfg = compose([*OVERRIDES, "ros.sim_time=true"])
    from inspatio_sim.ros.node import WorldNode

    context = rclpy.Context()
    rclpy.init(args=["test"], context=context, domain_id=ros_domain, signal_handler_options=SignalHandlerOptions.NO)
    node = WorldNode(world_sim, ros_settings(cfg), context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin() -> None:
        try:
            while context.ok():
                executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        with Probe(domain_id=ros_domain) as probe:
            assert probe.wait_for(lambda: probe.count(M.TOPIC_CLOCK) >= 5 and probe.count(M.TOPIC_IMAGE) >= 5, 30)
            clock = probe.topics[M.TOPIC_CLOCK].stamps
            dt_ns = round(1e9 / RATE)
            assert all(c % dt_ns == 0 for c in clock) and clock == sorted(clock)
            assert clock[-1] <= node.steps * dt_ns  # simulation time, not wall time
            assert set(probe.topics[M.TOPIC_IMAGE].stamps) <= set(clock) | {node.steps * dt_ns}
            assert node.get_parameter("rate").value == RATE and node.get_parameter("model").value == "none"
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        thread.join(2.0)


def test_the_node_publishes_frames_completed_by_the_classical_model(ros_domain):
    cfg = compose([*OVERRIDES, "ros.model=classical", "ros.sim_time=true"])
    from inspatio_sim.ros.node import WorldNode

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sim = simulator_from_config(cfg, dt=1.0 / RATE)
    assert sim.model is not None and sim.model_config.name == "classical"
    context = rclpy.Context()
    rclpy.init(args=["test"], context=context, domain_id=ros_domain, signal_handler_options=SignalHandlerOptions.NO)
    node = WorldNode(sim, ros_settings(cfg), context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        with Probe(domain_id=ros_domain) as probe:
            end = time.perf_counter() + 60
            while probe.count(M.TOPIC_IMAGE) < 3 and time.perf_counter() < end:
                executor.spin_once(timeout_sec=0.05)
            assert probe.count(M.TOPIC_IMAGE) >= 3
            assert node.get_parameter("model").value == "classical"
            assert int(sim.model.cache.hist_count[0]) >= 1  # the model stepped with the node
            # between ticks, the image stamped with the last tick's simulation time is the model's last completion
            # (images are best effort: if that one is lost, tick once more)
            dt_ns = round(1e9 / RATE)
            for _ in range(5):
                if probe.wait_for(lambda: probe.topics[M.TOPIC_IMAGE].stamps[-1] == node.steps * dt_ns, 2):
                    break
                steps = node.steps
                while node.steps == steps:
                    executor.spin_once(timeout_sec=0.05)
            assert probe.topics[M.TOPIC_IMAGE].stamps[-1] == node.steps * dt_ns
            img = probe.topics[M.TOPIC_IMAGE].last
            published = np.frombuffer(bytes(img.data), np.uint8).reshape(H, W, 3)
            np.testing.assert_array_equal(published, sim.model.last.rgb[0].numpy())
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        torch.set_num_threads(threads)


def test_missing_world_fails_at_startup_with_one_clear_line(caplog):
    out = subprocess.run([sys.executable, "-m", "inspatio_sim.cli", "ros", "scene.path=/nonexistent/world"],
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and "no Scene at '/nonexistent/world'" in lines[0], lines
    # the colcon package's console entry (inspatio_world_node) logs the same single line
    with caplog.at_level(logging.ERROR):
        assert node_main(["scene.path=/nonexistent/world"]) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no Scene at" in errors[0].getMessage()
    with caplog.at_level(logging.ERROR):
        assert node_main(["scene=tiny", "ros.model=star", "model.star.checkpoint=/nonexistent/star.pt"]) == 2
    assert "/nonexistent/star.pt does not exist" in caplog.records[-1].getMessage()
    # the ament_python package's entry point (ros2_ws/src/inspatio_ros) calls the same function
    spec = importlib.util.spec_from_file_location("world_node", ROS2_PKG / "inspatio_ros" / "world_node.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["scene.path=/nonexistent/world"]) == 2
    setup = (ROS2_PKG / "setup.py").read_text()
    assert "inspatio_world_node = inspatio_ros.world_node:main" in setup
    assert "<build_type>ament_python</build_type>" in (ROS2_PKG / "package.xml").read_text()
    assert (ROS2_PKG / "resource" / "inspatio_ros").exists()
