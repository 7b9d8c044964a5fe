"""The STAR network: a causal spatiotemporal transformer over patch tokens that predicts a flow-matching velocity.

Frames are channels-last ``(B, H, W, C)`` with ``H`` and ``W`` multiples of ``patch``. Per frame the network reads,
concatenated along the channels (``FRAME_CHANNELS`` = 18): the noisy frame ``x_t`` (3, in [-1, 1]), the explicit
render's colour (3, in [-1, 1]), its validity (1), its depth as ``1 / (1 + d)`` (1, 0 where unknown), the camera
rays as Plücker coordinates (6, world frame: unit direction, moment), the **explicit completion** (3, in [-1, 1]: the
classical completer's frame, i.e. the render with its holes filled by reprojecting the cache's frames, then
inpainting) and a flag of its invented pixels (1: inpainted, nothing in the cache showed them).

**Parametrisation.** The network predicts the clean frame as a residual on the explicit completion,
``x0 = base + r(x_t, t | c)``, and returns the flow velocity it implies, ``v = (x_t - x0) / max(t, T_MIN)``. A small
per-pixel convolutional refiner (three 3x3 layers over the frame input and the token estimate, ``refine_channels``)
adds what 8x8 patches cannot place to the pixel. The token head and the refiner's last layer start at zero, so an
untrained network reproduces the explicit completion exactly and without noise; training
teaches it what the explicit geometry gets wrong (the render's blur and misregistration, reference colours that do not
fit, inpainted smears). Patches of ``patch x patch`` pixels become
tokens of width ``dim``, with a 2-D sine-cosine position code and the flow time ``t`` (an MLP of a sine code, added
to every token and to every block's input).

**Implicit Spatiotemporal Cache, as the network sees it.** Every cache slot (a reference video frame or one of the
agent's own past completed frames) is a clean frame with ``SLOT_CHANNELS`` = 11 channels: colour, has-depth,
``1 / (1 + d)``, Plücker rays. A slot is encoded alone (its tokens attend only to themselves, through the same
blocks) and yields per-layer keys and values ``(layers, 2, L, dim)``: computed once when the slot is filled and reused
for every step while it stays (:class:`StarCache` in :mod:`~inspatio_sim.model.star.completer` keeps them per agent).
At each block the tokens of the frame being generated attend to their own keys/values and to those of every valid
slot of their agent. A frame's history slots hold only frames that came before it, so a frame never attends to the
future (:meth:`STARNet.forward_sequence` is the teacher-forced form used in training and in the causality test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inspatio_sim.errors import ConfigError

FRAME_CHANNELS = 18
BASE = slice(14, 17)
"""Channels of the explicit completion in a frame input."""
T_MIN = 0.05
"""Smallest flow time in the velocity's denominator (the x0 -> v conversion)."""
SLOT_CHANNELS = 11
SLOT_REFERENCE, SLOT_HISTORY = 0, 1


