"""Validation of camera poses and pinhole intrinsics, written once and used by every module that takes them.

Each check raises the *caller's* :class:`~inspatio_sim.errors.InSpatioError` subclass (``error=``), so a bad pose
given to the renderer is a :class:`~inspatio_sim.errors.RenderError`, one in a Scene a
:class:`~inspatio_sim.errors.SceneError`, and so on, with one message per rule:

* poses: shape ``(B, 4, 4)`` (``B`` fixed when the caller knows it), finite, last row ``[0, 0, 0, 1]``, rotation
  orthonormal (``|R^T R - I| <= tol``) and proper (``|det R - 1| <= tol``, no reflection);
* intrinsics: shape ``(3, 3)`` (or ``(B, 3, 3)`` where per-camera intrinsics are allowed), finite, ``fx, fy > 0``,
  no skew and last row ``[0, 0, 1]`` (the form of :func:`inspatio_sim.conventions.intrinsics_matrix`).

Inputs may be numpy arrays, torch tensors (any device; checked on a float64 CPU copy) or nested sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inspatio_sim.errors import InSpatioError

ROTATION_TOLERANCE = 1e-4
"""Max deviation of ``R^T R`` from identity (and of ``det R`` from 1) accepted for a pose rotation."""


def _as_float64(a: Any, what: str, error: type[InSpatioError]) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise error(f"{what} must be a numeric array ({e})") from e


def check_poses(poses: Any, *, what: str = "poses", error: type[InSpatioError], count: int | None = None,
                tol: float = ROTATION_TOLERANCE) -> np.ndarray:
    """Check ``T_world_camera`` poses ``(B, 4, 4)``; return them as float64 numpy.

    Args:
        poses: The poses (numpy, torch or nested sequences).
        what: How the caller names them in messages (``"reset poses"``, ``"Scene poses"``...).
        error: The :class:`InSpatioError` subclass to raise.
        count: Required ``B`` (``None``: any ``B >= 1``).
        tol: Rotation tolerance (orthonormality and determinant).

    Raises:
        error: on the first broken rule, naming the pose index.
    """
    p = _as_float64(poses, what, error)
    n = "B" if count is None else count
    if p.ndim != 3 or p.shape[1:] != (4, 4) or (count is not None and p.shape[0] != count):
        raise error(f"{what} must be ({n}, 4, 4) T_world_camera matrices, got shape {p.shape}")
    if p.shape[0] == 0:
        raise error(f"{what}: got 0 poses (B=0); pass at least one")
    finite = np.isfinite(p).all(axis=(1, 2))
    if not finite.all():
        raise error(f"{what}: pose {int(np.argmin(finite))} is not finite (contains NaN or inf)")
    rigid = np.all(np.abs(p[:, 3] - [0.0, 0.0, 0.0, 1.0]) < 1e-6, axis=1)
    if not rigid.all():
        raise error(f"{what}: pose {int(np.argmin(rigid))} is not rigid (last row must be [0, 0, 0, 1])")
    R = p[:, :3, :3]
    ortho = np.abs(np.einsum("nji,njk->nik", R, R) - np.eye(3)).max(axis=(1, 2))
    if (ortho > tol).any():
        i = int(np.argmax(ortho > tol))
        raise error(f"{what}: pose {i} has a non-orthonormal rotation (|R^T R - I| = {ortho[i]:.2e} > {tol:g})")
    det = np.linalg.det(R)
    if (np.abs(det - 1.0) > tol).any():
        i = int(np.argmax(np.abs(det - 1.0) > tol))
        raise error(f"{what}: pose {i} has det R = {det[i]:.6f}, not a proper rotation (a reflection?); "
                    "poses must be right-handed")
    return p


def check_intrinsics(K: Any, *, what: str = "K", error: type[InSpatioError], batch: int | None = None) -> np.ndarray:
    """Check pinhole intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels; return them as float64 numpy.

    Args:
        K: ``(3, 3)``, or ``(batch, 3, 3)`` when ``batch`` is given (per-camera intrinsics allowed).
        what: How the caller names them in messages.
        error: The :class:`InSpatioError` subclass to raise.
        batch: Number of cameras when per-camera ``(B, 3, 3)`` intrinsics are accepted (``None``: only ``(3, 3)``).

    Raises:
        error: on the first broken rule.
    """
    k = _as_float64(K, what, error)
    if k.shape != (3, 3) and (batch is None or k.shape != (batch, 3, 3)):
        allowed = "(3, 3)" if batch is None else f"(3, 3) or ({batch}, 3, 3)"
        raise error(f"{what} must be {allowed} pinhole intrinsics, got shape {k.shape}")
    ks = k.reshape(-1, 3, 3)
    if not np.isfinite(ks).all():
        raise error(f"{what} is not finite (contains NaN or inf)")
    if (ks[:, 0, 0] <= 0).any() or (ks[:, 1, 1] <= 0).any():
        raise error(f"{what} must have positive focal lengths fx, fy > 0 (pixels), got fx = {ks[:, 0, 0].min():g}, "
                    f"fy = {ks[:, 1, 1].min():g}")
    if (ks[:, 0, 1] != 0).any() or (ks[:, 1, 0] != 0).any() or (ks[:, 2] != [0.0, 0.0, 1.0]).any():
        raise error(f"{what} must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {ks[0].tolist()}")
    return k
