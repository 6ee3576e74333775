"""GRU-D: a GRU that reads missing values through learned decays (Che et al., 2018)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Module, Parameter

from .forecast import _horizon_steps
from .gde_gru import _check_sequence, observed_at

__all__ = ["GRUD"]


class GRUD(Module):
    r"""GRU-D (Che et al., `"Recurrent Neural Networks for Multivariate Time Series with
    Missing Values" <https://www.nature.com/articles/s41598-018-24271-9>`_), the discrete
    baseline for missing data: at every step, each node's input is its reading where observed
    and otherwise decays from its last observed value towards the empirical mean, and the
    hidden state decays with the time since the last observation,

    .. math::
        \hat{x}_t = m_t x_t + (1 - m_t)\big(\gamma_x x_{\text{last}} + (1 - \gamma_x)
            \bar{x}\big), \quad
        \gamma = \exp\big(-\max(0, \mathbf{W}_\gamma \delta_t + \mathbf{b}_\gamma)\big), \quad
        \mathbf{h} \leftarrow \mathrm{GRU}\big([\hat{x}_t, m_t], \gamma_h \odot \mathbf{h}\big),

    with :math:`\delta_t` the time since the node's last observation and :math:`m_t` the
    mask. The cell is shared by all nodes and blind to the graph, as in the paper; a linear
    head reads ``horizon`` forecasts off the last state (as :class:`RecurrentForecaster`).

    Args:
        in_channels: input features per node and observation (all decay alike: the mask is
            per node and step).
        hidden_channels: hidden state size per node.
        horizon: number of forecast steps the head predicts.
        out_channels: forecast features per node.
        mean: the empirical mean the inputs decay to, in the inputs' units (``0.0`` for
            z-scored inputs).

    Shapes:
        - **input:** observations :math:`(B, T, |\mathcal{V}|, F_{in})` at ``times``
          :math:`(T)`, optional mask :math:`(B, T)` or :math:`(B, T, |\mathcal{V}|)`,
          ``query_times`` :math:`(Q)` among the trained horizons, edge indices (unused)
        - **output:** forecasts :math:`(B, Q, |\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, horizon: int,
                 out_channels: int = 1, mean: float = 0.0):
        super().__init__()
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.horizon, self.out_channels = horizon, out_channels
        self.mean = mean
        # the input decay is diagonal (one rate per feature), the hidden decay a full layer
        self.input_rate = Parameter(torch.empty(in_channels))
        self.input_bias = Parameter(torch.empty(in_channels))
        self.hidden_decay = Linear(1, hidden_channels)
        self.cell = GRUCell(in_channels + 1, hidden_channels)
        self.head = Linear(hidden_channels, horizon * out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.constant_(self.input_rate, 0.1)
        torch.nn.init.zeros_(self.input_bias)
        self.hidden_decay.reset_parameters()
        self.cell.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        batch, steps, n, _ = x.shape
        which = _horizon_steps(times, query_times, self.horizon)
        times = times.to(x.dtype)
        h = x.new_zeros(batch * n, self.hidden_channels)
        last_x = x.new_full((batch * n, self.in_channels), self.mean)
        last_t = times[0].expand(batch * n, 1).clone()
        for k in range(steps):
            seen = torch.ones(batch * n, 1, dtype=torch.bool, device=x.device) if mask is None \
                else observed_at(mask, k, n)
            delta = times[k] - last_t  # since the last observation (0 where seen now)
            gamma_x = torch.exp(-torch.relu(self.input_rate * delta + self.input_bias))
            gamma_h = torch.exp(-torch.relu(self.hidden_decay(delta)))
            xk = x[:, k].reshape(batch * n, -1)
            decayed = gamma_x * last_x + (1 - gamma_x) * self.mean
            inp = torch.where(seen, xk, decayed)
            h = self.cell(torch.cat([inp, seen.to(x.dtype)], -1), gamma_h * h)
            last_x = torch.where(seen, xk, last_x)
            last_t = torch.where(seen, times[k], last_t)
        out = self.head(h).view(batch, n, self.horizon, self.out_channels)
        return out[:, :, which].transpose(1, 2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, " \
               f"horizon={self.horizon})"
