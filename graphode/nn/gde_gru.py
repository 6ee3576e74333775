"""GDEGRU: a graph GRU whose hidden state flows by a graph neural ODE between observations."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Linear, Module

from ..api import solve
from ..solvers.integrate import SolverStats
from .field import GraphVectorField
from .gcgru import GCGRUCell, gcn_operator
from .gde import with_graph_inputs
from .gru_ode import GraphGRUODE
from .sde import GraphSDE

__all__ = ["GDEGRU", "StochasticGDEGRU", "batch_graph", "batch_graphs", "observed_at",
           "hide_unobserved"]


def batch_graph(edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                batch_size: int) -> Tuple[Tensor, Optional[Tensor]]:
    """``batch_size`` disjoint copies of one graph, nodes numbered sample-major (as a PyG
    ``Batch`` of identical graphs), for features laid out as ``(batch_size * num_nodes, F)``."""
    offsets = torch.arange(batch_size, device=edge_index.device).repeat_interleave(
        edge_index.size(1)) * num_nodes
    ei = edge_index.repeat(1, batch_size) + offsets
    ew = None if edge_weight is None else edge_weight.repeat(batch_size)
    return ei, ew


def batch_graphs(graphs: Sequence[Tuple[Tensor, Optional[Tensor]]], num_nodes: int
                 ) -> Tuple[Tensor, Optional[Tensor]]:
    """The disjoint union of one graph per sample, ``graphs[b] = (edge_index, edge_weight)``
    over ``num_nodes`` nodes each, numbered sample-major as :func:`batch_graph` numbers them
    (a graph that differs from sample to sample, e.g. each window's own day). The weights are
    ``None`` only if every graph's are."""
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    index = torch.cat([ei + b * num_nodes for b, (ei, _) in enumerate(graphs)], 1)
    if all(ew is None for _, ew in graphs):
        return index, None
    dtype = next(ew.dtype for _, ew in graphs if ew is not None)
    weight = torch.cat([ew if ew is not None else
                        torch.ones(ei.size(1), dtype=dtype, device=ei.device)
                        for ei, ew in graphs])
    return index, weight


def _check_sequence(x: Tensor, times: Tensor, mask: Optional[Tensor]) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must have shape (batch, time, num_nodes, features), got "
                         f"{tuple(x.shape)}")
    if times.dim() != 1 or times.numel() != x.size(1):
        raise ValueError(f"times must hold one time per observation step ({x.size(1)}), got "
                         f"shape {tuple(times.shape)}")
    if times.numel() > 1 and not bool((times[1:] > times[:-1]).all()):
        raise ValueError("times must be strictly increasing")
    if mask is not None and tuple(mask.shape) not in (tuple(x.shape[:2]), tuple(x.shape[:3])):
        raise ValueError(f"mask must have shape (batch, time) = {tuple(x.shape[:2])} (observed "
                         f"snapshots) or (batch, time, num_nodes) = {tuple(x.shape[:3])} "
                         f"(observed readings), got {tuple(mask.shape)}")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True where observed), got {mask.dtype}")


def hide_unobserved(x: Tensor, mask: Optional[Tensor]) -> Tensor:
    """``x`` ``(B, T, N, F)`` with every unobserved reading set to zero, so that no graph
    layer can pass a value the mask hides on to the node's neighbours (zero is the mean of
    z-scored inputs). A mask of snapshots ``(B, T)`` hides whole snapshots."""
    if mask is None:
        return x
    seen = mask.unsqueeze(-1) if mask.dim() == 3 else mask[:, :, None, None]
    return torch.where(seen, x, torch.zeros((), dtype=x.dtype, device=x.device))


def observed_at(mask: Tensor, k: int, num_nodes: int) -> Tensor:
    """Which nodes of a batch were observed at step ``k``: ``(B * N, 1)`` from a mask of
    snapshots ``(B, T)`` or of readings ``(B, T, N)``."""
    seen = mask[:, k]
    seen = seen.repeat_interleave(num_nodes) if seen.dim() == 1 else seen.reshape(-1)
    return seen.unsqueeze(-1)


