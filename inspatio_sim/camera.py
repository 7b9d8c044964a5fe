"""Pinhole camera rays on torch (conventions in :mod:`inspatio_sim.conventions`)."""

from __future__ import annotations

import torch


def pixel_rays(K: torch.Tensor, height: int, width: int, stride: int = 1) -> torch.Tensor:
    """Camera-frame rays ``(H', W', 3)`` with z = 1 through the centres of every ``stride``-th pixel of ``K``.

    A pixel's 3-D point at z-depth ``d`` is ``ray * d`` (OpenCV camera frame).
    """
    v, u = torch.meshgrid(torch.arange(0, height, stride, device=K.device, dtype=torch.float32),
                          torch.arange(0, width, stride, device=K.device, dtype=torch.float32), indexing="ij")
    return torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
