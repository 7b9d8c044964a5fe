"""Batched SE(3) on torch (the only copy of this math on torch; numpy code uses ``scipy.spatial.transform``).

All functions take and return tensors with a leading batch shape ``(..., )``; poses are ``(..., 4, 4)`` homogeneous
transforms, quaternions are ``(..., 4)`` in scalar-last ``(x, y, z, w)`` order like scipy.
"""

from __future__ import annotations

import torch


def invert(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``(..., 4, 4)`` using ``R^T`` (no general matrix inverse)."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def transform_points(T: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Apply ``T (..., 4, 4)`` to points ``p (..., N, 3)``: ``R p + t``."""
    return p @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (x, y, z, w) → rotation matrices ``(..., 3, 3)``; ``q`` is normalised first."""
    q = q / q.norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return torch.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rotation vectors ``(..., 3)`` (axis * angle, radians) → rotation matrices ``(..., 3, 3)`` (Rodrigues)."""
    theta = v.norm(dim=-1, keepdim=True)
    small = theta < 1e-8
    axis = v / torch.where(small, torch.ones_like(theta), theta)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)
    s = torch.sin(theta)[..., None]
    c = torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(Kx)
    R = eye + s * Kx + (1 - c) * (Kx @ Kx)
    return torch.where(small[..., None], eye + _skew(v), R)


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def from_rotation_translation(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Build ``(..., 4, 4)`` transforms from ``R (..., 3, 3)`` and ``t (..., 3)``."""
    T = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def euler_zyx_to_matrix(euler: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` (roll, pitch, yaw) radians → ``R = Rz(yaw) Ry(pitch) Rx(roll)`` ``(..., 3, 3)``.

    Same as scipy ``Rotation.from_euler("ZYX", [yaw, pitch, roll])``; in REP-103 body axes a positive pitch
    tips the nose (x) down.
    """
    roll, pitch, yaw = euler.unbind(-1)
    cr, sr, cp, sp, cy, sy = roll.cos(), roll.sin(), pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin()
    return torch.stack(
        [
            cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
            sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
            -sp, cp * sr, cp * cr,
        ],
        dim=-1,
    ).reshape(*euler.shape[:-1], 3, 3)


def matrix_to_euler_zyx(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_zyx_to_matrix`: ``(..., 3, 3)`` → (roll, pitch, yaw) ``(..., 3)``, pitch in
    ``[-pi/2, pi/2]``."""
    pitch = torch.asin((-R[..., 2, 0]).clamp(-1.0, 1.0))
    roll = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    yaw = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.stack([roll, pitch, yaw], dim=-1)
