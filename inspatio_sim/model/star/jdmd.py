"""Joint Distribution Matching Distillation (JDMD): the few-step student's loss.

Notation: ``G`` the student (1-4 steps, :func:`~inspatio_sim.model.star.flow.sample`), ``x = G(z | c)`` its frame
for noise ``z`` and conditioning ``c`` (render, rays, cache with the student's *own* past outputs as history),
``x_t = (1 - t) x + t eps``, ``x0_real(x_t)`` the frozen teacher's clean estimate (the real score) and
``x0_fake(x_t)`` that of the online fake model trained on the student's samples. The generator's loss is

    L_G = E_{t, eps} [ 1/2 || x - sg(x - g) ||^2 ]  +  lambda_real * || w (.) (x - x_real) ||^2

    g = (x0_fake(x_t) - x0_real(x_t)) / mean|x - x0_real(x_t)|

(the normaliser is ``train.star.dmd_normalise``, off by default: the student starts as a copy of the teacher, so
``x`` is close to ``x0_real`` and dividing by their small difference multiplied the DMD step up to 20-fold; in the
default recipe it took the student 1.3-2.5 dB below the teacher within 100 iterations even with ``lambda_real`` 10,
and 2-4 dB below it after 600 with ``lambda_real`` 1, measured on training shards.)
The first term is DMD: its gradient with respect to ``x`` is exactly ``g``, which is, up to the positive factor
``t^2 / (1 - t)^2`` and the normaliser, the gradient of ``KL(p_fake,t || p_real,t)`` at ``x_t`` pulled back through
``x_t``: the difference of the two scores, since ``x0(x_t) = (x_t + t^2 s(x_t)) / (1 - t)`` (Tweedie). The second
term **joins** it with real data: frames of real video at their recorded poses, rendered from a World that did not
use them, pulled toward the true frame ``x_real`` (``w``: the hole weight), so the student keeps the look of real
footage instead of drifting toward what the teacher learnt from synthetic data. The fake model is trained
meanwhile with the flow-matching loss on ``sg(x)`` (time weighting ``lambda(t)`` as the teacher's,
:func:`~inspatio_sim.model.star.flow.flow_loss`):

    L_fake = E_{t, eps} lambda(t) || v_fake(x_t, t | c) - (eps - sg(x)) ||^2
"""

from __future__ import annotations

import torch

from inspatio_sim.model.star.flow import Velocity, clean_estimate, noised


def dmd_direction(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, real: Velocity, fake: Velocity,
                  normalise: bool = True) -> torch.Tensor:
    """``g`` of the module docstring for student frames ``x (B, H, W, 3)``, flow times ``t (B,)`` and noise
    ``eps`` (no gradient flows through it)."""
    with torch.no_grad():
        x_t = noised(x, eps, t)
        x0_real = clean_estimate(x_t, real(x_t, t), t)
        x0_fake = clean_estimate(x_t, fake(x_t, t), t)
        g = x0_fake - x0_real
        if normalise:
            dims = tuple(range(1, x.dim()))
            g = g / (x - x0_real).abs().mean(dims, keepdim=True).clamp(min=1e-3)
    return g


def dmd_loss(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``1/2 || x - sg(x - g) ||^2`` summed over pixels, averaged over the batch: ``d/dx = g / B``."""
    target = (x - g).detach()
    return 0.5 * ((x - target) ** 2).reshape(x.shape[0], -1).sum(1).mean()


def real_loss(x: torch.Tensor, x_real: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The joint real-data term ``|| w (.) (x - x_real) ||^2`` (mean over pixels); ``weight (..., H, W, 1)``."""
    return (weight * (x - x_real) ** 2).mean()


def jdmd_generator_loss(x: torch.Tensor, g: torch.Tensor, x_real: torch.Tensor, weight: torch.Tensor,
                        lambda_real: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_G`` of the module docstring (DMD per pixel scaled to a mean, plus ``lambda_real`` times the real term)
    and its parts for logging."""
    pixels = x[0].numel()
    dmd = dmd_loss(x, g) / pixels
    real = real_loss(x, x_real, weight)
    return dmd + lambda_real * real, {"dmd": float(dmd.detach()), "real": float(real.detach())}
