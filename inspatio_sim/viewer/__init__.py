"""The browser viewer (``inspatio-sim view``): drive a World with the keyboard, see what the agent sees, watch a
policy. A face: it drives the Simulator through the Gymnasium environment (``envs``); nothing in the core imports it.

* :mod:`inspatio_sim.viewer.session`: the agent, keys -> actions, what is shown (no web code);
* :mod:`inspatio_sim.viewer.app`: the viser page and the JSON API;
* :mod:`inspatio_sim.viewer.browser`: headless Chromium helpers (the browser test and ``view --measure``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from inspatio_sim.config import to_dataclass
from inspatio_sim.errors import ConfigError

log = logging.getLogger(__name__)


def viewer_settings(cfg: DictConfig) -> Any:
    """The validated ``viewer`` config node."""
    from inspatio_sim.config_schema import ViewerConfig

    return to_dataclass(ViewerConfig, cfg.viewer, "viewer")


def run_view(args: argparse.Namespace, cfg: DictConfig) -> int:
    """``inspatio-sim view``: build the World, serve the page until Ctrl-C (``--measure``: measure, print, exit;
    ``--screenshot FILE``: drive a little in headless Chromium, save a PNG of the page, exit)."""
    try:
        import viser  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"the viewer needs viser ({e}); run `pip install -e .[viewer]`") from e
    import torch

    from inspatio_sim.viewer.app import ViewerApp
    from inspatio_sim.viewer.session import ViewerSession

    settings = viewer_settings(cfg)
    if getattr(args, "screenshot", None):
        from inspatio_sim.paths import check_output_path

        check_output_path(args.screenshot, "file", what="--screenshot")
    if getattr(args, "screenshot", None) or getattr(args, "measure", False):
        from inspatio_sim.viewer.browser import browser_paths

        if browser_paths() is None:
            raise ConfigError("--measure and --screenshot need chromium and chromedriver (`make system-deps`)")
    if settings.threads > 0:
        torch.set_num_threads(int(settings.threads))
    scene = cfg.scene.path or f"oracle:{cfg.scene.oracle.preset}"
    print(f"building the World of {scene} ...", flush=True)
    session = ViewerSession(list(args.overrides), settings)
    if settings.policy != "keyboard":
        session.set_policy(settings.policy)
    app = ViewerApp(session, settings)
    if getattr(args, "screenshot", None):
        from inspatio_sim.viewer.browser import screenshot

        app.start()
        try:
            print(f"wrote {screenshot(app, str(args.screenshot))}")
        finally:
            app.close()
        return 0
    if getattr(args, "measure", False):
        from inspatio_sim.viewer.browser import measure

        app.start()
        try:
            result = measure(app, seconds=float(args.seconds))
        finally:
            app.close()
        out = Path(settings.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "measure.json").write_text(json.dumps(result, indent=2) + "\n")
        for k, v in result.items():
            print(f"{k:<28} {v}")
        print(f"wrote {out / 'measure.json'}")
        return 0
    print(f"inspatio-sim viewer: open {app.url}  (state API {app.api_url}/api/state; Ctrl-C stops)", flush=True)
    try:
        app.serve()
    except KeyboardInterrupt:
        print("viewer stopped", flush=True)
    return 0
