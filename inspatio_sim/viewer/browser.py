"""Headless Chromium (Debian's ``chromium`` + ``chromedriver``, through selenium) against a running viewer: the
browser test and ``inspatio-sim view --measure`` use the same helpers, so the README's figures come from the page.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from inspatio_sim.errors import ConfigError

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")

# The camera image is the first <img> of the panel whose natural size is the camera's times the display scale (viser
# sends it as a blob).
CAMERA_JS = """var w=arguments[0],h=arguments[1];var imgs=[].slice.call(document.querySelectorAll('img'));
for(var i=0;i<imgs.length;i++){var m=imgs[i];if(m.naturalWidth===w&&m.naturalHeight===h&&m.src.indexOf('blob:')===0)
return m;}return null;"""
# Statistics of the camera image's pixels, read through a canvas: [mean, std, hash-ish checksum].
PIXELS_JS = """var m=arguments[0];
var c=document.createElement('canvas');c.width=m.naturalWidth;c.height=m.naturalHeight;
var g=c.getContext('2d');g.drawImage(m,0,0);var d=g.getImageData(0,0,c.width,c.height).data;var s=0,s2=0,h=0,n=0;
for(var i=0;i<d.length;i+=4){var v=(d[i]+d[i+1]+d[i+2])/3;s+=v;s2+=v*v;n++;h=(h*31+d[i]+7*d[i+1]+13*d[i+2])%1000000007;}
var mu=s/n;return [mu,Math.sqrt(Math.max(0,s2/n-mu*mu)),h];"""
# Record the time (performance.now, ms) of every change of the camera image's src.
OBSERVE_JS = """var m=arguments[0];window.__camTimes=[];window.__camObs&&window.__camObs.disconnect();
var box=m.parentElement.parentElement.parentElement;
window.__camObs=new MutationObserver(function(){var now=performance.now();var q=box.querySelector('img');
if(q&&q.src!==window.__camSrc){window.__camSrc=q.src;window.__camTimes.push(now);}});
window.__camSrc=m.src;window.__camObs.observe(box,{subtree:true,childList:true,attributes:true,attributeFilter:['src']});"""


def browser_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` when both are installed, else ``None``."""
    chrome = next((p for p in CHROMIUM if os.path.exists(p)), None) or shutil.which("chromium")
    driver = next((p for p in CHROMEDRIVER if os.path.exists(p)), None) or shutil.which("chromedriver")
    return (chrome, driver) if chrome and driver else None


