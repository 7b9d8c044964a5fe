"""Occupancy grid, free-space carving and a signed distance field for collisions and the trusted region.

The grid is axis-aligned in the world frame. A voxel is *occupied* when it holds enough static surface points or
when its centre lies within half a voxel diagonal of the static depth seen by some frame (this keeps the shell
watertight when the Scene's pixels are coarser than the voxels); *free* when at least one Scene frame saw through
it (its centre projects in front of that frame's depth); *unknown* otherwise (behind walls, inside objects,
outside every view).

The signed distance ``sdf`` (metres, per voxel centre) is ``+distance to the nearest occupied voxel`` in free space
and ``-distance to the nearest free voxel`` elsewhere, so a sphere of radius ``r`` centred at ``p`` is clear of the
reconstructed geometry when ``sdf(p) > r``. Distances are between voxel centres (error up to half a voxel).
The *trusted region* is the free space seen by at least ``trusted_min_views`` frames (one-voxel gaps closed); the
space around each recorded camera centre counts as seen by that frame (the camera stood there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from inspatio_sim.errors import WorldError

MAX_VOXELS = 96_000_000


@dataclass
class OccupancyGrid:
    """Voxel grid over the World's bounds.

    Attributes:
        origin: ``(3,)`` float64 world position of the corner of voxel ``(0, 0, 0)``.
        voxel: Voxel edge in metres.
        occupied: ``(X, Y, Z)`` bool.
        free_views: ``(X, Y, Z)`` int32 number of frames that saw the voxel as empty space.
        sdf: ``(X, Y, Z)`` float32 signed distance in metres (see module docstring).
        trusted: ``(X, Y, Z)`` bool.
    """

    origin: np.ndarray
    voxel: float
    occupied: torch.Tensor
    free_views: torch.Tensor
    sdf: torch.Tensor
    trusted: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.occupied.shape)  # type: ignore[return-value]

    def voxel_index(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer voxel indices ``(..., 3)`` of ``points (..., 3)`` (clamped) and a bool mask of those inside."""
        return voxel_index(points, self.origin, self.voxel, self.shape)

    def sdf_at(self, points: torch.Tensor) -> torch.Tensor:
        """Trilinearly interpolated signed distance (metres) at ``points (..., 3)``; outside the grid: ``-voxel``."""
        shape = points.shape[:-1]
        p = points.reshape(-1, 3).to(self.sdf.dtype)
        origin = torch.as_tensor(self.origin, dtype=p.dtype, device=p.device)
        dims = torch.tensor(self.shape, dtype=p.dtype, device=p.device)
        # voxel centre i is at origin + (i + 0.5) * voxel; grid_sample's align_corners=True maps -1..1 to centres 0..n-1
        g = ((p - origin) / self.voxel - 0.5) / (dims - 1).clamp(min=1) * 2 - 1
        vol = self.sdf.permute(2, 1, 0)[None, None]  # (1, 1, Z, Y, X): grid_sample's (x, y, z) order
        out = torch.nn.functional.grid_sample(vol, g[None, None, None], align_corners=True, padding_mode="border")
        out = out.reshape(-1)
        _, inside = self.voxel_index(p)
        out = torch.where(inside, out, torch.full_like(out, -self.voxel))
        return out.reshape(shape)

    def is_trusted(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each of ``points (..., 3)`` lies in the trusted region (bool ``(...)``)."""
        ijk, inside = self.voxel_index(points)
        return inside & self.trusted[ijk[..., 0], ijk[..., 1], ijk[..., 2]]


def voxel_index(
    points: torch.Tensor, origin: np.ndarray, voxel: float, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel indices ``(..., 3)`` int64 of ``points (..., 3)``, clamped to the grid, and the inside mask ``(...)``."""
    org = torch.as_tensor(origin, dtype=points.dtype, device=points.device)
    ijk = torch.floor((points - org) / voxel).to(torch.int64)
    hi = torch.tensor(dims, device=points.device)
    inside = ((ijk >= 0) & (ijk < hi)).all(dim=-1)
    return torch.minimum(ijk.clamp(min=0), hi - 1), inside


def build_occupancy(
    surface_points: torch.Tensor,
    depth: torch.Tensor,
    static: torch.Tensor,
    poses: torch.Tensor,
    K: torch.Tensor,
    *,
    voxel: float,
    min_points: int,
    trusted_min_views: int,
    margin_voxels: int = 2,
    carve_margin: float | None = None,
    camera_free_radius: float = 0.3,
) -> OccupancyGrid:
    """Build the grid from static surface points and the Scene's depth maps.

    Args:
        surface_points: ``(N, 3)`` static points (world frame, metres).
        depth: ``(F, H, W)`` float32 z-depth (0 = no data) used for free-space carving.
        static: ``(F, H, W)`` bool, pixels whose depth is static surface (used for the occupied shell).
        poses: ``(F, 4, 4)`` float32 ``T_world_camera``.
        K: ``(3, 3)`` intrinsics of ``depth``.
        voxel: Voxel edge (metres).
        min_points: Points needed to call a voxel occupied.
        trusted_min_views: Views needed for a free voxel to be trusted.
        margin_voxels: Padding around the bounds of points and cameras.
        carve_margin: A voxel centre counts as free when it is at least this far (metres) in front of the observed
            depth; default ``voxel``.
        camera_free_radius: The recorded camera stood in empty space: voxels within this radius (metres) of each
            camera centre count as seen free by that frame (cameras often never see their own path).
    """
    device = surface_points.device
    if surface_points.shape[0] == 0:
        raise WorldError("cannot build an occupancy grid from an empty World (no valid static depth)")
    cams = poses[:, :3, 3]
    lo = torch.minimum(surface_points.min(0).values, cams.min(0).values).double().cpu().numpy() - margin_voxels * voxel
    hi = torch.maximum(surface_points.max(0).values, cams.max(0).values).double().cpu().numpy() + margin_voxels * voxel
    dims = np.ceil((hi - lo) / voxel).astype(np.int64)
    if int(np.prod(dims)) > MAX_VOXELS:
        raise WorldError(
            f"occupancy grid of {dims.tolist()} voxels at {voxel} m is too large; raise world.occupancy_voxel"
        )
    dims_t = torch.as_tensor(dims, device=device)
    ijk, _ = voxel_index(surface_points, lo, voxel, tuple(dims.tolist()))
    flat = (ijk[:, 0] * dims_t[1] + ijk[:, 1]) * dims_t[2] + ijk[:, 2]
    counts = torch.bincount(flat, minlength=int(np.prod(dims)))
    free_views, surface_views = _carve(depth, static, poses, K, lo, voxel, dims,
                                       carve_margin if carve_margin is not None else voxel)
    free_views += _camera_spheres(cams, lo, voxel, dims, camera_free_radius)
    occupied = (counts.reshape(*dims.tolist()) >= min_points) | (surface_views > 0)
    free = (free_views > 0) & ~occupied
    occ_np, free_np = occupied.cpu().numpy(), free.cpu().numpy()
    dist_to_occ = ndimage.distance_transform_edt(~occ_np) * voxel if occ_np.any() else np.full(dims, 1e3)
    dist_to_free = ndimage.distance_transform_edt(~free_np) * voxel if free_np.any() else np.full(dims, 1e3)
    sdf = np.where(free_np, dist_to_occ, -dist_to_free).astype(np.float32)
    # views per voxel vary with where its centre happens to project: close one-voxel gaps in the trusted region
    seen = (free_views >= trusted_min_views).cpu().numpy()
    trusted = ndimage.binary_closing(seen, structure=np.ones((3, 3, 3), bool)) & free_np
    return OccupancyGrid(
        origin=lo, voxel=voxel, occupied=occupied, free_views=free_views,
        sdf=torch.from_numpy(sdf).to(device), trusted=torch.from_numpy(trusted).to(device),
    )


def _camera_spheres(cams: torch.Tensor, origin: np.ndarray, voxel: float, dims: np.ndarray,
                    radius: float) -> torch.Tensor:
    """``(X, Y, Z)`` int32: for each voxel, how many camera centres ``cams (F, 3)`` lie within ``radius``."""
    device = cams.device
    count = torch.zeros(*dims.tolist(), dtype=torch.int32, device=device)
    if radius <= 0:
        return count
    n = int(np.ceil(radius / voxel))
    offs = torch.arange(-n, n + 1, device=device)
    grid = torch.stack(torch.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)
    org = torch.as_tensor(origin, dtype=torch.float32, device=device)
    base = torch.floor((cams - org) / voxel).long()  # (F, 3)
    ijk = (base[:, None] + grid[None]).reshape(-1, 3)
    centres = (ijk.float() + 0.5) * voxel + org
    near = (centres - cams.repeat_interleave(grid.shape[0], 0)).norm(dim=1) <= radius
    inside = near & ((ijk >= 0) & (ijk < torch.as_tensor(dims, device=device))).all(1)
    ijk = ijk[inside]
    flat = (ijk[:, 0] * int(dims[1]) + ijk[:, 1]) * int(dims[2]) + ijk[:, 2]
    count.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    return count


def _carve(
    depth: torch.Tensor, static: torch.Tensor, poses: torch.Tensor, K: torch.Tensor, origin: np.ndarray,
    voxel: float, dims: np.ndarray, margin: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count, per voxel, the frames in which its centre projects in front of the observed depth by ``margin``
    (free) and those in which it lies within half a voxel diagonal of the observed static depth (surface).

    Each frame only visits the voxels in the bounding box of its view frustum (cut at its farthest depth).
    """
    device = depth.device
    h, w = depth.shape[1:]
    free_views = torch.zeros(*dims.tolist(), dtype=torch.int32, device=device)
    surface_views = torch.zeros_like(free_views)
    band = voxel * 3**0.5 / 2
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    org = torch.as_tensor(origin, dtype=torch.float32, device=device)
    corners = torch.tensor([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]], device=device)
    rays = torch.cat([(corners[:, :1] - cx) / fx, (corners[:, 1:] - cy) / fy, torch.ones(4, 1, device=device)], 1)
    for f in range(depth.shape[0]):
        d = depth[f]
        far = float(d.max())
        if far <= 0:
            continue
        R, t = poses[f, :3, :3], poses[f, :3, 3]
        pts = torch.cat([t[None], (rays * far) @ R.T + t])  # camera centre and far corners, world frame
        lo = torch.clamp(torch.floor((pts.min(0).values - org) / voxel).long(), min=0)
        hi = torch.ceil((pts.max(0).values - org) / voxel).long() + 1
        hi = torch.minimum(hi, torch.as_tensor(dims, device=device))
        if bool((hi <= lo).any()):
            continue
        (i0, j0, k0), (i1, j1, k1) = lo.tolist(), hi.tolist()
        axes = [torch.arange(a, b, device=device, dtype=torch.float32) for a, b in ((i0, i1), (j0, j1), (k0, k1))]
        centres = (torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) + 0.5) * voxel + org
        pc = (centres - t) @ R  # R^T (p - t), camera frame
        z = pc[:, 2]
        zs = z.clamp(min=1e-6)
        u = torch.round(pc[:, 0] / zs * fx + cx).long()
        v = torch.round(pc[:, 1] / zs * fy + cy).long()
        inside = (z > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        vc, uc = v.clamp(0, h - 1), u.clamp(0, w - 1)
        obs = d[vc, uc]
        seen = inside & (obs > 0)
        box = (slice(i0, i1), slice(j0, j1), slice(k0, k1))
        shape = (i1 - i0, j1 - j0, k1 - k0)
        free_views[box] += (seen & (z < obs - margin)).reshape(shape)
        surface_views[box] += (seen & static[f][vc, uc] & ((z - obs).abs() <= band)).reshape(shape)
    return free_views, surface_views
