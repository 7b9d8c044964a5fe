"""``inspatio-sim view``: the page (viser) and the small JSON API beside it, over one :class:`ViewerSession`.

Why viser: it is the web viewer nerfstudio uses, maintained, pip-installable with no build step, and it gives the
3D overview (point clouds, frustums, lines with an orbit camera) and the control panel (images, buttons, dropdowns)
over one websocket, so no WebGL or front-end code is written here. viser has no raw keyboard events (its command
hotkeys fire on key-down only, so "hold W to walk" cannot be built on them, and its own orbit camera moves with
W/A/S/D/Q/E); the page therefore carries a few lines
of JavaScript (in a viser HTML element) that post key-down / key-up to the JSON API, re-sending held keys every
150 ms so that a key whose release is lost (tab closed) is let go after ``viewer.key_timeout``. They take the
driving keys before viser's camera does (capture phase); the arrow keys and the mouse still move the 3D view.

The JSON API (``http://HOST:API_PORT``, ``viewer.api_port``, default the page's port + 1; CORS-open, local use):

* ``GET /api/state``: the session's state (pose, frame id and hash, frames/s, step latency, task, goal, ...);
* ``POST /api/key`` ``{"key": "w", "down": true}``: a key event (keys ``w s a d q e r space``; ``*`` up = all up);
* ``POST /api/command`` ``{"cmd": "reset" | "pause" | "task" | "policy" | "record" | "press", "value": ...}``.

Malformed requests get HTTP 400 and one warning line; the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch

from inspatio_sim.errors import ConfigError, InSpatioError
from inspatio_sim.viewer.session import POLICIES, TASKS, VIEWS, ViewerSession

log = logging.getLogger(__name__)

MIN_IDLE_S = 0.005
SCENE_PERIOD_S = 0.3  # shortest time between two updates of the 3D overview and the map (each re-renders the 3D view)
DISPLAY_WIDTH = 320  # cameras narrower than this are shown enlarged by an integer factor (pixels)
_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
KEYBOARD_JS = """if(!window.__inspatioKeys){window.__inspatioKeys=1;
var api=location.protocol+'//'+location.hostname+':__API__/api/key',held={};
var names={w:'w',s:'s',a:'a',d:'d',q:'q',e:'e',r:'r',' ':'space'};
function send(k,d){fetch(api,{method:'POST',body:JSON.stringify({key:k,down:d}),keepalive:true}).catch(function(){});}
function typing(t){return t&&(t.tagName==='INPUT'||t.tagName==='TEXTAREA'||t.isContentEditable);}
window.addEventListener('keydown',function(ev){
var k=names[ev.key.toLowerCase()];if(!k||typing(ev.target)||ev.ctrlKey||ev.metaKey)
return;ev.preventDefault();ev.stopPropagation();if(!held[k]){held[k]=1;window.__inspatioLastKey=performance.now();send(k,true);}},true);
window.addEventListener('keyup',function(ev){var k=names[ev.key.toLowerCase()];if(!k||typing(ev.target))return;
ev.stopPropagation();delete held[k];send(k,false);},true);
window.addEventListener('blur',function(){held={};send('*',false);});
setInterval(function(){for(var k in held){if(k!=='r'&&k!=='space')send(k,true);}},150);}"""


def keyboard_html(api_port: int) -> str:
    """The page's keyboard bridge: a viser HTML element whose image runs :data:`KEYBOARD_JS` once loaded (HTML
    inserted by React does not run ``<script>`` tags; an ``onload`` handler does; inside it, a bare
    ``addEventListener`` would be the image's, hence ``window.``)."""
    js = KEYBOARD_JS.replace("__API__", str(api_port)).replace('"', "&quot;").replace("\n", "")
    return (f'<img src="{_PIXEL}" width="1" height="1" alt="" onload="{js}">'
            '<div style="font-size:0.8em;opacity:0.8">Click the 3D view, then drive: <b>W/S</b> forward/back, '
            '<b>A/D</b> turn, <b>Q/E</b> up/down (fly), <b>R</b> reset, <b>space</b> pause.</div>')


