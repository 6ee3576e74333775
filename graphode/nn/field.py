"""GraphVectorField: message-passing layers bound to one graph for the length of a solve.

:class:`~graphode.nn.GDEConv` calls :meth:`GraphVectorField.bind` once per forward; binding
precomputes everything that depends only on the graph (self loops, symmetric normalisation,
mean-aggregation weights, the scaled Laplacian) as a :class:`SparseOperator`, so the solver's
many evaluations of ``f(t, h)`` pay only for the features.
"""
from __future__ import annotations

import copy
import inspect
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, ModuleList

from .sparse import SparseOperator

__all__ = ["GraphVectorField", "register_plan", "channels_of", "reset_parameters", "layer_plan"]

Plan = Callable[..., Tensor]  # x -> f(x), or (x, t) -> f(x, t) for time-dependent layers


def _accepts(module: Module, name: str) -> bool:
    try:
        return name in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def _is_graph_layer(module: Module) -> bool:
    return _accepts(module, "edge_index")


def reset_parameters(module: Module) -> None:
    """Call ``module.reset_parameters()`` where the module has one."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()


def channels_of(layer: Module) -> Optional[Tuple[int, int]]:
    """``(in, out)`` channels of a message-passing layer, or ``None`` when it does not say."""
    cin, cout = getattr(layer, "in_channels", None), getattr(layer, "out_channels", None)
    if isinstance(cin, (tuple, list)):
        cin = cin[0] if len(set(cin)) == 1 else None
    if not isinstance(cin, int) or not isinstance(cout, int) or cin <= 0:
        return None
    heads = getattr(layer, "heads", None)
    if getattr(layer, "concat", False) and isinstance(heads, int):
        cout *= heads
    return cin, cout


# --------------------------------------------------------------------------- fast plans
def _gcn_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    if getattr(conv, "flow", "source_to_target") != "source_to_target":
        return None
    if conv.normalize:
        edge_index, edge_weight = gcn_norm(edge_index, edge_weight, n, conv.improved,
                                           conv.add_self_loops, conv.flow, dtype)
    elif edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
    op = SparseOperator(edge_index, edge_weight, n, dtype, device)

    def apply(x: Tensor) -> Tensor:
        out = op.mm(conv.lin(x))
        return out if conv.bias is None else out + conv.bias
    return apply


def _aggregation_operator(aggr, edge_index, edge_weight, n, dtype, device
                          ) -> Optional[SparseOperator]:
    if aggr not in ("add", "sum", "mean"):
        return None
    w = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device) \
        if edge_weight is None else edge_weight.to(dtype)
    if aggr == "mean":
        deg = torch.zeros(n, dtype=dtype, device=edge_index.device).index_add_(0, edge_index[1], w)
        w = w / deg.clamp(min=torch.finfo(dtype).tiny)[edge_index[1]]
    return SparseOperator(edge_index, w, n, dtype, device)


def _sage_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    if getattr(conv, "project", False) or edge_weight is not None:
        return None
    op = _aggregation_operator(conv.aggr, edge_index, None, n, dtype, device)
    if op is None:
        return None

    def apply(x: Tensor) -> Tensor:
        out = conv.lin_l(op.mm(x))
        if conv.root_weight:
            out = out + conv.lin_r(x)
        return torch.nn.functional.normalize(out, p=2.0, dim=-1) if conv.normalize else out
    return apply


def _graph_conv_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    op = _aggregation_operator(conv.aggr, edge_index, edge_weight, n, dtype, device)
    if op is None:
        return None
    return lambda x: conv.lin_rel(op.mm(x)) + conv.lin_root(x)


def _gin_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    if edge_weight is not None:
        return None
    op = _aggregation_operator(conv.aggr, edge_index, None, n, dtype, device)
    if op is None:
        return None
    return lambda x: conv.nn(op.mm(x) + (1 + conv.eps) * x)


def _cheb_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    ei, w = conv.__norm__(edge_index, n, edge_weight, conv.normalization, None, dtype=dtype)
    op = SparseOperator(ei, w, n, dtype, device)

    def apply(x: Tensor) -> Tensor:
        t0, t1 = x, x
        out = conv.lins[0](t0)
        if len(conv.lins) > 1:
            t1 = op.mm(x)
            out = out + conv.lins[1](t1)
        for lin in conv.lins[2:]:
            t2 = 2.0 * op.mm(t1) - t0
            out = out + lin(t2)
            t0, t1 = t1, t2
        return out if conv.bias is None else out + conv.bias
    return apply


class _DiffusionPlan:
    """:class:`~graphode.nn.LinearDiffusion` on a fixed graph: the field, and its Jacobian for
    the implicit solvers (the layer is linear in ``x``, so the field is its own product)."""

    def __init__(self, conv, edge_index, edge_weight, n, dtype, device):
        from torch_geometric.nn.conv.gcn_conv import gcn_norm
        edge_index, edge_weight = gcn_norm(edge_index, edge_weight, n, dtype=dtype)
        self.conv, self.edge_index, self.edge_weight = conv, edge_index, edge_weight
        self.op = SparseOperator(edge_index, edge_weight, n, dtype, device)
        self._operator = None

    def __call__(self, x: Tensor) -> Tensor:
        out = self.op.mm(self.conv.mix(x)) - x
        return out if self.conv.rate == 1.0 else out * self.conv.rate

    def jacobian(self, like: Tensor):
        """The :class:`~graphode.solvers.implicit.JacobianOperator` of the layer, built once
        per bound graph: the diagonal (a Jacobi preconditioner) and whether the operator is
        symmetric (an undirected graph and a symmetric ``W``), which lets the stage systems
        be solved by conjugate gradients."""
        if self._operator is None:
            from torch_geometric.utils import is_undirected

            from ..solvers.implicit import JacobianOperator
            conv, n = self.conv, self.op.num_nodes
            loops = self.edge_index[0] == self.edge_index[1]
            diag = torch.zeros(n, dtype=like.dtype, device=like.device).index_add_(
                0, self.edge_index[0][loops].to(like.device),
                self.edge_weight[loops].to(device=like.device, dtype=like.dtype))
            diag = diag.view(n, *([1] * (like.dim() - 1))) * (1.0 - conv.alpha)
            weight = conv.weight
            if weight is not None:
                diag = diag * weight.detach().diagonal().to(like.dtype)
            symmetric = bool(is_undirected(self.edge_index, self.edge_weight, n)) and (
                weight is None or bool(torch.equal(weight, weight.T)))
            self._operator = JacobianOperator(self, diagonal=(diag - 1.0) * conv.rate,
                                              symmetric=symmetric, linear=True,
                                              spectrum=self._spectrum() if symmetric else None)
        return self._operator

    def _spectrum(self) -> Optional[Tuple[float, float]]:
        """An interval holding the eigenvalues of ``k ((1 - alpha) A_hat (.) W - I)``: with
        non-negative edge weights ``A_hat``'s lie in [-1, 1] (it is similar to a
        row-stochastic matrix), and a symmetric ``W``'s in ``[-rho, rho]``."""
        if self.edge_weight.numel() and float(self.edge_weight.min()) < 0.0:
            return None
        conv = self.conv
        rho = 1.0 if conv.weight is None else float(
            torch.linalg.eigvalsh(conv.weight.detach().double()).abs().max())
        reach = (1.0 - conv.alpha) * rho
        return (conv.rate * (-reach - 1.0), conv.rate * (reach - 1.0))


