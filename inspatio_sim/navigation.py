"""2-D navigation grid over a World: where a camera sphere at camera height can be, and geodesic distances on it.

A cell (the World's occupancy voxel size, x-y plane) is traversable when the camera sphere centred at the cell
centre, ``camera_height`` above the ground plane, is clear of geometry (signed distance above ``radius`` plus half
a voxel diagonal) and inside the trusted region (there and half a voxel above and below). Geodesic distances are
shortest 8-connected paths over traversable cells (scikit-image's minimum-cost-path with Euclidean steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.graph import MCP_Geometric

from inspatio_sim.errors import WorldError
from inspatio_sim.world import World


@dataclass
class NavGrid:
    """Traversable cells of a World.

    Attributes:
        origin: ``(2,)`` world x, y of the corner of cell ``(0, 0)``.
        cell: Cell edge (metres).
        traversable: ``(X, Y)`` bool.
        height: ``(X, Y)`` float32 world z of the camera at each cell (ground + camera height).
    """

    origin: np.ndarray
    cell: float
    traversable: np.ndarray
    height: np.ndarray

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer cells ``(N, 2)`` of world points ``xy (N, 2)`` (clamped) and whether each lies on the grid."""
        ij = np.floor((np.asarray(xy, dtype=np.float64) - self.origin) / self.cell).astype(np.int64)
        inside = np.all((ij >= 0) & (ij < self.traversable.shape), axis=1)
        return np.clip(ij, 0, np.array(self.traversable.shape) - 1), inside

    def centre(self, ij: np.ndarray) -> np.ndarray:
        """World x, y ``(N, 2)`` of cell centres ``ij (N, 2)``."""
        return self.origin + (np.asarray(ij) + 0.5) * self.cell

    def distance_map(self, goal_xy: np.ndarray) -> np.ndarray:
        """Geodesic distance (metres) from every cell to the goal's cell, ``inf`` where unreachable ``(X, Y)``.

        ``goal_xy`` is one point ``(2,)`` or several ``(N, 2)`` (then: the distance to the nearest of them)."""
        costs = np.where(self.traversable, 1.0, np.inf)
        ij, _ = self.cell_of(np.asarray(goal_xy, dtype=np.float64).reshape(-1, 2))
        dist, _ = MCP_Geometric(costs, fully_connected=True).find_costs([tuple(c) for c in ij])
        return np.where(np.isfinite(dist), dist * self.cell, np.inf)

    def geodesic(self, distance_map: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Look up ``distance_map`` at world points ``xy (N, 2)`` (``inf`` off the grid)."""
        ij, inside = self.cell_of(xy)
        return np.where(inside, distance_map[ij[:, 0], ij[:, 1]], np.inf)


def build_nav_grid(world: World, radius: float, camera_height: float) -> NavGrid:
    """The :class:`NavGrid` of ``world`` for a camera sphere of ``radius`` at ``camera_height`` over the ground."""
    if world.ground is None:
        raise WorldError("navigation needs a ground plane, and this World has none")
    occ = world.occupancy
    nx, ny = occ.shape[:2]
    cell = occ.voxel
    origin = np.asarray(occ.origin[:2], dtype=np.float64)
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    xy = origin + (np.stack([gx, gy], -1).reshape(-1, 2) + 0.5) * cell
    z = world.ground.z_at(xy[:, 0], xy[:, 1]) + camera_height
    p = torch.as_tensor(np.c_[xy, z], dtype=torch.float32, device=world.device)
    ok = (occ.sdf_at(p) > radius + occ.voxel * 3**0.5 / 2) & occ.is_trusted(p)
    # the camera's height wobbles by millimetres around camera_height: trusted in the voxel layers half a voxel
    # above and below too, so an agent on a traversable cell is never outside the region the ESCM checks
    half = torch.tensor([0.0, 0.0, occ.voxel / 2], dtype=p.dtype, device=p.device)
    ok &= occ.is_trusted(p + half) & occ.is_trusted(p - half)
    return NavGrid(origin=origin, cell=cell, traversable=ok.cpu().numpy().reshape(nx, ny),
                   height=z.reshape(nx, ny).astype(np.float32))
