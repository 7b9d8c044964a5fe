"""Resolve the Scene a command works on: a user path, or the bundled oracle scene generated once and cached.

The cache lives in ``$INSPATIO_CACHE`` (default ``~/.cache/inspatio-sim``), one directory per oracle setting, so
the default world costs one generation per machine and every later command loads it in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
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


def oracle_reconstruction_path(preset: str, seed: int, frames: int, width: int, height: int,
                               recon: DictConfig) -> Path:
    """Where the reconstruction of an oracle scene's video is cached: keyed by the scene, the reconstruction
    settings (``recon`` node) and the pipeline's cache version (a changed pipeline reconstructs again)."""
    from inspatio_sim.recon.sfm import CACHE_VERSION

    key = hashlib.sha1(f"{OmegaConf.to_yaml(recon)}{CACHE_VERSION}".encode()).hexdigest()[:10]
    return cache_dir() / "oracle-recon" / f"{preset}-{seed}-{frames}x{width}x{height}-{key}"


def reconstructed_oracle(preset: str, seed: int, frames: int, width: int, height: int, recon: DictConfig,
                         device: str = "cpu", progress: bool = True) -> tuple[Scene, Scene, np.ndarray]:
    """An oracle scene's video (``frames`` at ``width x height``, 70° horizontal field of view, 15 fps) run through
    ``inspatio-sim reconstruct``'s pipeline as a user's clip would be (cached on disk,
    :func:`oracle_reconstruction_path`).

    Returns:
        The exact oracle Scene, its reconstruction (the reconstruction's own frame and scale) and ``(N_rec,)``
        indices of the reconstruction's frames into the oracle Scene.
    """
    from inspatio_sim.recon.pipeline import reconstruct
    from inspatio_sim.video_io import write_video

    oracle = {"preset": preset, "seed": int(seed), "num_frames": int(frames), "width": int(width),
              "height": int(height), "hfov_deg": 70.0, "fps": 15.0, "supersample": 3}
    gt = oracle_scene(oracle, progress=False)
    path = oracle_reconstruction_path(preset, seed, frames, width, height, recon)
    if scene_file(path).exists():
        rec = Scene.load(path)
    else:
        recon_cfg = OmegaConf.to_container(recon, resolve=True)
        recon_cfg["camera_height"] = float(np.median(gt.poses[:, 2, 3]))  # metric scale, as a user states it
        with tempfile.TemporaryDirectory(prefix="inspatio-oracle-recon-") as tmp:
            video = write_video(gt.frames, Path(tmp) / "clip.mp4", gt.meta.fps)
            rec, _ = reconstruct(video, Path(tmp) / "out", recon_cfg, device=device, force=True, progress=progress)
        rec.save(path)
    index = np.array([int(np.argmin(np.abs(gt.timestamps - gt.timestamps[0] - t))) for t in rec.timestamps])
    return gt, rec, index
