"""Masked forecasting metrics: zeros in the target are missing values and are left out."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

__all__ = ["masked_mae", "masked_mse", "masked_huber", "masked_rmse", "masked_mape",
           "forecast_metrics"]


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
