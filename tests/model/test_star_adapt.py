"""``adapt star``: leave-a-window-out renders of the user's video, a fine-tune written into the World's directory,
and that file used automatically by the Simulator built for that World."""

import shutil

import numpy as np
import torch

from inspatio_sim.assemble import build_simulator
from inspatio_sim.config import compose
from inspatio_sim.model.cache import CacheConfig
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.adapt import adapt, window_arrays
from inspatio_sim.model.star.network import NetConfig, STARNet
from inspatio_sim.render import RenderConfig
from inspatio_sim.scene_source import load_scene
from inspatio_sim.world import WorldConfig


def _world_dir(tmp_path):
    scene = load_scene(compose(["scene=tiny"]).scene, progress=False)
    scene.save(tmp_path / "world")
    return tmp_path / "world", scene


def test_adapt_writes_a_checkpoint_the_world_then_uses(tmp_path):
    root, _ = _world_dir(tmp_path)
    torch.manual_seed(0)
    net = NetConfig(dim=32, layers=2, heads=2)
    base = ckpt.save(tmp_path / "base.pt", {"teacher": STARNet(net), "student": STARNet(net)}, {})
    cfg = compose([f"model.star.checkpoint={base}", "train.star.adapt_windows=1", "train.star.adapt_window=3",
                   "train.star.adapt_size=32", "train.star.adapt_iterations=2"])
    summary = adapt(root, cfg, progress=False)
    assert (root / ckpt.ADAPTED_NAME).is_file() and np.isfinite(summary["psnr_after"])
    nets, _, _ = ckpt.load(root / ckpt.ADAPTED_NAME, want="student")
    assert {"teacher", "student", "fake"} <= set(nets)
    sim = build_simulator(compose([f"scene.path={root}", "model.name=star", "render.camera.width=32",
                                   "render.camera.height=24"]))
    assert sim.model.completer.path == root / ckpt.ADAPTED_NAME
    other = tmp_path / "plain"
    shutil.copytree(root, other)
    (other / ckpt.ADAPTED_NAME).unlink()
    assert ckpt.adapted_path(other) is None


def test_window_renders_leave_their_frames_out(tmp_path):
    _, scene = _world_dir(tmp_path)
    arrays = window_arrays(scene, 4, 3, 32, WorldConfig(), RenderConfig(), CacheConfig())
    assert arrays["render_rgb"].shape == (1, 3, 32, 32, 3) and arrays["gt_rgb"].shape == (1, 3, 32, 32, 3)
    assert len(arrays["ref_rgb"]) == scene.num_frames - 3
    held = scene.frames[4:7]
    assert not any(np.array_equal(f, h) for f in arrays["ref_rgb"] for h in held)
