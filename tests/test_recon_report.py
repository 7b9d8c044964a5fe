"""The training-view re-render PSNR: its value, and its place in `inspatio-sim reconstruct`'s report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inspatio_sim.cli import main
from inspatio_sim.config import compose
from inspatio_sim.fileio import write_json
from inspatio_sim.recon import pipeline
from inspatio_sim.recon_report import train_view_psnr
from inspatio_sim.render import RenderConfig, render_world
from inspatio_sim.scene import Scene
from inspatio_sim.scene_source import load_scene
from inspatio_sim.world import WorldConfig, build_world


@pytest.fixture(scope="module")
def tiny() -> Scene:
    return load_scene(compose(["scene=tiny"]).scene, progress=False)


def _direct_psnr(scene: Scene) -> float:
    """One view at a time, PSNR written out by hand: the mean over frames of 10 log10(255^2 / MSE)."""
    world = build_world(scene, WorldConfig())
    values = []
    for i in range(scene.num_frames):
        out = render_world(world, torch.as_tensor(scene.poses[i:i + 1], dtype=torch.float32),
                           float(scene.timestamps[i] - scene.timestamps[0]), scene.K, scene.height, scene.width,
                           RenderConfig())
        err = (out.rgb[0].numpy().astype(np.float64) - scene.frames[i].astype(np.float64)) ** 2
        values.append(10.0 * np.log10(255.0**2 / err.mean()))
    return float(np.mean(values))


def test_train_view_psnr_matches_a_direct_computation(tiny: Scene) -> None:
    r = train_view_psnr(tiny)
    assert r["train_view_psnr"] == pytest.approx(_direct_psnr(tiny), abs=1e-6)
    assert r["train_view_psnr"] > 25.0 and 0.9 < r["train_view_coverage"] <= 1.0
    # it measures the frames: the same World against another frame order scores far lower
    shuffled = Scene(frames=tiny.frames[::-1].copy(), timestamps=tiny.timestamps, K=tiny.K, poses=tiny.poses,
                     depth=tiny.depth, confidence=tiny.confidence, dynamic_mask=tiny.dynamic_mask, meta=tiny.meta)
    world = build_world(tiny, WorldConfig())
    assert train_view_psnr(shuffled, world=world)["train_view_psnr"] < r["train_view_psnr"] - 8.0


def test_reconstruct_report_holds_the_train_view_psnr(tiny: Scene, tmp_path, monkeypatch, capsys) -> None:
    """`inspatio-sim reconstruct` adds the figure of the written Scene to report.json and prints it (the
    reconstruction itself is replaced by the tiny ground-truth Scene: what is tested is the report)."""
    def fake_reconstruct(source, output, cfg, device="cpu", force=False, progress=True, verbose=False):
        tiny.save(output)
        report = {"source": str(source), "input_frames": 12, "registered_frames": 12, "frame_size": [96, 72],
                  "mapper": "global", "reprojection_error_px": 0.5, "focal_px": float(tiny.K[0, 0]),
                  "intrinsics": "estimated", "scale_origin": "exact", "ground_found": True, "camera_height_m": 1.4,
                  "depth_valid_fraction": 1.0, "dynamic_fraction": 0.0, "seconds": {"total": 1.0}, "dropped": {},
                  "notes": []}
        write_json(Path(output) / pipeline.REPORT_FILENAME, report)
        return tiny, report

    monkeypatch.setattr(pipeline, "reconstruct", fake_reconstruct)
    out = tmp_path / "world"
    assert main(["reconstruct", str(tmp_path / "clip.mp4"), "-o", str(out)]) == 0
    report = json.loads((out / pipeline.REPORT_FILENAME).read_text())
    assert report["train_view_psnr"] == pytest.approx(_direct_psnr(Scene.load(out)), abs=1e-6)
    assert f"{report['train_view_psnr']:.1f} dB PSNR" in capsys.readouterr().out