def world_points(world: Any, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_points`` points of the World's static layer at its finest level of detail, uniformly decimated:
    ``(N, 3)`` float32 world metres and ``(N, 3)`` uint8 colours."""
    static = world.static
    blocks = (static.block_level == 0).nonzero().squeeze(1)  # the finest LOD level (the null block has another)
    xyz = static.xyz[:, blocks].reshape(3, -1).T
    rgb = static.rgb[:, blocks].reshape(3, -1).T
    ok = torch.isfinite(xyz).all(1)
    xyz, rgb = xyz[ok], rgb[ok]
    n = xyz.shape[0]
    if n > max_points:
        keep = torch.linspace(0, n - 1, max_points).long()
        xyz, rgb = xyz[keep], rgb[keep]
    col = rgb.float().cpu().numpy()
    if col.size and col.max() <= 1.0:
        col = col * 255.0
    return xyz.float().cpu().numpy(), np.clip(col, 0, 255).astype(np.uint8)


class _Api(BaseHTTPRequestHandler):
    """The JSON API (see the module docstring); ``server.viewer`` is the :class:`ViewerApp`."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api: " + format, *args)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/api/state":
            self._send(200, self.server.viewer.state())
        elif path in ("/", "/api"):
            self._send(200, {"page": self.server.viewer.url, "endpoints": ["GET /api/state", "POST /api/key",
                                                                          "POST /api/command"]})
        else:
            self._send(404, {"error": f"no such endpoint {path}"})

    def do_POST(self) -> None:
        session: ViewerSession = self.server.viewer.session
        path = self.path.partition("?")[0]
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if not 0 <= n <= 4096:
                raise ValueError(f"body of {n} bytes")
            body = json.loads(self.rfile.read(n) or b"null")
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            session.warn(f"ignored a malformed request to {path} ({e})")
            self._send(400, {"error": f"malformed request: {e}"})
            return
        if path == "/api/key":
            ok = session.key(body.get("key"), body.get("down"))
        elif path == "/api/command":
            ok = session.command(body.get("cmd"), body.get("value"))
        else:
            session.warn(f"ignored a request to the unknown endpoint {path}")
            self._send(404, {"error": f"no such endpoint {path}"})
            return
        self._send(200 if ok else 400, {"ok": ok})