def _diffusion_plan(conv, edge_index, edge_weight, n, dtype, device) -> Optional[Plan]:
    return _DiffusionPlan(conv, edge_index, edge_weight, n, dtype, device)


_REGISTERED: Dict[type, Callable] = {}


def register_plan(layer_type: type, plan: Callable[..., Optional[Plan]]) -> None:
    """Register a fast plan for a message-passing layer type that graphode does not know.

    ``plan(layer, edge_index, edge_weight, num_nodes, dtype, device)`` is called once per
    solve, when :class:`GraphVectorField` binds a graph; it precomputes what depends only on
    the graph (a :class:`~graphode.nn.SparseOperator`, say) and returns ``x -> f(x)``, the
    layer applied to features of that graph, or ``None`` to fall back to calling the layer
    with ``edge_index`` at every evaluation (e.g. for settings the plan does not cover).
    ``edge_weight`` is ``None`` unless the layer's ``forward`` takes one. A registered plan
    takes precedence over graphode's own for the same type; a layer class of your own may
    instead define ``graph_plan(edge_index, edge_weight, num_nodes, dtype, device)``.

    Example::

        >>> import torch
        >>> from torch_geometric.nn import SimpleConv
        >>> from graphode.nn import GDEConv, SparseOperator, register_plan
        >>> def simple_plan(conv, edge_index, edge_weight, n, dtype, device):
        ...     if conv.aggr != "sum" or conv.combine_root is not None:
        ...         return None
        ...     w = torch.ones(edge_index.size(1), dtype=dtype, device=device)
        ...     return SparseOperator(edge_index, w, n, dtype, device).mm
        >>> register_plan(SimpleConv, simple_plan)
        >>> x, ei = torch.randn(3, 2), torch.tensor([[0, 1], [1, 2]])
        >>> GDEConv(SimpleConv(), method="rk4", step_size=0.5)(x, ei).shape
        torch.Size([3, 2])
    """
    if not isinstance(layer_type, type) or not callable(plan):
        raise TypeError(f"register_plan takes a layer class and a callable, got "
                        f"{layer_type!r} and {type(plan).__name__}")
    _REGISTERED[layer_type] = plan


