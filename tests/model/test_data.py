"""Training data for the learned completer: degradation like a reconstruction, shards that round-trip, resume, and
the benchmark's held-out scenes never written."""

import numpy as np
import pytest

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.data import (
    HELD_OUT,
    DataConfig,
    DegradeConfig,
    degrade,
    generate,
    load_shard,
    save_shard,
    shard_path,
)
from inspatio_sim.render import RenderConfig
from inspatio_sim.world import WorldConfig
from tests.helpers import wall_scene


def test_degrade_drops_depth_on_plain_pixels_adds_noise_and_jitters_poses():
    scene = wall_scene(n=4, h=48, w=64)
    scene.frames[:, 10:30, 10:30] = 128  # a plain patch: no texture, so no depth after reconstruction
    cfg = DegradeConfig(min_texture=0.02, drop_fraction=0.1, depth_noise=0.02, pose_jitter_m=0.01,
                        pose_jitter_deg=0.2)
    out = degrade(scene, cfg, np.random.default_rng(0))
    assert (out.depth[:, 13:27, 13:27] == 0).all()  # inside the plain patch (away from its textured rim)
    kept = out.depth > 0
    assert 0.6 < kept.mean() < 0.9
    rel = out.depth[kept] / scene.depth[kept] - 1
    assert 0.01 < rel.std() < 0.03
    moved = np.linalg.norm(out.poses[:, :3, 3] - scene.poses[:, :3, 3], axis=1)
    assert 0.001 < moved.mean() < 0.05
    np.testing.assert_array_equal(out.frames, scene.frames)
    out.validate()


def test_held_out_scenes_are_refused_and_settings_checked():
    preset, seed = HELD_OUT[0]
    with pytest.raises(ConfigError, match="held-out"):
        DataConfig(presets=[preset], seeds=[seed]).validate()
    with pytest.raises(ConfigError, match="steps"):
        DataConfig(steps=0).validate()


def test_a_small_dataset_is_written_resumed_and_read_back(tmp_path):
    cfg = DataConfig(world="degraded", presets=["room"], seeds=[3], examples=2, steps=3, width=32, height=24,
                     scene_frames=12, scene_width=96, scene_height=72)
    index = generate(cfg, tmp_path, WorldConfig(), RenderConfig())
    path = shard_path(tmp_path, "room", 3)
    data, meta = load_shard(path)
    assert meta["preset"] == "room" and meta["seed"] == 3
    assert data["render_rgb"].shape == (2, 3, 24, 32, 3) and data["gt_rgb"].shape == (2, 3, 24, 32, 3)
    assert data["render_valid"].dtype == bool and data["ref_index"].shape[:2] == (2, 3)
    assert data["ref_rgb"].shape == (12, 72, 96, 3)
    assert (data["ref_index"] >= 0).all() and (data["ref_index"] < 12).all()
    # the explicit render agrees with the truth where it is valid (same scene, same poses)
    valid = data["render_valid"]
    diff = np.abs(data["render_rgb"].astype(int) - data["gt_rgb"].astype(int)).mean(-1)
    assert diff[valid].mean() < 40 and valid.mean() > 0.3
    stamp = path.stat().st_mtime_ns
    generate(cfg, tmp_path, WorldConfig(), RenderConfig())  # resume: nothing rewritten
    assert path.stat().st_mtime_ns == stamp and index.exists()
    with pytest.raises(ConfigError, match="other settings"):
        generate(DataConfig(world="degraded", presets=["room"], seeds=[3], examples=3, steps=3, width=32, height=24,
                            scene_frames=12, scene_width=96, scene_height=72), tmp_path, WorldConfig(), RenderConfig())


def test_bad_shards_are_rejected_with_the_file_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"bad\.npz"):
        load_shard(bad)
    old = tmp_path / "old.npz"
    save_shard(old, {"render_rgb": np.zeros((1, 1, 2, 2, 3), np.uint8)}, {"version": 0})
    with pytest.raises(ConfigError, match="lacks"):
        load_shard(old)


def test_the_data_command_refuses_held_out_scenes_and_bad_output_before_any_work(tmp_path, capsys):
    from inspatio_sim.cli import main

    preset, seed = HELD_OUT[0]
    assert main(["data", "star", "-o", str(tmp_path / "d"), f"data.presets=[{preset}]", f"data.seeds=[{seed}]"]) == 2
    assert "held-out" in capsys.readouterr().err and not (tmp_path / "d").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "star", "-o", str(blocker / "d")]) == 2
    assert str(blocker) in capsys.readouterr().err


def test_reconstructed_worlds_are_rendered_in_the_reconstructions_frame(tmp_path, monkeypatch):
    """``data.world=reconstructed``: trajectories drawn in the oracle's frame are carried into the reconstruction's
    (here the exact scene moved by a similarity: rotated, shifted, half the scale), so its renders still agree with
    the oracle's truth and the shard's cameras are the reconstruction's."""
    import dataclasses

    from scipy.spatial.transform import Rotation

    import inspatio_sim.scene_source as scene_source
    from inspatio_sim.oracle import Oracle

    cfg = DataConfig(world="reconstructed", presets=["room"], seeds=[3], examples=2, steps=3, width=32, height=24,
                     scene_frames=12, scene_width=96, scene_height=72)
    scale = 0.5
    sim = np.eye(4)
    sim[:3, :3] = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    sim[:3, 3] = [3.0, -1.0, 0.2]
    calls = []

    def fake_reconstruction(preset, seed, frames, width, height, recon, device="cpu", progress=True):
        calls.append((preset, seed, frames, width, height, recon))
        with Oracle(preset, seed) as oracle:
            gt = oracle.make_scene(num_frames=frames, width=width, height=height, progress=False)
        poses = gt.poses.copy()
        poses[:, :3, 3] *= scale
        poses = sim @ poses
        rec = dataclasses.replace(gt, poses=poses.astype(gt.poses.dtype), depth=gt.depth * scale)
        return gt, rec, np.arange(frames)

    monkeypatch.setattr(scene_source, "reconstructed_oracle", fake_reconstruction)
    with pytest.raises(ConfigError, match="recon settings"):
        generate(cfg, tmp_path / "none", WorldConfig(), RenderConfig())
    generate(cfg, tmp_path, WorldConfig(), RenderConfig(), recon_cfg={"marker": 1})
    assert calls == [("room", 3, 12, 96, 72, {"marker": 1})]
    data, _ = load_shard(shard_path(tmp_path, "room", 3))
    with Oracle("room", 3) as oracle:
        gt_poses = oracle.make_scene(num_frames=12, width=96, height=72, progress=False).poses
    expected = gt_poses.copy()
    expected[:, :3, 3] *= scale
    np.testing.assert_allclose(data["ref_poses"], sim @ expected, atol=1e-4)
    valid = data["render_valid"]
    diff = np.abs(data["render_rgb"].astype(int) - data["gt_rgb"].astype(int)).mean(-1)
    assert diff[valid].mean() < 40 and valid.mean() > 0.3  # carried correctly: the renders show the truth's view
    with pytest.raises(ConfigError, match=r"data\.world"):
        DataConfig(world="exact").validate()