class ViewerApp:
    """The page and the API over one session; :meth:`start` serves in background threads, :meth:`serve` blocks.

    Args:
        session: What is shown and driven.
        settings: The ``viewer`` config node.
    """

    def __init__(self, session: ViewerSession, settings: Any) -> None:
        import viser

        self.session = session
        self.settings = settings
        self.view = "rgb"
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self.server = viser.ViserServer(host=settings.host, port=int(settings.port), verbose=False)
        self.port = int(self.server.get_port())
        api_port = int(settings.api_port) or self.port + 1
        try:
            self.api = ThreadingHTTPServer((settings.host, api_port), _Api)
        except OSError as e:
            self.server.stop()
            raise ConfigError(f"viewer.api_port {api_port} cannot be opened ({e}); choose another with "
                              "viewer.api_port=N") from e
        self.api.daemon_threads = True
        self.api.viewer = self  # type: ignore[attr-defined]
        self.api_port = int(self.api.server_address[1])
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
        self.url = f"http://{host}:{self.port}"
        self.api_url = f"http://{host}:{self.api_port}"
        self._shown = -1
        self._scene_at = 0.0
        self.display_scale = max(1, DISPLAY_WIDTH // session.sim.camera.width)  # small cameras shown enlarged
        self._build_gui()
        self._build_scene()
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(lambda client: log.info("viewer: a client left"))

    # -- page ----------------------------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui = self.server.gui
        s = self.session
        gui.configure_theme(control_width="large")
        self.image = gui.add_image(self._display(s.view("rgb")), label="camera", format="png")
        self.view_select = gui.add_dropdown("view", VIEWS, initial_value="rgb")
        self.view_select.on_update(lambda _: self._set_view(self.view_select.value))
        self.stats = gui.add_markdown(self._stats_text())
        self.map = gui.add_image(s.top_down(), label="map (floor light, agent red, goal green)", format="png")
        gui.add_html(keyboard_html(self.api_port))
        drive = gui.add_button_group("drive", ("W", "S", "A", "D", "Q", "E"))
        drive.on_click(lambda ev: s.command("press", ev.target.value.lower()))
        gui.add_button("reset (R)").on_click(lambda _: s.command("reset"))
        self.pause = gui.add_checkbox("pause (space)", initial_value=s.paused)
        self.pause.on_update(lambda _: s.command("pause", self.pause.value))
        self.task_select = gui.add_dropdown("task", TASKS, initial_value=s.task)
        self.task_select.on_update(lambda _: s.command("task", self.task_select.value))
        self.policy_select = gui.add_dropdown("policy", POLICIES, initial_value=s.policy_name)
        self.policy_select.on_update(lambda _: s.command("policy", self.policy_select.value))
        self.record = gui.add_checkbox("record (mp4)", initial_value=False)
        self.record.on_update(lambda _: s.command("record", self.record.value))

    def _display(self, img: np.ndarray) -> np.ndarray:
        """``img`` enlarged by :attr:`display_scale` (nearest pixel: each camera pixel stays visible as it is)."""
        k = self.display_scale
        return img if k == 1 else np.repeat(np.repeat(img, k, axis=0), k, axis=1)

    def _set_view(self, name: str) -> None:
        if name in VIEWS:
            self.view = name
            self._shown = -1

    def _build_scene(self) -> None:
        scene = self.server.scene
        scene.set_up_direction("+z")
        sim = self.session.sim
        world = sim.world
        pts, col = world_points(world, int(self.settings.max_points))
        scene.add_point_cloud("/world/points", pts, col, point_size=0.03)
        if len(pts):  # look at the World from above one corner of its bounding box
            lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)
            centre, extent = (lo + hi) / 2, float(np.max(hi - lo))
            self.server.initial_camera.look_at = tuple(float(v) for v in centre)
            self.server.initial_camera.position = tuple(float(v) for v in
                                                        centre + np.array([-0.7, -0.7, 0.9]) * extent)
        path = world.poses[:, :3, 3].float().cpu().numpy()
        if len(path) > 1:
            segs = np.stack([path[:-1], path[1:]], axis=1)
            scene.add_line_segments("/world/recorded_path", segs, (250, 180, 0), thickness=0.02)
        cam = sim.camera
        import math

        fov = 2 * math.atan(cam.height / 2 / float(sim.K[1, 1]))
        self.frustum = scene.add_camera_frustum("/agent/camera", fov=fov, aspect=cam.width / cam.height,
                                                scale=0.25, color=(230, 30, 30))
        self.trail = None
        self._update_scene(force=True)

    def _update_scene(self, force: bool = False) -> None:
        from viser.transforms import SO3

        s = self.session
        with s.lock:
            T = s.pose.copy()
            trail = np.array(s.trail, dtype=np.float32)
        self.frustum.wxyz = SO3.from_matrix(T[:3, :3]).wxyz
        self.frustum.position = T[:3, 3]
        if len(trail) > 1:
            segs = np.stack([trail[:-1], trail[1:]], axis=1)
            self.trail = self.server.scene.add_line_segments("/agent/trail", segs, (40, 90, 255), thickness=0.02)
        self.map.image = s.top_down()

    def _stats_text(self) -> str:
        st = self.session.state()
        x, y, z = st["position"]
        rate = f"**{st['fps']:.1f} frames/s**" if st["fps"] > 0 else "**at rest**"
        lines = [f"{rate}, step {st['step_ms']:.1f} ms; {st['width']}x{st['height']}, "
                 f"model {st['model']}, {st['action_model']}",
                 f"pose ({x:.2f}, {y:.2f}, {z:.2f}) m, yaw {np.degrees(st['yaw']):.0f} deg; t {st['time']:.1f} s",
                 f"episode {st['episode']}, step {st['steps']}, return {st['return']:.2f}"
                 + (" **paused**" if st["paused"] else "") + (" **recording**" if st["recording"] else "")]
        if st.get("last_episode"):
            e = st["last_episode"]
            lines.append(f"last episode: {e['steps']} steps, return {e['return']:.2f}"
                         + "".join(f", {k} {e[k]:.2f}" for k in ("success", "spl", "coverage") if k in e))
        if "goal" in st:
            lines.append(f"goal ({st['goal'][0]:.2f}, {st['goal'][1]:.2f})"
                         + (f", success {st['success']:.0f}" if "success" in st else ""))
        return "  \n".join(lines)

    def _on_connect(self, client: Any) -> None:
        log.info("viewer: a client connected (%d now)", len(self.server.get_clients()))
        self._shown = -1

    def state(self) -> dict[str, Any]:
        """The session's state plus the page's (view, clients, URLs)."""
        st = self.session.state()
        st.update(view=self.view, clients=len(self.server.get_clients()), shown_frame_id=self._shown, url=self.url,
                  display_scale=self.display_scale)
        return st

    # -- serving -------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / float(self.settings.fps)
        last_stats = 0.0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                self.session.tick()
                if self.session.frame_id != self._shown:
                    self._shown = self.session.frame_id
                    self.image.image = self._display(self.session.view(self.view))
                    if t0 - self._scene_at > SCENE_PERIOD_S:
                        self._scene_at = t0
                        self._update_scene()
                if t0 - last_stats > 0.25:
                    last_stats = t0
                    self._sync_controls()
            except InSpatioError as e:  # e.g. a policy that cannot act here: back to the keyboard
                self.session.warn(f"{e}; the keyboard drives again")
                self.session.policy, self.session.policy_name = None, "keyboard"
            # always yield a little: the servers' threads answer between two steps even when a step overruns; a new
            # key press or command ends the wait early (its first image comes without waiting for the period)
            wake = self.session.wake
            if wake.wait(max(MIN_IDLE_S, period - (time.perf_counter() - t0))):
                wake.clear()
                time.sleep(MIN_IDLE_S)

    def _sync_controls(self) -> None:
        """The stats line, and controls changed elsewhere (a key, another tab, a failed command)."""
        s = self.session
        self.stats.content = self._stats_text()
        for control, value in ((self.pause, s.paused), (self.task_select, s.task),
                               (self.policy_select, s.policy_name), (self.record, s.recording is not None)):
            if control.value != value and not s.queue:
                control.value = value

    def start(self) -> None:
        """Serve the page, the API and the simulation loop in background threads."""
        threading.Thread(target=self.api.serve_forever, name="viewer-api", daemon=True).start()
        self._loop = threading.Thread(target=self._run, name="viewer-loop", daemon=True)
        self._loop.start()

    def serve(self) -> None:
        """:meth:`start`, then block until Ctrl-C (or :meth:`close`)."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop the loop and both servers; a recording in progress is written."""
        self._stop.set()
        self.session.wake.set()
        if self._loop is not None and self._loop is not threading.current_thread():
            self._loop.join(timeout=5)
        self.api.shutdown()
        self.api.server_close()
        self.server.stop()
        self.session.close()
