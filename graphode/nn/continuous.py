"""The vector fields of continuous-depth GNNs from the literature, as GDE layers.

Each is a layer that :class:`~graphode.nn.GDEConv` (or, for the second-order ones,
:class:`~graphode.nn.SecondOrderGDEConv`) integrates; each precomputes what depends only on
the graph once per solve (its ``graph_plan``), so an evaluation pays for the features alone.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_self_loops, remove_self_loops, softmax

from .field import channels_of, layer_plan, reset_parameters
from .sparse import SparseOperator

__all__ = ["AttentionDiffusion", "GraphCONCoupling", "AntisymmetricField", "HamiltonianForce",
           "Reaction", "ReactionDiffusionConv", "with_self_loops"]


def with_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` with exactly one self loop per node."""
    return add_self_loops(remove_self_loops(edge_index)[0], num_nodes=num_nodes)[0]


def _diffuse(x: Tensor, edge_index: Tensor, weight: Tensor) -> Tensor:
    """``A X - X`` with ``A[i, j]`` the weight of the edge ``j -> i``."""
    src, dst = edge_index
    messages = x[src] * weight.view(-1, *([1] * (x.dim() - 1)))
    return torch.zeros_like(x).index_add_(0, dst, messages) - x


class AttentionDiffusion(nn.Module):
    r"""GRAND's attention diffusion (Chamberlain et al., `"GRAND: Graph Neural Diffusion"
    <https://arxiv.org/abs/2106.10934>`_, ICML 2021),

    .. math::
        \frac{d\mathbf{X}}{dt} = \big(\mathbf{A}(\mathbf{X}) - \mathbf{I}\big)\mathbf{X},
        \qquad a_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}
        \frac{(\mathbf{W}_K \mathbf{x}_i)^\top \mathbf{W}_Q \mathbf{x}_j}{\sqrt{d_k}},

    averaged over ``heads``; :math:`\mathbf{A}` is row-stochastic, so the flow is a diffusion.
    Called without ``edge_weight``, the attention is computed from the current state at every
    evaluation (GRAND-nl); :meth:`attention` computes it once, from the initial state, and
    passing it as ``edge_weight`` (with the looped ``edge_index`` it was computed on) gives the
    linear GRAND-l.

    Args:
        channels: feature channels.
        heads: attention heads.
        attention_dim: key and query size per head (default ``channels``).
    """

    def __init__(self, channels: int, heads: int = 1, attention_dim: Optional[int] = None):
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be a positive integer, got {heads}")
        self.in_channels = self.out_channels = channels
        self.heads, self.attention_dim = heads, attention_dim or channels
        self.query = nn.Linear(channels, heads * self.attention_dim)
        self.key = nn.Linear(channels, heads * self.attention_dim)

    def reset_parameters(self) -> None:
        self.query.reset_parameters()
        self.key.reset_parameters()

    def attention(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """The attention of every edge ``j -> i`` of ``edge_index`` (which should hold the self
        loops), averaged over heads: ``(E,)``, summing to one over each node's in-edges."""
        src, dst = edge_index
        shape = (x.size(0), self.heads, self.attention_dim)
        q, k = self.query(x).view(shape), self.key(x).view(shape)
        scores = (k[dst] * q[src]).sum(-1) / math.sqrt(self.attention_dim)
        return softmax(scores, dst, num_nodes=x.size(0)).mean(-1)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
                ) -> Tensor:
        if edge_weight is not None:
            return _diffuse(x, edge_index, edge_weight)
        looped = with_self_loops(edge_index, x.size(0))
        return _diffuse(x, looped, self.attention(x, looped))

    def graph_plan(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
        if edge_weight is not None:  # fixed attention: one sparse product per evaluation
            op = SparseOperator(edge_index, edge_weight, num_nodes, dtype, device)
            return lambda x: op.mm(x) - x
        looped = with_self_loops(edge_index, num_nodes)
        return lambda x: _diffuse(x, looped, self.attention(x, looped))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, heads={self.heads})"


