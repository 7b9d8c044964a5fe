"""Packed, chunked, multi-resolution point clouds: the renderable content of a World.

A :class:`SplatCloud` stores points of any number of layers in one packed buffer, cut into *segments*. A segment is
the points of one spatial chunk at one level of detail (LOD), optionally bound to one video frame (dynamic layer).
The renderer picks, per camera, the visible chunks, the LOD level of each from its distance, and the segment of the
current frame for dynamic content, then projects only those points.

LOD level ``l`` of a chunk was fused on voxels of edge ``voxel0 * 2**l``: its points are spaced about that far
apart, so the renderer can choose the coarsest level whose spacing still projects to at most a target number of
pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STATIC_FRAME = -1
"""``frame`` value of segments shown at every time."""


@dataclass
class SplatCloud:
    """Points cut into segments.

    Attributes:
        xyz: ``(N, 3)`` float32 world positions (metres).
        rgb: ``(N, 3)`` float32 colours in ``[0, 255]``.
        seg_start: ``(S,)`` int64 index of a segment's first point; a segment's points are contiguous.
        seg_count: ``(S,)`` int64 number of points.
        seg_chunk: ``(S,)`` int64 chunk id (index into the chunk tables).
        seg_level: ``(S,)`` int64 LOD level.
        seg_frame: ``(S,)`` int64 source frame, or :data:`STATIC_FRAME` for segments shown at every time.
        chunk_center: ``(C, 3)`` float32 bounding-sphere centres.
        chunk_radius: ``(C,)`` float32 bounding-sphere radii (metres).
        chunk_voxel0: ``(C,)`` float32 finest point spacing of the chunk (metres).
        chunk_levels: ``(C,)`` int64 number of LOD levels of the chunk.
    """

    xyz: torch.Tensor
    rgb: torch.Tensor
    seg_start: torch.Tensor
    seg_count: torch.Tensor
    seg_chunk: torch.Tensor
    seg_level: torch.Tensor
    seg_frame: torch.Tensor
    chunk_center: torch.Tensor
    chunk_radius: torch.Tensor
    chunk_voxel0: torch.Tensor
    chunk_levels: torch.Tensor

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def device(self) -> torch.device:
        return self.xyz.device

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> SplatCloud:
        f, i = torch.float32, torch.int64
        return SplatCloud(
            xyz=torch.zeros(0, 3, dtype=f, device=device), rgb=torch.zeros(0, 3, dtype=f, device=device),
            seg_start=torch.zeros(0, dtype=i, device=device), seg_count=torch.zeros(0, dtype=i, device=device),
            seg_chunk=torch.zeros(0, dtype=i, device=device), seg_level=torch.zeros(0, dtype=i, device=device),
            seg_frame=torch.zeros(0, dtype=i, device=device),
            chunk_center=torch.zeros(0, 3, dtype=f, device=device), chunk_radius=torch.zeros(0, dtype=f, device=device),
            chunk_voxel0=torch.zeros(0, dtype=f, device=device), chunk_levels=torch.zeros(0, dtype=i, device=device),
        )

    def to(self, device: torch.device | str) -> SplatCloud:
        return SplatCloud(**{k: v.to(device) for k, v in self.__dict__.items()})


def fuse_voxels(
    xyz: torch.Tensor, rgb: torch.Tensor, weight: torch.Tensor, voxel: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge points falling in the same cubic voxel into their weighted mean.

    Args:
        xyz: ``(N, 3)`` float32 positions; rgb: ``(N, 3)`` float32 colours; weight: ``(N,)`` positive weights.
        voxel: Voxel edge in metres.
    Returns:
        ``(xyz, rgb, weight)`` of the fused points, one per occupied voxel; weights summed.
    """
    if xyz.shape[0] == 0:
        return xyz, rgb, weight
    key = _voxel_keys(xyz, voxel)
    uniq, inverse = torch.unique(key, return_inverse=True)
    m = uniq.shape[0]
    wsum = torch.zeros(m, dtype=weight.dtype, device=xyz.device).index_add_(0, inverse, weight)
    w = weight[:, None]
    pos = torch.zeros(m, 3, dtype=xyz.dtype, device=xyz.device).index_add_(0, inverse, xyz * w)
    col = torch.zeros(m, 3, dtype=rgb.dtype, device=xyz.device).index_add_(0, inverse, rgb * w)
    return pos / wsum[:, None], col / wsum[:, None], wsum


def _voxel_keys(xyz: torch.Tensor, voxel: float) -> torch.Tensor:
    """One int64 key per point for its voxel (21 bits per axis, i.e. +-1M voxels around the origin)."""
    ijk = torch.floor(xyz / voxel).to(torch.int64) + (1 << 20)
    if (ijk < 0).any() or (ijk >= (1 << 21)).any():
        raise ValueError(f"points too far from the origin for voxel size {voxel} m")
    return (ijk[:, 0] << 42) | (ijk[:, 1] << 21) | ijk[:, 2]


