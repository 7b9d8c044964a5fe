"""What the STAR network reads, built from the simulator's tensors: Plücker rays, slot frames at the model's
resolution (reference video frames are resized, their intrinsics scaled)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from inspatio_sim.model.cache import plucker_rays
from inspatio_sim.model.star.network import slot_input


def scaled_K(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics ``(3, 3)`` of an image resized by ``sx`` (width) and ``sy`` (height)."""
    out = K.float().clone()
    out[0] *= sx
    out[1] *= sy
    return out


def resize_frames(rgb: torch.Tensor, depth: torch.Tensor, height: int, width: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``rgb (N, Hr, Wr, 3)`` uint8 -> float ``(N, H, W, 3)`` in [-1, 1] (area), ``depth (N, Hr, Wr)`` -> nearest
    ``(N, H, W)``."""
    if rgb.shape[1:3] == (height, width):
        return rgb.float() / 127.5 - 1.0, depth.float()
    c = F.interpolate(rgb.permute(0, 3, 1, 2).float(), size=(height, width), mode="area")
    d = F.interpolate(depth.float()[:, None], size=(height, width), mode="nearest")[:, 0]
    return c.permute(0, 2, 3, 1) / 127.5 - 1.0, d


def reference_slots(rgb: torch.Tensor, depth: torch.Tensor, poses: torch.Tensor, K: torch.Tensor, height: int,
                    width: int) -> torch.Tensor:
    """Slot inputs ``(N, H, W, 11)`` of reference frames ``rgb (N, Hr, Wr, 3)``, ``depth (N, Hr, Wr)``,
    ``poses (N, 4, 4)`` with intrinsics ``K`` (of the ``Hr x Wr`` frames), resized to ``H x W``."""
    hr, wr = rgb.shape[1:3]
    c, d = resize_frames(rgb, depth, height, width)
    rays = plucker_rays(scaled_K(K, width / wr, height / hr), poses.float(), height, width)
    return slot_input(c, d, rays)
