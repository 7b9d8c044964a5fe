"""The measurements of ``bench model`` on analytic views: flicker is zero for consistent frames and grows with
inconsistency; revisit PSNR is capped for identical frames."""

import numpy as np

from inspatio_sim.bench.model_bench import REVISIT_CAP_DB, _revisit_psnr, flicker, model_config, revisit_by_length
from inspatio_sim.conventions import intrinsics_from_fov
from inspatio_sim.model import ModelConfig, WritebackConfig
from tests.model.scenes import camera, view

H, W = 48, 64
K = intrinsics_from_fov(W, H, 70.0)


def _sequence():
    poses = np.stack([camera(0.0, 0.0), camera(0.05, 0.03, yaw_deg=2.0), camera(0.1, 0.06, yaw_deg=4.0)])
    views = [view(p, K, H, W) for p in poses]
    rgb = np.stack([v[0].numpy() for v in views])[None]
    depth = np.stack([v[1].numpy() for v in views])[None]
    return poses[None], rgb, depth


def test_flicker_is_near_zero_for_consistent_frames_and_grows_with_noise():
    poses, rgb, depth = _sequence()
    hole = np.ones(depth.shape, bool)
    dynamic = np.zeros(depth.shape, bool)
    steady = flicker(rgb, hole, depth, dynamic, poses, K)
    noisy = rgb.copy()
    noisy[0, 1:] = np.clip(noisy[0, 1:].astype(int) + np.random.default_rng(0).integers(-40, 40, noisy[0, 1:].shape),
                           0, 255).astype(np.uint8)
    assert steady < 3.0  # only bilinear resampling of a smooth texture
    assert flicker(noisy, hole, depth, dynamic, poses, K) > steady + 10.0
    # pixels that were not holes do not count
    assert np.isnan(flicker(noisy, np.zeros_like(hole), depth, dynamic, poses, K))


def test_revisit_psnr_is_capped_for_identical_frames_and_ignores_moving_pixels():
    _, rgb, _ = _sequence()
    loop = np.concatenate([rgb, rgb[:, :1]], axis=1)  # returns to the first frame exactly
    assert _revisit_psnr(loop, np.zeros(loop.shape[:4], bool)) == REVISIT_CAP_DB
    changed = loop.copy()
    changed[0, -1, :10] = 0
    dyn = np.zeros(loop.shape[:4], bool)
    assert _revisit_psnr(changed, dyn) < 30.0
    dyn[0, -1, :10] = True  # the changed pixels were moving objects: not counted
    assert _revisit_psnr(changed, dyn) == REVISIT_CAP_DB


def test_revisit_by_length_pairs_each_pose_with_its_return():
    _, rgb, _ = _sequence()
    out = np.concatenate([rgb, rgb[:, 1::-1]], axis=1)  # poses 0 1 2 1 0: gaps of 4 (pose 0) and 2 (pose 1)
    dyn = np.zeros(out.shape[:4], bool)
    assert revisit_by_length(out, dyn) == {4: REVISIT_CAP_DB, 2: REVISIT_CAP_DB}
    drift = out.copy()
    drift[0, 4] = np.clip(drift[0, 4].astype(int) + 60, 0, 255).astype(np.uint8)  # the long gap forgot the place
    by_len = revisit_by_length(drift, dyn)
    assert by_len[2] == REVISIT_CAP_DB and by_len[4] < 30.0


def test_every_row_keeps_the_users_model_settings():
    user = ModelConfig()
    user.star.refine, user.classical.inpaint, user.cache.ref_slots = "holes", "ns", 3
    star4 = model_config("star4", "x.pt", user)
    assert (star4.name, star4.star.sampler, star4.star.steps, star4.star.checkpoint) == ("star", "student", 4, "x.pt")
    assert star4.star.refine == "holes" and star4.classical.inpaint == "ns" and star4.cache.ref_slots == 3
    classical = model_config("classical", "", user, writeback=WritebackConfig(scope="off"))
    assert classical.name == "classical" and classical.classical.inpaint == "ns" and classical.writeback.scope == "off"
    assert user.name == "none" and user.writeback.scope != "off"  # the user's config is not changed


def test_degrade_match_scores_the_exact_scene_perfectly_and_the_degraded_one_worse():
    """The training data's degraded Worlds against a 'reconstruction' that is the exact Scene itself: the exact side
    has every static pixel's depth at zero error; degrading loses depth (textureless pixels, blobs) and adds noise,
    so its renders have more holes."""
    from inspatio_sim.bench.model_bench import _degrade_match
    from inspatio_sim.config import compose, to_dataclass
    from inspatio_sim.conventions import scale_intrinsics
    from inspatio_sim.oracle import Oracle
    from inspatio_sim.render import RenderConfig
    from inspatio_sim.scene_source import load_scene
    from inspatio_sim.world import WorldConfig, build_world

    cfg = compose(["scene=tiny"])
    gt = load_scene(cfg.scene)
    wcfg, rcfg = to_dataclass(WorldConfig, cfg.world, "world"), to_dataclass(RenderConfig, cfg.render, "render")
    world = build_world(gt, wcfg, progress=False)
    h, w = 36, 48
    traj = gt.poses[None, ::3]  # one trajectory along the recorded path
    times = (gt.timestamps[::3] - gt.timestamps[0])[None]
    Kt = scale_intrinsics(gt.K, w / gt.width, h / gt.height)
    with Oracle("room", int(cfg.scene.oracle.seed)) as oracle:
        truth = oracle.render(traj[0], times[0], Kt, w, h, supersample=1).rgb[None]
    m = _degrade_match(gt, gt, np.arange(gt.num_frames), world, traj, times, Kt, truth, rcfg, wcfg, 0)
    assert m["match_depth_valid_recon"] == 1.0 and m["match_depth_absrel_recon"] < 1e-6
    assert 0.3 < m["match_depth_valid_degraded"] < 1.0 and m["match_depth_absrel_degraded"] > 0.005
    assert m["match_hole_fraction_degraded"] >= m["match_hole_fraction_recon"]
    assert m["match_frame_psnr_none_recon"] > m["match_frame_psnr_none_degraded"] - 0.5
