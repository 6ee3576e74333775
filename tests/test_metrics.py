"""Masked forecasting metrics on hand-computed cases."""
import math

import pytest
import torch

from graphode.metrics import forecast_metrics, masked_mae, masked_mape, masked_rmse


def test_zeros_in_the_target_are_left_out():
    target = torch.tensor([[50.0, 0.0], [40.0, 20.0]])
    pred = torch.tensor([[45.0, 99.0], [44.0, 20.0]])
    # Observed entries: errors 5, 4, 0 (the 0-target entry, predicted 99, is missing).
    assert masked_mae(pred, target).item() == pytest.approx(3.0)
    assert masked_rmse(pred, target).item() == pytest.approx(math.sqrt((25 + 16 + 0) / 3))
    assert masked_mape(pred, target).item() == pytest.approx((5 / 50 + 4 / 40 + 0) / 3)
    assert masked_mae(pred, target, missing=None).item() == pytest.approx((5 + 99 + 4) / 4)


def test_all_missing_gives_zero_not_nan():
    zero = torch.zeros(3)
    assert masked_mae(torch.ones(3), zero).item() == 0.0
    assert masked_rmse(torch.ones(3), zero).item() == 0.0


def test_per_dimension_and_horizons():
    target = torch.tensor([[[10.0, 20.0], [10.0, 0.0]]])  # (S=1, P=2, N=2)
    pred = torch.tensor([[[12.0, 20.0], [7.0, 5.0]]])
    per_step = masked_mae(pred, target, dim=(0, 2))
    assert per_step.tolist() == pytest.approx([1.0, 3.0])
    m = forecast_metrics(pred, target, steps=(1, 2, 3), interval=5.0)
    assert set(m) == {"5min", "10min"}  # step 3 is beyond the horizon
    assert m["10min"] == pytest.approx({"mae": 3.0, "rmse": 3.0, "mape": 0.3})
    assert set(forecast_metrics(pred, target, steps=(2,), interval=None)) == {"step2"}


def test_pooled_horizons_score_every_step_up_to_each():
    """T-GCN's basis: "10 minutes" pools the forecasts 5 and 10 minutes ahead."""
    target = torch.tensor([[[10.0, 20.0], [10.0, 0.0]]])  # (S=1, P=2, N=2); one missing
    pred = torch.tensor([[[12.0, 20.0], [7.0, 5.0]]])
    m = forecast_metrics(pred, target, steps=(1, 2), interval=5.0, pooled=True)
    assert m["5min"] == forecast_metrics(pred, target, steps=(1,), interval=5.0)["5min"]
    assert m["10min"] == pytest.approx({"mae": 5 / 3, "rmse": (13 / 3) ** 0.5, "mape": 0.5 / 3})