@dataclass
class NetConfig:
    """Architecture of the STAR network (stored in every checkpoint; ``model.star.net`` / ``train.star.net``)."""

    patch: int = 8  # pixels per patch side (frames must be multiples of it)
    dim: int = 96  # token width
    layers: int = 4  # transformer blocks
    heads: int = 4  # attention heads (dim must be a multiple)
    mlp_ratio: float = 2.0  # hidden width of each block's MLP, as a multiple of dim
    refine_channels: int = 32  # width of the per-pixel convolutional refiner after the tokens (0 = none)

    def validate(self) -> None:
        for key in ("patch", "dim", "layers", "heads"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"star net: {key} must be >= 1, got {getattr(self, key)}")
        if int(self.dim) % int(self.heads):
            raise ConfigError(f"star net: dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if int(self.refine_channels) < 0:
            raise ConfigError(f"star net: refine_channels must be >= 0, got {self.refine_channels}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"star net: mlp_ratio must be > 0, got {self.mlp_ratio}")


def depth_feature(depth: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + d)`` for ``d > 0``, else 0 (same shape as ``depth``, metres)."""
    d = depth.float()
    return torch.where(d > 0, 1.0 / (1.0 + d.clamp(min=0)), torch.zeros_like(d))


def to_unit(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) colours -> float32 in [-1, 1]."""
    return rgb.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Colours in [-1, 1] -> uint8 (rounded, clamped)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def frame_input(x_t: torch.Tensor, render_rgb: torch.Tensor, valid: torch.Tensor, depth: torch.Tensor,
                plucker: torch.Tensor, base_rgb: torch.Tensor, invented: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 18)``: noisy frame ``x_t (B, H, W, 3)`` in [-1, 1], render colour (uint8 or [-1, 1] float),
    ``valid (B, H, W)``, ``depth (B, H, W)`` metres, ``plucker (B, H, W, 6)``, the explicit completion ``base_rgb``
    (uint8 or [-1, 1] float, ``(B, H, W, 3)``) and ``invented (B, H, W)`` (its inpainted pixels)."""
    rgb = to_unit(render_rgb) if render_rgb.dtype == torch.uint8 else render_rgb.float()
    base = to_unit(base_rgb) if base_rgb.dtype == torch.uint8 else base_rgb.float()
    v = valid.float()[..., None]
    return torch.cat([x_t.float(), rgb * v, v, depth_feature(depth)[..., None] * v, plucker.float(), base,
                      invented.float()[..., None]], -1)


def slot_input(rgb: torch.Tensor, depth: torch.Tensor, plucker: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 11)`` for clean slot frames ``rgb (N, H, W, 3)`` (uint8 or [-1, 1]), ``depth (N, H, W)``
    metres (0 = unknown), ``plucker (N, H, W, 6)``."""
    c = to_unit(rgb) if rgb.dtype == torch.uint8 else rgb.float()
    has = (depth > 0).float()[..., None]
    return torch.cat([c, has, depth_feature(depth)[..., None], plucker.float()], -1)


def _sincos(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Sine-cosine code ``(..., dim)`` of ``values (...)``."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    arg = values.float()[..., None] * freq
    return torch.cat([arg.sin(), arg.cos()], -1)


def _pos2d(gh: int, gw: int, dim: int, device: torch.device) -> torch.Tensor:
    """``(gh * gw, dim)`` 2-D position code of a patch grid."""
    y, x = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
    return torch.cat([_sincos(y.reshape(-1), dim // 2), _sincos(x.reshape(-1), dim - dim // 2)], -1)


class Block(nn.Module):
    """Pre-norm transformer block whose attention also reads context keys/values."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def kv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values ``(N, L, dim)`` of tokens ``h (N, L, dim)``."""
        return self.qkv(self.norm1(h)).chunk(3, -1)

    def forward(self, h: torch.Tensor, ctx_k: torch.Tensor | None = None, ctx_v: torch.Tensor | None = None,
                ctx_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens ``h (N, L, dim)`` attend to themselves and to ``ctx_k/ctx_v (N, C, dim)`` where ``ctx_mask (N, C)``
        is true. Returns the new tokens and this block's own keys and values ``(N, L, dim)``."""
        q, k, v = self.kv(h)
        n, length, dim = h.shape
        hd = dim // self.heads
        if ctx_k is not None and ctx_k.shape[1] > 0:
            keys, values = torch.cat([k, ctx_k], 1), torch.cat([v, ctx_v], 1)
            own = torch.ones((n, length), dtype=torch.bool, device=h.device)
            mask = torch.cat([own, ctx_mask], 1)[:, None, None, :]  # (N, 1, 1, L + C)
        else:
            keys, values, mask = k, v, None

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, -1, self.heads, hd).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(q), split(keys), split(values), attn_mask=mask)
        h = h + self.proj(a.transpose(1, 2).reshape(n, length, dim))
        h = h + self.mlp(self.norm2(h))
        return h, k, v


class STARNet(nn.Module):
    """Velocity predictor ``v(x_t, t | render, rays, cache)`` (see the module docstring).

    Rectified flow: ``x_t = (1 - t) x + t eps`` with ``t`` in [0, 1] (1 = pure noise); the velocity is ``eps - x``
    and the clean estimate ``x_t - t v``.
    """

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetConfig()
        self.config.validate()
        c = self.config
        p, d = int(c.patch), int(c.dim)
        self.patch = p
        self.embed_frame = nn.Linear(FRAME_CHANNELS * p * p, d)
        self.embed_slot = nn.Linear(SLOT_CHANNELS * p * p, d)
        self.slot_kind = nn.Embedding(2, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([Block(d, int(c.heads), float(c.mlp_ratio)) for _ in range(int(c.layers))])
        self.time_in = nn.ModuleList([nn.Linear(d, d) for _ in range(int(c.layers))])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3 * p * p)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        r = int(c.refine_channels)
        self.refine = None
        if r:
            self.refine = nn.Sequential(nn.Conv2d(FRAME_CHANNELS + 3, r, 3, padding=1), nn.GELU(),
                                        nn.Conv2d(r, r, 3, padding=1), nn.GELU(), nn.Conv2d(r, 3, 3, padding=1))
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)

    @property
    def layers(self) -> int:
        return len(self.blocks)

    # -- tokens ----------------------------------------------------------------------------------------------------
    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)`` -> ``(N, L, C * p * p)``."""
        n, h, w, c = x.shape
        p = self.patch
        if h % p or w % p:
            raise ConfigError(f"STAR frames must be multiples of the patch size {p}, got {w}x{h}")
        x = x.reshape(n, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, (h // p) * (w // p), p * p * c)

    def _unpatchify(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        n = tokens.shape[0]
        p = self.patch
        x = tokens.reshape(n, h // p, w // p, p, p, 3).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, h, w, 3)

    # -- cache slots -------------------------------------------------------------------------------------------------
    def encode_slots(self, slots: torch.Tensor, kind: int) -> torch.Tensor:
        """Per-layer keys and values ``(N, layers, 2, L, dim)`` of clean slot frames ``slots (N, H, W, 11)``
        (:func:`slot_input`); ``kind`` is ``SLOT_REFERENCE`` or ``SLOT_HISTORY``. Each slot attends to itself
        only, so its keys and values do not depend on any other frame."""
        _n, h, w, _ = slots.shape
        tok = self.embed_slot(self._patchify(slots))
        tok = tok + _pos2d(h // self.patch, w // self.patch, tok.shape[-1], tok.device) + self.slot_kind.weight[kind]
        out = []
        for block in self.blocks:
            tok, k, v = block(tok)
            out.append(torch.stack([k, v], 1))
        return torch.stack(out, 1)

    # -- one frame ---------------------------------------------------------------------------------------------------
    def forward(self, frame: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor | None = None,
                ctx_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity ``(B, H, W, 3)`` for frames ``frame (B, H, W, 18)`` (:func:`frame_input`) at flow times
        ``t (B,)``, reading context slots ``ctx (B, S, layers, 2, L, dim)`` where ``ctx_valid (B, S)`` (bool).
        The clean estimate it implies (``x_t - t v`` for ``t >= T_MIN``) is :meth:`clean`'s."""
        x0 = self.clean(frame, t, ctx, ctx_valid)
        tt = t.float().clamp(min=T_MIN).reshape(-1, 1, 1, 1)
        return (frame[..., :3] - x0) / tt

    def clean(self, frame: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor | None = None,
              ctx_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Clean-frame estimate ``(B, H, W, 3)``: the explicit completion (``frame[..., BASE]``) plus the predicted
        residual (arguments as :meth:`forward`)."""
        b, h, w, _ = frame.shape
        tok = self.embed_frame(self._patchify(frame))
        d = tok.shape[-1]
        temb = self.time_mlp(_sincos(t.float() * 1000.0, d))[:, None]
        tok = tok + _pos2d(h // self.patch, w // self.patch, d, tok.device) + temb
        ck = cv = cm = None
        if ctx is not None and ctx.shape[1] > 0:
            s, length = ctx.shape[1], ctx.shape[4]
            if ctx_valid is None:
                ctx_valid = torch.ones((b, s), dtype=torch.bool, device=frame.device)
            cm = ctx_valid[:, :, None].expand(b, s, length).reshape(b, s * length)
        for i, block in enumerate(self.blocks):
            if cm is not None:
                ck = ctx[:, :, i, 0].reshape(b, -1, d)
                cv = ctx[:, :, i, 1].reshape(b, -1, d)
            tok, _, _ = block(tok + self.time_in[i](temb), ck, cv, cm)
        x0 = frame[..., BASE] + self._unpatchify(self.head(self.norm(tok)), h, w)
        if self.refine is None:
            return x0
        fine = self.refine(torch.cat([frame, x0], -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x0 + fine

    # -- a sequence (teacher forcing) ----------------------------------------------------------------------------------
    def forward_sequence(self, frames: torch.Tensor, t: torch.Tensor, clean: torch.Tensor,
                         ref_kv: torch.Tensor | None, ref_valid: torch.Tensor | None, history: int
                         ) -> torch.Tensor:
        """Velocities ``(B, T, H, W, 3)`` of a sequence: frame ``i`` (``frames (B, T, H, W, 14)`` at ``t (B, T)``)
        reads the reference slots ``ref_kv (B, K, layers, 2, L, dim)`` and, as history, the clean slot frames
        ``clean (B, T, H, W, 11)`` of steps ``i-1 ... i-history`` (never ``i`` or later: causal)."""
        b, steps = frames.shape[:2]
        hist_kv = self.encode_slots(clean.reshape(b * steps, *clean.shape[2:]), SLOT_HISTORY)
        hist_kv = hist_kv.reshape(b, steps, *hist_kv.shape[1:])
        out = []
        for i in range(steps):
            ctx, valid = history_context(hist_kv, i, history, ref_kv, ref_valid)
            out.append(self(frames[:, i], t[:, i], ctx, valid))
        return torch.stack(out, 1)


def history_context(hist_kv: torch.Tensor, i: int, history: int, ref_kv: torch.Tensor | None,
                    ref_valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Context of step ``i``: reference slots, then the ``history`` newest earlier steps of ``hist_kv (B, T, ...)``
    (newest first; missing ones are masked out)."""
    b = hist_kv.shape[0]
    parts, valid = [], []
    if ref_kv is not None:
        parts.append(ref_kv)
        valid.append(ref_valid if ref_valid is not None else
                     torch.ones(ref_kv.shape[:2], dtype=torch.bool, device=ref_kv.device))
    for j in range(1, history + 1):
        src = max(i - j, 0)
        parts.append(hist_kv[:, src:src + 1])
        valid.append(torch.full((b, 1), i - j >= 0, dtype=torch.bool, device=hist_kv.device))
    if not parts:
        return hist_kv[:, :0], torch.zeros((b, 0), dtype=torch.bool, device=hist_kv.device)
    return torch.cat(parts, 1), torch.cat(valid, 1)
