"""The ``star`` completer: the learned STAR generator inside the Simulator's model step.

Per step and agent: the classical completer first makes the explicit completion (the render, its holes filled by
reprojecting the cache's reference and history frames and the agent's written-back content, then inpainting); the
reference slots' per-layer keys/values are recomputed only for slots whose frame changed (kept in :class:`StarCache`,
per agent, reset with the agent), the history slots' keys/values were computed once when the frame was completed, and
the student (``sampler=student``, 1-4 steps) or the teacher (``sampler=teacher``, many steps) generates the frame
from noise drawn from the agent's own seeded :class:`torch.Generator`, as a residual on the explicit completion.
``refine=all`` takes the generated colours everywhere; ``refine=holes`` keeps the render's own pixels and the
written-back content and takes them only in the holes; ``refine=fresh`` (default) takes them everywhere except where
the explicit completion found the agent's own earlier output (history slots, written-back content): what the model
generated once is carried as it moves in view, not generated again. Hole pixels the explicit completion had to
invent are marked ``SOURCE_MODEL`` and written back by the model step like inpainted pixels; those it found in the
cache keep their source (the same step finds them again on a revisit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheSlots, plucker_rays
from inspatio_sim.model.classical import (
    SOURCE_HISTORY,
    SOURCE_INPAINT,
    SOURCE_WRITEBACK,
    ClassicalCompleter,
    ClassicalConfig,
    Completion,
)
from inspatio_sim.model.star import checkpoint as ckpt
from inspatio_sim.model.star.flow import sample
from inspatio_sim.model.star.inputs import reference_slots, scaled_K
from inspatio_sim.model.star.network import SLOT_HISTORY, SLOT_REFERENCE, STARNet, frame_input, slot_input, to_uint8
from inspatio_sim.render import RenderOutput

SOURCE_MODEL = 5
""":attr:`Completion.source` of pixels the STAR generator made."""
REFINES = ("all", "holes", "fresh")
"""``model.star.refine``: where the generated colours replace the explicit completion's."""


@dataclass
class StarConfig:
    """The learned completer (hydra node ``model.star``)."""

    checkpoint: str = ""  # STAR checkpoint file ('' = the World's adapted one if present, else the shipped default)
    sampler: str = "student"  # student (few-step, distilled) | teacher (many-step flow matching)
    steps: int = 4  # denoising steps (student: 1-4; teacher: e.g. 16)
    refine: str = "fresh"  # all (every pixel) | holes (only holes) | fresh (all but the agent's own carried output)
    noise: str = "episode"  # episode: an agent's noise is drawn once per episode and reused each step | step: fresh

    def validate(self) -> None:
        if self.noise not in ("episode", "step"):
            raise ConfigError(f"model.star.noise must be episode or step, got '{self.noise}'")
        if self.refine not in REFINES:
            raise ConfigError(f"model.star.refine must be one of {', '.join(REFINES)}, got '{self.refine}'")
        if self.sampler not in ("student", "teacher"):
            raise ConfigError(f"model.star.sampler must be student or teacher, got '{self.sampler}'")
        if int(self.steps) < 1:
            raise ConfigError(f"model.star.steps must be >= 1, got {self.steps}")


def resolve_checkpoint(config: StarConfig, world_dir: str | Path | None = None) -> Path:
    """The checkpoint to load: ``config.checkpoint``, else the World directory's adapted one, else the default."""
    if config.checkpoint:
        return Path(config.checkpoint).expanduser()
    if world_dir is not None and (Path(world_dir) / ckpt.ADAPTED_NAME).is_file():
        return Path(world_dir) / ckpt.ADAPTED_NAME
    return ckpt.DEFAULT


