"""GraphNCDE: a graph neural controlled differential equation for irregular, incomplete
graph series (in the spirit of STG-NCDE, Choi et al., AAAI 2022)."""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Linear, Module

from ..cde import CubicSpline, LinearInterpolation, cdeint
from ..solvers.integrate import SolverStats
from .forecast import _horizon_steps
from .gcgru import gcn_operator
from .gde_gru import _check_sequence, batch_graph
from .sparse import SparseOperator

__all__ = ["GraphCDEField", "GraphNCDE"]


class GraphCDEField(Module):
    r"""The matrix-valued field of a graph CDE: for each node a ``(hidden, C)`` matrix
    computed from its state and its neighbours',

    .. math::
        \mathbf{U} = \tanh(\mathbf{Z}\mathbf{W}_1), \quad
        \mathbf{V} = \mathbf{U} + \hat{\mathbf{A}}\,\mathbf{U}\mathbf{W}_2, \quad
        F(\mathbf{Z}) = \tanh(\mathbf{V}\mathbf{W}_3) \in \mathbb{R}^{|\mathcal{V}| \times
            H \times C},

    with :math:`\hat{\mathbf{A}}` the GCN-normalised adjacency bound by :meth:`bind`; the
    ``tanh`` keeps the field bounded, as in Kidger et al.'s and Choi et al.'s fields.
    """

    def __init__(self, hidden_channels: int, path_channels: int, width: Optional[int] = None):
        super().__init__()
        width = width or hidden_channels
        self.hidden_channels, self.path_channels = hidden_channels, path_channels
        self.lin1 = Linear(hidden_channels, width)
        self.lin2 = Linear(width, width, bias=False)
        self.lin3 = Linear(width, hidden_channels * path_channels)
        self.op: Optional[SparseOperator] = None

    def reset_parameters(self) -> None:
        for lin in (self.lin1, self.lin2, self.lin3):
            lin.reset_parameters()

    def bind(self, op: SparseOperator) -> "GraphCDEField":
        """Bind the graph for the coming solve (node-major, as the state's rows); returns a
        bound snapshot sharing the parameters, to solve with (see
        :meth:`GraphVectorField.bind`)."""
        self.op = op
        return copy.copy(self)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        if self.op is None:
            raise RuntimeError("GraphCDEField is not bound to a graph: call bind(operator)")
        u = torch.tanh(self.lin1(z))
        v = u + self.op.mm(self.lin2(u))
        return torch.tanh(self.lin3(v)).view(*z.shape, self.path_channels)


