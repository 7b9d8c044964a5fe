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

from inspatio_sim.camera import pixel_rays
from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheSlots
from inspatio_sim.model.warp import depth_hypotheses, lookup
from inspatio_sim.render import RenderOutput

SOURCE_RENDER, SOURCE_HISTORY, SOURCE_REFERENCE, SOURCE_INPAINT, SOURCE_WRITEBACK = 0, 1, 2, 3, 4
"""Values of :attr:`Completion.source`: the explicit render, the agent's history, a reference video frame, OpenCV
inpainting, the agent's written-back content."""

_INPAINT = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
_NEG = -1e9


@dataclass
class ClassicalConfig:
    """Settings of the classical completer (hydra node ``model.classical``)."""

    depth_tolerance: float = 0.05  # relative depth difference within which a cached pixel shows the same surface
    use_history: bool = True  # look in the agent's own past frames first (temporal stability)
    inpaint: str = "telea"  # telea | ns | none: OpenCV inpainting of what no cached frame shows
    inpaint_radius: int = 3  # inpainting neighbourhood (pixels)
    min_agreement: float = 0.65  # two or more depth-less frames are used if they agree this well on the colour (0-1)
    backdrop: bool = True  # also re-derive backdrop pixels (valid, depth 0: depth-less video colours on the far shell)

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

    def complete(self, frame: RenderOutput, poses: torch.Tensor, K: torch.Tensor, slots: CacheSlots,
                 generated: RenderOutput | None = None) -> Completion:
        """Complete ``frame`` (rendered at ``poses (B, 4, 4)`` with ``K (3, 3)``) from the cache ``slots`` and,
        where given, the agents' written-back content ``generated`` (rendered at the same cameras)."""
        hole = ~frame.valid
        # the backdrop shows depth-less video colours on a far shell: right for sky, misplaced for a plain wall seen
        # off the path; its pixels are re-derived like holes but keep the backdrop's colour where nothing explains them
        backdrop = frame.valid & (frame.depth <= 0) if self.config.backdrop else torch.zeros_like(hole)
        hole = hole | backdrop
        b, h, w = hole.shape
        dev = hole.device
        source = torch.zeros((b, h, w), dtype=torch.int8, device=dev)
        if not bool(hole.any()):
            return Completion(frame.rgb, frame.depth, hole, source)
        known = frame.valid & (frame.depth > 0)
        bi, vi, ui = hole.nonzero(as_tuple=True)  # the work is proportional to the holes, not to the image
        hyps = depth_hypotheses(frame.depth, known)[:, bi, vi, ui]  # (3, N): smooth, far, near
        rays = pixel_rays(K.float(), h, w)[vi, ui]  # (N, 3) camera frame, z = 1
        R, t = poses[bi, :3, :3].float(), poses[bi, :3, 3].float()
        centres = poses[:, :3, 3].float()
        n = bi.numel()
        best = _Best(n, hyps[0], dev)
        tol = float(self.config.depth_tolerance)
        refs = slots.ref_frames
        # every hypothesis is looked up in one call per source (3N points), then offered hypothesis by hypothesis
        points = ((R @ (rays * hyps[..., None])[..., None])[..., 0] + t).reshape(-1, 3)
        b3 = bi.repeat(len(hyps))
        use_history = self.config.use_history and slots.hist_index.shape[1] > 0
        hist_all = (lookup(points, b3, centres, slots.hist_rgb_store, slots.hist_depth_store, slots.hist_index,
                           slots.hist_pose, K.float()) if use_history else None)
        ref_all = lookup(points, b3, centres, refs.rgb, refs.depth, slots.ref_index.clamp(min=0), slots.ref_pose,
                         refs.K)
        for hyp, d in enumerate(hyps):
            part = slice(hyp * n, (hyp + 1) * n)
            has_depth = (d > 0)[:, None]
            if hist_all is not None:
                found = hist_all.part(part)
                residual = (found.depth - found.z).abs() / (tol * found.z.clamp(min=1e-6))
                ok = found.inside & (found.depth > 0) & (residual <= 1) & slots.hist_valid[bi] & has_depth
                best.offer(torch.where(ok, 2.5 + 0.5 * found.cos - residual, _NEG), found.rgb, d, SOURCE_HISTORY)
            # the reference frames: a depth hypothesis is as good as the frames that see the point agree on it (their
            # depth where they have one, their colour always); the colour is their weighted mean
            found = ref_all.part(part)
            residual = (found.depth - found.z).abs() / (tol * found.z.clamp(min=1e-6))
            sees = found.inside & slots.ref_valid[bi] & has_depth
            agree = sees & (found.depth > 0) & (residual <= 1)
            use = agree | (sees & (found.depth <= 0))  # frames whose depth does not contradict the hypothesis
            count = use.sum(1)
            weight = use.float() * found.cos.clamp(min=0.1)
            mean = (found.rgb * weight[..., None]).sum(1) / weight.sum(1).clamp(min=1e-6)[:, None]
            consistency = _colour_agreement(found.rgb, use)
            agreeing = agree.any(1)
            # one depth-less frame is no evidence either way (its score stays below any agreeing source's); two or
            # more must agree on the colour: frames that see different colours there reject the hypothesis
            trusted = agreeing | (count == 1) | ((count >= 2) & (consistency >= self.config.min_agreement))
            score = 1.0 + consistency + agree.sum(1) / count.clamp(min=1) + 0.02 * (hyp == 0)
            best.offer(torch.where(trusted, score, _NEG)[:, None], mean[:, None], d, SOURCE_REFERENCE)
        if generated is not None:  # written-back content: below what the video shows with agreeing depth
            g_ok = generated.valid[bi, vi, ui]
            best.offer(torch.where(g_ok, 2.0, _NEG)[:, None], generated.rgb[bi, vi, ui].float()[:, None],
                       generated.depth[bi, vi, ui], SOURCE_WRITEBACK)
        explained = best.score > _NEG / 2
        rgb = frame.rgb.clone()
        rgb[bi[explained], vi[explained], ui[explained]] = best.rgb[explained].round().clamp(0, 255).to(torch.uint8)
        source[bi, vi, ui] = torch.where(explained, best.source, SOURCE_INPAINT).to(torch.int8)
        source[backdrop & (source == SOURCE_INPAINT)] = SOURCE_RENDER
        rest = hole & (source == SOURCE_INPAINT)
        if bool(rest.any()) and self.config.inpaint != "none":
            rgb = self._inpaint(rgb, rest)
        depth = frame.depth.clone()
        depth[bi, vi, ui] = torch.where(source[bi, vi, ui] != SOURCE_RENDER, best.depth, depth[bi, vi, ui])
        return Completion(rgb=rgb, depth=depth, filled=hole & (source != SOURCE_RENDER), source=source)

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