class StarCache:
    """Per-agent keys/values of the network's cache slots: ``K`` reference slots (recomputed when their frame
    changes) and a ring of ``M`` history slots (computed once, when the agent's frame is completed)."""

    def __init__(self, net: STARNet, num_agents: int, ref_slots: int, history: int, height: int, width: int,
                 device: torch.device) -> None:
        c = net.config
        tokens = (height // c.patch) * (width // c.patch)
        shape = (net.layers, 2, tokens, int(c.dim))
        self.ref_kv = torch.zeros((num_agents, ref_slots, *shape), device=device)
        self.ref_idx = torch.full((num_agents, ref_slots), -1, dtype=torch.int64, device=device)
        self.hist_kv = torch.zeros((num_agents, history, *shape), device=device)
        self.hist_count = torch.zeros(num_agents, dtype=torch.int64, device=device)
        self.recomputed = 0  # reference slots encoded so far (the reuse is measurable)

    def reset(self, mask: torch.Tensor | None) -> None:
        m = torch.ones_like(self.hist_count, dtype=torch.bool) if mask is None else mask.to(self.ref_idx.device)
        self.ref_idx[m] = -1
        self.hist_count[m] = 0

    def push(self, kv: torch.Tensor, agents: torch.Tensor) -> None:
        """Put ``kv (n, layers, 2, L, dim)`` of the agents ``agents (n,)`` (indices) in front of their rings."""
        if self.hist_kv.shape[1] == 0 or agents.numel() == 0:
            return
        self.hist_kv[agents] = torch.cat([kv[:, None], self.hist_kv[agents, :-1]], 1)
        self.hist_count[agents] = (self.hist_count[agents] + 1).clamp(max=self.hist_kv.shape[1])

    def context(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K + M, layers, 2, L, dim)`` keys/values and ``(B, K + M)`` validity."""
        m = self.hist_kv.shape[1]
        hv = torch.arange(m, device=self.hist_count.device)[None] < self.hist_count[:, None]
        return torch.cat([self.ref_kv, self.hist_kv], 1), torch.cat([self.ref_idx >= 0, hv], 1)


class StarCompleter:
    """The learned completer (see the module docstring).

    Args:
        config: :class:`StarConfig`.
        num_agents, height, width: The Simulator's ``B`` and camera resolution.
        ref_slots, history: The cache's ``K`` and ``M``.
        device: Torch device.
        world_dir: Where the World came from (its adapted checkpoint is used when present).
    """

    name = "star"

    def __init__(self, config: StarConfig, num_agents: int, height: int, width: int, ref_slots: int, history: int,
                 device: torch.device | str, world_dir: str | Path | None = None,
                 classical: ClassicalConfig | None = None) -> None:
        config.validate()
        self.config = config
        self.explicit = ClassicalCompleter(classical)
        self.path = resolve_checkpoint(config, world_dir)
        nets, self.meta, _ = ckpt.load(self.path, want=config.sampler, device=device)
        self.net: STARNet = nets[config.sampler]
        p = int(self.net.config.patch)
        self.device = torch.device(device)
        self.height, self.width = height, width
        # the network works on frames padded (right, bottom) to multiples of its patch; padding is a hole with rays
        self.ph, self.pw = -(-height // p) * p, -(-width // p) * p
        self.state = StarCache(self.net, num_agents, ref_slots, history, self.ph, self.pw, self.device)
        self.seeds = list(range(num_agents))
        self.last_explicit: Completion | None = None  # the explicit completion of the last step (what STAR refined)
        self.generators = [torch.Generator().manual_seed(i) for i in range(num_agents)]

    def reset(self, mask: torch.Tensor | None, rngs: list[np.random.Generator] | None = None) -> None:
        """Forget the agents' slots; re-seed their noise generators from ``rngs[i]`` (the env's seeded generator;
        a child seed is spawned, so the env's own stream is not advanced)."""
        self.state.reset(mask)
        idx = range(len(self.generators)) if mask is None else mask.nonzero().squeeze(1).tolist()
        for i in idx:
            self.seeds[i] = _child_seed(rngs[i]) if rngs is not None else i
            self.generators[i] = torch.Generator().manual_seed(self.seeds[i])

    def _noise_generators(self) -> list[torch.Generator]:
        """``noise=step``: the agents' running generators (fresh noise every step); ``noise=episode``: generators
        restarted from each agent's episode seed, so every step of an episode draws the same noise (a learned
        completer then changes its output only where its inputs change: less flicker, same distribution)."""
        if self.config.noise == "step":
            return self.generators
        return [torch.Generator().manual_seed(s) for s in self.seeds]

    @torch.no_grad()
    def complete(self, frame: RenderOutput, poses: torch.Tensor, K: torch.Tensor, slots: CacheSlots,
                 generated: RenderOutput | None = None) -> Completion:
        """Complete ``frame`` rendered at ``poses (B, 4, 4)`` with ``K`` from the cache ``slots`` and the agents'
        written-back content ``generated``."""
        b, h, w = frame.valid.shape
        dev = frame.valid.device
        self._refresh_refs(slots)
        base = self.explicit.complete(frame, poses, K, slots, generated)
        keep = frame.valid.clone()  # pixels whose colour is known: the render's, and written-back content
        if generated is not None:
            keep = keep | (generated.valid & ~frame.valid)
        invented = base.filled & (base.source == SOURCE_INPAINT)
        rays = plucker_rays(K.float(), poses.float(), self.ph, self.pw)
        cond_depth = torch.where(frame.valid, frame.depth, torch.zeros_like(frame.depth))
        ctx, ctx_valid = self.state.context()
        net = self.net
        cond = (self._pad(frame.rgb), self._pad(frame.valid), self._pad(cond_depth), rays, self._pad(base.rgb),
                self._pad(invented))

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(frame_input(x, *cond), t, ctx, ctx_valid)

        x0 = to_uint8(sample(velocity, (b, self.ph, self.pw, 3), int(self.config.steps), dev,
                             self._noise_generators())[:, :h, :w])
        if self.config.refine == "holes":
            out = torch.where(keep[..., None], base.rgb, x0)
        elif self.config.refine == "fresh":
            carried = (base.source == SOURCE_HISTORY) | (base.source == SOURCE_WRITEBACK)
            out = torch.where(carried[..., None], base.rgb, x0)
        else:
            out = x0
        self.last_explicit = base
        source = torch.where(invented, torch.full_like(base.source, SOURCE_MODEL), base.source)
        self._pending = rays
        return Completion(rgb=out, depth=base.depth, filled=base.filled, source=source)

    @torch.no_grad()
    def push(self, done: Completion, step: torch.Tensor) -> None:
        """Encode the completed frames of the agents in ``step (B,)`` into their history slots (once per frame)."""
        agents = step.nonzero().squeeze(1)
        if agents.numel() == 0 or self.state.hist_kv.shape[1] == 0:
            return
        rays = self._pending
        slot = slot_input(self._pad(done.rgb[agents]), self._pad(done.depth[agents]), rays[agents])
        self.state.push(self.net.encode_slots(slot, SLOT_HISTORY), agents)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, ...)`` -> ``(B, ph, pw, ...)`` with zeros (False) right and below."""
        if x.shape[1:3] == (self.ph, self.pw):
            return x
        out = x.new_zeros((x.shape[0], self.ph, self.pw, *x.shape[3:]))
        out[:, :self.height, :self.width] = x
        return out

    def _refresh_refs(self, slots: CacheSlots) -> None:
        """Re-encode the reference slots whose frame differs from the one encoded (new, changed, or reset)."""
        st = self.state
        change = (slots.ref_index != st.ref_idx) & slots.ref_valid
        st.ref_idx = torch.where(slots.ref_valid, slots.ref_index, torch.full_like(st.ref_idx, -1))
        if not bool(change.any()):
            return
        bi, si = change.nonzero(as_tuple=True)
        frames = slots.ref_index[bi, si]
        r = slots.ref_frames
        inp = reference_slots(r.rgb[frames], r.depth[frames], r.poses[frames], r.K, self.height, self.width)
        if (self.ph, self.pw) != (self.height, self.width):  # rays of the padding continue the image plane
            rays = plucker_rays(reference_K(r.K, r.rgb.shape[1:3], (self.height, self.width)), r.poses[frames].float(),
                                self.ph, self.pw)
            inp = torch.cat([self._pad(inp[..., :5]), rays], -1)
        st.ref_kv[bi, si] = self.net.encode_slots(inp, SLOT_REFERENCE)
        st.recomputed += int(frames.numel())


def reference_K(K: torch.Tensor, size: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Intrinsics of reference frames of ``size (Hr, Wr)`` resized to ``target (H, W)``."""
    return scaled_K(K, target[1] / size[1], target[0] / size[0])


def _child_seed(rng: np.random.Generator) -> int:
    """A seed derived from ``rng`` without advancing its stream (a spawned child; drawn when it cannot spawn)."""
    try:
        child = rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):
        return int(rng.integers(2**62))
    return int(child.integers(2**62))
