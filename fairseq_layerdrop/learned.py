"""Learned per-layer drop rates ("data-driven pruning", Fan et al. 2020, Sec. 4), plain torch.

Each stack owns logits ``theta`` (one per layer). The drop rates are

    rate_l = sigmoid(theta_l + tau),   tau such that mean_l rate_l = p,

so the average-rate constraint holds exactly for any ``theta`` (``tau`` is
found by bisection; its gradient comes from implicit differentiation of the
constraint, ``d tau / d theta_l = -s_l / sum_k s_k`` with ``s = rate (1 - rate)``).

The masks are discrete samples, so the loss has no path to ``theta``; we use the
score-function (REINFORCE) estimator with a moving-average baseline:

    grad_theta  ~=  (loss - baseline) * grad_theta log P(mask | theta)

implemented as a surrogate term that the criterion adds to the loss (its value
is ~0 on average; only its gradient matters). At inference the model keeps the
``r`` layers with the lowest learned rate, the same for every input.
"""
from typing import Optional

import torch
from torch import Tensor

_BISECTION_STEPS = 60


def rate_offset(logits: Tensor, mean_rate: float) -> Tensor:
    """The shift ``tau`` with ``mean(sigmoid(logits + tau)) == mean_rate``, a 0-dim float64 tensor.

    Bisection in tensor ops on ``logits``' device, without reading a value back (no ``.item()``);
    the layer list runs it once per update on a CPU copy. ``mean_rate`` must be in (0, 1).
    """
    theta = logits.detach().double()
    lo = -theta.max() - 40.0  # mean sigmoid ~ 0
    hi = -theta.min() + 40.0  # mean sigmoid ~ 1
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = torch.sigmoid(theta + mid).mean() < mean_rate
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def rates_from_logits(logits: Tensor, mean_rate: float, offset: Optional[Tensor] = None) -> Tensor:
    """Per-layer drop rates from logits, with ``rates.mean() == mean_rate`` exactly.

    Differentiable in ``logits`` (including through the normalising shift). ``offset``: the
    shift from :func:`rate_offset` for these logits, if already known (a CPU 0-dim tensor is
    fine with logits on any device: torch reads it as a scalar). ``mean_rate`` 0 or 1 gives
    all-zero or all-one rates.
    """
    if mean_rate <= 0.0:
        return torch.zeros_like(logits)
    if mean_rate >= 1.0:
        return torch.ones_like(logits)
    tau0 = rate_offset(logits, mean_rate) if offset is None else offset
    with torch.no_grad():
        s = torch.sigmoid(logits.detach().double() + tau0)
        w = (s * (1 - s)).to(logits.dtype)
        w = w / w.sum().clamp_min(1e-12)
    # value: tau0; gradient: the implicit derivative of the constraint
    tau = tau0.to(logits.dtype) - (w * (logits - logits.detach())).sum()
    return torch.sigmoid(logits + tau)


def mask_log_prob(keep: Tensor, rates: Tensor) -> Tensor:
    """``log P(keep | rates)`` of a ``(layers, branches)`` bool mask, summed (a scalar)."""
    rates = rates.clamp(1e-6, 1 - 1e-6).unsqueeze(1)
    keep = keep.to(rates.dtype)
    return (keep * torch.log1p(-rates) + (1 - keep) * torch.log(rates)).sum()


def keep_order(logits: Tensor, mean_rate: float) -> list:
    """Layer indices sorted from most to least worth keeping (lowest learned rate first)."""
    rates = rates_from_logits(logits.detach().double(), max(min(mean_rate, 0.999), 0.001))
    return sorted(range(rates.numel()), key=lambda i: (rates[i].item(), i))


def update_baseline(baseline: Tensor, loss_per_token: Tensor, momentum: float = 0.9) -> Tensor:
    """REINFORCE advantage ``loss - baseline`` and an in-place moving-average update.

    ``baseline`` is a 0-dim tensor that starts as NaN (no sample yet: advantage 0).
    Pure tensor ops, so no host-device synchronisation on the training path.
    """
    x = loss_per_token.detach().to(baseline.dtype)
    fresh = torch.isnan(baseline)
    adv = torch.where(fresh, torch.zeros_like(x), x - baseline)
    baseline.copy_(torch.where(fresh, x, momentum * baseline + (1 - momentum) * x))
    return adv