def make_driver(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium driven by selenium through the system chromedriver (never downloads a driver)."""
    paths = browser_paths()
    if paths is None:
        raise ConfigError("headless Chromium is not installed (apt-get install chromium chromium-driver, or "
                          "`make system-deps`)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise ConfigError(f"selenium is not installed ({e}); run `pip install -e .[viewer]`") from e
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--use-gl=swiftshader", "--enable-unsafe-swiftshader", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)


def get_state(api_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """``GET /api/state`` of a viewer."""
    with urllib.request.urlopen(f"{api_url}/api/state", timeout=timeout) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def post(api_url: str, path: str, body: Any, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (JSON, or raw bytes) to a viewer's API; ``(status, reply)``."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"{api_url}{path}", data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for(fn: Any, timeout: float, what: str, poll: float = 0.05) -> Any:
    """Poll ``fn()`` until it returns a truthy value; TimeoutError naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def camera_image(driver: Any, width: int, height: int, timeout: float = 30.0) -> Any:
    """The page's camera ``<img>`` element (waits until viser has shown it); ``width`` x ``height`` is its size
    in the page: the camera's times ``display_scale`` of the state."""
    return wait_for(lambda: driver.execute_script(CAMERA_JS, width, height), timeout, "the camera image")


def pixels(driver: Any, img: Any) -> tuple[float, float, int]:
    """``(mean, std, checksum)`` of the camera image's pixels as the page shows them."""
    mean, std, checksum = driver.execute_script(PIXELS_JS, img)
    return float(mean), float(std), int(checksum)


def focus_page(driver: Any) -> None:
    """Give the page the keyboard focus (as a click on the 3D view does)."""
    driver.execute_script("document.activeElement && document.activeElement.blur && document.activeElement.blur();"
                          "window.focus();")


def measure(app: Any, seconds: float = 10.0, trials: int = 8) -> dict[str, float]:
    """Drive ``app``'s page in headless Chromium; frames/s the page shows while W is held, and the latency from a
    key-down in the page to the next new camera image (median and max over ``trials`` presses, milliseconds).

    Frames/s: camera image changes in the browser per second over ``seconds`` of holding W and A (the agent walks
    in a circle, so every step shows a new view). Latency: from the page's keydown handler to the image change,
    both timed with the browser's ``performance.now()``, from rest (the agent is still, so no image is in flight),
    pressing A and D in turn (a turn always changes the view; a wall can block W).
    """
    from selenium.webdriver.common.action_chains import ActionChains

    st = get_state(app.api_url)
    driver = make_driver()
    try:
        driver.get(app.url)
        k = st["display_scale"]
        img = camera_image(driver, st["width"] * k, st["height"] * k)
        focus_page(driver)
        driver.execute_script(OBSERVE_JS, img)
        actions = ActionChains(driver)
        actions.key_down("w").key_down("a").perform()  # walk in a circle: every step shows a new view
        time.sleep(seconds)
        actions.key_up("w").key_up("a").perform()
        times = driver.execute_script("return window.__camTimes;")
        span = (times[-1] - times[0]) / 1000.0 if len(times) > 1 else 0.0
        page_fps = (len(times) - 1) / span if span > 0 else 0.0
        server = get_state(app.api_url)
        latencies = []
        for k in range(trials):
            wait_for(lambda: _at_rest(driver, app), 10.0, "the agent to stop")
            key = "a" if k % 2 == 0 else "d"  # turning always changes the view (a wall may block W/S)
            before = len(driver.execute_script("return window.__camTimes;"))
            actions.key_down(key).perform()
            wait_for(lambda b=before: len(driver.execute_script("return window.__camTimes;")) > b, 10.0,
                     "a new camera image")
            actions.key_up(key).perform()
            t_key = driver.execute_script("return window.__inspatioLastKey;")
            t_img = driver.execute_script("return window.__camTimes;")[before]
            latencies.append(float(t_img - t_key))
    finally:
        driver.quit()
    return {"width": st["width"], "height": st["height"], "model": st["model"], "page_fps": round(page_fps, 2),
            "server_step_ms": round(server["step_ms"], 2),
            "key_to_image_ms_median": round(statistics.median(latencies), 1),
            "key_to_image_ms_max": round(max(latencies), 1), "trials": trials, "seconds": seconds}


def _at_rest(driver: Any, app: Any) -> bool:
    """No new camera image for 0.4 s (the agent stopped coasting)."""
    times = driver.execute_script("return window.__camTimes;")
    now = driver.execute_script("return performance.now();")
    return not times or now - times[-1] > 400


def screenshot(app: Any, path: str, drive_s: float = 3.0, width: int = 1280, height: int = 1040) -> str:
    """Open ``app``'s page in headless Chromium, hold W and A (a walk in a circle) for ``drive_s`` seconds so the
    trail shows, dismiss notifications, and save a PNG of the window to ``path``."""
    from selenium.webdriver.common.action_chains import ActionChains

    st = get_state(app.api_url)
    driver = make_driver(width, height)
    try:
        driver.get(app.url)
        k = st["display_scale"]
        camera_image(driver, st["width"] * k, st["height"] * k)
        focus_page(driver)
        actions = ActionChains(driver)
        actions.key_down("w").key_down("a").perform()  # a walk in a circle
        time.sleep(drive_s)
        actions.key_up("w").key_up("a").perform()
        time.sleep(1.0)
        driver.execute_script("document.querySelectorAll('.mantine-Notification-root, [class*=Notification]')"
                              ".forEach(function(n){n.remove();});")
        time.sleep(0.5)
        driver.save_screenshot(path)
        _shrink_png(path)
    finally:
        driver.quit()
    return path


def _shrink_png(path: str, max_bytes: int = 300_000) -> None:
    """Re-save a PNG at the highest compression, then with 5 bits per channel while it is larger than
    ``max_bytes`` (README screenshots)."""
    import cv2

    if os.path.getsize(path) <= max_bytes:
        return
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    for bits in (8, 6, 5):
        step = 1 << (8 - bits)
        ok, data = cv2.imencode(".png", (img // step) * step, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and (len(data) <= max_bytes or bits == 5):
            Path(path).write_bytes(data.tobytes())
            return