class GraphNCDE(Module):
    r"""A graph neural CDE forecaster: the observed history of every node becomes a
    continuous path :math:`\mathbf{X}(t)` (a cubic spline through the observed readings,
    missing ones filled by linear interpolation, with time and the running count of
    observations as two more channels, as Kidger et al. recommend), and a hidden state per
    node is driven by it through a graph vector field,

    .. math::
        \mathbf{Z}(t) = \mathbf{Z}(t_0) + \int_{t_0}^{t} F\big(\mathbf{Z}(s); \mathcal{G}\big)
            \, d\mathbf{X}(s),

    solved by the shared solver (:func:`graphode.cdeint`) from the first to the last
    observation time; a linear head reads the ``horizon`` forecasts off the final state.

    STG-NCDE (Choi et al., `"Graph Neural Controlled Differential Equations for Traffic
    Forecasting" <https://arxiv.org/abs/2112.03558>`_) drives two CDEs, a temporal one per node
    and a spatial one through an adaptive graph; here one state carries both, its field mixing
    each node's transform with its neighbours' on the sensor graph (:class:`GraphCDEField`).

    Args:
        in_channels: input features per node and observation.
        hidden_channels: hidden state size per node.
        horizon: number of forecast steps the head predicts.
        out_channels: forecast features per node.
        interpolation: ``"cubic"`` (a not-a-knot cubic spline) or ``"linear"``.
        method, step_size, rtol, atol, gradient: the solver (see :func:`graphode.solve`);
            times are in the caller's units (sampling steps, say).
        **solver_kwargs: further keywords for :func:`graphode.solve`.

    Shapes:
        - **input:** observations :math:`(B, T, |\mathcal{V}|, F_{in})` at ``times``
          :math:`(T)`, optional mask :math:`(B, T)` of observed snapshots or
          :math:`(B, T, |\mathcal{V}|)` of observed readings, ``query_times`` :math:`(Q)`
          among the trained horizons, edge indices :math:`(2, |\mathcal{E}|)`, optional edge
          weights
        - **output:** forecasts :math:`(B, Q, |\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, horizon: int,
                 out_channels: int = 1, interpolation: str = "cubic", method: str = "midpoint",
                 step_size: Optional[float] = 1.0, rtol: float = 1e-3, atol: float = 1e-4,
                 gradient: str = "autograd", **solver_kwargs):
        super().__init__()
        if interpolation not in ("cubic", "linear"):
            raise ValueError(f"interpolation must be 'cubic' or 'linear', got {interpolation!r}")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.horizon, self.out_channels = horizon, out_channels
        self.interpolation = interpolation
        path_channels = in_channels + 2  # time, the inputs, the observation count
        self.initial = Linear(path_channels, hidden_channels)
        self.field = GraphCDEField(hidden_channels, path_channels)
        self.head = Linear(hidden_channels, horizon * out_channels)
        self.solver = dict(method=method, step_size=step_size, rtol=rtol, atol=atol,
                           gradient=gradient, **solver_kwargs)
        self.stats = SolverStats()

    def reset_parameters(self) -> None:
        for m in (self.initial, self.field, self.head):
            m.reset_parameters()

    @property
    def last_solves(self):
        return [self.stats]

    def path(self, x: Tensor, times: Tensor, mask: Optional[Tensor]):
        """The driving path of every node: ``(B * N, T, F_in + 2)`` knots, channels time,
        inputs, and the running fraction of observed steps."""
        batch, steps, n, _ = x.shape
        if mask is None:
            seen = torch.ones(batch, steps, n, dtype=torch.bool, device=x.device)
        else:
            seen = mask if mask.dim() == 3 else mask.unsqueeze(-1).expand(-1, -1, n)
        count = seen.to(x.dtype).cumsum(1) / steps
        clock = ((times - times[0]) / (times[-1] - times[0]).clamp(min=1e-12)).to(x.dtype)
        values = torch.cat([clock.view(1, -1, 1, 1).expand(batch, -1, n, 1), x,
                            count.unsqueeze(-1)], -1)
        values = values.transpose(1, 2).reshape(batch * n, steps, -1)
        observed = seen.transpose(1, 2).reshape(batch * n, steps, 1).expand_as(values).clone()
        observed[..., 0] = True  # time is always known
        observed[..., -1] = True  # and so is the count
        kind = CubicSpline if self.interpolation == "cubic" else LinearInterpolation
        return kind(values, times.to(x.dtype), mask=observed)

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None) -> Tensor:
        _check_sequence(x, times, mask)
        if x.size(1) < 2:
            raise ValueError("GraphNCDE needs at least 2 observation times in a window")
        batch, _, n, _ = x.shape
        which = _horizon_steps(times, query_times, self.horizon)
        ei, ew = batch_graph(edge_index, edge_weight, n, batch)
        field = self.field.bind(gcn_operator(ei, ew, batch * n, x.dtype, x.device))
        X = self.path(x, times, mask)
        z0 = self.initial(X.evaluate(times[0]))
        sol = cdeint(X, field, z0, [float(times[0]), float(times[-1])], **self.solver)
        self.stats = sol.stats
        out = self.head(sol.ys[-1]).view(batch, n, self.horizon, self.out_channels)
        return out[:, :, which].transpose(1, 2)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"horizon={self.horizon}, {self.interpolation}, "
                f"method='{self.solver['method']}')")
