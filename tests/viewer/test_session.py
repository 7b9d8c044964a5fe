"""The viewer's session without a browser: keys -> actions -> motion, commands, views, recording, nonsense."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspatio_sim.assemble import world_from_config
from inspatio_sim.config import compose
from inspatio_sim.config_schema import ViewerConfig
from inspatio_sim.errors import ConfigError
from inspatio_sim.viewer.session import ViewerSession

OVERRIDES = ["scene=small", "render.camera.width=32", "render.camera.height=24"]


@pytest.fixture(scope="module")
def world():
    return world_from_config(compose(["scene=small"]))  # held: every session of this module shares the World


def _session(tmp_path: Path, *extra: str, **settings) -> ViewerSession:
    settings.setdefault("key_timeout", 60.0)  # a loaded machine: held keys must not expire between two steps
    return ViewerSession([*OVERRIDES, *extra], replace(ViewerConfig(), out=str(tmp_path), **settings))


def _steps(s: ViewerSession, n: int) -> None:
    for _ in range(n):
        for k in list(s.held):  # as the page does every 150 ms while a key is down
            s.key(k, True)
        s.tick()


def test_keys_drive_forward_back_and_turn(world, tmp_path: Path) -> None:
    s = _session(tmp_path)
    start = s.state()
    heading = np.array([math.cos(start["yaw"]), math.sin(start["yaw"])])
    assert not s.tick(), "no key held: the agent at rest does not step"
    assert s.key("W", True)
    np.testing.assert_allclose(s.action(), [1.0, 0.0])
    _steps(s, 4)
    moved = s.state()
    assert (np.array(moved["position"][:2]) - start["position"][:2]) @ heading > 0.05
    assert moved["steps"] == 4 and moved["frame_id"] == start["frame_id"] + 4
    s.key("w", False)
    s.key("a", True)
    np.testing.assert_allclose(s.action(), [0.0, 1.0])
    _steps(s, 4)
    assert math.remainder(s.state()["yaw"] - moved["yaw"], 2 * math.pi) > 0.1
    s.key("a", False)
    s.key("d", True)
    s.key("s", True)
    np.testing.assert_allclose(s.action(), [-1.0, -1.0])
    s.key("*", False)
    assert not s.held
    s.close()


def test_fly_and_discrete_key_maps(world, tmp_path: Path) -> None:
    fly = _session(tmp_path, "control.action_model=fly")
    fly.key("q", True)
    fly.key("w", True)
    np.testing.assert_allclose(fly.action(), [1, 0, 1, 0, 0, 0])
    z0 = fly.state()["position"][2]
    _steps(fly, 3)
    assert fly.state()["position"][2] > z0 + 0.02
    fly.close()
    disc = _session(tmp_path, "control.action_model=discrete")
    disc.key("w", True)
    disc.key("w", True)  # still held (a re-send): not a second press
    assert list(disc.pending) == [1]
    assert disc.tick() and not disc.tick()
    disc.key("w", False)
    disc.key("a", True)
    assert list(disc.pending) == [2]
    disc.close()


def test_a_key_whose_release_is_lost_is_let_go(world, tmp_path: Path) -> None:
    s = _session(tmp_path, key_timeout=0.2)
    s.key("w", True)
    assert s.action()[0] == 1.0
    time.sleep(0.3)
    assert s.action()[0] == 0.0 and not s.held
    s.close()


def test_commands_reset_pause_task_policy(world, tmp_path: Path) -> None:
    s = _session(tmp_path)
    assert s.command("reset")
    s.tick()
    assert s.state()["episode"] == 2
    s.key("space", True)
    s.key("w", True)
    assert s.state()["paused"] and not s.tick()
    s.key("space", False)
    s.key("space", True)
    assert not s.state()["paused"]
    assert s.command("task", "pointnav")
    s.tick()
    st = s.state()
    assert st["task"] == "pointnav" and len(st["goal"]) == 3
    m = s.top_down()
    assert m.ndim == 3 and m.dtype == np.uint8 and (m == (0, 200, 0)).all(-1).any(), "the goal is on the map"
    assert s.command("policy", "random")
    s.key("*", False)
    before = s.state()["steps"]
    s.tick()
    assert s.state()["policy"] == "random" and s.state()["steps"] == before + 1
    warnings = s.warnings
    assert s.command("policy", "oracle")  # valid name: queued; the missing hook is one warning when it runs
    s.tick()
    assert s.warnings == warnings + 1 or s.state()["policy"] == "oracle"
    s.close()


def test_nonsense_is_refused_with_a_warning(world, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = _session(tmp_path)
    for key, down in (("F13", True), (None, True), ("w", "yes"), (["w"], False)):
        assert not s.key(key, down)
    for name, value in (("explode", None), ("task", "chess"), ("policy", 3), ("press", "z"), (None, None)):
        assert not s.command(name, value)
    assert s.warnings == 9
    assert sum("viewer:" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 9
    assert s.tick() is False  # nothing queued, nothing held
    s.close()


def test_views(world, tmp_path: Path) -> None:
    s = _session(tmp_path)
    depth = np.asarray(s.obs["depth"])[..., 0]
    for name in ("rgb", "depth", "holes", "completer"):
        v = s.view(name)
        assert v.shape == (24, 32, 3) and v.dtype == np.uint8
    holes = s.view("holes")
    assert ((holes == (255, 0, 255)).all(-1) == (depth <= 0)).all() or (depth <= 0).sum() == 0
    d = s.view("depth")
    assert (d[depth <= 0] == 0).all() and d[depth > 0].min() > 0
    s.close()


def test_completer_view_with_the_classical_model(world, tmp_path: Path) -> None:
    s = _session(tmp_path, "model=classical")
    s.key("w", True)
    _steps(s, 2)
    st = s.state()
    assert st["model"] == "classical"
    last = s.sim.model.last
    filled = last.filled[0].cpu().numpy()
    rgb, view = s.view("rgb"), s.view("completer")
    assert view.shape == rgb.shape
    assert (view[~filled] == rgb[~filled]).all(), "pixels the model did not fill are shown as they are"
    assert filled.any(), "the small room at 32x24 has holes the model fills (seed 0)"
    assert (view[filled] != rgb[filled]).any(axis=-1).mean() > 0.5, "filled pixels are tinted"
    s.close()


def test_recording_writes_the_shown_frames(world, tmp_path: Path) -> None:
    s = _session(tmp_path)
    assert s.command("record", True)
    s.key("w", True)
    _steps(s, 5)  # the first tick starts the recording (with the current frame), then steps
    s.key("w", False)
    s.set_recording(False)
    path = Path(s.last_recording)
    assert path.parent == tmp_path and path.suffix == ".mp4"
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 32
    cap.release()
    s.close()


def test_recording_a_bag(world, tmp_path: Path) -> None:
    pytest.importorskip("rosbags", reason="the ros extra (rosbags) is not installed")
    from rosbags.highlevel import AnyReader

    s = _session(tmp_path, record_bag=True)
    s.command("record", True)
    s.key("w", True)
    _steps(s, 3)
    s.set_recording(False)
    bag = next(tmp_path.glob("view-*/view-*.mcap")).parent
    with AnyReader([bag]) as reader:
        topics = [c.topic for c, _, _ in reader.messages()]
    assert topics.count("/camera/image_raw") == 4 and topics.count("/odom") == 4 and "/tf_static" in topics
    s.close()


def test_viewer_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"viewer\.task"):
        ViewerConfig(task="chess").validate()
    with pytest.raises(ConfigError, match=r"viewer\.fps"):
        ViewerConfig(fps=0).validate()
    with pytest.raises(ConfigError, match=r"viewer\.port"):
        ViewerConfig(port=70000).validate()
