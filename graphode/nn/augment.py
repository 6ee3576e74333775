"""Variants of the GDE block from the literature: time-concatenated and second-order fields."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from ..api import solve
from ..solvers.base import Solver
from ..solvers.integrate import SolverStats
from ..solvers.symplectic import SYMPLECTIC_SCHEMES, Symplectic
from ..solvers.tableaux import ButcherTableau
from .field import GraphVectorField, reset_parameters
from .gde import _computed, solve_on_leaves, with_graph_inputs
from .sparse import to_edge_index
from .validate import check_graph

__all__ = ["TimeConcat", "SecondOrderGDEConv"]


class TimeConcat(Module):
    r"""Makes a layer time-dependent by appending :math:`t` as an input channel
    (the ``ConcatConv`` of neural ODE codebases): :math:`f(t, H) = \mathrm{conv}([H, t])`.

    Args:
        conv: a message-passing layer with one more input channel than output channels,
            e.g. ``GCNConv(C + 1, C)``.

    Example::

        >>> from torch_geometric.nn import GCNConv
        >>> from graphode.nn import GDEConv, TimeConcat
        >>> gde = GDEConv(TimeConcat(GCNConv(17, 16)))
    """

    def __init__(self, conv: Module):
        super().__init__()
        self.conv = conv
        cin, cout = getattr(conv, "in_channels", None), getattr(conv, "out_channels", None)
        if isinstance(cin, int) and isinstance(cout, int) and cin != cout + 1:
            raise ValueError(f"TimeConcat needs a layer with one more input than output channel, "
                             f"got {conv}; use {type(conv).__name__}({cout + 1}, {cout})")
        self.in_channels, self.out_channels = cout, cout

    def reset_parameters(self) -> None:
        reset_parameters(self.conv)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None,
                t: Optional[Tensor] = None) -> Tensor:
        tt = (torch.zeros((), dtype=x.dtype, device=x.device) if t is None else t.to(x.dtype))
        xt = torch.cat([x, tt.expand(x.size(0), 1)], dim=-1)
        return self.conv(xt, edge_index) if edge_weight is None else \
            self.conv(xt, edge_index, edge_weight)

    def __repr__(self) -> str:
        return f"TimeConcat({self.conv})"


class _SecondOrderField(Module):
    """``d[X, V]/dt = [V, f(X, V)]`` on the concatenated state."""

    def __init__(self, field: GraphVectorField, channels: int):
        super().__init__()
        self.field, self.channels = field, channels

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        v = z[..., self.channels:]
        return torch.cat([v, self.field(t, z)], dim=-1)


def _kinematic(method: Union[str, ButcherTableau, Solver]
               ) -> Union[str, ButcherTableau, Solver]:
    """A symplectic method told that the positions' rate is the velocity, which the ``[X, V]``
    system guarantees, so its drifts skip the field; any other method unchanged."""
    if isinstance(method, str) and method in SYMPLECTIC_SCHEMES:
        return Symplectic(method, kinematic=True)
    if isinstance(method, Symplectic) and not method.kinematic and method.split is None:
        return Symplectic(method.scheme, separable=method.separable, kinematic=True)
    return method


class SecondOrderGDEConv(Module):
    r"""A second-order GDE: :math:`\ddot{\mathbf{X}} = f(\mathbf{X}, \dot{\mathbf{X}};
    \mathcal{G})`, solved as a first-order system on the state
    :math:`[\mathbf{X}, \mathbf{V}]` (Norcliffe et al., "On Second Order Behaviour in
    Augmented Neural ODEs", 2020; the GDE paper's second-order variant). The symplectic
    methods (``"symplectic_euler"``, ``"leapfrog"``) take its positions' rate to be
    :math:`\mathbf{V}` without evaluating the field (``Symplectic(kinematic=True)``): one
    evaluation of :math:`f` per step.

    Args:
        field: layers mapping ``2C`` channels (position and velocity) to ``C`` (acceleration).
        t_span, method, rtol, atol, step_size, gradient: as in :class:`GDEConv`.
        **solver_kwargs: further keywords for :func:`graphode.solve`.

    Shapes:
        - **input:** positions :math:`(|\mathcal{V}|, C)`, optional initial velocities
          :math:`(|\mathcal{V}|, C)` (zeros by default)
        - **output:** positions :math:`(|\mathcal{V}|, C)` at ``t_span[1]``
    """

    def __init__(self, field: Union[Module, Sequence[Module]],
                 t_span: Tuple[float, float] = (0.0, 1.0), method: str = "dopri5",
                 rtol: float = 1e-3, atol: float = 1e-4, step_size: Optional[float] = None,
                 gradient: str = "adjoint", **solver_kwargs):
        super().__init__()
        self.field = field if isinstance(field, GraphVectorField) else GraphVectorField(field)
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.method, self.rtol, self.atol, self.step_size = method, rtol, atol, step_size
        self.gradient, self.solver_kwargs = gradient, solver_kwargs
        self.stats = SolverStats()

    def reset_parameters(self) -> None:
        self.field.reset_parameters()

    @property
    def last_solves(self) -> List[SolverStats]:
        """The statistics of the last forward's solve (see :class:`SolverStatsRecorder`)."""
        return [self.stats]

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None,
                velocity: Optional[Tensor] = None) -> Tensor:
        edge_index, edge_weight = to_edge_index(edge_index, edge_weight)
        v = torch.zeros_like(x) if velocity is None else velocity
        if v.shape != x.shape:
            raise ValueError(f"velocity must have the shape of x {tuple(x.shape)}, got "
                             f"{tuple(v.shape)}")
        check_graph(x, edge_index, edge_weight, None, [self.field])
        def run(z0: Tensor, weight: Optional[Tensor]) -> Tensor:
            system = _SecondOrderField(
                self.field.bind(edge_index, weight, x.size(0), x.dtype, x.device), x.size(-1))
            sol = solve(system, z0, list(self.t_span), method=_kinematic(self.method),
                        rtol=self.rtol,
                        atol=self.atol, step_size=self.step_size, gradient=self.gradient,
                        **with_graph_inputs(self.solver_kwargs, self.gradient, system, weight))
            self.stats = sol.stats
            return sol.ys
        z0 = torch.cat([x, v], dim=-1)
        ys = run(z0, edge_weight) if self.gradient == "autograd" or not _computed(edge_weight) \
            else solve_on_leaves(run, [z0, edge_weight], list(self.field.parameters()))
        return ys[-1][..., : x.size(-1)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.field.layers)}, method='{self.method}')"