def build_lod_cloud(
    xyz: torch.Tensor,
    rgb: torch.Tensor,
    weight: torch.Tensor,
    *,
    voxel0: float,
    num_levels: int,
    chunk_size: float,
) -> SplatCloud:
    """Fuse points into ``num_levels`` LOD levels (voxel ``voxel0 * 2**l``) and cut them into cubic chunks.

    Args:
        xyz, rgb, weight: ``(N, 3)``, ``(N, 3)``, ``(N,)`` raw observations (already in the world frame).
        voxel0: Finest voxel edge (metres).
        num_levels: Number of LOD levels (>= 1).
        chunk_size: Chunk edge (metres); chunks are the unit of frustum culling and LOD choice.
    """
    device = xyz.device
    levels_xyz, levels_rgb, levels_id = [], [], []
    px, pc, pw = xyz, rgb, weight
    for level in range(num_levels):
        px, pc, pw = fuse_voxels(px, pc, pw, voxel0 * (2**level))
        levels_xyz.append(px)
        levels_rgb.append(pc)
        levels_id.append(torch.full((px.shape[0],), level, dtype=torch.int64, device=device))
    all_xyz = torch.cat(levels_xyz)
    all_rgb = torch.cat(levels_rgb)
    all_level = torch.cat(levels_id)
    if all_xyz.shape[0] == 0:
        return SplatCloud.empty(device)
    chunk_key = _voxel_keys(all_xyz, chunk_size)
    chunk_uniq, chunk_id = torch.unique(chunk_key, return_inverse=True)
    order = torch.argsort(chunk_id * num_levels + all_level)
    all_xyz, all_rgb, chunk_id, all_level = all_xyz[order], all_rgb[order], chunk_id[order], all_level[order]
    seg_key, seg_count = torch.unique_consecutive(chunk_id * num_levels + all_level, return_counts=True)
    seg_start = torch.cumsum(seg_count, 0) - seg_count
    num_chunks = chunk_uniq.shape[0]
    center, radius = _bounding_spheres(all_xyz, chunk_id, num_chunks)
    return SplatCloud(
        xyz=all_xyz.contiguous(), rgb=all_rgb.contiguous(),
        seg_start=seg_start, seg_count=seg_count, seg_chunk=seg_key // num_levels, seg_level=seg_key % num_levels,
        seg_frame=torch.full_like(seg_key, STATIC_FRAME),
        chunk_center=center, chunk_radius=radius,
        chunk_voxel0=torch.full((num_chunks,), voxel0, dtype=torch.float32, device=device),
        chunk_levels=torch.full((num_chunks,), num_levels, dtype=torch.int64, device=device),
    )


def build_frame_cloud(xyz: torch.Tensor, rgb: torch.Tensor, frame: torch.Tensor, *, voxel0: float) -> SplatCloud:
    """One single-level segment per frame (the dynamic layer): points of frame ``f`` are shown only at frame ``f``.

    Args:
        xyz, rgb: ``(N, 3)`` points and colours; frame: ``(N,)`` int64 source frame of each point.
        voxel0: Point spacing (metres), used by the renderer's LOD logic.
    """
    device = xyz.device
    if xyz.shape[0] == 0:
        return SplatCloud.empty(device)
    order = torch.argsort(frame, stable=True)
    xyz, rgb, frame = xyz[order], rgb[order], frame[order]
    frames, count = torch.unique_consecutive(frame, return_counts=True)
    seg_id = torch.repeat_interleave(torch.arange(frames.shape[0], device=device), count)
    center, radius = _bounding_spheres(xyz, seg_id, frames.shape[0])
    n = frames.shape[0]
    return SplatCloud(
        xyz=xyz.contiguous(), rgb=rgb.contiguous(), seg_start=torch.cumsum(count, 0) - count, seg_count=count,
        seg_chunk=torch.arange(n, device=device), seg_level=torch.zeros(n, dtype=torch.int64, device=device),
        seg_frame=frames, chunk_center=center, chunk_radius=radius,
        chunk_voxel0=torch.full((n,), voxel0, dtype=torch.float32, device=device),
        chunk_levels=torch.ones(n, dtype=torch.int64, device=device),
    )


def concat_clouds(clouds: list[SplatCloud]) -> SplatCloud:
    """Concatenate clouds into one (segment starts and chunk ids re-based)."""
    clouds = [c for c in clouds if c.num_points > 0]
    if not clouds:
        raise ValueError("concat_clouds needs at least one non-empty cloud")
    point_base, chunk_base = 0, 0
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in SplatCloud.__dataclass_fields__}
    for c in clouds:
        for k, v in c.__dict__.items():
            if k == "seg_start":
                v = v + point_base
            elif k == "seg_chunk":
                v = v + chunk_base
            parts[k].append(v)
        point_base += c.num_points
        chunk_base += c.chunk_center.shape[0]
    return SplatCloud(**{k: torch.cat(v) for k, v in parts.items()})


def _bounding_spheres(xyz: torch.Tensor, group: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned-box bounding spheres ``(n, 3)``, ``(n,)`` of points grouped by ``group (N,)``."""
    idx = group[:, None].expand(-1, 3)
    lo = torch.full((n, 3), float("inf"), device=xyz.device).scatter_reduce(0, idx, xyz, "amin")
    hi = torch.full((n, 3), float("-inf"), device=xyz.device).scatter_reduce(0, idx, xyz, "amax")
    return (lo + hi) / 2, (hi - lo).norm(dim=1) / 2
