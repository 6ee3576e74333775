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


def test_expected_calibration_error_by_hand():
    import torch

    from graphode.metrics import expected_calibration_error
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])
    # bins of width 0.5 (2 bins): all four confidences (0.9, 0.8, 0.7, 0.6) fall in the upper
    # bin: accuracy 3/4, mean confidence 0.75 -> ECE 0
    assert expected_calibration_error(probs, labels, bins=2).item() == pytest.approx(0.0)
    # ten bins: {0.9: right}, {0.8: wrong}, {0.7: right}, {0.6: right}
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.6)) / 4
    assert expected_calibration_error(probs, labels, bins=10).item() == pytest.approx(want)


def test_auroc_against_the_pair_count():
    import torch

    from graphode.metrics import auroc
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60,), generator=g).double()  # many ties
    positive = torch.rand(60, generator=g) < 0.4
    pos, neg = scores[positive], scores[~positive]
    pairs = (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()
    assert auroc(scores, positive).item() == pytest.approx(pairs.mean().item(), abs=1e-12)
    assert auroc(torch.tensor([0.1, 0.9]), torch.tensor([False, True])).item() == 1.0
    with pytest.raises(ValueError, match="positive"):
        auroc(torch.tensor([0.1, 0.9]), torch.tensor([False, False]))


def test_crps_and_interval_coverage():
    import torch

    from graphode.metrics import crps_ensemble, interval_coverage
    g = torch.Generator().manual_seed(1)
    samples = torch.randn(7, 5, 3, generator=g, dtype=torch.float64)
    target = torch.randn(5, 3, generator=g, dtype=torch.float64)
    skill = (samples - target).abs().mean(0)
    spread = (samples[:, None] - samples[None, :]).abs().sum((0, 1)) / (7 * 6)
    assert crps_ensemble(samples, target).item() == pytest.approx(
        (skill - 0.5 * spread).mean().item(), abs=1e-12)
    # a standard normal forecast of standard normal data: CRPS -> 1/sqrt(pi) and the 90%
    # interval covers 90% of the points
    many = torch.randn(2000, 4000, generator=g, dtype=torch.float64)
    truth = torch.randn(4000, generator=g, dtype=torch.float64)
    assert crps_ensemble(many, truth).item() == pytest.approx(1 / math.sqrt(math.pi), abs=0.02)
    cover = interval_coverage(many, truth, 0.9)
    assert cover["coverage"].item() == pytest.approx(0.9, abs=0.015)
    assert cover["width"].item() == pytest.approx(2 * 1.6449, abs=0.02)


def test_probabilistic_metrics_leave_out_missing_targets():
    import torch

    from graphode.metrics import crps_ensemble, interval_coverage, probabilistic_metrics
    g = torch.Generator().manual_seed(2)
    samples = torch.randn(9, 4, 12, 5, generator=g, dtype=torch.float64) + 60
    target = torch.randn(4, 12, 5, generator=g, dtype=torch.float64) + 60
    target[0, :, 1] = 0.0  # a sensor that is off: missing
    keep = target != 0
    # the masked score is the plain score over the observed entries alone
    s3, t3, k3 = samples[:, :, 2], target[:, 2], keep[:, 2]
    assert crps_ensemble(s3, t3, missing=0.0).item() == pytest.approx(
        crps_ensemble(s3[:, k3], t3[k3]).item(), abs=1e-12)
    for level in (0.5, 0.9):
        masked = interval_coverage(s3, t3, level, missing=0.0)
        plain = interval_coverage(s3[:, k3], t3[k3], level)
        for name in ("coverage", "width"):
            assert masked[name].item() == pytest.approx(plain[name].item(), abs=1e-12)
    rows = probabilistic_metrics(samples, target)
    assert list(rows) == ["15min", "30min", "45min", "60min"]
    assert rows["15min"]["crps"] == pytest.approx(crps_ensemble(s3, t3, 0.0).item())
    assert rows["15min"]["coverage90"] == pytest.approx(
        interval_coverage(s3, t3, 0.9, 0.0)["coverage"].item())
    assert set(rows["60min"]) == {"crps", "coverage50", "width50", "coverage90", "width90"}
    with pytest.raises(ValueError, match="samples must be"):
        probabilistic_metrics(samples[0], target)