def _plans() -> Dict[type, Callable]:
    from torch_geometric.nn import ChebConv, GCNConv, GINConv, GraphConv, SAGEConv

    from .diffusion import LinearDiffusion
    return {GCNConv: _gcn_plan, SAGEConv: _sage_plan, GraphConv: _graph_conv_plan,
            GINConv: _gin_plan, ChebConv: _cheb_plan, LinearDiffusion: _diffusion_plan,
            **_REGISTERED}


def layer_plan(layer: Module, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
               dtype: torch.dtype, device: torch.device) -> Plan:
    """``x -> layer(x, edge_index[, edge_weight])`` on one graph, through the layer's fast plan
    where graphode has one (for fields that hold message-passing layers and precompute in their
    own ``graph_plan``)."""
    takes_weight = _accepts(layer, "edge_weight")
    weight = edge_weight if takes_weight else None
    if weight is None or not weight.requires_grad:
        make = _plans().get(type(layer)) or getattr(layer, "graph_plan", None)
        if make is not None:
            plan = make(layer, edge_index, weight, num_nodes, dtype, device) \
                if type(layer) in _plans() else make(edge_index, weight, num_nodes, dtype, device)
            if plan is not None:
                return plan
    return GraphVectorField._generic(layer, edge_index, weight, False)