class GraphCONCoupling(nn.Module):
    r"""The acceleration of GraphCON's coupled oscillators (Rusch et al., `"Graph-Coupled
    Oscillator Networks" <https://arxiv.org/abs/2202.02296>`_, ICML 2022),

    .. math::
        \ddot{\mathbf{X}} = \sigma\big(\mathbf{F}_\theta(\mathbf{X})\big) - \gamma \mathbf{X}
        - \alpha \dot{\mathbf{X}},

    a layer mapping the state :math:`[\mathbf{X}, \dot{\mathbf{X}}]` (``2C`` channels) to
    :math:`\ddot{\mathbf{X}}` (``C``) for :class:`~graphode.nn.SecondOrderGDEConv`. Solved by
    ``method="symplectic_euler"`` with a fixed step, it is the paper's own scheme:
    :math:`\mathbf{Y}_n = \mathbf{Y}_{n-1} + \Delta t\,\ddot{\mathbf{X}}(\mathbf{X}_{n-1},
    \mathbf{Y}_{n-1})`, then :math:`\mathbf{X}_n = \mathbf{X}_{n-1} + \Delta t\,\mathbf{Y}_n`.

    Args:
        conv: the coupling :math:`\mathbf{F}_\theta`, a message-passing layer ``C -> C``
            (``GCNConv`` or ``GATConv`` in the paper).
        gamma, alpha: the restoring force and the damping.
        activation: :math:`\sigma` (ReLU in the paper).
        residual: add a learned linear map of the node's own features inside the activation,
            :math:`\sigma(\mathbf{F}_\theta(\mathbf{X}) + \mathbf{X}\mathbf{R})`, as the
            paper's code does on the heterophilous graphs (there with
            :math:`\alpha = \gamma = 0`).
        dropout: dropout on the positions the coupling reads, drawn afresh at every
            evaluation in training (one draw per step of ``symplectic_euler``): the
            continuous counterpart of the paper's code, which drops the state after every
            step. The positions themselves are not dropped. A field with dropout trains with
            ``gradient="autograd"`` or ``"checkpoint"``.
    """

    def __init__(self, conv: nn.Module, gamma: float = 1.0, alpha: float = 1.0,
                 activation: Callable[[Tensor], Tensor] = torch.relu, residual: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        sizes = channels_of(conv)
        if sizes is None or sizes[0] != sizes[1]:
            raise ValueError(f"the coupling must map C channels to C, got {conv}")
        self.conv, self.gamma, self.alpha, self.activation = conv, gamma, alpha, activation
        self.channels = sizes[0]
        self.in_channels, self.out_channels = 2 * self.channels, self.channels
        self.residual = nn.Linear(self.channels, self.channels) if residual else None
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is the probability of zeroing a position the coupling "
                             f"reads: give a number in [0, 1), not {dropout}")
        self.dropout = dropout

    def reset_parameters(self) -> None:
        reset_parameters(self.conv)
        if self.residual is not None:
            self.residual.reset_parameters()

    def couple(self, z: Tensor, coupling: Callable[[Tensor], Tensor]) -> Tensor:
        x, v = z[..., :self.channels], z[..., self.channels:]
        seen = F.dropout(x, self.dropout, self.training) if self.dropout else x
        force = coupling(seen) if self.residual is None else coupling(seen) + self.residual(seen)
        return self.activation(force) - self.gamma * x - self.alpha * v

    def forward(self, z: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
                ) -> Tensor:
        return self.couple(z, layer_plan(self.conv, edge_index, edge_weight, z.size(0),
                                         z.dtype, z.device))

    def graph_plan(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
        plan = layer_plan(self.conv, edge_index, edge_weight, num_nodes, dtype, device)
        return lambda z: self.couple(z, plan)

    def __repr__(self) -> str:
        drop = f", dropout={self.dropout:g}" if self.dropout else ""
        return f"{type(self).__name__}({self.conv}, gamma={self.gamma:g}, alpha={self.alpha:g}{drop})"


class AntisymmetricField(nn.Module):
    r"""A-DGN's antisymmetric field (Gravina et al., `"Anti-Symmetric DGN: a stable
    architecture for Deep Graph Networks" <https://arxiv.org/abs/2210.09789>`_, ICLR 2023),

    .. math::
        \frac{d\mathbf{x}_u}{dt} = \sigma\Big((\mathbf{W} - \mathbf{W}^\top - \gamma\mathbf{I})
        \mathbf{x}_u + \Phi(\mathbf{X}, \mathcal{N}_u) + \mathbf{b}\Big).

    The antisymmetric part has imaginary eigenvalues, so the Jacobian's eigenvalues have
    real parts near zero (:math:`-\gamma` times the activation's slope): the flow neither
    explodes nor dissipates, and information travels far. The paper steps it with forward
    Euler (``method="euler"``, ``step_size`` = its :math:`\epsilon`).

    Args:
        channels: feature channels.
        gamma: the diffusion :math:`\gamma \geq 0` that keeps forward Euler stable.
        aggregation: :math:`\Phi`: ``"gcn"`` (GCN-normalised neighbours with self loops,
            times :math:`\mathbf{V}`) or ``"sum"`` (the plain sum over neighbours).
        activation: :math:`\sigma` (tanh in the paper).
    """

    def __init__(self, channels: int, gamma: float = 0.1, aggregation: str = "gcn",
                 activation: Callable[[Tensor], Tensor] = torch.tanh):
        super().__init__()
        if aggregation not in ("gcn", "sum"):
            raise ValueError(f"aggregation must be 'gcn' or 'sum', got {aggregation!r}")
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma}")
        self.in_channels = self.out_channels = channels
        self.gamma, self.aggregation, self.activation = gamma, aggregation, activation
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        gcn = aggregation == "gcn"
        self.conv = GCNConv(channels, channels, bias=False, normalize=gcn, add_self_loops=gcn)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.bias)
        self.conv.reset_parameters()

    def antisymmetric(self) -> Tensor:
        """:math:`\\mathbf{W} - \\mathbf{W}^\\top - \\gamma \\mathbf{I}`."""
        eye = torch.eye(self.weight.size(0), dtype=self.weight.dtype, device=self.weight.device)
        return self.weight - self.weight.T - self.gamma * eye

    def evaluate(self, x: Tensor, aggregate: Callable[[Tensor], Tensor]) -> Tensor:
        return self.activation(x @ self.antisymmetric().T + aggregate(x) + self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
                ) -> Tensor:
        return self.evaluate(x, layer_plan(self.conv, edge_index, edge_weight, x.size(0),
                                           x.dtype, x.device))

    def graph_plan(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
        plan = layer_plan(self.conv, edge_index, edge_weight, num_nodes, dtype, device)
        return lambda x: self.evaluate(x, plan)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, gamma={self.gamma:g}, "
                f"aggregation='{self.aggregation}')")


