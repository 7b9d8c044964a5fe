"""Image and depth fidelity metrics (numpy, per image or batched over a leading dim)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 images ``(..., H, W, 3)`` (peak 255) over all pixels or those where ``mask (..., H, W)``."""
    err = (pred.astype(np.float64) - target.astype(np.float64)) ** 2
    mse = float(err[mask].mean()) if mask is not None else float(err.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of uint8 RGB images ``(H, W, 3)`` or batches ``(B, H, W, 3)`` (scikit-image, Gaussian window)."""
    p, t = np.asarray(pred), np.asarray(target)
    if p.ndim == 3:
        p, t = p[None], t[None]
    return float(np.mean([
        structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for a, b in zip(p, t, strict=True)
    ]))


def _both_valid(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    m = (pred > 0) & (target > 0)
    return m if mask is None else m & mask


def depth_absrel(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean ``|pred - target| / target`` over pixels where both z-depths (metres, any shape) are valid (> 0) and
    ``mask`` (same shape, optional) holds; NaN if there are none."""
    m = _both_valid(pred, target, mask)
    if not m.any():
        return float("nan")
    return float(np.mean(np.abs(pred[m] - target[m]) / target[m]))


def depth_delta(pred: np.ndarray, target: np.ndarray, threshold: float = 1.25, mask: np.ndarray | None = None
                ) -> float:
    """Fraction of pixels (both depths valid, ``mask`` where given) with ``max(pred/target, target/pred) <
    threshold`` (the usual δ<1.25); NaN if none."""
    m = _both_valid(pred, target, mask)
    if not m.any():
        return float("nan")
    ratio = np.maximum(pred[m] / target[m], target[m] / pred[m])
    return float(np.mean(ratio < threshold))


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of bool masks (any shape, e.g. ``(N, H, W)``: pooled over all frames); 1 when both
    are empty (nothing to find, nothing found)."""
    union = float((pred | truth).sum())
    return float((pred & truth).sum()) / union if union else 1.0


def mask_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``iou`` (:func:`mask_iou`), ``fp_rate`` (fraction of the pixels outside ``truth`` that ``pred`` marks) and
    ``recall`` (fraction of ``truth`` found) of bool masks (any shape, pooled)."""
    inter = float((pred & truth).sum())
    return {"iou": mask_iou(pred, truth), "fp_rate": float((pred & ~truth).sum() / max((~truth).sum(), 1)),
            "recall": inter / max(float(truth.sum()), 1.0)}


def umeyama_sim3(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991) with ``target ≈ s * R @ source + t`` for ``(N, 3)`` point sets.

    Returns ``(s, R (3, 3), t (3,))``.
    """
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    R = U @ D @ Vt
    var = float((a**2).sum(axis=1).mean())
    s = float(np.trace(np.diag(S) @ D) / var) if var > 0 else 1.0
    return s, R, mu_d - s * R @ mu_s


def umeyama_sim3_poses(poses: np.ndarray, gt_poses: np.ndarray, axis_length: float = 1.0
                       ) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``gt ≈ s * R @ est + t`` fitted to camera positions *and* orientations of ``(N, 4, 4)`` poses.

    A nearly straight path leaves the roll about it unconstrained by positions alone; this fit adds, per camera,
    the three points ``axis_length`` metres (ground-truth units) along its axes. Returns ``(s, R, t)``.
    """
    s0, _, _ = umeyama_sim3(poses[:, :3, 3], gt_poses[:, :3, 3])

    def axis_points(p: np.ndarray, length: float) -> np.ndarray:
        c = p[:, :3, 3]
        return np.concatenate([c] + [c + length * p[:, :3, k] for k in range(3)])

    return umeyama_sim3(axis_points(poses, axis_length / s0), axis_points(gt_poses, axis_length))


def trajectory_errors(poses: np.ndarray, gt_poses: np.ndarray) -> dict[str, float]:
    """Errors of estimated camera poses ``(N, 4, 4)`` against ground truth ``(N, 4, 4)`` (``T_world_camera``).

    Returns ``ate_rmse`` (metres, positions after the Sim(3) fit), ``ate_percent_path`` (RMSE / ground-truth path
    length x 100), ``rel_rot_err_deg`` (mean angle of ``R_i^-1 R_j`` error between consecutive frames: free of any
    global alignment), ``abs_rot_err_deg`` (mean orientation error after the fit's rotation), ``sim3_scale``
    (metres of ground truth per estimated unit: 1 for a perfect metric scale).
    """
    from scipy.spatial.transform import Rotation

    s, R, t = umeyama_sim3(poses[:, :3, 3], gt_poses[:, :3, 3])
    aligned = s * poses[:, :3, 3] @ R.T + t
    err = np.linalg.norm(aligned - gt_poses[:, :3, 3], axis=1)
    path = float(np.linalg.norm(np.diff(gt_poses[:, :3, 3], axis=0), axis=1).sum())
    rel_est = np.einsum("nji,njk->nik", poses[:-1, :3, :3], poses[1:, :3, :3])
    rel_gt = np.einsum("nji,njk->nik", gt_poses[:-1, :3, :3], gt_poses[1:, :3, :3])
    rel = Rotation.from_matrix(np.einsum("nji,njk->nik", rel_est, rel_gt)).magnitude() if len(poses) > 1 else [0.0]
    R_full = umeyama_sim3_poses(poses, gt_poses)[1]
    absr = Rotation.from_matrix(np.einsum("ij,njk,nlk->nil", R_full, poses[:, :3, :3], gt_poses[:, :3, :3])).magnitude()
    rmse = float(np.sqrt(np.mean(err**2)))
    return {"ate_rmse": rmse, "ate_percent_path": 100.0 * rmse / path if path > 0 else float("nan"),
            "rel_rot_err_deg": float(np.degrees(np.mean(rel))), "abs_rot_err_deg": float(np.degrees(np.mean(absr))),
            "sim3_scale": s}


def carry_poses(query: np.ndarray, ref: np.ndarray, ref_target: np.ndarray, scale: float) -> np.ndarray:
    """Carry ``(M, 4, 4)`` poses from one reconstruction of a path into another, each relative to its nearest
    reference camera: ``T' = ref_target[i] @ (ref[i]^-1 @ T)``, relative translation divided by ``scale``.

    ``ref (N, 4, 4)`` and ``ref_target (N, 4, 4)`` are the same cameras in the two frames; ``scale`` is metres of
    the ``ref`` frame per unit of the target frame (e.g. :func:`umeyama_sim3`'s scale from target to ref).
    """
    nearest = np.argmin(np.linalg.norm(query[:, None, :3, 3] - ref[None, :, :3, 3], axis=-1), axis=1)
    rel = np.linalg.inv(ref[nearest]) @ query
    rel[:, :3, 3] /= scale
    return ref_target[nearest] @ rel
