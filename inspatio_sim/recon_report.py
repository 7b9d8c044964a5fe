"""Reconstruction figures that need the World: the training-view re-render PSNR, and the ``reconstruct`` command.

This module sits above both :mod:`inspatio_sim.recon` (which must not import the World) and
:mod:`inspatio_sim.world`: the reconstruction writes a Scene, and here the World built from that Scene is rendered
at the recorded poses and times and compared with the video's own frames. The figure needs no ground truth, so it
works on any user clip; it shows at once whether the reconstruction's colours reach the World (a textureless wall
without depth or a window without a backdrop shows up as a low value).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from inspatio_sim.config import to_dataclass
from inspatio_sim.metrics import psnr
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.scene import Scene, scene_file
from inspatio_sim.world import World, WorldConfig, build_world

TRAIN_VIEW_BATCH = 8
"""Recorded views rendered per call (bounds memory at 640x480)."""


def train_view_render(world: World, scene: Scene, render_config: RenderConfig | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Render ``world`` at every recorded pose and time of ``scene``.

    Args:
        world: A World (usually built from ``scene``).
        scene: The Scene whose cameras (``K``, ``poses``, timestamps; frame size ``H x W``) are rendered.
        render_config: Renderer settings (default :class:`RenderConfig`).

    Returns:
        ``rgb (N, H, W, 3)`` uint8 renders and ``valid (N, H, W)`` bool (the World had content at the pixel).
    """
    times = scene.timestamps - scene.timestamps[0]  # simulation time 0 shows the first frame
    rgb, valid = [], []
    for s in range(0, scene.num_frames, TRAIN_VIEW_BATCH):
        sl = slice(s, s + TRAIN_VIEW_BATCH)
        out = render_world(world, torch.as_tensor(scene.poses[sl], dtype=torch.float32, device=world.device),
                           torch.as_tensor(times[sl]), scene.K, scene.height, scene.width, render_config)
        rgb.append(out.rgb.cpu().numpy())
        valid.append(out.valid.cpu().numpy())
    return np.concatenate(rgb), np.concatenate(valid)


def train_view_psnr(scene: Scene, world_config: WorldConfig | None = None, render_config: RenderConfig | None = None,
                    device: str | torch.device = "cpu", world: World | None = None) -> dict[str, float]:
    """Training-view re-render fidelity: the World from ``scene`` rendered at its recorded views vs. its frames.

    Args:
        scene: A Scene (reconstructed or ground truth).
        world_config: How to build the World (ignored when ``world`` is given).
        render_config: Renderer settings.
        device: Torch device of the World build and the renders.
        world: An already built World of ``scene`` (saves the build).

    Returns:
        ``train_view_psnr`` (dB, mean over frames of the per-frame PSNR of all pixels, peak 255) and
        ``train_view_coverage`` (fraction of pixels where the World had content, backdrop included).
    """
    world = world if world is not None else build_world(scene, world_config, device=device)
    rgb, valid = train_view_render(world, scene, render_config)
    return {"train_view_psnr": float(np.mean([psnr(a, b) for a, b in zip(rgb, scene.frames, strict=True)])),
            "train_view_coverage": float(valid.mean())}


def reconstruct_world(source: str | Path, output: str | Path, cfg: DictConfig, force: bool = False,
                      progress: bool = True, verbose: bool = False) -> tuple[Scene, dict[str, Any]]:
    """Reconstruct ``source`` into ``output`` (``scene.npz`` + ``report.json``) and add the training-view PSNR of the
    World built from it to the report (written again). ``report.json`` with ``train_view_psnr`` marks a finished
    world. The configuration ``cfg`` is the whole composed one (``recon``, ``world``, ``render``, ``device``)."""
    from inspatio_sim.fileio import write_json
    from inspatio_sim.recon.pipeline import REPORT_FILENAME, reconstruct

    scene, report = reconstruct(source, output, cfg.recon, device=cfg.device, force=force, progress=progress,
                                verbose=verbose)
    if progress:
        print("[world] training-view re-render: World from the reconstruction at the recorded poses vs. the frames",
              flush=True)
    report.update(train_view_psnr(scene, to_dataclass(WorldConfig, cfg.world, "world"),
                                  to_dataclass(RenderConfig, cfg.render, "render"), device=cfg.device))
    write_json(Path(output) / REPORT_FILENAME, report)
    return scene, report


def run_reconstruct(args: argparse.Namespace, cfg: DictConfig) -> int:
    """CLI entry of ``inspatio-sim reconstruct``: reconstruct ``args.input`` into ``args.output``, add the
    training-view PSNR of the World built from it to ``report.json``, and print the report."""
    from inspatio_sim.recon.pipeline import REPORT_FILENAME, format_report

    _, report = reconstruct_world(args.input, args.output, cfg, force=args.force,
                                  verbose=bool(getattr(args, "verbose", False)))
    print(format_report(report))
    print(f"wrote {scene_file(args.output)} and {Path(args.output) / REPORT_FILENAME}")
    return 0
