"""Continuous-depth GNNs of the literature as node classifiers, on graphode's shared solver.

Each model encodes the node features with a linear layer, evolves them by its graph ODE and
decodes them with a linear layer; ``solver`` takes the block's keywords (``t_span``,
``method``, ``step_size``, ``gradient``, ...), so every model runs on every method and
gradient mode the solver offers. :class:`MLP` is the graph-free baseline.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv

from ..nn import (
    AntisymmetricField,
    AttentionDiffusion,
    GDEConv,
    GraphCONCoupling,
    HamiltonianForce,
    ReactionDiffusionConv,
    SecondOrderGDEConv,
)
from ..nn.continuous import with_self_loops
from ..solvers.symplectic import Symplectic

__all__ = ["MLP", "GRAND", "GRANDPlusPlus", "GraphCON", "ADGN", "HamGNN", "GREAD"]

Solver = Optional[Dict[str, Any]]


def _solver(solver: Solver, **defaults: Any) -> Dict[str, Any]:
    """The block's keywords: ``defaults`` overridden by the given ``solver`` (``None`` values
    in it leave the default)."""
    return {**defaults, **{k: v for k, v in (solver or {}).items() if v is not None}}


class MLP(nn.Module):
    """Two linear layers with ReLU and dropout: the baseline that ignores the graph."""

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5):
        super().__init__()
        self.lin1, self.lin2, self.dropout = nn.Linear(in_channels, hidden), \
            nn.Linear(hidden, classes), dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(x)


class _Continuous(nn.Module):
    """Input dropout, a linear encoder (ReLU after it with ``encoder_relu``), :meth:`evolve`,
    ReLU, dropout and a linear decoder."""

    encoder_relu = False

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float,
                 input_dropout: Optional[float]):
        super().__init__()
        self.encoder, self.decoder = nn.Linear(in_channels, hidden), nn.Linear(hidden, classes)
        self.dropout = dropout
        self.input_dropout = dropout if input_dropout is None else input_dropout

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.encoder(F.dropout(x, self.input_dropout, self.training))
        h = self.evolve(F.relu(h) if self.encoder_relu else h, edge_index)
        return self.decoder(F.dropout(F.relu(h), self.dropout, self.training))


class GRAND(_Continuous):
    r"""GRAND (Chamberlain et al., `"GRAND: Graph Neural Diffusion"
    <https://arxiv.org/abs/2106.10934>`_, ICML 2021): the encoded features diffuse by
    :math:`\dot{\mathbf{X}} = (\mathbf{A}(\mathbf{X}) - \mathbf{I})\mathbf{X}` with
    :class:`~graphode.nn.AttentionDiffusion`; ``kind="l"`` (GRAND-l) computes the attention
    once from the encoded features, ``"nl"`` (GRAND-nl) from the current state at every
    evaluation.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        kind: ``"l"`` or ``"nl"``.
        heads, attention_dim: of the attention.
        dropout: before the decoder; input_dropout: on the features (default ``dropout``).
        solver: keywords of :class:`~graphode.nn.GDEConv` (default: dopri5 over ``[0, 1]``
            with ``gradient="autograd"``).
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, kind: str = "l",
                 heads: int = 1, attention_dim: Optional[int] = None, dropout: float = 0.5,
                 input_dropout: Optional[float] = None, solver: Solver = None,
                 control: Optional[str] = None):
        super().__init__(in_channels, hidden, classes, dropout, input_dropout)
        if kind not in ("l", "nl"):
            raise ValueError(f"kind must be 'l' (attention from the initial features) or 'nl' "
                             f"(from the current state), got {kind!r}")
        self.kind = kind
        self.gde = GDEConv(AttentionDiffusion(hidden, heads, attention_dim), control=control,
                           **_solver(solver, gradient="autograd"))

    @property
    def attention(self) -> AttentionDiffusion:
        """The attention diffusion the block integrates (held once, by the block)."""
        return cast(AttentionDiffusion, self.gde.field.layers[0])

    def diffuse(self, h: Tensor, edge_index: Tensor, source: Optional[Tensor] = None) -> Tensor:
        if self.kind == "nl":
            return self.gde(h, edge_index, control_input=source)
        looped = with_self_loops(edge_index, h.size(0))
        attention = self.attention.attention(h, looped)
        return self.gde(h, looped, attention, control_input=source)

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        return self.diffuse(h, edge_index)


