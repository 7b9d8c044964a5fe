"""Resolve the Scene a command works on: a user path, or the bundled oracle scene generated once and cached.

The cache lives in ``$INSPATIO_CACHE`` (default ``~/.cache/inspatio-sim``), one directory per oracle setting, so
the default world costs one generation per machine and every later command loads it in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inspatio_sim.scene import SCENE_FORMAT_VERSION, Scene, scene_file

log = logging.getLogger(__name__)
CACHE_ENV = "INSPATIO_CACHE"


def cache_dir() -> Path:
    """Root of the on-disk cache (``$INSPATIO_CACHE`` or ``~/.cache/inspatio-sim``)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "inspatio-sim"))


def oracle_scene_path(oracle: dict[str, Any]) -> Path:
    """Cache location of the oracle Scene with these settings."""
    key = json.dumps({**oracle, "format": SCENE_FORMAT_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "scenes" / f"oracle-{oracle['preset']}-{digest}"


def oracle_scene(oracle: dict[str, Any], progress: bool = True) -> Scene:
    """Load the cached oracle Scene with these settings, generating (and caching) it on first use."""
    path = oracle_scene_path(oracle)
    if scene_file(path).exists():
        return Scene.load(path)
    from inspatio_sim.oracle import Oracle

    log.info("generating the oracle scene '%s' (first use; cached at %s)", oracle["preset"], path)
    with Oracle(preset=oracle["preset"], seed=int(oracle["seed"])) as orc:
        scene = orc.make_scene(
            num_frames=int(oracle["num_frames"]), width=int(oracle["width"]), height=int(oracle["height"]),
            hfov_deg=float(oracle["hfov_deg"]), fps=float(oracle["fps"]), supersample=int(oracle["supersample"]),
            progress=progress,
        )
    scene.save(path)
    return scene


def load_scene(scene_cfg: DictConfig | dict[str, Any], progress: bool = True) -> Scene:
    """The Scene named by a ``scene`` config node: ``path`` if set, else the cached oracle scene."""
    node = OmegaConf.to_container(scene_cfg, resolve=True) if isinstance(scene_cfg, DictConfig) else scene_cfg
    if node.get("path"):
        return Scene.load(node["path"])
    return oracle_scene(node["oracle"], progress=progress)
