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


def depth_absrel(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean ``|pred - target| / target`` over pixels where both depths are valid (> 0); NaN if there are none."""
    m = (pred > 0) & (target > 0)
    if not m.any():
        return float("nan")
    return float(np.mean(np.abs(pred[m] - target[m]) / target[m]))