def _log_cosh(x: Tensor) -> Tensor:
    return x + F.softplus(-2.0 * x) - math.log(2.0)


class HamiltonianForce(nn.Module):
    r"""The force of a separable graph Hamiltonian, for a Hamiltonian flow of node features
    in the spirit of HamGNN (Kang et al., `"Node Embedding from Neural Hamiltonian Orbits in
    Graph Neural Networks" <https://arxiv.org/abs/2305.18965>`_, ICML 2023): positions
    :math:`\mathbf{Q}` and momenta :math:`\mathbf{P}` (``C`` channels each) with

    .. math::
        H(\mathbf{Q}, \mathbf{P}) = \tfrac12 \|\mathbf{P}\|^2 + V(\mathbf{Q}), \qquad
        V(\mathbf{Q}) = \sum \log\cosh\big(\hat{\mathbf{A}} \mathbf{Q} \mathbf{W}\big),

    :math:`\hat{\mathbf{A}}` the GCN-normalised adjacency with self loops. The layer maps
    :math:`[\mathbf{Q}, \mathbf{P}]` to :math:`\dot{\mathbf{P}} = -\nabla_{\mathbf{Q}} V =
    -\hat{\mathbf{A}}^\top \tanh(\hat{\mathbf{A}}\mathbf{Q}\mathbf{W}) \mathbf{W}^\top`, in
    closed form (no autograd inside the field), for :class:`~graphode.nn.SecondOrderGDEConv`
    (:math:`\dot{\mathbf{Q}} = \mathbf{P}`). The Hamiltonian is separable, so
    ``method="leapfrog"`` (or ``Symplectic("leapfrog", separable=True)``, two evaluations per
    step) keeps :meth:`energy` to within a bounded error over any number of steps.

    Args:
        channels: position channels ``C``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.in_channels, self.out_channels = 2 * channels, channels
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)

    @staticmethod
    def operators(edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                  dtype: torch.dtype, device: torch.device):
        """``(A, A^T)`` as sparse operators, ``A`` GCN-normalised with self loops."""
        ei, w = gcn_norm(edge_index, edge_weight, num_nodes, dtype=dtype)
        return (SparseOperator(ei, w, num_nodes, dtype, device),
                SparseOperator(ei.flip(0), w, num_nodes, dtype, device))

    def force(self, z: Tensor, ops) -> Tensor:
        op, op_t = ops
        q = z[..., :self.channels]
        return -op_t.mm(torch.tanh(op.mm(q @ self.weight)) @ self.weight.T)

    def energy(self, z: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
               ) -> Tensor:
        """:math:`H(\\mathbf{Q}, \\mathbf{P})` of the state ``z = [Q, P]``, a scalar."""
        op, _ = self.operators(edge_index, edge_weight, z.size(0), z.dtype, z.device)
        q, p = z[..., :self.channels], z[..., self.channels:]
        return 0.5 * p.pow(2).sum() + _log_cosh(op.mm(q @ self.weight)).sum()

    def forward(self, z: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
                ) -> Tensor:
        return self.force(z, self.operators(edge_index, edge_weight, z.size(0), z.dtype,
                                            z.device))

    def graph_plan(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
                   dtype: torch.dtype, device: torch.device) -> Callable[[Tensor], Tensor]:
        ops = self.operators(edge_index, edge_weight, num_nodes, dtype, device)
        return lambda z: self.force(z, ops)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels})"


class Reaction(nn.Module):
    r"""A reaction term :math:`\boldsymbol{\beta} \odot r(\mathbf{X})` of a reaction-diffusion
    GNN (GREAD, Choi et al., `"GREAD: Graph Neural Reaction-Diffusion Networks"
    <https://arxiv.org/abs/2211.14208>`_, ICML 2023), with a learned rate per channel:

    - ``"fisher"``: :math:`r(x) = x(1 - x)` (Fisher-KPP);
    - ``"allen-cahn"``: :math:`r(x) = x(1 - x^2)`;
    - ``"zeldovich"``: :math:`r(x) = x^2(1 - x)`.

    Allen-Cahn's and Zeldovich's terms pull large features back (the cubic term wins); Fisher's
    pushes a negative feature to :math:`-\infty` in finite time, so it suits features kept in
    :math:`[0, 1]`.

    Args:
        channels: feature channels.
        kind: one of the above.
        beta: the rates' initial value.
    """

    KINDS = ("fisher", "allen-cahn", "zeldovich")

    def __init__(self, channels: int, kind: str = "allen-cahn", beta: float = 1.0):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind, self.initial = kind, float(beta)
        self.beta = nn.Parameter(torch.full((channels,), float(beta)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.beta, self.initial)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "fisher":
            r = x * (1.0 - x)
        elif self.kind == "allen-cahn":
            r = x * (1.0 - x * x)
        else:
            r = x * x * (1.0 - x)
        return self.beta * r

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.kind}')"


class ReactionDiffusionConv(nn.Module):
    r"""A reaction-diffusion block (GREAD, Choi et al., 2023):

    .. math::
        \frac{d\mathbf{X}}{dt} = -k\,(\mathbf{I} - \hat{\mathbf{A}})\mathbf{X}
        + \boldsymbol{\beta} \odot r(\mathbf{X}),

    a :class:`~graphode.nn.LinearDiffusion` of rate ``k`` on the GCN-normalised adjacency plus
    a :class:`Reaction`. The field is declared as a :class:`~graphode.solvers.Split`, so an
    IMEX method (``method="kencarp3"``) takes the diffusion implicitly, its stages solved with
    the sparse operator, and the reaction explicitly; every other method solves the sum.

    Args:
        channels: feature channels.
        reaction: the :class:`Reaction` kind.
        rate: the diffusivity ``k``.
        beta: the reaction rates' initial value.
        t_span, method, rtol, atol, step_size, gradient: as in :class:`~graphode.nn.GDEConv`.
        **solver_kwargs: further keywords for :func:`graphode.solve`.
    """

    def __init__(self, channels: int, reaction: str = "allen-cahn", rate: float = 1.0,
                 beta: float = 1.0, t_span=(0.0, 1.0), method="dopri5", rtol: float = 1e-3,
                 atol: float = 1e-4, step_size: Optional[float] = None,
                 gradient: str = "autograd", **solver_kwargs):
        super().__init__()
        from ..solvers.integrate import SolverStats
        from .diffusion import LinearDiffusion
        from .field import GraphVectorField
        self.diffusion = GraphVectorField(LinearDiffusion(channels, weight=False, rate=rate))
        self.reaction = Reaction(channels, reaction, beta)
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.method, self.rtol, self.atol, self.step_size = method, rtol, atol, step_size
        self.gradient, self.solver_kwargs = gradient, solver_kwargs
        self.stats = SolverStats()

    def reset_parameters(self) -> None:
        self.reaction.reset_parameters()

    @property
    def last_solves(self):
        """The statistics of the last forward's solve (see :class:`SolverStatsRecorder`)."""
        return [self.stats]

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None
                ) -> Tensor:
        from ..api import solve
        from ..solvers.imex import Split
        from .validate import check_graph
        check_graph(x, edge_index, edge_weight, None, [self.diffusion])
        diffusion = self.diffusion.bind(edge_index, edge_weight, x.size(0), x.dtype, x.device)
        field = Split(implicit=diffusion, explicit=lambda t, y: self.reaction(y))
        kwargs = dict(self.solver_kwargs)
        if self.gradient != "autograd":
            kwargs.setdefault("adjoint_params", list(self.reaction.parameters()) + (
                [edge_weight] if edge_weight is not None and edge_weight.requires_grad else []))
        sol = solve(field, x, list(self.t_span), method=self.method, rtol=self.rtol,
                    atol=self.atol, step_size=self.step_size, gradient=self.gradient, **kwargs)
        self.stats = sol.stats
        return sol.ys[-1]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.reaction}, rate={self.diffusion.layers[0].rate:g}, "
                f"method='{self.method}')")
