"""STGODE: spatio-temporal graph ODE blocks on a spatial and a semantic graph (Fang et al.,
KDD 2021), each block's tensor ODE solved by the shared solver."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Conv1d, LayerNorm, Linear, Module, ModuleList, Parameter

from ..api import solve
from ..solvers.integrate import SolverStats
from .forecast import _horizon_steps
from .gcgru import gcn_operator
from .gde_gru import _check_sequence, batch_graph, hide_unobserved
from .sparse import SparseOperator

__all__ = ["TensorODEField", "STGODE"]


def _contraction(weight: Tensor, scale: Tensor) -> Tensor:
    """``W diag(clamp(d, 0, 1)) W^T``: symmetric, eigenvalues in ``[0, |W|^2]``, STGODE's
    way of keeping the temporal and feature mixing from blowing up."""
    return (weight * scale.clamp(0, 1)) @ weight.T


class TensorODEField(Module):
    r"""STGODE's tensor ODE on a state :math:`\mathbf{H} \in \mathbb{R}^{|\mathcal{V}|
    \times T \times C}` (nodes, time steps, channels), mixing along each of its axes,

    .. math::
        \frac{d\mathbf{H}}{dt} = \frac{\sigma(\boldsymbol{\alpha})}{2}\,\hat{\mathbf{A}}
            \mathbf{H} - \mathbf{H} + \mathbf{H} \times_2 \mathbf{W}_T - \mathbf{H}
            + \mathbf{H} \times_3 \mathbf{W}_C - \mathbf{H} + \mathbf{H}(0),

    with :math:`\hat{\mathbf{A}}` the normalised adjacency (bound per forward),
    :math:`\boldsymbol{\alpha}` one rate per node and :math:`\mathbf{W}_T, \mathbf{W}_C`
    symmetric contractions; the :math:`\mathbf{H}(0)` term is the restart that keeps the
    flow from smoothing the input away.
    """

    def __init__(self, num_nodes: int, steps: int, channels: int):
        super().__init__()
        self.num_nodes, self.steps, self.channels = num_nodes, steps, channels
        self.alpha = Parameter(torch.full((num_nodes,), 0.8))
        self.time_weight = Parameter(torch.eye(steps))
        self.time_scale = Parameter(torch.ones(steps))
        self.channel_weight = Parameter(torch.eye(channels))
        self.channel_scale = Parameter(torch.ones(channels))
        self.op: Optional[SparseOperator] = None
        self.h0: Optional[Tensor] = None

    def bind(self, op: SparseOperator, h0: Tensor) -> "TensorODEField":
        """The graph (node-major rows, ``B * N``) and the initial state for the coming
        solve; returns a bound snapshot to solve with (see :meth:`GraphVectorField.bind`)."""
        self.op, self.h0 = op, h0
        return copy.copy(self)

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        if self.op is None or self.h0 is None:
            raise RuntimeError("TensorODEField is not bound: call bind(operator, h0)")
        rows = h.size(0)
        rate = torch.sigmoid(self.alpha).repeat(rows // self.num_nodes).view(-1, 1, 1) / 2
        graph = self.op.mm(h.reshape(rows, -1)).view_as(h)
        wt = _contraction(self.time_weight, self.time_scale)
        # the three -H terms folded into the channel mixing, the time mixing fused with the
        # sum: four passes over the state instead of seven
        wc = _contraction(self.channel_weight, self.channel_scale) \
            - 3 * torch.eye(self.channels, dtype=h.dtype, device=h.device)
        out = torch.baddbmm(h @ wc, wt.T.expand(rows, -1, -1), h)
        return out.addcmul_(rate, graph).add_(self.h0)


class _TemporalConv(Module):
    """A gated convolution along time (kernel 3, same length) with a residual path."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = Conv1d(cin, 2 * cout, 3, padding=1)
        self.skip = Linear(cin, cout) if cin != cout else None

    def forward(self, h: Tensor) -> Tensor:  # (R, T, C_in) -> (R, T, C_out)
        a, b = self.conv(h.transpose(1, 2)).transpose(1, 2).chunk(2, -1)
        return torch.tanh(a) * torch.sigmoid(b) + (h if self.skip is None else self.skip(h))


class _Block(Module):
    """Temporal conv, tensor ODE, temporal conv, layer norm."""

    def __init__(self, cin: int, cout: int, num_nodes: int, steps: int):
        super().__init__()
        self.before = _TemporalConv(cin, cout)
        self.field = TensorODEField(num_nodes, steps, cout)
        self.after = _TemporalConv(cout, cout)
        self.norm = LayerNorm(cout)


class STGODE(Module):
    r"""An STGODE-style forecaster (Fang et al., `"Spatial-Temporal Graph ODE Networks for
    Traffic Flow Forecasting" <https://arxiv.org/abs/2106.12931>`_): two branches of
    spatio-temporal blocks, one on the sensor graph and one on a semantic graph (nodes whose
    daily profiles are close under dynamic time warping, see
    :func:`graphode.data.semantic_graph`); each block is a gated temporal convolution, a
    tensor ODE (:class:`TensorODEField`) integrated from 0 to ``t_end`` and another temporal
    convolution. The branches are max-pooled and an MLP reads the ``horizon`` forecasts off
    each node's ``(T, C)`` features.

    STGODE's released code integrates each block with one Euler step of the whole span; here
    the shared solver takes real steps (``method``, ``step_size``; adaptive with
    ``step_size=None``), with any gradient mode. The observation mask is an extra input
    channel (the model has no notion of irregular time).

    Args:
        in_channels: input features per node and step.
        hidden_channels: channels of the blocks.
        horizon: forecast steps.
        history: input steps ``T`` (the tensor ODE mixes along them).
        num_nodes: sensors.
        semantic: the semantic graph ``(edge_index, edge_weight)``, or ``None`` for one
            branch on the sensor graph alone.
        blocks: blocks per branch.
        out_channels: forecast features per node.
        t_end, method, step_size, rtol, atol, gradient: each block's solve (by default two
            midpoint steps; ``"checkpoint"`` gradients, exact for the discrete solution, keep
            one state per step: on Los-loop's 207 sensors, a batch of 32 windows and hidden 64
            backprop through the stages took 14 GB where checkpointing took 3.5 GB).
    """

    def __init__(self, in_channels: int, hidden_channels: int, horizon: int, history: int,
                 num_nodes: int, semantic: Optional[Tuple[Tensor, Optional[Tensor]]] = None,
                 blocks: int = 2, out_channels: int = 1, t_end: float = 1.0,
                 method: str = "midpoint", step_size: Optional[float] = 0.5,
                 rtol: float = 1e-3, atol: float = 1e-4, gradient: str = "checkpoint"):
        super().__init__()
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.horizon, self.history, self.num_nodes = horizon, history, num_nodes
        self.out_channels = out_channels
        if semantic is not None:
            self.register_buffer("semantic_index", semantic[0])
            weight = semantic[1] if semantic[1] is not None else torch.ones(semantic[0].size(1))
            self.register_buffer("semantic_weight", weight)
        branches = 2 if semantic is not None else 1
        self.branches = ModuleList(
            ModuleList(_Block(in_channels + 1 if b == 0 else hidden_channels, hidden_channels,
                              num_nodes, history) for b in range(blocks))
            for _ in range(branches))
        self.head1 = Linear(history * hidden_channels, hidden_channels)
        self.head2 = Linear(hidden_channels, horizon * out_channels)
        self.t_end = float(t_end)
        self.solver: Dict[str, Any] = dict(method=method, step_size=step_size, rtol=rtol,
                                           atol=atol, gradient=gradient)
        self._stats: List[SolverStats] = []

    @property
    def last_solves(self) -> List[SolverStats]:
        return list(self._stats)

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        batch, steps, n, _ = x.shape
        if steps != self.history or n != self.num_nodes:
            raise ValueError(f"STGODE was built for {self.history} steps of {self.num_nodes} "
                             f"nodes, got {steps} steps of {n}")
        which = _horizon_steps(times, query_times, self.horizon)
        seen = torch.ones(batch, steps, n, dtype=x.dtype, device=x.device) if mask is None \
            else (mask if mask.dim() == 3 else mask.unsqueeze(-1).expand(-1, -1, n)).to(x.dtype)
        x = hide_unobserved(x, mask)  # the mask channel tells a zero reading from a hidden one
        h_in = torch.cat([x, seen.unsqueeze(-1)], -1).transpose(1, 2).reshape(batch * n, steps, -1)
        graphs: List[Tuple[Tensor, Optional[Tensor]]] = [(edge_index, edge_weight)]
        if len(self.branches) == 2:
            graphs.append((self.get_buffer("semantic_index"), self.get_buffer("semantic_weight")))
        self._stats = []
        outs = []
        for blocks, (ei, ew) in zip(self.branches, graphs):
            bi, bw = batch_graph(ei, ew, n, batch)
            op = gcn_operator(bi, bw, batch * n, x.dtype, x.device)
            h = h_in
            for block in blocks:  # type: ignore[attr-defined]  # a ModuleList of blocks
                h = block.before(h)
                field = block.field.bind(op, h)
                # the field reads h(0) besides the state: the gradient modes differentiate it
                params = [*block.field.parameters(), *([h] if h.requires_grad else [])]
                sol = solve(field, h, [0.0, self.t_end], adjoint_params=params, **self.solver)
                self._stats.append(sol.stats)
                h = block.norm(block.after(torch.relu(sol.ys[-1])))
            outs.append(h)
        h = torch.stack(outs).amax(0) if len(outs) > 1 else outs[0]
        out = self.head2(torch.relu(self.head1(h.reshape(batch * n, -1))))
        out = out.view(batch, n, self.horizon, self.out_channels)
        return out[:, :, which].transpose(1, 2)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"horizon={self.horizon}, branches={len(self.branches)}, "
                f"method='{self.solver['method']}')")
