"""Reference frames: the recorded video as the world model reads it (frames, depth, validity, poses, scene time).

The cache's reference slots point into a :class:`ReferenceFrames` library held once per World on its device. Choosing
the frames useful for a camera never scans all ``N`` frames per step: a k-d tree over camera centres and viewing
directions (built once) proposes ``candidates`` frames, and only those are scored by view overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from inspatio_sim.errors import WorldError
from inspatio_sim.scene import Scene

DIRECTION_WEIGHT = 1.0
"""Metres of camera-centre distance that count as much as a 90-degree turn of the viewing axis in the k-d tree."""


@dataclass
class ReferenceFrames:
    """The recorded frames on a torch device.

    Attributes:
        rgb: ``(N, H, W, 3)`` uint8 video frames.
        depth: ``(N, H, W)`` float32 z-depth in metres, 0 where the reconstruction has no (confident) depth.
        dynamic: ``(N, H, W)`` bool, pixels of moving objects.
        poses: ``(N, 4, 4)`` float32 ``T_world_camera``.
        K: ``(3, 3)`` float32 intrinsics of the frames.
        timestamps: ``(N,)`` float64 scene time (seconds).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    dynamic: torch.Tensor
    poses: torch.Tensor
    K: torch.Tensor
    timestamps: torch.Tensor

    def __post_init__(self) -> None:
        centres = self.poses[:, :3, 3].double().cpu().numpy()
        forward = self.poses[:, :3, 2].double().cpu().numpy()
        self._tree = cKDTree(np.concatenate([centres, forward * DIRECTION_WEIGHT / math.sqrt(2.0)], axis=1))
        self.is_dynamic = bool(self.dynamic.any())

    @classmethod
    def from_scene(cls, scene: Scene, device: str | torch.device = "cpu", min_confidence: float = 0.5
                   ) -> ReferenceFrames:
        """The Scene's frames, with depth below ``min_confidence`` (the World's threshold) set to 0."""
        if scene.num_frames < 1:
            raise WorldError("a Scene without frames cannot serve as reference")
        dev = torch.device(device)
        depth = np.where(scene.confidence >= min_confidence, scene.depth, 0.0).astype(np.float32)
        return cls(rgb=torch.as_tensor(scene.frames, device=dev), depth=torch.as_tensor(depth, device=dev),
                   dynamic=torch.as_tensor(scene.dynamic_mask, device=dev),
                   poses=torch.as_tensor(scene.poses, dtype=torch.float32, device=dev),
                   K=torch.as_tensor(scene.K, dtype=torch.float32, device=dev),
                   timestamps=torch.as_tensor(scene.timestamps, dtype=torch.float64, device=dev))

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.rgb, self.depth, self.dynamic, self.poses))

    def candidates(self, poses: torch.Tensor, count: int) -> torch.Tensor:
        """``(B, C)`` int64 indices of the ``C = min(count, N)`` frames nearest to each camera ``poses (B, 4, 4)``
        in centre position and viewing direction (k-d tree, O(B log N))."""
        c = min(count, self.num_frames)
        p = poses.detach().double().cpu().numpy()
        query = np.concatenate([p[:, :3, 3], p[:, :3, 2] * DIRECTION_WEIGHT / math.sqrt(2.0)], axis=1)
        _, idx = self._tree.query(query, k=c)
        idx = np.asarray(idx, dtype=np.int64).reshape(len(p), c)
        return torch.as_tensor(idx, device=self.rgb.device)
