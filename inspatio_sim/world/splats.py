"""Packed, chunked, multi-resolution point clouds: the renderable content of a World.

A :class:`SplatCloud` stores the points of any number of layers in fixed-size *blocks* of ``P`` points (a block
never mixes chunks or levels; unused slots hold NaN and are never drawn). Block 0 is an all-NaN *null block*
(level :data:`NULL_LEVEL`) used to pad per-camera block lists. Every block carries a bounding sphere, the *chunk*
it belongs to and its level of detail (LOD).

A chunk is a region holding all LOD levels of its content, shown either always (:data:`STATIC_FRAME`) or only at
one video frame (dynamic layer). Level ``l`` was fused on voxels of edge ``voxel0 * LOD_STEP**l``, so its points
are spaced about that far apart. Steps of sqrt(2) (rather than 2) keep the drawn spacing within a factor 0.71-1 of
the target, so a camera draws about a third fewer points than with octave steps for the same worst case.

Per camera the renderer culls chunks, picks for every visible chunk the coarsest level whose spacing still
projects to at most a target number of pixels, keeps the blocks of that level whose spheres intersect the
frustum, and projects only those. Points inside a block are in Morton order, so blocks are spatially compact and
culling is tight.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

STATIC_FRAME = -1
"""``chunk_frame`` of chunks shown at every time."""
NULL_LEVEL = -1
"""``block_level`` of the null block (never selected)."""
DEFAULT_BLOCK_SIZE = 64
LOD_STEP = 2.0**0.5
"""Ratio of the point spacings of consecutive LOD levels."""


@dataclass
class SplatCloud:
    """Points in blocks.

    Attributes:
        xyz: ``(3, NB, P)`` float32 world positions (metres), coordinate-major so that projection runs on
            contiguous rows; NaN in unused slots.
        rgb: ``(3, NB, P)`` float32 colours in ``[0, 255]`` (channel-major like ``xyz``).
        block_center: ``(NB, 3)`` float32 bounding-sphere centres (NaN for the null block).
        block_radius: ``(NB,)`` float32 bounding-sphere radii (metres).
        block_chunk: ``(NB,)`` int64 chunk of each block.
        block_level: ``(NB,)`` int64 LOD level (:data:`NULL_LEVEL` for the null block).
        chunk_center: ``(C, 3)`` float32 bounding-sphere centres of the chunks.
        chunk_radius: ``(C,)`` float32.
        chunk_voxel0: ``(C,)`` float32 finest point spacing of the chunk (metres).
        chunk_levels: ``(C,)`` int64 number of LOD levels of the chunk.
        chunk_frame: ``(C,)`` int64 video frame the chunk is shown at, or :data:`STATIC_FRAME` (always).
        level_start: ``(C, L)`` int64 first block of each (chunk, level), derived; blocks are sorted by
            (chunk, level) after the null block, so a (chunk, level) is the block range
            ``[level_start, level_start + level_count)``.
        level_count: ``(C, L)`` int64 number of blocks of each (chunk, level), derived.
    """

    xyz: torch.Tensor
    rgb: torch.Tensor
    block_center: torch.Tensor
    block_radius: torch.Tensor
    block_chunk: torch.Tensor
    block_level: torch.Tensor
    chunk_center: torch.Tensor
    chunk_radius: torch.Tensor
    chunk_voxel0: torch.Tensor
    chunk_levels: torch.Tensor
    chunk_frame: torch.Tensor
    level_start: torch.Tensor = field(init=False, repr=False)
    level_count: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.chunk_center.shape[0]
        levels = max(int(self.chunk_levels.max()), 1) if c else 1
        key = self.block_chunk[1:] * levels + self.block_level[1:]
        if key.numel() > 1 and bool((key[1:] < key[:-1]).any()):
            raise ValueError("SplatCloud blocks must be sorted by (chunk, level)")
        count = torch.bincount(key, minlength=c * levels)[: c * levels]
        self.level_count = count.reshape(c, levels)
        self.level_start = (torch.cumsum(count, 0) - count + 1).reshape(c, levels)

    @property
    def num_points(self) -> int:
        """Number of real (non-padding) points, all levels included."""
        return int(torch.isfinite(self.xyz[0]).sum())

    @property
    def num_blocks(self) -> int:
        return int(self.xyz.shape[1])

    @property
    def block_size(self) -> int:
        return int(self.xyz.shape[2])

    @property
    def device(self) -> torch.device:
        return self.xyz.device

    def points(self, level: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Real points ``(N, 3)`` and colours ``(N, 3)``, optionally only those of one LOD ``level``."""
        keep = torch.ones_like(self.block_level, dtype=torch.bool) if level is None else self.block_level == level
        xyz = self.xyz[:, keep].permute(1, 2, 0)
        real = torch.isfinite(xyz[..., 0])
        return xyz[real], self.rgb[:, keep].permute(1, 2, 0)[real]

    @staticmethod
    def empty(device: torch.device | str = "cpu", block_size: int = DEFAULT_BLOCK_SIZE) -> SplatCloud:
        """A cloud holding only the null block."""
        f, i = torch.float32, torch.int64
        return SplatCloud(
            xyz=torch.full((3, 1, block_size), float("nan"), dtype=f, device=device),
            rgb=torch.zeros(3, 1, block_size, dtype=f, device=device),
            block_center=torch.full((1, 3), float("nan"), dtype=f, device=device),
            block_radius=torch.zeros(1, dtype=f, device=device),
            block_chunk=torch.zeros(1, dtype=i, device=device),
            block_level=torch.full((1,), NULL_LEVEL, dtype=i, device=device),
            chunk_center=torch.zeros(0, 3, dtype=f, device=device), chunk_radius=torch.zeros(0, dtype=f, device=device),
            chunk_voxel0=torch.zeros(0, dtype=f, device=device), chunk_levels=torch.zeros(0, dtype=i, device=device),
            chunk_frame=torch.zeros(0, dtype=i, device=device),
        )

    def to(self, device: torch.device | str) -> SplatCloud:
        return SplatCloud(**{f.name: getattr(self, f.name).to(device) for f in fields(self) if f.init})


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
    uniq, inverse = torch.unique(_voxel_keys(xyz, voxel), return_inverse=True)
    m = uniq.shape[0]
    wsum = torch.zeros(m, dtype=weight.dtype, device=xyz.device).index_add_(0, inverse, weight)
    w = weight[:, None]
    pos = torch.zeros(m, 3, dtype=xyz.dtype, device=xyz.device).index_add_(0, inverse, xyz * w)
    col = torch.zeros(m, 3, dtype=rgb.dtype, device=xyz.device).index_add_(0, inverse, rgb * w)
    return pos / wsum[:, None], col / wsum[:, None], wsum