class _Best:
    """The best candidate so far for each of ``N`` hole pixels (score, colour, depth hypothesis, source)."""

    def __init__(self, n: int, depth: torch.Tensor, device: torch.device) -> None:
        self.score = torch.full((n,), _NEG, device=device)
        self.rgb = torch.zeros((n, 3), device=device)
        self.depth = depth.clone()
        self.source = torch.full((n,), SOURCE_INPAINT, dtype=torch.int8, device=device)

    def offer(self, score: torch.Tensor, rgb: torch.Tensor, depth: torch.Tensor, kind: int) -> None:
        """Candidates ``score (N, S)`` with colours ``rgb (N, S, 3)`` at depth ``depth (N,)`` from source ``kind``."""
        top, arg = score.max(dim=1)
        better = top > self.score
        colour = rgb.gather(1, arg[:, None, None].expand(-1, 1, 3))[:, 0]
        self.score = torch.where(better, top, self.score)
        self.rgb = torch.where(better[:, None], colour, self.rgb)
        self.depth = torch.where(better, depth, self.depth)
        self.source = torch.where(better, torch.full_like(self.source, kind), self.source)


def _colour_agreement(rgb: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``(N,)`` in [0, 1]: how well the frames that see a point (``ok (N, S)``) agree on its colour ``rgb (N, S, 3)``
    (1: identical; 0.5 when fewer than two frames see it; 0 at a mean deviation of 64 grey levels or more)."""
    w = ok.float()[..., None]
    count = w.sum(1)
    mean = (rgb * w).sum(1) / count.clamp(min=1)
    dev = ((rgb - mean[:, None]).abs().mean(-1, keepdim=True) * w).sum(1) / count.clamp(min=1)
    agreement = (1.0 - dev / 64.0).clamp(0.0, 1.0)[:, 0]
    return torch.where(count[:, 0] >= 2, agreement, torch.full_like(agreement, 0.5))
