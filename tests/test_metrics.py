"""Trajectory and depth metrics: Sim(3) fits recover known similarities; pose carrying is exact."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from inspatio_sim.metrics import carry_poses, depth_delta, trajectory_errors, umeyama_sim3


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
