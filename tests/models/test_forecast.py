"""ChangeForecaster: the wrapped model predicts the change from the last observed snapshot."""
import torch
from torch import nn

from graphode.models import ChangeForecaster, last_observed
from graphode.nn import GDEGRU


class Zero(nn.Module):
    def forward(self, x, edge_index, times, query_times, mask=None, edge_weight=None):
        return x.new_zeros(x.size(0), len(query_times), x.size(2), 1)


def test_a_zero_change_is_the_persistence_forecast_of_the_last_observed_snapshot():
    x = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).view(2, 4, 3, 2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    out = ChangeForecaster(Zero())(x, None, torch.arange(4.0), torch.tensor([4.0, 5.0]), mask)
    assert out.shape == (2, 2, 3, 1)
    assert torch.equal(out[0, :, :, 0], x[0, 2, :, 0].expand(2, 3))  # step 3 was not observed
    assert torch.equal(out[1, :, :, 0], x[1, 0, :, 0].expand(2, 3))
    assert torch.equal(last_observed(x), x[:, -1].transpose(1, 2))


def test_it_wraps_a_graph_ode_forecaster_and_trains():
    model = ChangeForecaster(GDEGRU(1, 4, method="rk4", step_size=1.0))
    x = torch.randn(2, 3, 5, 1)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    out = model(x, ei, torch.arange(3.0), torch.tensor([3.0, 4.0]))
    assert out.shape == (2, 2, 5, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
