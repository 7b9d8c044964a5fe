"""The ``classical`` completer: fills the render's holes from the cache by reprojection, then OpenCV inpainting.

For every hole pixel (``~valid``: space the explicit World cannot show) two depth hypotheses are made from the
render's own depth: ``smooth`` (a push-pull surface across the hole: a plain wall whose depth the reconstruction lost)
and ``far`` (the farthest neighbour: a disocclusion shows what lies behind the occluder). Each hypothesis lifts the
pixel to a world point that is looked up in every cache slot:

* the agent's own history frames (what it was shown before: looking there first keeps completions stable from step
  to step and on revisits) count when their depth agrees with the hypothesis;
* the reference video frames count when their depth agrees (the same surface, seen by the video), or, with a lower
  score, when they have no depth there (textureless surfaces: the colour is still the video's), never when their
  depth shows something in front of the point (the point is hidden in that frame).

Among agreeing sources the one whose viewing ray is closest to the agent's wins. Pixels no source can explain are
inpainted (Telea or Navier-Stokes, ``cv2.inpaint``). Everything up to the inpainting is batched torch on the
World's device; inpainting runs per image on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheSlots
from inspatio_sim.model.warp import fill_depth, lift, lookup
from inspatio_sim.render import RenderOutput

SOURCE_RENDER, SOURCE_HISTORY, SOURCE_REFERENCE, SOURCE_INPAINT = 0, 1, 2, 3
"""Values of :attr:`Completion.source`."""

_INPAINT = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
_NEG = -1e9


@dataclass
class ClassicalConfig:
    """Settings of the classical completer (hydra node ``model.classical``)."""

    depth_tolerance: float = 0.05  # relative depth difference within which a cached pixel shows the same surface
    use_history: bool = True  # look in the agent's own past frames first (temporal stability)
    inpaint: str = "telea"  # telea | ns | none: OpenCV inpainting of what no cached frame shows
    inpaint_radius: int = 3  # inpainting neighbourhood (pixels)

    def validate(self) -> None:
        if self.inpaint not in (*_INPAINT, "none"):
            raise ConfigError(f"model.classical.inpaint must be telea, ns or none, got '{self.inpaint}'")
        if not self.depth_tolerance > 0:
            raise ConfigError(f"model.classical.depth_tolerance must be > 0, got {self.depth_tolerance}")
        if int(self.inpaint_radius) < 1:
            raise ConfigError(f"model.classical.inpaint_radius must be >= 1, got {self.inpaint_radius}")


@dataclass
class Completion:
    """A completed batch of frames.

    Attributes:
        rgb: ``(B, H, W, 3)`` uint8 render with its holes filled.
        depth: ``(B, H, W)`` float32: the render's depth where it was valid, the estimate used for a filled pixel,
            0 where unknown (sky, or nothing to estimate from).
        filled: ``(B, H, W)`` bool, pixels the completer wrote (the render's holes).
        source: ``(B, H, W)`` int8, where each pixel came from (``SOURCE_*``).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    filled: torch.Tensor
    source: torch.Tensor


class ClassicalCompleter:
    """Reprojection from the cache, then inpainting (see the module docstring)."""

    name = "classical"

    def __init__(self, config: ClassicalConfig | None = None) -> None:
        self.config = config or ClassicalConfig()
        self.config.validate()

    def complete(self, frame: RenderOutput, poses: torch.Tensor, K: torch.Tensor, slots: CacheSlots) -> Completion:
        """Complete ``frame`` (rendered at ``poses (B, 4, 4)`` with ``K (3, 3)``) from the cache ``slots``."""
        hole = ~frame.valid
        b, h, w = hole.shape
        source = torch.zeros((b, h, w), dtype=torch.int8, device=hole.device)
        if not bool(hole.any()):
            return Completion(frame.rgb, frame.depth, hole, source)
        known = frame.valid & (frame.depth > 0)
        hyps = torch.stack([fill_depth(frame.depth, known, "smooth"), fill_depth(frame.depth, known, "far")], 1)
        best_score = torch.full((b, h, w), _NEG, device=hole.device)
        best_rgb = torch.zeros((b, h, w, 3), device=hole.device)
        best_depth = hyps[:, 0].clone()
        best_source = torch.full((b, h, w), SOURCE_INPAINT, dtype=torch.int8, device=hole.device)
        tol = float(self.config.depth_tolerance)
        centres = poses[:, :3, 3].float()
        for hyp in range(hyps.shape[1]):
            d = hyps[:, hyp]
            points = lift(d, poses.float(), K.float())
            has_depth = (d > 0)[:, None]
            candidates = []
            if self.config.use_history and slots.hist_rgb.shape[1] > 0:
                found = lookup(points, centres, slots.hist_rgb, slots.hist_depth, slots.hist_pose, K.float())
                residual = (found.depth - found.z).abs() / (tol * found.z.clamp(min=1e-6))
                ok = found.inside & (found.depth > 0) & (residual <= 1) & slots.hist_valid[..., None, None] & has_depth
                candidates.append((found, torch.where(ok, 3.5 + found.cos - residual, _NEG), SOURCE_HISTORY))
            found = lookup(points, centres, slots.ref_rgb, slots.ref_depth, slots.ref_pose, slots.ref_intrinsics)
            residual = (found.depth - found.z).abs() / (tol * found.z.clamp(min=1e-6))
            agree = (found.depth > 0) & (residual <= 1)
            unknown = found.depth <= 0
            # agreeing depth beats no depth; the better-agreeing hypothesis and the closer viewing ray win
            base = torch.where(agree, 3.0 - residual, torch.where(unknown, 1.0 + 0.25 * (hyp == 0), _NEG))
            ok = found.inside & slots.ref_valid[..., None, None] & has_depth
            candidates.append((found, torch.where(ok, base + found.cos, _NEG), SOURCE_REFERENCE))
            for found, score, kind in candidates:
                top, arg = score.max(dim=1)  # over slots
                better = top > best_score
                colour = found.rgb.gather(1, arg[:, None, :, :, None].expand(b, 1, h, w, 3))[:, 0]
                best_score = torch.where(better, top, best_score)
                best_rgb = torch.where(better[..., None], colour, best_rgb)
                best_depth = torch.where(better, d, best_depth)
                best_source = torch.where(better, torch.full_like(best_source, kind), best_source)
        explained = hole & (best_score > _NEG / 2)
        rgb = torch.where(explained[..., None], best_rgb.round().clamp(0, 255).to(torch.uint8), frame.rgb)
        source = torch.where(explained, best_source, source)
        rest = hole & ~explained
        if bool(rest.any()) and self.config.inpaint != "none":
            rgb = self._inpaint(rgb, rest)
        source = torch.where(rest, torch.full_like(source, SOURCE_INPAINT), source)
        depth = torch.where(hole, best_depth, frame.depth)
        return Completion(rgb=rgb, depth=depth, filled=hole, source=source)

    def _inpaint(self, rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """OpenCV inpainting of ``mask (B, H, W)`` in ``rgb (B, H, W, 3)`` uint8, image by image on the CPU."""
        images = rgb.cpu().numpy()
        masks = mask.cpu().numpy()
        flag = _INPAINT[self.config.inpaint]
        out = images.copy()
        for i in np.flatnonzero(masks.reshape(len(masks), -1).any(1)):
            radius = int(self.config.inpaint_radius)
            out[i] = cv2.inpaint(np.ascontiguousarray(images[i]), masks[i].astype(np.uint8), radius, flag)
        return torch.as_tensor(out, device=rgb.device)