class GDEGRU(Module):
    r"""The GCDE-GRU of Poli et al., `"Graph Neural Ordinary Differential Equations"
    <https://arxiv.org/abs/1911.07532>`_: between observations the hidden state follows a graph
    neural ODE over the real time gap, at each observation a graph GRU updates it,

    .. math::
        \mathbf{H}(t_k^-) = \mathbf{H}(t_{k-1}) + \int_{t_{k-1}}^{t_k}
            f\big(\mathbf{H}(s); \mathcal{G}\big)\, ds, \qquad
        \mathbf{H}(t_k) = \mathrm{GCGRU}\big(\mathbf{X}(t_k), \mathbf{H}(t_k^-)\big),

    and a forecast integrates on from the last observation to the requested times and decodes
    each state linearly. Any time stamps work: uneven gaps, and horizons not seen in training.

    Args:
        in_channels: input features per node and observation.
        hidden_channels: hidden state size per node.
        out_channels: forecast features per node.
        field: the vector field of the flow, any :class:`GDEConv` field (default
            :class:`GraphGRUODE`, a bounded continuous graph GRU; the GDE paper's
            ``[GCNConv(hidden, hidden), Tanh()]`` works too but can drift on long forecasts).
        method, step_size, rtol, atol, gradient: the solver of the flow (see
            :func:`graphode.solve`); times are in the caller's units (e.g. sampling steps).
        **solver_kwargs: further keywords for :func:`graphode.solve`.

    Shapes:
        - **input:** observations :math:`(B, T, |\mathcal{V}|, F_{in})` at ``times``
          :math:`(T)`, an optional mask :math:`(B, T)` of observed steps or :math:`(B, T,
          |\mathcal{V}|)` of observed readings (a sample, or a node, skips the update where it
          is ``False``, and its neighbours read an unobserved reading as zero), forecast
          ``query_times`` :math:`(Q)` at or after ``times[-1]``, edge indices :math:`(2, |\mathcal{E}|)`, optional edge weights
        - **output:** forecasts :math:`(B, Q, |\mathcal{V}|, F_{out})`

    A graph that changes with time: ``step_graphs``, one ``(edge_index, edge_weight)`` per
    observation step over all :math:`B |\mathcal{V}|` nodes of the batch, numbered
    sample-major (:func:`batch_graphs` builds one from each sample's graph). Graph :math:`k`
    is in force from observation :math:`k` to :math:`k + 1`: it serves the update at
    :math:`t_k` and the flow after it, and the last one the forecast. The flow restarts its
    solve at every observation, so each switch falls on a step boundary. ``edge_index`` and
    ``edge_weight`` are not used then.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int = 1,
                 field: Optional[Union[Module, Sequence[Module]]] = None, method: str = "rk4",
                 step_size: Optional[float] = 1.0, rtol: float = 1e-3, atol: float = 1e-4,
                 gradient: str = "autograd", **solver_kwargs):
        super().__init__()
        self.in_channels, self.hidden_channels, self.out_channels = \
            in_channels, hidden_channels, out_channels
        self.cell = GCGRUCell(in_channels, hidden_channels)
        if field is None:
            field = GraphGRUODE(hidden_channels)
        self.field = GraphVectorField(field)
        self.decoder = Linear(hidden_channels, out_channels)
        self.solver = dict(method=method, step_size=step_size, rtol=rtol, atol=atol,
                           gradient=gradient, **solver_kwargs)
        self._stats: List[SolverStats] = []
        self._edge_weight: Optional[Tensor] = None
        self._bound: Optional[Module] = None

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        self.field.reset_parameters()
        self.decoder.reset_parameters()

    @property
    def last_solves(self) -> List[SolverStats]:
        """The statistics of every solve of the last forward (see
        :class:`SolverStatsRecorder`)."""
        return list(self._stats)

    @property
    def stats(self) -> SolverStats:
        """Solver counters summed over the flows of the last forward (and its backward)."""
        total = SolverStats()
        for s in self._stats:
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(s, name))
        return total

    def _flow(self, h: Tensor, times: List[float]) -> Tensor:
        assert self._bound is not None, "_encode binds the field first"
        sol = solve(self._bound, h, times, **with_graph_inputs(
            self.solver, self.solver["gradient"], self._bound, self._edge_weight))
        self._stats.append(sol.stats)
        return sol.ys

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None,
                step_graphs: Optional[Sequence[Tuple[Tensor, Optional[Tensor]]]] = None
                ) -> Tensor:
        h, grid, index, ei, ew = self._encode(x, edge_index, times, query_times, mask,
                                              edge_weight, step_graphs)
        hs = self._flow(h, grid) if len(grid) > 1 else h.unsqueeze(0)
        out = self.decoder(hs[index])  # (Q, B * N, out)
        return out.view(len(index), x.size(0), x.size(2), self.out_channels).transpose(0, 1)

    def _encode(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor], edge_weight: Optional[Tensor],
                step_graphs: Optional[Sequence[Tuple[Tensor, Optional[Tensor]]]] = None):
        """The hidden state at the last observation ``(B * N, hidden)``, the forecast grid
        (the last observation time, then the sorted query times), where each query time lies
        on it, and the batched graph of the forecast (bound to the field)."""
        _check_sequence(x, times, mask)
        x = hide_unobserved(x, mask)
        batch, steps, n, _ = x.shape
        t_obs = [float(v) for v in times]
        t_query = [float(v) for v in torch.as_tensor(query_times).reshape(-1)]
        if not t_query or min(t_query) < t_obs[-1]:
            raise ValueError(f"query_times must be non-empty and at or after the last observation "
                             f"time {t_obs[-1]:g}, got {t_query}")
        if step_graphs is None:
            ei, ew = batch_graph(edge_index, edge_weight, n, batch)
        else:
            if len(step_graphs) != steps:
                raise ValueError(f"step_graphs must hold one graph per observation step "
                                 f"({steps}), got {len(step_graphs)}")
            for k, (gi, _) in enumerate(step_graphs):
                if gi.numel() and int(gi.max()) >= batch * n:
                    raise ValueError(f"step_graphs[{k}] names node {int(gi.max())}, but the "
                                     f"batch has {batch * n} nodes ({batch} samples of {n}): "
                                     f"build each step's graph with batch_graphs")
            ei, ew = step_graphs[0]
        op = gcn_operator(ei, ew, batch * n, x.dtype, x.device)
        self._bound = self.field.bind(ei, ew, batch * n, x.dtype, x.device)
        self._edge_weight = ew
        self._stats = []
        h = x.new_zeros(batch * n, self.hidden_channels)
        for k in range(steps):
            if k > 0:
                h = self._flow(h, [t_obs[k - 1], t_obs[k]])[-1]
                if step_graphs is not None:  # graph k from here on
                    ei, ew = step_graphs[k]
                    op = gcn_operator(ei, ew, batch * n, x.dtype, x.device)
                    self._bound = self.field.bind(ei, ew, batch * n, x.dtype, x.device)
                    self._edge_weight = ew
            updated = self.cell(x[:, k].reshape(batch * n, -1), h, op)
            h = updated if mask is None else torch.where(observed_at(mask, k, n), updated, h)
        # One solve through every query time (sorted, duplicates allowed by the caller).
        order = sorted(set(t_query))
        grid = order if order[0] == t_obs[-1] else [t_obs[-1]] + order
        index = torch.tensor([grid.index(t) for t in t_query], device=x.device)
        return h, grid, index, ei, ew

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, method='{self.solver['method']}')")


class StochasticGDEGRU(GDEGRU):
    r"""A GDE-GRU whose forecast is a graph neural SDE: it reads the observations as
    :class:`GDEGRU` does, then from the last one the hidden state follows

    .. math::
        d\mathbf{H} = f\big(\mathbf{H}; \mathcal{G}\big)\,dt
        + g(\mathbf{H})\,d\mathbf{W}_t,

    the same field :math:`f` as between observations, with a learned diagonal diffusion
    :math:`g` (Ito, Euler-Maruyama steps of ``sde_dt``). Several paths are drawn side by side in
    one solve and each is decoded, so the model returns sample forecasts: their spread is its
    uncertainty, and it grows with the horizon as the noise accumulates. Train it on a proper
    score of the samples, such as :func:`graphode.metrics.crps_ensemble`.

    Args:
        in_channels, hidden_channels, out_channels: as for :class:`GDEGRU`.
        field, method, step_size, rtol, atol, gradient: the flow between observations, as for
            :class:`GDEGRU`; the forecast SDE takes ``gradient="checkpoint"`` too, and
            autograd otherwise.
        diffusion: ``"node"`` (a scale per node and channel from the state, the default),
            ``"constant"`` (one per channel) or a graph layer (see :class:`GraphSDE`).
        noise_scale: the diffusion's initial scale.
        sde_dt: the Euler-Maruyama step of the forecast, in the caller's time units.
        num_samples: paths per forecast in training.
        eval_samples: paths per forecast in evaluation.
        **solver_kwargs: further keywords for the flow's :func:`graphode.solve`.

    Shapes:
        - **input:** as :class:`GDEGRU`
        - **output:** sample forecasts :math:`(S, B, Q, |\mathcal{V}|, F_{out})`, :math:`S`
          the number of paths (``num_samples`` in training, ``eval_samples`` in evaluation)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int = 1,
                 field: Optional[Union[Module, Sequence[Module]]] = None, method: str = "rk4",
                 step_size: Optional[float] = 1.0, rtol: float = 1e-3, atol: float = 1e-4,
                 gradient: str = "autograd", diffusion: Union[str, Module] = "node",
                 noise_scale: float = 0.1, sde_dt: float = 1.0, num_samples: int = 8,
                 eval_samples: int = 32, **solver_kwargs):
        super().__init__(in_channels, hidden_channels, out_channels, field, method, step_size,
                         rtol, atol, gradient, **solver_kwargs)
        for name, value in (("num_samples", num_samples), ("eval_samples", eval_samples)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not sde_dt > 0:
            raise ValueError(f"sde_dt must be positive, got {sde_dt!r}")
        self.num_samples, self.eval_samples = num_samples, eval_samples
        self.sde = GraphSDE(self.field, diffusion, channels=hidden_channels,
                            noise_scale=noise_scale, method="euler", dt=sde_dt,
                            gradient=gradient if gradient in ("autograd", "checkpoint")
                            else "autograd", validate=False)

    def forward(self, x: Tensor, edge_index: Tensor, times: Tensor, query_times: Tensor,
                mask: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None,
                step_graphs: Optional[Sequence[Tuple[Tensor, Optional[Tensor]]]] = None
                ) -> Tensor:
        h, grid, index, ei, ew = self._encode(x, edge_index, times, query_times, mask,
                                              edge_weight, step_graphs)
        samples = self.num_samples if self.training else self.eval_samples
        self.sde.num_samples = samples
        if len(grid) > 1:
            hs = self.sde(h, ei, ew, times=grid)  # (len(grid), [S,] B * N, hidden)
            hs = hs if samples > 1 else hs.unsqueeze(1)
        else:
            hs = h.expand(1, samples, *h.shape)
        out = self.decoder(hs[index])  # (Q, S, B * N, out)
        batch, n = x.size(0), x.size(2)
        return out.view(len(index), samples, batch, n, self.out_channels).permute(1, 2, 0, 3, 4)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, method='{self.solver['method']}', "
                f"diffusion='{self.sde.diffusion}', samples={self.num_samples}/"
                f"{self.eval_samples})")
