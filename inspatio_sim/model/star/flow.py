"""Flow matching (rectified flow) for the STAR teacher, and the few-step sampler shared by teacher and student.

Convention: ``x_t = (1 - t) x + t eps`` with ``eps ~ N(0, I)`` and ``t`` in [0, 1] (``t = 1``: pure noise). The
network predicts the velocity ``v = eps - x``; the clean estimate from ``x_t`` is ``x_t - t v``. The teacher's loss is

    L_FM = E_{t, eps} [ lambda(t) w(p) || v_theta(x_t, t | c) - (eps - x) ||^2 ]

with ``w = hole_weight`` on pixels the explicit render could not show and 1 elsewhere (the holes are what the model
is mostly for), and the time weighting ``lambda(t) = 1`` (``weighting="velocity"``) or ``t^2`` (``"x0"``, the
default): since ``v = (x_t - x0) / t``, the latter is the squared error of the clean estimate at every time, which
does not let the nearly clean times (``1 / t^2`` up to 400 there) drown the pure-noise ones the few-step sampler
starts from. ``t`` is drawn per frame, uniformly by default (:func:`sample_t`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(x_t (B, H, W, 3), t (B,)) -> (B, H, W, 3)``: a velocity field with its conditioning bound."""


TIME_SAMPLINGS = ("uniform", "logit_normal")


def sample_t(shape: tuple[int, ...], generator: torch.Generator | None = None, device: str | torch.device = "cpu",
             kind: str = "uniform") -> torch.Tensor:
    """Flow times (shape ``shape``, in (0, 1)): ``uniform``, or ``logit_normal`` (0, 1) (mid-way times favoured, as in
    many-step image models; it almost never draws the pure-noise end a few-step sampler starts from)."""
    if kind == "uniform":
        return torch.rand(shape, generator=generator).to(device)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(shape, generator=generator, device=device))
    raise ValueError(f"sample_t: kind must be one of {TIME_SAMPLINGS}, got '{kind}'")


def noised(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x + t eps`` (``t`` broadcast over the trailing image dimensions)."""
    tt = t.reshape(*t.shape, *([1] * (x.dim() - t.dim())))
    return (1.0 - tt) * x + tt * eps


def clean_estimate(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t - t v``: the clean frame implied by velocity ``v`` at time ``t``."""
    tt = t.reshape(*t.shape, *([1] * (x_t.dim() - t.dim())))
    return x_t - tt * v


def pixel_weight(valid: torch.Tensor, hole_weight: float) -> torch.Tensor:
    """``(..., H, W, 1)`` loss weight: ``hole_weight`` on holes (``~valid``), 1 elsewhere, normalised to mean 1."""
    w = torch.where(valid, 1.0, float(hole_weight))[..., None]
    return w / w.mean()


WEIGHTINGS = ("x0", "velocity")


def flow_loss(v_pred: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, valid: torch.Tensor,
              hole_weight: float, t: torch.Tensor | None = None, weighting: str = "velocity") -> torch.Tensor:
    """The weighted flow-matching loss (module docstring) for predictions ``v_pred`` of frames ``x`` noised with
    ``eps`` (all ``(..., H, W, 3)``) at times ``t`` (``(...)``, needed for ``weighting="x0"``), ``valid``
    ``(..., H, W)``."""
    err = pixel_weight(valid, hole_weight) * (v_pred - (eps - x)) ** 2
    if weighting == "x0":
        if t is None:
            raise ValueError("flow_loss: weighting='x0' needs the flow times t")
        err = err * t.reshape(*t.shape, *([1] * (x.dim() - t.dim()))) ** 2
    elif weighting != "velocity":
        raise ValueError(f"flow_loss: weighting must be one of {WEIGHTINGS}, got '{weighting}'")
    return err.mean()


def schedule(steps: int) -> list[float]:
    """Flow times of a ``steps``-step sampler, from 1 (noise) down (uniform: ``1, 1 - 1/n, ...``)."""
    return [1.0 - i / steps for i in range(steps)]


def noise_like(shape: Sequence[int], generators: Sequence[torch.Generator] | None, device: torch.device
               ) -> torch.Tensor:
    """Standard normal noise ``(B, *shape[1:])``; row ``i`` from ``generators[i]`` (per-agent seeded) when given.
    Drawn on the CPU and moved, so CPU and CUDA runs see the same numbers."""
    if generators is None:
        return torch.randn(tuple(shape), device=device)
    rows = [torch.randn(tuple(shape[1:]), generator=g) for g in generators]
    return torch.stack(rows).to(device)


def sample(velocity: Velocity, shape: Sequence[int], steps: int, device: torch.device,
           generators: Sequence[torch.Generator] | None = None, grad_last: bool = False) -> torch.Tensor:
    """A clean frame ``(B, H, W, 3)`` in about [-1, 1] from ``steps`` denoising steps: at each time the clean
    estimate is taken and re-noised to the next time with fresh noise (the few-step sampler of consistency / DMD
    students; with many steps it approaches the ODE's result). ``grad_last``: only the last step keeps gradients."""
    x = noise_like(shape, generators, device)
    times = schedule(steps)
    b = shape[0]
    for i, t in enumerate(times):
        tb = torch.full((b,), t, device=device)
        last = i == len(times) - 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and (last or not grad_last)):
            x0 = clean_estimate(x, velocity(x, tb), tb)
        if last:
            return x0
        x = noised(x0.detach() if grad_last else x0, noise_like(shape, generators, device),
                   torch.full((b,), times[i + 1], device=device))
    return x
