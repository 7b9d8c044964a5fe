"""Write-back: completed pixels lifted to 3-D and kept in the World's generated layer, so a revisited place shows the
same content.

The layer is a fixed pool of point blocks (``P`` points each, the renderer's block size): every agent owns a ring of
``max_points_per_agent / P`` blocks; a write cuts the new points (sorted along a Morton curve, so blocks stay
spatially compact) into blocks that replace the agent's oldest ones. Memory is therefore fixed at construction, and
rendering cost is bounded by the pool's size whatever the rollout's length. Each block is its own chunk for the
renderer's culling; ``per_agent`` scope tags an agent's chunks with its index and renders the pool with
``frames = agent index``, so the renderer's dynamic-chunk filter shows every camera its own writes only (no
renderer change); ``shared`` tags every chunk as static (every agent sees every write).

Written points are colour only: they never enter the occupancy grid or the signed distance field (those are built
once from the Scene), and their depth is not reported as geometry in observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.render import RenderConfig, RenderOutput, render
from inspatio_sim.world.splats import NULL_LEVEL, STATIC_FRAME, SplatCloud, _morton, _voxel_ijk

SCOPES = ("per_agent", "shared", "off")


@dataclass
class WritebackConfig:
    """Write-back settings (hydra node ``model.writeback``)."""

    scope: str = "per_agent"  # per_agent | shared | off: who sees an agent's written-back content
    max_points_per_agent: int = 32768  # pool size per agent (24 bytes a point); the oldest blocks are replaced first
    stride: int = 1  # write every stride-th completed pixel in each direction (1: all)

    def validate(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"model.writeback.scope must be one of {', '.join(SCOPES)}, got '{self.scope}'")
        if int(self.max_points_per_agent) < 1:
            raise ConfigError(f"model.writeback.max_points_per_agent must be >= 1, got {self.max_points_per_agent}")
        if int(self.stride) < 1:
            raise ConfigError(f"model.writeback.stride must be >= 1, got {self.stride}")


class GeneratedPool:
    """The generated layer of ``num_agents`` agents (see the module docstring).

    Args:
        num_agents: ``B``.
        config: :class:`WritebackConfig`.
        block_size: Points per block (the World's).
        device: Torch device.
    """

    def __init__(self, num_agents: int, config: WritebackConfig, block_size: int, device: torch.device) -> None:
        config.validate()
        self.config = config
        self.num_agents = num_agents
        self.block_size = block_size
        self.device = device
        self.blocks_per_agent = max(1, -(-int(config.max_points_per_agent) // block_size))
        nb = 1 + num_agents * self.blocks_per_agent  # block 0: the renderer's null block
        self.xyz = torch.full((3, nb, block_size), float("nan"), device=device)
        self.rgb = torch.zeros((3, nb, block_size), device=device)
        self.center = torch.full((nb, 3), float("nan"), device=device)
        self.radius = torch.zeros(nb, device=device)
        self.spacing = torch.ones(nb, device=device)
        self._next = torch.zeros(num_agents, dtype=torch.int64)  # ring position (CPU: used for slicing)
        self._cloud: SplatCloud | None = None

    @property
    def nbytes_per_agent(self) -> int:
        per_block = (self.xyz[:, 0].numel() + self.rgb[:, 0].numel()) * 4 + 5 * 4
        return self.blocks_per_agent * per_block

    @property
    def num_points(self) -> torch.Tensor:
        """``(B,)`` written points held per agent."""
        held = torch.isfinite(self.xyz[0, 1:]).sum(1).reshape(self.num_agents, self.blocks_per_agent)
        return held.sum(1)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Forget the writes of the agents in ``mask (B,)`` (all when ``None``)."""
        agents = range(self.num_agents) if mask is None else mask.nonzero().squeeze(1).tolist()
        for a in agents:
            s = self._slice(a)
            self.xyz[:, s] = float("nan")
            self.center[s] = float("nan")
            self.radius[s] = 0.0
            self._next[a] = 0
        self._cloud = None

    def _slice(self, agent: int) -> slice:
        start = 1 + agent * self.blocks_per_agent
        return slice(start, start + self.blocks_per_agent)

    def write(self, agent: int, xyz: torch.Tensor, rgb: torch.Tensor, spacing: float) -> None:
        """Add points ``xyz (N, 3)`` (world, metres) with colours ``rgb (N, 3)`` in [0, 255] for ``agent``;
        ``spacing`` is their point spacing in metres (the renderer's level-of-detail input)."""
        n = xyz.shape[0]
        if n == 0:
            return
        p = self.block_size
        cap = self.blocks_per_agent * p
        if n > cap:  # keep an even subsample that fits the pool
            keep = torch.linspace(0, n - 1, cap, device=xyz.device).long()
            xyz, rgb, n = xyz[keep], rgb[keep], cap
        order = torch.argsort(_morton(_voxel_ijk(xyz, max(spacing, 1e-4))))
        xyz, rgb = xyz[order], rgb[order]
        nblocks = -(-n // p)
        pad = nblocks * p - n
        bx = torch.cat([xyz, torch.full((pad, 3), float("nan"), device=xyz.device)]).reshape(nblocks, p, 3)
        bc = torch.cat([rgb.float(), torch.zeros((pad, 3), device=xyz.device)]).reshape(nblocks, p, 3)
        real = torch.isfinite(bx[..., 0])
        lo = torch.where(real[..., None], bx, torch.inf).amin(1)
        hi = torch.where(real[..., None], bx, -torch.inf).amax(1)
        base = 1 + agent * self.blocks_per_agent
        slots = base + (int(self._next[agent]) + torch.arange(nblocks)) % self.blocks_per_agent
        slots = slots.to(self.device)
        self.xyz[:, slots] = bx.permute(2, 0, 1)
        self.rgb[:, slots] = bc.permute(2, 0, 1)
        self.center[slots] = (lo + hi) / 2
        self.radius[slots] = (hi - lo).norm(dim=1) / 2
        self.spacing[slots] = spacing
        self._next[agent] = (int(self._next[agent]) + nblocks) % self.blocks_per_agent
        self._cloud = None

    def cloud(self) -> SplatCloud:
        """The pool as a renderable cloud: one chunk per block, one level, tagged with its owner (or static)."""
        if self._cloud is None:
            nb = self.xyz.shape[1]
            dev = self.device
            owner = torch.arange(self.num_agents, device=dev).repeat_interleave(self.blocks_per_agent)
            frame = owner if self.config.scope == "per_agent" else torch.full_like(owner, STATIC_FRAME)
            level = torch.zeros(nb, dtype=torch.int64, device=dev)
            level[0] = NULL_LEVEL
            chunk = torch.clamp(torch.arange(nb, device=dev) - 1, min=0)
            self._cloud = SplatCloud(
                xyz=self.xyz, rgb=self.rgb, block_center=self.center, block_radius=self.radius, block_chunk=chunk,
                block_level=level, chunk_center=self.center[1:], chunk_radius=self.radius[1:],  # NaN centre: culled
                chunk_voxel0=self.spacing[1:], chunk_levels=torch.ones(nb - 1, dtype=torch.int64, device=dev),
                chunk_frame=frame,
            )
        return self._cloud

    def render(self, poses: torch.Tensor, K: torch.Tensor, height: int, width: int,
               config: RenderConfig) -> RenderOutput | None:
        """Every agent's view of the pool (``None`` while nothing was written)."""
        if not bool(torch.isfinite(self.center[1:, 0]).any()):
            return None
        frames = torch.arange(self.num_agents, device=self.device)
        cfg = RenderConfig(**{**config.__dict__, "fill_holes": False})
        return render(self.cloud(), poses, K, height, width, frames=frames, config=cfg)