# --------------------------------------------------------------------------- the field
class GraphVectorField(Module):
    r"""A vector field :math:`f(t, H; \mathcal{G})` built from message-passing layers.

    Args:
        layers: one layer, or a sequence of layers and activations applied in order. A layer
            whose ``forward`` takes ``edge_index`` receives the graph (and ``edge_weight`` if
            it accepts one, and ``t`` if it accepts one); any other module (an activation, a
            ``Linear``) receives the features alone.
        control: how the block input ``X`` enters the field: ``None``; ``"concat"``, the
            controlled GDE of Poli et al. (the field sees ``[H, X]``); or ``"add"`` (a source
            term, ``f(H) + X``).
        precompute: build sparse propagation operators once per solve for GCN, SAGE,
            GraphConv, GIN, Cheb and LinearDiffusion layers, and for any layer with a
            ``graph_plan(edge_index, edge_weight, num_nodes, dtype, device)`` method returning
            ``x -> f(x)`` (on by default; off calls each layer with ``edge_index`` at every
            evaluation).
    """

    def __init__(self, layers: Union[Module, Sequence[Module]], control: Optional[str] = None,
                 precompute: bool = True):
        super().__init__()
        if isinstance(layers, Module) and not isinstance(layers, (ModuleList, torch.nn.Sequential)):
            layers = [layers]
        self.layers = ModuleList(list(layers))
        if len(self.layers) == 0:
            raise ValueError("GraphVectorField needs at least one layer")
        if control not in (None, "concat", "add"):
            raise ValueError(f"control must be None, 'concat' or 'add', got {control!r}")
        self.control = control
        self.precompute = precompute
        self._graph_layer = [_is_graph_layer(m) for m in self.layers]
        self._takes_weight = [_accepts(m, "edge_weight") for m in self.layers]
        self._takes_time = [_accepts(m, "t") for m in self.layers]
        self._calls: List[Plan] = []
        self._control_input: Optional[Tensor] = None

    def reset_parameters(self) -> None:
        for m in self.layers:
            reset_parameters(m)

    def bind(self, edge_index: Tensor, edge_weight: Optional[Tensor], num_nodes: int,
             dtype: torch.dtype, device: torch.device, control_input: Optional[Tensor] = None
             ) -> "GraphVectorField":
        """Bind one graph for the coming solve; precompute what depends only on it.

        Returns a bound snapshot that shares this field's layers (and so its parameters):
        solve with it. A later ``bind`` (the same block on another graph before the backward
        pass) rebinds this field but not the snapshot, so the adjoint and checkpoint modes,
        which evaluate the field again in the backward pass, see the graph of their own
        forward. Solving with the field itself would be silently wrong then."""
        plans = _plans() if self.precompute else {}
        # A learned edge weight must stay in the autograd graph: no precomputation then.
        fixed = edge_weight is None or not edge_weight.requires_grad
        self._calls = []
        for layer, is_graph, takes_weight, takes_time in zip(
                self.layers, self._graph_layer, self._takes_weight, self._takes_time):
            plan = None
            if is_graph and fixed and not takes_time and self.precompute:
                weight = edge_weight if takes_weight else None
                if type(layer) in plans:
                    plan = plans[type(layer)](layer, edge_index, weight, num_nodes, dtype, device)
                elif callable(own := getattr(layer, "graph_plan", None)):
                    # a layer that precomputes for itself
                    plan = own(edge_index, weight, num_nodes, dtype, device)
            if plan is None and is_graph:
                plan = self._generic(layer, edge_index, edge_weight if takes_weight else None,
                                     takes_time)
            self._calls.append(plan if plan is not None else layer)
        if self.control is not None and control_input is None:
            raise ValueError(f"control={self.control!r} needs the control input: pass "
                             f"control_input to bind() (GDEConv passes the block's input)")
        self._control_input = control_input
        return copy.copy(self)

    @staticmethod
    def _generic(layer: Module, edge_index: Tensor, edge_weight: Optional[Tensor],
                 takes_time: bool) -> Callable:
        kwargs = {} if edge_weight is None else {"edge_weight": edge_weight}
        if takes_time:
            return lambda x, t: layer(x, edge_index, t=t, **kwargs)
        return lambda x: layer(x, edge_index, **kwargs)

    def jacobian_operator(self, t: Tensor, h: Tensor):
        """The field's :class:`~graphode.solvers.implicit.JacobianOperator` where it is known
        without differentiation (a single bound :class:`~graphode.nn.LinearDiffusion`, with
        or without an added source), else ``None``. The implicit methods solve their stage
        equations with it."""
        if len(self._calls) == 1 and isinstance(self._calls[0], _DiffusionPlan) \
                and self.control in (None, "add"):
            return self._calls[0].jacobian(h)
        return None

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        if not self._calls:
            raise RuntimeError("GraphVectorField is not bound to a graph: call bind() first "
                               "(GDEConv does this in its forward)")
        x, control = h, self._control_input
        if self.control == "concat" and control is not None:
            x = torch.cat([h, control], dim=-1)
        for call, takes_time in zip(self._calls, self._takes_time):
            x = call(x, t) if takes_time else call(x)
        if self.control == "add" and control is not None:
            x = x + control
        return x
