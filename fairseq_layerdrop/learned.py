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
import torch
from torch import Tensor

_BISECTION_STEPS = 60


def rates_from_logits(logits: Tensor, mean_rate: float) -> Tensor:
    """Per-layer drop rates from logits, with ``rates.mean() == mean_rate`` exactly.

    Differentiable in ``logits`` (including through the normalising shift).
    ``mean_rate`` 0 or 1 gives all-zero or all-one rates.
    """
    if mean_rate <= 0.0:
        return torch.zeros_like(logits)
    if mean_rate >= 1.0:
        return torch.ones_like(logits)
    with torch.no_grad():
        theta = logits.detach().double()
        lo = -theta.max().item() - 40.0  # mean sigmoid ~ 0
        hi = -theta.min().item() + 40.0  # mean sigmoid ~ 1
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if torch.sigmoid(theta + mid).mean().item() < mean_rate:
                lo = mid
            else:
                hi = mid
        tau0 = 0.5 * (lo + hi)
        s = torch.sigmoid(theta + tau0)
        w = (s * (1 - s)).to(logits.dtype)
        w = w / w.sum().clamp_min(1e-12)
    # value: tau0; gradient: the implicit derivative of the constraint
    tau = tau0 - (w * (logits - logits.detach())).sum()
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
