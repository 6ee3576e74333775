"""Masked forecasting metrics (zeros in the target are missing values and are left out), and
the uncertainty metrics of probabilistic models: calibration error, AUROC, CRPS and interval
coverage."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

__all__ = ["masked_mae", "masked_mse", "masked_huber", "masked_rmse", "masked_mape",
           "forecast_metrics", "expected_calibration_error", "auroc", "crps_ensemble",
           "interval_coverage", "probabilistic_metrics", "dirichlet_energy"]


def _mask(target: Tensor, missing: Optional[float]) -> Tensor:
    if missing is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != missing


def _masked_mean(values: Tensor, mask: Tensor, dim=None) -> Tensor:
    values = torch.where(mask, values, torch.zeros_like(values))
    if dim is None:
        return values.sum() / mask.sum().clamp(min=1)
    return values.sum(dim) / mask.sum(dim).clamp(min=1)


def masked_mae(pred: Tensor, target: Tensor, missing: Optional[float] = 0.0, dim=None) -> Tensor:
    """Mean absolute error over the entries where ``target != missing``."""
    return _masked_mean((pred - target).abs(), _mask(target, missing), dim)


def masked_mse(pred: Tensor, target: Tensor, missing: Optional[float] = 0.0, dim=None) -> Tensor:
    """Mean squared error over the entries where ``target != missing``."""
    return _masked_mean((pred - target) ** 2, _mask(target, missing), dim)


def masked_rmse(pred: Tensor, target: Tensor, missing: Optional[float] = 0.0, dim=None) -> Tensor:
    """Root mean squared error over the entries where ``target != missing``."""
    return masked_mse(pred, target, missing, dim).sqrt()


def masked_huber(pred: Tensor, target: Tensor, missing: Optional[float] = 0.0, dim=None,
                 delta: float = 1.0) -> Tensor:
    """Huber loss (squared below ``delta``, linear above) where ``target != missing``."""
    err = (pred - target).abs()
    values = torch.where(err < delta, 0.5 * err ** 2, delta * (err - 0.5 * delta))
    return _masked_mean(values, _mask(target, missing), dim)


def masked_mape(pred: Tensor, target: Tensor, missing: Optional[float] = 0.0, dim=None) -> Tensor:
    """Mean absolute percentage error (a fraction: 0.05 is 5%) where ``target != missing``
    (and ``target != 0``, where the percentage is undefined)."""
    mask = _mask(target, missing) & (target != 0)
    safe = torch.where(mask, target, torch.ones_like(target))
    return _masked_mean(((pred - target) / safe).abs(), mask, dim)


def forecast_metrics(pred: Tensor, target: Tensor, steps=(3, 6, 9, 12),
                     interval: Optional[float] = 5.0, missing: Optional[float] = 0.0,
                     pooled: bool = False) -> Dict[str, Dict[str, float]]:
    """MAE, RMSE and MAPE at the given horizon steps of ``(S, P, N)`` forecasts, keyed by
    minutes ahead (``"15min"``) when ``interval`` is in minutes, else by step (``"step3"``).

    ``pooled=True`` scores every step up to each horizon together instead of that step alone
    (T-GCN's evaluation, whose "15 minutes" pools the forecasts 5, 10 and 15 minutes ahead).
    """
    out = {}
    for step in steps:
        if step > pred.size(1):
            continue
        part = slice(0, step) if pooled else step - 1
        p, t = pred[:, part], target[:, part]
        key = f"{step * interval:g}min" if interval else f"step{step}"
        out[key] = {"mae": float(masked_mae(p, t, missing)),
                    "rmse": float(masked_rmse(p, t, missing)),
                    "mape": float(masked_mape(p, t, missing))}
    return out


# --------------------------------------------------------------------------- uncertainty
def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> Tensor:
    """Expected calibration error (Guo et al., 2017): the predictions are grouped into
    ``bins`` equal-width bins of confidence (the largest class probability); the error is the
    mean over predictions of ``|accuracy - confidence|`` of their bin.

    Args:
        probs: class probabilities, shape ``(n, classes)``.
        labels: true classes, shape ``(n,)``.
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"probs must be (n, classes) and labels (n,), got {tuple(probs.shape)} "
                         f"and {tuple(labels.shape)}")
    confidence, pred = probs.max(dim=1)
    correct = (pred == labels).to(probs.dtype)
    which = (confidence * bins).long().clamp(max=bins - 1)
    count = torch.zeros(bins, dtype=probs.dtype, device=probs.device).index_add_(
        0, which, torch.ones_like(confidence))
    conf_sum = torch.zeros_like(count).index_add_(0, which, confidence)
    acc_sum = torch.zeros_like(count).index_add_(0, which, correct)
    return (acc_sum - conf_sum).abs().sum() / max(probs.size(0), 1)


