"""The ground plane: detection on a gravity-aligned point cloud (RANSAC + least-squares refinement) and the height
of the ground under a point.

Plain geometry shared by reconstruction (gravity and metric scale, ``recon/align.py``) and the World (ground
following, navigation, robot placement); it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from inspatio_sim.errors import WorldError

ArrayT = TypeVar("ArrayT")
"""A float, a numpy array or a torch tensor: :meth:`GroundPlane.z_at` keeps the type (and torch device)."""


@dataclass(frozen=True)
class GroundPlane:
    """Plane ``normal . p + offset = 0`` in the world frame; ``normal`` is unit length and points up (+z side).

    Attributes:
        normal: ``(3,)`` float64 unit normal.
        offset: Signed offset in metres; the plane passes through ``-offset * normal``.
        inlier_fraction: Fraction of the candidate (low) points within the inlier threshold.
    """

    normal: np.ndarray
    offset: float
    inlier_fraction: float

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed height (metres) of ``points (..., 3)`` above the plane."""
        return points @ self.normal + self.offset

    def z_at(self, x: ArrayT, y: ArrayT) -> ArrayT:
        """World z (metres) of the plane vertically below/above the horizontal position ``(x, y)``.

        ``x`` and ``y`` are floats, numpy arrays or torch tensors of one shape; the result has that shape and type
        (a tensor stays on its device and dtype). Not to be confused with :meth:`height`, the distance along the
        normal.
        """
        n0, n1, n2 = (float(v) for v in self.normal)
        return -(n0 * x + n1 * y + float(self.offset)) / n2  # type: ignore[operator]


def fit_ground_plane(
    points: np.ndarray,
    rng: np.random.Generator,
    *,
    max_tilt_deg: float = 20.0,
    inlier_threshold: float = 0.02,
    low_fraction: float = 0.3,
    iterations: int = 256,
) -> GroundPlane:
    """Find the dominant near-horizontal plane among the lowest points.

    Args:
        points: ``(N, 3)`` world points (z up), N >= 3.
        rng: Seeded generator (RANSAC sampling).
        max_tilt_deg: Max angle between the plane normal and +z.
        inlier_threshold: Point-to-plane distance (metres) counted as inlier.
        low_fraction: Fraction of points (lowest z) considered as ground candidates.
        iterations: RANSAC hypotheses.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 3:
        raise WorldError("cannot fit a ground plane: fewer than 3 points")
    if pts.shape[0] > 200_000:
        pts = pts[rng.choice(pts.shape[0], 200_000, replace=False)]
    z_cut = np.quantile(pts[:, 2], low_fraction)
    cand = pts[pts[:, 2] <= z_cut + inlier_threshold]
    cos_max = np.cos(np.deg2rad(max_tilt_deg))
    samples = cand[rng.integers(0, cand.shape[0], size=(iterations, 3))]
    normals = np.cross(samples[:, 1] - samples[:, 0], samples[:, 2] - samples[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-12
    normals[ok] /= norms[ok, None]
    normals *= np.sign(normals[:, 2:3] + 1e-30)
    ok &= normals[:, 2] >= cos_max
    if not ok.any():
        raise WorldError("no near-horizontal ground plane found among the lowest points of the scene")
    normals, offsets = normals[ok], -np.einsum("ij,ij->i", normals[ok], samples[ok, 0])
    scores = (np.abs(cand @ normals.T + offsets) < inlier_threshold).sum(axis=0)
    best = int(np.argmax(scores))
    inliers = cand[np.abs(cand @ normals[best] + offsets[best]) < inlier_threshold]
    centroid = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centroid, full_matrices=False)[2][-1]
    normal *= np.sign(normal[2])
    return GroundPlane(normal=normal, offset=float(-normal @ centroid), inlier_fraction=float(scores[best] / len(cand)))