def _voxel_ijk(xyz: torch.Tensor, voxel: float) -> torch.Tensor:
    ijk = torch.floor(xyz / voxel).to(torch.int64) + (1 << 20)
    if (ijk < 0).any() or (ijk >= (1 << 21)).any():
        raise ValueError(f"points too far from the origin for voxel size {voxel} m")
    return ijk


def _voxel_keys(xyz: torch.Tensor, voxel: float) -> torch.Tensor:
    """One int64 key per point for its voxel (21 bits per axis, i.e. +-1M voxels around the origin)."""
    ijk = _voxel_ijk(xyz, voxel)
    return (ijk[:, 0] << 42) | (ijk[:, 1] << 21) | ijk[:, 2]


def _morton(ijk: torch.Tensor) -> torch.Tensor:
    """Morton (Z-order) codes ``(N,)`` of integer voxel coordinates ``ijk (N, 3)`` (shifted to start at 0)."""
    ijk = ijk - ijk.min(dim=0).values
    code = torch.zeros(ijk.shape[0], dtype=torch.int64, device=ijk.device)
    for bit in range(min(int(ijk.max()).bit_length(), 21)):
        for axis in range(3):
            code |= ((ijk[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


def _pack(
    xyz: torch.Tensor, rgb: torch.Tensor, chunk: torch.Tensor, level: torch.Tensor, order_key: torch.Tensor,
    chunk_center: torch.Tensor, chunk_radius: torch.Tensor, chunk_voxel0: torch.Tensor,
    chunk_levels: torch.Tensor, chunk_frame: torch.Tensor, block_size: int,
) -> SplatCloud:
    """Sort points by (chunk, level, order_key) and cut each group into blocks of ``block_size``."""
    device = xyz.device
    cloud = SplatCloud.empty(device, block_size)
    if xyz.shape[0] == 0:
        return cloud
    nl = int(level.max()) + 1
    group = chunk * nl + level
    order = torch.argsort(order_key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    xyz, rgb, group = xyz[order], rgb[order], group[order]
    gkey, gcount = torch.unique_consecutive(group, return_counts=True)
    gblocks = (gcount + block_size - 1) // block_size
    gblock_start = torch.cumsum(gblocks, 0) - gblocks + 1  # block 0 is the null block
    gpoint_start = torch.cumsum(gcount, 0) - gcount
    gid = torch.repeat_interleave(torch.arange(gkey.shape[0], device=device), gcount)
    rank = torch.arange(xyz.shape[0], device=device) - gpoint_start[gid]
    block = gblock_start[gid] + rank // block_size
    slot = rank % block_size
    nb = int(gblocks.sum()) + 1
    bxyz = torch.full((3, nb, block_size), float("nan"), device=device)
    brgb = torch.zeros(3, nb, block_size, device=device)
    bxyz[:, block, slot] = xyz.T
    brgb[:, block, slot] = rgb.T
    bgroup = torch.repeat_interleave(gkey, gblocks)
    center, radius = _bounding_spheres(xyz, block - 1, nb - 1)
    nan3 = torch.full((1, 3), float("nan"), device=device)
    return SplatCloud(
        xyz=bxyz, rgb=brgb,
        block_center=torch.cat([nan3, center]), block_radius=torch.cat([cloud.block_radius, radius]),
        block_chunk=torch.cat([cloud.block_chunk, bgroup // nl]),
        block_level=torch.cat([cloud.block_level, bgroup % nl]),
        chunk_center=chunk_center, chunk_radius=chunk_radius, chunk_voxel0=chunk_voxel0, chunk_levels=chunk_levels,
        chunk_frame=chunk_frame,
    )


def build_lod_cloud(
    xyz: torch.Tensor,
    rgb: torch.Tensor,
    weight: torch.Tensor,
    *,
    voxel0: float,
    num_levels: int,
    chunk_size: float,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> SplatCloud:
    """Fuse points into ``num_levels`` LOD levels (voxel ``voxel0 * LOD_STEP**l``), cut into chunks and blocks.

    Args:
        xyz, rgb, weight: ``(N, 3)``, ``(N, 3)``, ``(N,)`` raw observations (world frame).
        voxel0: Finest voxel edge (metres).
        num_levels: Number of LOD levels (>= 1).
        chunk_size: Chunk edge (metres): the unit of LOD choice.
        block_size: Points per block: the unit of frustum culling.
    """
    device = xyz.device
    parts = []
    px, pc, pw = xyz, rgb, weight
    for level in range(num_levels):
        px, pc, pw = fuse_voxels(px, pc, pw, voxel0 * LOD_STEP**level)
        parts.append((px, pc, torch.full((px.shape[0],), level, dtype=torch.int64, device=device)))
    all_xyz = torch.cat([p[0] for p in parts])
    if all_xyz.shape[0] == 0:
        return SplatCloud.empty(device, block_size)
    all_rgb = torch.cat([p[1] for p in parts])
    all_level = torch.cat([p[2] for p in parts])
    chunk_uniq, chunk = torch.unique(_voxel_keys(all_xyz, chunk_size), return_inverse=True)
    c = chunk_uniq.shape[0]
    center, radius = _bounding_spheres(all_xyz, chunk, c)
    return _pack(
        all_xyz, all_rgb, chunk, all_level, _morton(_voxel_ijk(all_xyz, voxel0)), center, radius,
        torch.full((c,), voxel0, dtype=torch.float32, device=device),
        torch.full((c,), num_levels, dtype=torch.int64, device=device),
        torch.full((c,), STATIC_FRAME, dtype=torch.int64, device=device), block_size,
    )


def build_frame_cloud(
    xyz: torch.Tensor, rgb: torch.Tensor, frame: torch.Tensor, *, voxel0: float,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> SplatCloud:
    """The dynamic layer: points of frame ``f`` (one chunk per frame, one level) are shown only at frame ``f``.

    Args:
        xyz, rgb: ``(N, 3)`` points and colours; frame: ``(N,)`` int64 source frame of each point.
        voxel0: Point spacing (metres), used by the renderer's LOD logic.
    """
    device = xyz.device
    if xyz.shape[0] == 0:
        return SplatCloud.empty(device, block_size)
    frames, chunk = torch.unique(frame, return_inverse=True)
    n = frames.shape[0]
    center, radius = _bounding_spheres(xyz, chunk, n)
    return _pack(
        xyz, rgb, chunk, torch.zeros_like(chunk), _morton(_voxel_ijk(xyz, voxel0)), center, radius,
        torch.full((n,), voxel0, dtype=torch.float32, device=device),
        torch.ones(n, dtype=torch.int64, device=device), frames, block_size,
    )


def concat_clouds(clouds: list[SplatCloud]) -> SplatCloud:
    """Concatenate clouds of equal block size into one (chunk ids re-based, one null block kept)."""
    if not clouds:
        raise ValueError("concat_clouds needs at least one cloud")
    if len({c.block_size for c in clouds}) != 1:
        raise ValueError("concat_clouds: all clouds must have the same block size")
    names = [f.name for f in fields(SplatCloud) if f.init]
    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    chunk_base = 0
    for i, c in enumerate(clouds):
        skip = 0 if i == 0 else 1  # keep only the first cloud's null block
        for name in names:
            v = getattr(c, name)
            if name in ("xyz", "rgb"):
                v = v[:, skip:]
            elif name.startswith("block_"):
                v = v[skip:]
            if name == "block_chunk":
                v = v + chunk_base
            out[name].append(v)
        chunk_base += c.chunk_center.shape[0]
    return SplatCloud(**{k: torch.cat(v, dim=1 if k in ("xyz", "rgb") else 0) for k, v in out.items()})


def _bounding_spheres(xyz: torch.Tensor, group: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned-box bounding spheres ``(n, 3)``, ``(n,)`` of points grouped by ``group (N,)``."""
    idx = group[:, None].expand(-1, 3)
    lo = torch.full((n, 3), float("inf"), device=xyz.device).scatter_reduce(0, idx, xyz, "amin")
    hi = torch.full((n, 3), float("-inf"), device=xyz.device).scatter_reduce(0, idx, xyz, "amax")
    return (lo + hi) / 2, (hi - lo).norm(dim=1) / 2