class GRANDPlusPlus(GRAND):
    r"""GRAND++ (Thorpe et al., `"GRAND++: Graph Neural Diffusion with a Source Term"
    <https://openreview.net/forum?id=EMxu-dzvJk>`_, ICLR 2022): GRAND's diffusion with a
    source at the labelled nodes,

    .. math::
        \dot{\mathbf{X}} = (\mathbf{A}(\mathbf{X}) - \mathbf{I})\mathbf{X} + \mathbf{C},
        \qquad \mathbf{c}_i = [i \in \mathcal{I}]\,
        \big(\mathbf{x}_i(0) - \bar{\mathbf{x}}_{\mathcal{I}}(0)\big),

    :math:`\mathcal{I}` the labelled (training) nodes and :math:`\bar{\mathbf{x}}_\mathcal{I}`
    their mean: the source keeps the features from collapsing to a constant as :math:`t`
    grows. Call :meth:`use_labelled` with the training nodes before training. Arguments as
    :class:`GRAND`.
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, **kwargs: Any):
        super().__init__(in_channels, hidden, classes, control="add", **kwargs)
        self.labelled: Tensor
        self.register_buffer("labelled", torch.zeros(0, dtype=torch.long))

    def use_labelled(self, index: Tensor) -> None:
        """Put the source on these nodes (indices or a boolean mask)."""
        index = index.nonzero().view(-1) if index.dtype == torch.bool else index.view(-1)
        self.labelled = index.to(self.labelled.device)

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        if self.labelled.numel() == 0:
            raise RuntimeError("GRAND++ needs its labelled nodes: call use_labelled(train_mask) "
                               "before the forward")
        seen = h[self.labelled]
        source = torch.zeros_like(h).index_copy(0, self.labelled, seen - seen.mean(0))
        return self.diffuse(h, edge_index, source)


_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda x: x}


class GraphCON(_Continuous):
    r"""GraphCON (Rusch et al., `"Graph-Coupled Oscillator Networks"
    <https://arxiv.org/abs/2202.02296>`_, ICML 2022): the encoded features are the positions of
    coupled oscillators,
    :math:`\ddot{\mathbf{X}} = \sigma(\mathbf{F}_\theta(\mathbf{X})) - \gamma\mathbf{X} -
    \alpha\dot{\mathbf{X}}` (:class:`~graphode.nn.GraphCONCoupling`), started at rest at the
    encoded features with velocity equal to them, as the paper's code does. The default
    solver is the paper's: ``symplectic_euler`` with steps of 1.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        coupling: ``"gcn"`` or ``"gat"``; heads: of the GAT coupling.
        gamma, alpha: restoring force and damping.
        residual: a learned linear map of each node's own features inside the coupling (see
            :class:`~graphode.nn.GraphCONCoupling`; the paper's heterophily setting).
        field_dropout: dropout on the positions the coupling reads, at every evaluation
            (:class:`~graphode.nn.GraphCONCoupling`'s ``dropout``).
        activation: the coupling's :math:`\sigma`: ``"relu"`` (the paper's equations and its
            heterophily code), ``"tanh"`` or ``"identity"`` (its code on the homophilous
            graphs, where the coupling is a plain GCN layer).
        dropout, input_dropout, solver: as in :class:`GRAND` (the solver keywords are
            :class:`~graphode.nn.SecondOrderGDEConv`'s).
    """

    encoder_relu = True

    def __init__(self, in_channels: int, hidden: int, classes: int, coupling: str = "gcn",
                 heads: int = 1, gamma: float = 1.0, alpha: float = 1.0, residual: bool = False,
                 dropout: float = 0.5, input_dropout: Optional[float] = None,
                 solver: Solver = None, field_dropout: float = 0.0, activation: str = "relu"):
        super().__init__(in_channels, hidden, classes, dropout, input_dropout)
        if coupling not in ("gcn", "gat"):
            raise ValueError(f"coupling must be 'gcn' or 'gat', got {coupling!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got "
                             f"{activation!r}")
        conv = GCNConv(hidden, hidden) if coupling == "gcn" else \
            GATConv(hidden, hidden, heads=heads, concat=False)
        coupling_field = GraphCONCoupling(conv, gamma, alpha, _ACTIVATIONS[activation],
                                          residual=residual, dropout=field_dropout)
        self.ode = SecondOrderGDEConv(coupling_field,
                                      **_solver(
            solver, method="symplectic_euler", step_size=1.0, t_span=(0.0, 4.0),
            gradient="autograd"))

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        return self.ode(h, edge_index, velocity=h)


class ADGN(_Continuous):
    r"""A-DGN (Gravina et al., `"Anti-Symmetric DGN: a stable architecture for Deep Graph
    Networks" <https://arxiv.org/abs/2210.09789>`_, ICLR 2023): the encoded features flow by
    the non-dissipative :class:`~graphode.nn.AntisymmetricField`; the default solver is the
    paper's forward Euler with steps of 0.1 (``t_span`` sets the number of layers).

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        gamma, aggregation: of the field.
        dropout, input_dropout, solver: as in :class:`GRAND`.
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, gamma: float = 0.1,
                 aggregation: str = "gcn", dropout: float = 0.5,
                 input_dropout: Optional[float] = None, solver: Solver = None):
        super().__init__(in_channels, hidden, classes, dropout, input_dropout)
        self.gde = GDEConv(AntisymmetricField(hidden, gamma, aggregation), **_solver(
            solver, method="euler", step_size=0.1, t_span=(0.0, 1.0), gradient="autograd"))

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        return self.gde(h, edge_index)


