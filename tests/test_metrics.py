"""Image, depth, mask and trajectory metrics: known values, known degradations, Sim(3) fits, exact pose carrying."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from inspatio_sim.metrics import (
    carry_poses,
    depth_absrel,
    depth_delta,
    mask_iou,
    mask_scores,
    psnr,
    ssim,
    trajectory_errors,
    umeyama_sim3,
)


def _path(n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.3, size=(n, 3))).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(scale=0.1, size=(n, 3)), axis=0)
    return poses


def _transform(poses: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = poses.copy()
    out[:, :3, :3] = R @ poses[:, :3, :3]
    out[:, :3, 3] = s * poses[:, :3, 3] @ R.T + t
    return out


def test_umeyama_recovers_a_similarity():
    gt = _path()
    R, t = Rotation.from_euler("xyz", [0.3, -0.5, 1.2]).as_matrix(), np.array([1.0, -2.0, 0.5])
    est = _transform(gt, 1 / 2.5, R.T, -R.T @ t / 2.5)  # est = S^-1 gt, so gt = 2.5 R est + t
    s, R_fit, t_fit = umeyama_sim3(est[:, :3, 3], gt[:, :3, 3])
    assert abs(s - 2.5) < 1e-9 and np.allclose(R_fit, R, atol=1e-9) and np.allclose(t_fit, t, atol=1e-9)
    err = trajectory_errors(est, gt)
    assert err["ate_rmse"] < 1e-9 and err["rel_rot_err_deg"] < 1e-6 and err["abs_rot_err_deg"] < 1e-6
    assert abs(err["sim3_scale"] - 2.5) < 1e-9


def test_trajectory_errors_measure_a_known_perturbation():
    gt = _path()
    est = gt.copy()
    est[:, :3, 3] += np.array([0.01, 0.0, 0.0]) * (-1) ** np.arange(len(gt))[:, None]  # +-1 cm zig-zag
    est[1:, :3, :3] = Rotation.from_rotvec([0, 0, np.deg2rad(0.5)]).as_matrix() @ est[1:, :3, :3]  # world frame
    err = trajectory_errors(est, gt)
    assert 0.009 < err["ate_rmse"] < 0.0101
    path = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum()
    assert abs(err["ate_percent_path"] - 100 * err["ate_rmse"] / path) < 1e-9
    assert abs(err["rel_rot_err_deg"] - 0.5 / (len(gt) - 1)) < 1e-6  # only the first step changed


def test_carry_poses_is_exact_under_a_similarity():
    gt = _path()
    R, t, s = Rotation.from_euler("z", 0.7).as_matrix(), np.array([3.0, 1.0, -1.0]), 0.4
    rec = _transform(gt, s, R, t)  # the same cameras in a frame scaled by s
    query = _path(5, seed=1)
    carried = carry_poses(query, gt, rec, 1 / s)
    np.testing.assert_allclose(carried, _transform(query, s, R, t), atol=1e-9)


def test_depth_delta():
    gt = np.full((4, 4), 2.0)
    pred = gt.copy()
    pred[0] = 3.0  # ratio 1.5: outside 1.25
    pred[1, 0] = 0.0  # no data: not counted
    assert abs(depth_delta(pred, gt) - 11 / 15) < 1e-12
    assert np.isnan(depth_delta(np.zeros((2, 2)), np.ones((2, 2))))


def test_depth_absrel_and_delta_honour_the_mask():
    gt = np.full((4, 4), 2.0)
    pred = gt.copy()
    pred[0] = 3.0  # absrel 0.5 on row 0
    pred[1, 0] = 0.0
    assert abs(depth_absrel(pred, gt) - 4 * 0.5 / 15) < 1e-12
    keep = np.ones((4, 4), bool)
    keep[0, :2] = False
    assert abs(depth_absrel(pred, gt, keep) - 2 * 0.5 / 13) < 1e-12
    assert abs(depth_delta(pred, gt, mask=keep) - 11 / 13) < 1e-12
    assert np.isnan(depth_absrel(pred, gt, np.zeros((4, 4), bool)))


def test_mask_iou_and_scores_on_known_masks():
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2] = True  # 8 pixels
    pred = np.zeros_like(truth)
    pred[0, 1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(pred, truth) == 4 / 12
    s = mask_scores(pred, truth)
    assert s["iou"] == 4 / 12 and s["recall"] == 0.5 and s["fp_rate"] == 4 / 24
    assert mask_iou(np.zeros_like(truth), np.zeros_like(truth)) == 1.0  # nothing to find, nothing found
    assert mask_iou(truth, ~truth) == 0.0


def _photo(seed: int = 0) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    img = resize(data.astronaut(), (64, 64), anti_aliasing=True)
    return (np.roll(img, 7 * seed, axis=1) * 255).round().astype(np.uint8)


def test_ssim_is_one_for_identical_images_and_lower_for_known_degradations():
    img = _photo()
    assert ssim(img, img) == 1.0
    rng = np.random.default_rng(0)
    light = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    s_light, s_heavy = ssim(light, img), ssim(heavy, img)
    assert 0.8 < s_light < 1.0 and s_heavy < s_light - 0.3  # more noise, lower SSIM
    assert ssim(np.full_like(img, 128), img) < 0.2  # structure gone
    assert ssim(light, img) == ssim(img, light)  # symmetric


def test_ssim_of_a_batch_is_the_mean_of_its_images():
    imgs = np.stack([_photo(k) for k in range(3)])
    noisy = np.clip(imgs + np.random.default_rng(1).normal(0, 15, imgs.shape), 0, 255).astype(np.uint8)
    singles = [ssim(a, b) for a, b in zip(noisy, imgs, strict=True)]
    assert len(set(singles)) == 3
    assert abs(ssim(noisy, imgs) - np.mean(singles)) < 1e-12


def test_psnr_of_a_known_error():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # mse = 255^2 / 48
    assert abs(psnr(b, a) - 10 * np.log10(48)) < 1e-9
    assert psnr(a, a) == float("inf")
    mask = np.zeros((4, 4), bool)
    mask[1:] = True
    assert psnr(b, a, mask) == float("inf")  # the error lies outside the mask
