"""Units, frames and array conventions used everywhere in inspatio-sim (defined once, imported elsewhere).

Units: metres, seconds, radians.

World frame: gravity-aligned, REP-103 (x forward, y left, **z up**). The ground plane of the bundled oracle
scenes is ``z = 0``.

Camera frame: OpenCV optical (x right, y down, z forward). A camera pose is ``T_world_camera``, the 4x4
camera-to-world transform: ``p_world = T[:3, :3] @ p_cam + T[:3, 3]``.

Intrinsics: ``K`` 3x3 in pixels for the resolution it is used at; pixel ``(u, v)`` has its centre at integer
coordinates, so a camera-frame point ``p`` lands at ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` and the pixel
``(round(u), round(v))``.

Arrays (leading batch dim ``B`` when batched):
  * RGB images: ``(H, W, 3)`` / ``(B, H, W, 3)`` uint8.
  * Depth: ``(H, W)`` / ``(B, H, W)`` float32 metres, **z-depth** along the optical axis (not ray length).
    ``0`` means "no data" (:data:`DEPTH_INVALID`); valid depth is finite and > 0.
  * Masks: bool, same spatial shape as the image.
  * Poses: ``(4, 4)`` / ``(B, 4, 4)``; float64 on disk and in numpy, float32 on torch devices.
  * Scene time: seconds since the first frame of the source video.
"""

from __future__ import annotations

import numpy as np

DEPTH_INVALID: float = 0.0
"""Depth value meaning "no measurement" in every depth map (Scene, World renders, oracle)."""

R_BODY_CAMERA: np.ndarray = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""``R_body_camera``: the OpenCV optical camera axes in REP-103 body coordinates (x forward, y left, z up), as
columns: optical z (forward) = body x, optical x (right) = -body y, optical y (down) = -body z. A level camera
looking along the body's x axis has ``R_world_camera = R_world_body @ R_BODY_CAMERA``."""

# Rotation taking OpenGL camera axes (x right, y up, z backward) to OpenCV optical axes (x right, y down, z forward).
# Both directions are the same matrix: diag(1, -1, -1) is its own inverse.
OPENGL_FROM_OPENCV: np.ndarray = np.diag([1.0, -1.0, -1.0])


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Return the 3x3 pinhole intrinsics matrix (float64, pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Square-pixel intrinsics for a horizontal field of view, principal point at the image centre.

    The centre of a W-pixel-wide image in the integer-centred pixel convention is ``(W - 1) / 2``.
    """
    fx = 0.5 * width / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return intrinsics_matrix(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics for an image resized by ``sx`` horizontally and ``sy`` vertically (pixel-centre aware)."""
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K2[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K2


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """``T_world_camera`` (OpenCV optical camera) at ``eye`` looking at ``target`` with world ``up`` roughly up."""
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T
