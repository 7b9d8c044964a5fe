"""``inspatio-sim view`` in a real headless Chromium (selenium + the system chromedriver).

One server process (the small oracle room, a 64x48 camera) serves every test of this module, in order of use:
the page loads without console errors, the camera image is non-blank and changes while a key is held, the agent
moves the commanded way (read back from the server's JSON state), reset works, a second tab sees the same state,
and the server survives nonsense and a closed tab. A screenshot is kept in ``out/test-artifacts/viewer.png``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inspatio_sim.viewer import browser as B

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts"
W, H = 64 * 5, 48 * 5  # the 64x48 camera as the page shows it (enlarged x5 to 320 pixels wide)
START_TIMEOUT = 240.0  # the World build of a loaded 2-core machine


def _skip_reason() -> str | None:
    if B.browser_paths() is None:
        return "chromium and chromedriver are not installed (`make system-deps` installs them)"
    try:
        import selenium  # noqa: F401
        import viser  # noqa: F401
    except ImportError as e:
        return f"the viewer extra is not installed ({e})"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free on 127.0.0.1 (the page and its API)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
        return int(p)
    raise RuntimeError("no two consecutive free ports")


class Server:
    """``inspatio-sim view`` in a subprocess; its stdout/stderr collected in the background."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "inspatio_sim.cli", "view", "scene=small", "render.camera.width=64",
               "render.camera.height=48", f"viewer.port={_free_port_pair()}", "viewer.max_points=3000", "viewer.fps=10",
               "viewer.key_timeout=2",
               f"viewer.out={tmp}"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        end = time.monotonic() + START_TIMEOUT
        while not any("state API" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                pytest.fail("the viewer did not start:\n" + "".join(self.lines[-30:]))
            time.sleep(0.2)
        line = next(line for line in self.lines if "state API" in line)
        self.url = re.search(r"open (http://\S+)", line).group(1)  # type: ignore[union-attr]
        self.api = re.search(r"state API (http://\S+)/api/state", line).group(1)  # type: ignore[union-attr]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def state(self) -> dict:
        return B.get_state(self.api, timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = Server(tmp_path_factory.mktemp("viewer"))
    yield s
    code = s.stop()
    log = "".join(s.lines)
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def driver(server: Server):
    d = B.make_driver()
    yield d
    d.quit()


def _forward(state: dict) -> np.ndarray:
    """The agent's horizontal heading (unit vector in the world x-y plane)."""
    return np.array([math.cos(state["yaw"]), math.sin(state["yaw"])])


def _hold(driver, key: str, server: Server, steps: int = 4) -> dict:
    """Hold ``key`` in the page until the server made ``steps`` new observations, release, wait for rest."""
    from selenium.webdriver.common.action_chains import ActionChains

    before = server.state()["steps"]
    ActionChains(driver).key_down(key).perform()
    try:
        B.wait_for(lambda: server.state()["steps"] >= before + steps, 60, f"{steps} steps while {key} is held")
    finally:
        ActionChains(driver).key_up(key).perform()
    B.wait_for(lambda: not server.state()["held"], 30, f"{key} to be released")
    return _settled(server)


def _settled(server: Server) -> dict:
    """The state once the agent stopped coasting (no new observation for 0.5 s)."""
    last = server.state()
    while True:
        time.sleep(0.5)
        now = server.state()
        if now["frame_id"] == last["frame_id"]:
            return now
        last = now


def test_page_loads_and_shows_the_camera(server: Server, driver) -> None:
    driver.get(server.url)
    img = B.camera_image(driver, W, H, timeout=60)
    mean, std, _ = B.pixels(driver, img)
    assert 5 < mean < 250 and std > 3, f"blank camera image (mean {mean:.1f}, std {std:.1f})"
    st = server.state()
    assert abs(mean - st["frame_mean"]) < 3, "the page shows another image than the server's"
    assert driver.execute_script("return window.__inspatioKeys") == 1, "the keyboard bridge did not load"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_held_keys_drive_the_agent_the_commanded_way(server: Server, driver) -> None:
    img = B.camera_image(driver, W, H)
    B.focus_page(driver)
    start = _settled(server)
    _, _, checksum0 = B.pixels(driver, img)
    moved = _hold(driver, "w", server)
    step = np.array(moved["position"][:2]) - np.array(start["position"][:2])
    assert step @ _forward(start) > 0.05, f"W moved {step} m, heading {_forward(start)}"
    assert abs(moved["yaw"] - start["yaw"]) < 0.05
    B.wait_for(lambda: B.pixels(driver, B.camera_image(driver, W, H))[2] != checksum0, 20,
               "the page's camera image to change")
    back = _hold(driver, "s", server)
    step = np.array(back["position"][:2]) - np.array(moved["position"][:2])
    assert step @ _forward(moved) < -0.05, f"S moved {step} m"
    turned = _hold(driver, "a", server)
    dyaw = math.remainder(turned["yaw"] - back["yaw"], 2 * math.pi)
    assert dyaw > 0.1, f"A turned by {dyaw:.3f} rad (expected counter-clockwise)"
    assert np.linalg.norm(np.array(turned["position"]) - np.array(back["position"])) < 0.05


def test_reset_and_pause(server: Server, driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    before = _settled(server)
    ActionChains(driver).key_down("r").key_up("r").perform()
    after = B.wait_for(lambda: (s := server.state())["episode"] == before["episode"] + 1 and s, 30, "the reset")
    assert after["position"] != before["position"]
    ActionChains(driver).key_down(" ").key_up(" ").perform()
    B.wait_for(lambda: server.state()["paused"], 10, "pause")
    paused = server.state()
    ActionChains(driver).key_down("w").perform()
    time.sleep(1.0)
    ActionChains(driver).key_up("w").perform()
    assert server.state()["steps"] == paused["steps"], "the agent stepped while paused"
    ActionChains(driver).key_down(" ").key_up(" ").perform()
    B.wait_for(lambda: not server.state()["paused"], 10, "resume")


def test_second_tab_sees_the_same_state_and_closing_it_is_harmless(server: Server, driver) -> None:
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(server.url)
    B.wait_for(lambda: server.state()["clients"] >= 2, 30, "the second client")
    st = _settled(server)
    img2 = B.camera_image(driver, W, H, timeout=60)
    B.wait_for(lambda: abs(B.pixels(driver, img2)[0] - st["frame_mean"]) < 3, 20, "tab 2 to show the state")
    B.focus_page(driver)
    moved = _hold(driver, "w", server)  # driven from tab 2 ...
    assert moved["steps"] > st["steps"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "viewer.png"))
    driver.close()  # ... which then closes
    driver.switch_to.window(first)
    img1 = B.camera_image(driver, W, H)
    B.wait_for(lambda: abs(B.pixels(driver, img1)[0] - moved["frame_mean"]) < 3, 20, "tab 1 to follow tab 2")
    B.wait_for(lambda: server.state()["clients"] == 1, 30, "the closed tab to leave")
    after = _hold(driver, "w", server)  # the server keeps serving the remaining tab
    assert after["steps"] > moved["steps"]


def test_nonsense_is_one_warning_and_no_crash(server: Server) -> None:
    warnings = server.state()["warnings"]
    assert B.post(server.api, "/api/key", b"{not json")[0] == 400
    assert B.post(server.api, "/api/key", {"key": "F13", "down": True})[0] == 400
    assert B.post(server.api, "/api/key", {"key": "w", "down": "yes"})[0] == 400
    assert B.post(server.api, "/api/command", {"cmd": "explode"})[0] == 400
    assert B.post(server.api, "/api/nowhere", {})[0] == 404
    st = server.state()
    assert st["warnings"] == warnings + 5
    assert server.proc.poll() is None
    B.wait_for(lambda: sum("WARNING" in line and "viewer:" in line for line in server.lines) >= 5, 20,
               "the five warning lines in the server's output")


def test_measure_reports_page_rate_and_key_latency(server: Server) -> None:
    """``view --measure``'s measurement against the running server (short)."""
    from types import SimpleNamespace

    result = B.measure(SimpleNamespace(url=server.url, api=server.api, api_url=server.api), seconds=3.0, trials=2)
    assert result["width"] == 64 and result["height"] == 48 and result["model"] == "none"
    assert 0 < result["page_fps"] < 100, result
    assert 0 < result["key_to_image_ms_median"] <= result["key_to_image_ms_max"] < 30_000, result
