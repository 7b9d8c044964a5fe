"""Implicit Spatiotemporal Cache: per agent, the recorded frames most useful for its camera and its own recent
completed frames, as batched tensors on the World's device.

* **Reference slots** (``ref_slots`` = K): indices into the shared :class:`ReferenceFrames` library, chosen by view
  overlap: the k-d tree proposes ``candidates`` frames near the camera (position and viewing direction); each is
  scored by the fraction of the agent's current view (pixels lifted with the render's depth, holes weighted
  ``hole_weight`` times) that projects inside it and is not hidden behind its own depth; in a dynamic scene a
  candidate loses ``time_weight`` per second between its time and the agent's scene time. Slots are re-chosen
  only when the camera moved more than ``reselect_distance`` metres or turned more than ``reselect_angle_deg``
  since the last choice (or a slot is empty), and a frame that stays chosen keeps its slot, so a learned model can
  keep the keys and values of unchanged slots (``ref_changed``).
* **History slots** (``history_slots`` = M): a ring of the agent's last M completed frames with their depth
  (render depth where valid, the completer's estimate where it filled a hole), content mask, pose and time.

Agents never share slots; :meth:`reset` clears the agents of a mask. Memory per agent: ``K`` indices and scores,
plus ``M * H * W * 8`` bytes of history (uint8 RGB, float32 depth, bool mask) — 256 KiB at 128x128 with M = 2;
the reference frames themselves are stored once per World.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inspatio_sim.camera import pixel_rays
from inspatio_sim.errors import ConfigError
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.warp import lift, lookup


@dataclass
class CacheConfig:
    """Cache settings (hydra node ``model.cache``)."""

    ref_slots: int = 4  # K: recorded frames per agent (enough to surround a view; each costs a lookup per pixel)
    history_slots: int = 2  # M: the agent's own last completed frames (the previous one carries most of the value)
    candidates: int = 16  # frames proposed by the k-d tree and scored by overlap per re-selection
    reselect_distance: float = 0.1  # re-choose reference frames after the camera moved this far (metres)
    reselect_angle_deg: float = 5.0  # ... or turned this much (degrees)
    time_weight: float = 0.5  # dynamic scenes: score lost per second between a frame's time and the agent's
    hole_weight: float = 4.0  # weight of hole pixels against rendered pixels in the overlap score
    score_grid: int = 16  # overlap is scored on a score_grid x score_grid subsample of the view

    def validate(self) -> None:
        for key in ("ref_slots", "candidates", "score_grid"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model.cache.{key} must be >= 1, got {getattr(self, key)}")
        if int(self.history_slots) < 0:
            raise ConfigError(f"model.cache.history_slots must be >= 0, got {self.history_slots}")
        for key in ("reselect_distance", "reselect_angle_deg", "time_weight", "hole_weight"):
            if not float(getattr(self, key)) >= 0:
                raise ConfigError(f"model.cache.{key} must be >= 0, got {getattr(self, key)}")


@dataclass
class CacheSlots:
    """What a completer reads, batched over ``B`` agents (``K`` reference and ``M`` history slots).

    Images are not copied per step: slots index into the World's reference library and into the cache's own history
    storage (``*_index`` rows select images of ``ref_frames`` / ``hist_rgb_store``); :meth:`ref_images` and
    :meth:`hist_images` gather them as ``(B, K|M, ...)`` tensors for models that want them so.

    Attributes:
        ref_index: ``(B, K)`` int64 frame of each reference slot, -1 when empty.
        ref_valid: ``(B, K)`` bool, the slot holds a frame.
        ref_changed: ``(B, K)`` bool, the slot's frame changed at the last selection (keys/values to recompute).
        ref_pose: ``(B, K, 4, 4)`` float32 ``T_world_camera`` (identity in empty slots).
        ref_time: ``(B, K)`` float64 scene time of the frames.
        ref_frames: The reference library (frames ``(N, Hr, Wr, 3)``, depth, intrinsics ``K``).
        hist_valid: ``(B, M)`` bool, newest first.
        hist_index: ``(B, M)`` int64 rows of ``hist_rgb_store`` / ``hist_depth_store``, newest first.
        hist_rgb_store: ``(B * M, H, W, 3)`` uint8 completed frames (a view of the cache's ring storage).
        hist_depth_store: ``(B * M, H, W)`` float32 (render depth, or the completer's estimate; 0 = none).
        hist_pose: ``(B, M, 4, 4)`` float32, newest first.
        hist_time: ``(B, M)`` float64 simulation time, newest first.
    """

    ref_index: torch.Tensor
    ref_valid: torch.Tensor
    ref_changed: torch.Tensor
    ref_pose: torch.Tensor
    ref_time: torch.Tensor
    ref_frames: ReferenceFrames
    hist_valid: torch.Tensor
    hist_index: torch.Tensor
    hist_rgb_store: torch.Tensor
    hist_depth_store: torch.Tensor
    hist_pose: torch.Tensor
    hist_time: torch.Tensor

    def ref_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K, Hr, Wr, 3)`` uint8 frames and ``(B, K, Hr, Wr)`` depth of the reference slots (zeros if empty)."""
        safe = self.ref_index.clamp(min=0)
        v = self.ref_valid
        return (torch.where(v[..., None, None, None], self.ref_frames.rgb[safe], 0),
                torch.where(v[..., None, None], self.ref_frames.depth[safe], 0.0))

    def hist_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, M, H, W, 3)`` uint8 frames and ``(B, M, H, W)`` depth of the history slots, newest first."""
        return self.hist_rgb_store[self.hist_index], self.hist_depth_store[self.hist_index]


class SpatiotemporalCache:
    """Per-agent reference and history slots (see the module docstring).

    Args:
        refs: The World's recorded frames.
        num_agents: ``B``.
        height, width: Output resolution of the agents' cameras (history frames).
        config: :class:`CacheConfig`.
    """

    def __init__(self, refs: ReferenceFrames, num_agents: int, height: int, width: int,
                 config: CacheConfig | None = None) -> None:
        self.config = config or CacheConfig()
        self.config.validate()
        self.refs = refs
        self.num_agents = num_agents
        dev = refs.rgb.device
        self.device = dev
        b, k, m = num_agents, int(self.config.ref_slots), int(self.config.history_slots)
        self.ref_index = torch.full((b, k), -1, dtype=torch.int64, device=dev)
        self.ref_changed = torch.zeros((b, k), dtype=torch.bool, device=dev)
        self._anchor = torch.zeros((b, 4, 4), dtype=torch.float32, device=dev)
        self._anchored = torch.zeros(b, dtype=torch.bool, device=dev)
        self.hist_rgb = torch.zeros((b, m, height, width, 3), dtype=torch.uint8, device=dev)
        self.hist_depth = torch.zeros((b, m, height, width), dtype=torch.float32, device=dev)
        self.hist_pose = torch.eye(4, device=dev).repeat(b, m, 1, 1)
        self.hist_time = torch.zeros((b, m), dtype=torch.float64, device=dev)
        self.hist_count = torch.zeros(b, dtype=torch.int64, device=dev)
        self._head = torch.zeros(b, dtype=torch.int64, device=dev)  # ring slot of the newest frame

    # -- state ---------------------------------------------------------------------------------------------------
    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Empty every slot of the agents in ``mask (B,)`` (all when ``None``)."""
        m = torch.ones(self.num_agents, dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        self.ref_index[m] = -1
        self.ref_changed[m] = False
        self._anchored[m] = False
        self.hist_count[m] = 0
        self._head[m] = 0
        self.hist_rgb[m] = 0
        self.hist_depth[m] = 0.0

    def nbytes_per_agent(self) -> int:
        """Bytes of per-agent state (slots and history), excluding the shared reference frames."""
        tensors = (self.ref_index, self.ref_changed, self._anchor, self._anchored, self.hist_rgb, self.hist_depth,
                   self.hist_pose, self.hist_time, self.hist_count, self._head)
        return sum(t.element_size() * t.numel() for t in tensors) // max(self.num_agents, 1)

    # -- reference selection -------------------------------------------------------------------------------------
    def needs_selection(self, poses: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: agents whose camera moved or turned past the thresholds since their last selection."""
        moved = (poses[:, :3, 3] - self._anchor[:, :3, 3]).norm(dim=1) > self.config.reselect_distance
        cos = (poses[:, :3, 2] * self._anchor[:, :3, 2]).sum(1).clamp(-1.0, 1.0)
        turned = torch.rad2deg(torch.arccos(cos)) > self.config.reselect_angle_deg
        return ~self._anchored | moved | turned | (self.ref_index < 0).any(1)

    def select(self, poses: torch.Tensor, times: torch.Tensor, depth: torch.Tensor, hole: torch.Tensor,
               K: torch.Tensor, force: bool = False) -> torch.Tensor:
        """Re-choose the reference slots of the agents that need it.

        Args:
            poses: ``(B, 4, 4)`` current cameras.
            times: ``(B,)`` scene time of each agent (seconds of video time).
            depth: ``(B, H, W)`` depth of the current view (holes may already be filled with an estimate; 0 =
                unknown, e.g. sky).
            hole: ``(B, H, W)`` bool pixels the render could not show.
            K: ``(3, 3)`` intrinsics of the current view.
            force: Re-choose for every agent.

        Returns:
            ``(B,)`` bool, the agents whose slots were re-chosen.
        """
        need = torch.ones_like(self._anchored) if force else self.needs_selection(poses)
        self.ref_changed.zero_()
        idx = need.nonzero().squeeze(1)
        if idx.numel() == 0:
            return need
        cfg = self.config
        cand = self.refs.candidates(poses[idx], int(cfg.candidates))  # (n, C)
        h, w = depth.shape[1:]
        stride = max(1, min(h, w) // int(cfg.score_grid))
        d = depth[idx][:, ::stride, ::stride]  # (n, h', w')
        weight = torch.where(hole[idx][:, ::stride, ::stride], float(cfg.hole_weight), 1.0) * (d > 0)
        points = lift(depth[idx], poses[idx], K, stride=stride)  # (n, h', w', 3)
        n = idx.numel()
        batch = torch.arange(n, device=self.device).repeat_interleave(points.shape[1] * points.shape[2])
        r = self.refs
        found = lookup(points.reshape(-1, 3), batch, poses[idx, :3, 3], r.rgb, r.depth, cand, r.poses[cand], r.K)
        hidden = (found.depth > 0) & (found.depth < found.z * 0.95)
        wflat = weight.reshape(-1, 1)
        seen = ((found.inside & ~hidden).float() * wflat).reshape(n, -1, cand.shape[1]).sum(1)
        score = seen / weight.reshape(n, -1).sum(1).clamp(min=1e-6)[:, None]  # (n, C) overlap fraction
        if r.is_dynamic and cfg.time_weight > 0:
            score = score - cfg.time_weight * (r.timestamps[cand] - times[idx, None].double()).abs().float()
        k = min(int(cfg.ref_slots), cand.shape[1])
        best = cand.gather(1, score.topk(k, dim=1).indices)  # (n, k)
        new = torch.full((idx.numel(), int(cfg.ref_slots)), -1, dtype=torch.int64, device=self.device)
        new[:, :k] = best
        self._assign(idx, new)
        self._anchor[idx] = poses[idx].float()
        self._anchored[idx] = True
        return need

    def _assign(self, idx: torch.Tensor, new: torch.Tensor) -> None:
        """Put frames ``new (n, K)`` into the slots of agents ``idx``; a frame already held keeps its slot."""
        old = self.ref_index[idx]
        kept = (new[:, :, None] == old[:, None, :]) & (new[:, :, None] >= 0)  # (n, new K, old K)
        out = torch.where((old[:, :, None] == new[:, None, :]).any(2), old, torch.full_like(old, -1))
        incoming = new.masked_fill(kept.any(2), -1)
        for row in range(idx.numel()):  # K is small: fill the free slots in order
            free = (out[row] < 0).nonzero().squeeze(1)
            add = incoming[row][incoming[row] >= 0]
            out[row, free[:add.numel()]] = add[:free.numel()]
        self.ref_changed[idx] = out != old
        self.ref_index[idx] = out

    # -- history -------------------------------------------------------------------------------------------------
    def push(self, rgb: torch.Tensor, depth: torch.Tensor, poses: torch.Tensor, times: torch.Tensor,
             agents: torch.Tensor | None = None) -> None:
        """Append each agent's completed frame ``rgb (B, H, W, 3)`` with ``depth (B, H, W)`` to its history ring
        (only the agents in ``agents (B,)`` when given)."""
        m = self.hist_rgb.shape[1]
        if m == 0:
            return
        b = torch.arange(self.num_agents, device=self.device)
        if agents is not None:
            b = b[agents.to(self.device).bool()]
            if b.numel() == 0:
                return
        head = (self._head[b] + (self.hist_count[b] > 0).long()) % m
        self.hist_rgb[b, head] = rgb[b]
        self.hist_depth[b, head] = depth[b]
        self.hist_pose[b, head] = poses[b].float()
        self.hist_time[b, head] = times[b].double()
        self._head[b] = head
        self.hist_count[b] = (self.hist_count[b] + 1).clamp(max=m)

    # -- read ----------------------------------------------------------------------------------------------------
    def slots(self) -> CacheSlots:
        """The cache as batched tensors (see :class:`CacheSlots`)."""
        r = self.refs
        valid = self.ref_index >= 0
        safe = self.ref_index.clamp(min=0)
        b, m = self.hist_rgb.shape[:2]
        order = (self._head[:, None] - torch.arange(m, device=self.device)[None]) % max(m, 1)  # newest first
        rows = torch.arange(b, device=self.device)[:, None]
        eye = torch.eye(4, device=self.device)
        return CacheSlots(
            ref_index=self.ref_index.clone(), ref_valid=valid, ref_changed=self.ref_changed.clone(),
            ref_pose=torch.where(valid[..., None, None], r.poses[safe], eye),
            ref_time=torch.where(valid, r.timestamps[safe], 0.0), ref_frames=r,
            hist_valid=torch.arange(m, device=self.device)[None] < self.hist_count[:, None],
            hist_index=rows * m + order, hist_rgb_store=self.hist_rgb.reshape(b * m, *self.hist_rgb.shape[2:]),
            hist_depth_store=self.hist_depth.reshape(b * m, *self.hist_depth.shape[2:]),
            hist_pose=self.hist_pose[rows, order], hist_time=self.hist_time[rows, order],
        )


def plucker_rays(K: torch.Tensor, poses: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Plücker coordinates ``(B, H, W, 6)`` = (unit direction d, moment o x d) of every pixel's ray in the world
    frame, for cameras ``poses (B, 4, 4)`` with intrinsics ``K (3, 3)`` (the camera conditioning of a learned model)."""
    rays = pixel_rays(K, height, width)
    d = torch.einsum("bij,hwj->bhwi", poses[:, :3, :3], rays / rays.norm(dim=-1, keepdim=True))
    o = poses[:, None, None, :3, 3].expand_as(d)
    return torch.cat([d, torch.cross(o, d, dim=-1)], -1)
