"""Discrete forecasting baselines with the GDEGRU's interface: a recurrent encoder with a
linear multi-horizon head (a plain GRU, or T-GCN's graph GRU), the historical average and
persistence."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, Module

from .gcgru import GCGRUCell, gcn_operator
from .gde_gru import _check_sequence, batch_graph, hide_unobserved, observed_at

__all__ = ["RecurrentForecaster", "HistoricalAverage", "Persistence", "last_observed"]


def last_observed(x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Each window's most recent observed snapshot, or each node's most recent reading.

    Args:
        x: windows ``(B, T, N, C)``.
        mask: ``(B, T)``, which snapshots were observed, or ``(B, T, N)``, which readings
            (default: all). A node never observed in its window gets its first value (the
            caller's fill for missing readings).

    Returns:
        ``(B, C, N)`` for ``C`` channels; ``(B, 1, N)`` for one.
    """
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    steps = torch.arange(mask.size(1), device=mask.device)
    if mask.dim() == 3:  # per reading: (B, T, N) -> the last step of each node
        steps = steps.view(1, -1, 1)
        last = torch.where(mask, steps, 0).max(1).values  # (B, N)
        index = last.unsqueeze(1).unsqueeze(-1).expand(-1, 1, -1, x.size(-1))
        return x.gather(1, index).squeeze(1).transpose(1, 2)
    last = torch.where(mask, steps, -1).max(1).values
    return x[torch.arange(x.size(0), device=x.device), last].transpose(1, 2)


def _horizon_steps(times: Tensor, query_times: Tensor, horizon: int) -> List[int]:
    """Which of the trained horizons ``1..horizon`` (in units of the sampling step) each
    query time is; discrete models can forecast nothing else."""
    unit = float(times[1] - times[0]) if times.numel() > 1 else 1.0
    steps = []
    for q in torch.as_tensor(query_times).reshape(-1).tolist():
        k = (q - float(times[-1])) / unit
        if abs(k - round(k)) > 1e-6 or not 1 <= round(k) <= horizon:
            raise ValueError(
                f"a discrete forecaster predicts only its trained horizons, the last observation "
                f"time plus 1..{horizon} steps of {unit:g}; query time {q:g} is not one of them. "
                f"Use GDEGRU for arbitrary forecast times")
        steps.append(round(k) - 1)
    return steps


class RecurrentForecaster(Module):
    r"""Encode the observed history with a recurrent cell, then read ``horizon`` forecasts off
    the last hidden state with a linear head (the T-GCN recipe).

    Args:
        in_channels: input features per node and observation.
        hidden_channels: hidden state size per node.
        horizon: number of forecast steps the head predicts.
        out_channels: forecast features per node.
        graph: use a :class:`GCGRUCell` (T-GCN); ``False`` gives a plain GRU shared by all
            nodes, blind to the graph.
        time_gaps: append the time since the previous observation as an input channel, so that
            the model can tell irregular gaps apart (a GRU-:math:`\Delta t`).

    Shapes:
        - **input:** observations :math:`(B, T, |\mathcal{V}|, F_{in})` at ``times``
          :math:`(T)`, optional mask :math:`(B, T)` of observed snapshots or :math:`(B, T,
          |\mathcal{V}|)` of observed readings, ``query_times`` :math:`(Q)` among the
          trained horizons, edge indices :math:`(2, |\mathcal{E}|)`, optional edge weights
        - **output:** forecasts :math:`(B, Q, |\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, horizon: int,
                 out_channels: int = 1, graph: bool = True, time_gaps: bool = False):
        super().__init__()
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.horizon, self.out_channels = horizon, out_channels
        self.graph, self.time_gaps = graph, time_gaps
        cell_in = in_channels + int(time_gaps)
        self.cell = GCGRUCell(cell_in, hidden_channels) if graph else GRUCell(cell_in, hidden_channels)
        self.head = Linear(hidden_channels, horizon * out_channels)

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        x = hide_unobserved(x, mask)  # the graph cell reads the neighbours' inputs
        batch, steps, n, _ = x.shape
        which = _horizon_steps(times, query_times, self.horizon)
        op = None
        if self.graph:
            ei, ew = batch_graph(edge_index, edge_weight, n, batch)
            op = gcn_operator(ei, ew, batch * n, x.dtype, x.device)
        h = x.new_zeros(batch * n, self.hidden_channels)
        times = times.to(x.dtype)
        last = times[0].expand(batch * n, 1).clone()  # time of each node's previous observation
        for k in range(steps):
            inp = x[:, k].reshape(batch * n, -1)
            seen = torch.ones(batch * n, 1, dtype=torch.bool, device=x.device) if mask is None \
                else observed_at(mask, k, n)
            if self.time_gaps:
                inp = torch.cat([inp, times[k] - last], -1)
                last = torch.where(seen, times[k], last)
            updated = self.cell(inp, h, op) if self.graph else self.cell(inp, h)
            h = torch.where(seen, updated, h)
        out = self.head(h).view(batch, n, self.horizon, self.out_channels)
        return out[:, :, which].transpose(1, 2)

    def __repr__(self) -> str:
        kind = "GCGRU" if self.graph else "GRU"
        return f"{type(self).__name__}({kind}, {self.hidden_channels}, horizon={self.horizon})"


class HistoricalAverage(Module):
    """Forecast every query time with the mean of each node's observed history (T-GCN's HA)."""

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        w = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
        w = w[:, :, None, None] if w.dim() == 2 else w.unsqueeze(-1)
        mean = (x * w).sum(1) / w.sum(1).clamp(min=1)
        q = torch.as_tensor(query_times).numel()
        return mean.unsqueeze(1).expand(-1, q, -1, -1)


class Persistence(Module):
    """Forecast every query time with each window's last observed snapshot (the persistence,
    or naive, forecast: traffic speeds change slowly, and short horizons are hard to beat)."""

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        snapshot = last_observed(x, mask).transpose(1, 2)  # (B, N, C)
        q = torch.as_tensor(query_times).numel()
        return snapshot.unsqueeze(1).expand(-1, q, -1, -1)