class HamGNN(_Continuous):
    r"""A Hamiltonian graph flow in the spirit of HamGNN (Kang et al., `"Node Embedding from
    Neural Hamiltonian Orbits in Graph Neural Networks" <https://arxiv.org/abs/2305.18965>`_,
    ICML 2023): the encoded features are positions :math:`\mathbf{Q}(0)`, a linear layer of
    them the momenta :math:`\mathbf{P}(0)`, and both flow by the separable graph Hamiltonian of
    :class:`~graphode.nn.HamiltonianForce`; the decoder reads the positions. The default
    solver is leapfrog (two evaluations per step), which conserves the energy to within a
    bounded error.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        dropout, input_dropout, solver: as in :class:`GRAND` (``method="leapfrog"`` is taken
            as ``Symplectic("leapfrog", separable=True)``).
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, dropout: float = 0.5,
                 input_dropout: Optional[float] = None, solver: Solver = None):
        super().__init__(in_channels, hidden, classes, dropout, input_dropout)
        self.momentum = nn.Linear(hidden, hidden)
        settings = _solver(solver, method="leapfrog", step_size=0.5, t_span=(0.0, 2.0),
                           gradient="autograd")
        if settings["method"] in ("leapfrog", "symplectic_euler"):
            settings["method"] = Symplectic(settings["method"], separable=True)
        self.force = HamiltonianForce(hidden)
        self.ode = SecondOrderGDEConv(self.force, **settings)

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        return self.ode(h, edge_index, velocity=self.momentum(h))


class GREAD(_Continuous):
    r"""GREAD (Choi et al., `"GREAD: Graph Neural Reaction-Diffusion Networks"
    <https://arxiv.org/abs/2211.14208>`_, ICML 2023): the encoded features evolve by a
    diffusion and a learned reaction (:class:`~graphode.nn.ReactionDiffusionConv`); an IMEX
    method (``method="kencarp3"``) takes the diffusion implicitly, the reaction explicitly.

    Args:
        in_channels, hidden, classes: feature, hidden and class counts.
        reaction: ``"allen-cahn"``, ``"zeldovich"`` or ``"fisher"`` (see
            :class:`~graphode.nn.Reaction`: Fisher's term blows up from negative features).
        rate: the diffusivity; beta: the reaction rates' initial value.
        dropout, input_dropout, solver: as in :class:`GRAND`.
    """

    def __init__(self, in_channels: int, hidden: int, classes: int, reaction: str = "allen-cahn",
                 rate: float = 1.0, beta: float = 1.0, dropout: float = 0.5,
                 input_dropout: Optional[float] = None, solver: Solver = None):
        super().__init__(in_channels, hidden, classes, dropout, input_dropout)
        self.block = ReactionDiffusionConv(hidden, reaction, rate, beta, **_solver(
            solver, gradient="autograd"))

    def evolve(self, h: Tensor, edge_index: Tensor) -> Tensor:
        return self.block(h, edge_index)