def auroc(scores: Tensor, positive: Tensor) -> Tensor:
    """Area under the ROC curve of ``scores`` for telling ``positive`` (bool) entries from the
    rest: the probability that a random positive scores above a random negative, ties
    counting half (the Mann-Whitney statistic, with average ranks)."""
    scores, positive = scores.reshape(-1), positive.reshape(-1).bool()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs at least one positive and one negative entry")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores, dtype=torch.float64)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64, device=scores.device)
    # average ranks over ties
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                  return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    mean_rank = ends - (counts.to(torch.float64) - 1) / 2
    ranks[order] = mean_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def crps_ensemble(samples: Tensor, target: Tensor, missing: Optional[float] = None) -> Tensor:
    """Mean continuous ranked probability score of a sample forecast: ``E|X - y| - 0.5
    E|X - X'|`` per entry, from ``samples`` of shape ``(S, *target.shape)`` (the unbiased
    pairwise term, over distinct pairs), averaged over the entries where ``target !=
    missing`` (all of them by default). A proper score: a point forecast scores its absolute
    error, and training on it fits the whole predictive distribution."""
    if samples.shape[1:] != target.shape or samples.size(0) < 2:
        raise ValueError(f"samples must be (S >= 2, *target.shape), got {tuple(samples.shape)} "
                         f"for a target of {tuple(target.shape)}")
    s = samples.size(0)
    skill = (samples - target).abs().mean(0)
    ordered, _ = samples.sort(dim=0)
    # sum over pairs |x_i - x_j| = 2 sum_k (2k - s + 1) x_(k) for sorted samples (k from 0)
    weights = (2 * torch.arange(s, device=samples.device, dtype=samples.dtype) - s + 1)
    pairs = 2 * (weights.view(-1, *([1] * target.dim())) * ordered).sum(0)
    spread = pairs / (s * (s - 1))
    return _masked_mean(skill - 0.5 * spread, _mask(target, missing))


def interval_coverage(samples: Tensor, target: Tensor, level: float,
                      missing: Optional[float] = None) -> Dict[str, Tensor]:
    """Coverage and mean width of the central ``level`` interval of a sample forecast (the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` sample quantiles, per entry), over the
    entries where ``target != missing`` (all of them by default)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype,
                     device=samples.device)
    lo, hi = torch.quantile(samples, q, dim=0)
    inside = ((target >= lo) & (target <= hi)).to(samples.dtype)
    mask = _mask(target, missing)
    return {"coverage": _masked_mean(inside, mask), "width": _masked_mean(hi - lo, mask)}


def probabilistic_metrics(samples: Tensor, target: Tensor, steps=(3, 6, 9, 12),
                          interval: Optional[float] = 5.0, missing: Optional[float] = 0.0,
                          levels=(0.5, 0.9)) -> Dict[str, Dict[str, float]]:
    """CRPS, and the coverage and width of the central intervals at ``levels``, at the given
    horizon steps of sample forecasts ``(samples, S, P, N)``; keyed as
    :func:`forecast_metrics` keys its point metrics, with ``coverage50``/``width50`` for the
    50% interval and so on."""
    if samples.dim() != target.dim() + 1 or samples.shape[1:] != target.shape:
        raise ValueError(f"samples must be (samples, *target.shape), got "
                         f"{tuple(samples.shape)} for a target of {tuple(target.shape)}")
    out = {}
    for step in steps:
        if step > target.size(1):
            continue
        s, t = samples[:, :, step - 1], target[:, step - 1]
        key = f"{step * interval:g}min" if interval else f"step{step}"
        row = {"crps": float(crps_ensemble(s, t, missing))}
        for level in levels:
            cover = interval_coverage(s, t, level, missing)
            name = f"{100 * level:g}"
            row[f"coverage{name}"] = float(cover["coverage"])
            row[f"width{name}"] = float(cover["width"])
        out[key] = row
    return out


def dirichlet_energy(x: Tensor, edge_index: Tensor) -> Tensor:
    r"""The Dirichlet energy of node features,
    :math:`E(\mathbf{X}) = \frac{1}{|\mathcal{V}|} \sum_{i} \sum_{j \in \mathcal{N}(i)}
    \|\mathbf{x}_i - \mathbf{x}_j\|^2` over the edges ``j -> i`` of ``edge_index`` (an
    undirected graph lists each pair both ways), as in Rusch et al. (GraphCON, 2022). It falls
    to zero when the features collapse to a constant: the measure of oversmoothing."""
    src, dst = edge_index
    return (x[src] - x[dst]).pow(2).sum() / x.size(0)
