"""GDEConv: any PyG message-passing layer as the vector field of a continuous-depth block."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from ..api import _check_gradient_support, _check_positive, _check_tolerances, solve
from ..gradients import GRADIENT_MODES, Adjoint
from ..solvers.base import Solver, resolve_method
from ..solvers.compiled import compile_options
from ..solvers.integrate import SolverStats
from ..solvers.stabilized import RKC
from .field import GraphVectorField, channels_of
from .sparse import to_edge_index
from .validate import check_graph

__all__ = ["GDEConv", "SwitchingGDEConv", "with_graph_inputs", "solve_on_leaves"]


def _check_channels(layers: Sequence[Module], state: int, control: Optional[str]) -> None:
    """Raise if the field cannot map a state of ``state`` channels to itself."""
    known = [(m, c) for m in layers if (c := channels_of(m)) is not None]
    if not known:
        return
    first_in = state * 2 if control == "concat" else state
    for (a, (_, a_out)), (b, (b_in, _)) in zip(known, known[1:]):
        if a_out != b_in:
            raise ValueError(f"{a} outputs {a_out} channels but the next layer {b} takes {b_in}")
    (first, (cin, _)), (last, (_, cout)) = known[0], known[-1]
    if len(known) == 1 and control is None and cin != cout:
        raise ValueError(
            f"GDEConv needs a vector field that maps a state to itself, but {first} maps {cin} "
            f"channels to {cout}; use {type(first).__name__}({cin}, {cin}) (encode or decode "
            f"the features with a Linear layer outside the GDE)")
    if cout != state or (known[0][0] is layers[0] and cin != first_in):
        raise ValueError(
            f"the vector field must map {first_in} input channels to {state} output channels "
            f"(the state's), but {first} takes {cin} and {last} returns {cout}")


def with_graph_inputs(solver_kwargs: dict, gradient: str, field: Module,
                      *inputs: Optional[Tensor]) -> dict:
    """``solver_kwargs`` with ``adjoint_params`` that include the graph's learned inputs.

    The adjoint and checkpoint modes differentiate only what they are given, so a learned
    edge weight or a control input that requires a gradient goes in beside the field's
    parameters (autograd needs nothing)."""
    kwargs = dict(solver_kwargs)
    if gradient != "autograd":
        learned = [v for v in inputs if v is not None and v.requires_grad]
        kwargs["adjoint_params"] = [*kwargs.get("adjoint_params", field.parameters()), *learned]
    return kwargs


class _LeafInputs(torch.autograd.Function):
    """Runs ``run(*inputs)`` on leaf copies of its tensor inputs and passes their gradients
    back to the originals (see :func:`solve_on_leaves`)."""

    @staticmethod
    def forward(ctx, run, slots, *tensors):
        count = sum(slots)
        given = iter(tensors[:count])
        with torch.enable_grad():
            leaves = [next(given).detach().requires_grad_() if used else None for used in slots]
            ys = run(*leaves)
        ctx.ys, ctx.wanted = ys, [t for t in leaves if t is not None] + list(tensors[count:])
        return ys.detach()

    @staticmethod
    def backward(ctx, grad):
        ys, wanted = ctx.ys, ctx.wanted
        del ctx.ys
        needed = [t for t in wanted if t.requires_grad]
        found = iter(torch.autograd.grad(ys, needed, grad, allow_unused=True))
        return (None, None, *[next(found) if t.requires_grad else None for t in wanted])


def solve_on_leaves(run: Callable[..., Tensor], inputs: Sequence[Optional[Tensor]],
                    params: Sequence[Tensor]) -> Tensor:
    """``run(*inputs)``, a solve whose gradient mode differentiates ``inputs`` (every tensor the
    solve depends on: the initial state too) and ``params`` (given to it as
    ``adjoint_params``), made exact when an input is computed from ``params``.

    The adjoint and checkpoint modes take the vector-Jacobian product of the field with each
    of their ``adjoint_params``. When a learned edge weight is computed from the field's own
    parameters (GRAND-l's attention, say), that product would run on through the weight's
    history into the parameters, which the surrounding backward pass also reaches, or has
    already freed. Here the solve runs on leaf copies of ``inputs``; their gradients are
    handed to the originals, whose histories the surrounding backward then follows once."""
    slots = [t is not None and t.requires_grad for t in inputs]
    if not any(slots) or not torch.is_grad_enabled():
        return run(*inputs)
    fixed = [None if used else t for t, used in zip(inputs, slots)]

    def on_leaves(*leaves: Optional[Tensor]) -> Tensor:
        return run(*[leaf if used else t for leaf, t, used in zip(leaves, fixed, slots)])
    chosen = [t for t, used in zip(inputs, slots) if used]
    return _LeafInputs.apply(on_leaves, slots, *chosen,
                             *[p for p in params if p.requires_grad])


def _computed(*inputs: Optional[Tensor]) -> bool:
    """Whether a learned graph input is computed from other tensors (so it may depend on the
    field's parameters): :func:`solve_on_leaves` is needed then, and only then."""
    return any(v is not None and v.requires_grad and v.grad_fn is not None for v in inputs)


class GDEConv(Module):
    r"""A graph neural ODE block (Poli et al., `"Graph Neural Ordinary Differential Equations"
    <https://arxiv.org/abs/1911.07532>`_): the node features flow along

    .. math::
        \frac{d\mathbf{H}(t)}{dt} = f\big(t, \mathbf{H}(t); \mathcal{G}\big), \qquad
        \mathbf{H}(t_0) = \mathbf{X},

    and the layer returns :math:`\mathbf{H}(t_1)`. The vector field :math:`f` is a PyG
    message-passing layer (or a stack of layers and activations); the graph is bound once per
    forward and everything that depends only on it (GCN normalisation, self loops, mean
    aggregation, the Chebyshev Laplacian) is computed once per solve, not per evaluation.

    Args:
        field: a ``MessagePassing`` layer with equal input and output channels, a sequence of
            layers and activations, or any module with ``forward(x, edge_index, edge_weight)``
            (layers whose ``forward`` takes ``t`` receive the time: time-dependent fields).
        t_span: integration interval ``(t0, t1)``.
        method: solver (``"dopri5"``, ``"tsit5"``, ``"bosh3"``, ``"rk4"``, ``"euler"``, ...,
            ``"auto"`` for fields that may be stiff), a tableau or a solver object.
        rtol, atol: tolerances of adaptive methods.
        step_size: fixed step size (fixed-step solve with any method).
        gradient: ``"adjoint"`` (memory flat in the number of steps), ``"autograd"`` or
            ``"checkpoint"``. All three differentiate ``x``, learned edge weights and the
            field's parameters exactly; a field that draws random numbers (dropout) trains
            with ``"checkpoint"`` (its draws are replayed) or ``"autograd"``, and is refused
            under ``"adjoint"`` in training mode. A :class:`~graphode.gradients.Adjoint`
            object selects the adjoint with its own backward settings
            (``Adjoint(method="rk4", step_size=0.05)``, ``Adjoint(rtol=1e-5)``, ...).
        adjoint_seminorm: leave parameter adjoints out of the backward error norm (saves
            backward steps; Kidger et al., 2021).
        t_eval: optional output times in ``t_span``; the layer then returns the states at
            those times, shape ``(len(t_eval), N, C)``.
        control: ``"concat"`` for the controlled GDE of the paper (the field sees
            ``[H(t), X]`` and maps ``2C`` channels to ``C``); ``"add"`` adds ``X`` as a source
            term, ``dH/dt = f(H) + X``.
        augment: number of zero channels appended to the state (Augmented Neural ODEs,
            Dupont et al., 2019); the field maps ``C + augment`` channels to themselves.
        keep_augmented: return the augmented channels too.
        precompute: precompute graph operators once per solve (see
            :class:`GraphVectorField`).
        per_graph_steps: give every graph of a batch (the ``batch`` argument of ``forward``)
            its own adaptive step size and error control, so that a graph's output does not
            depend on its batch mates (adaptive methods with ``gradient="autograd"``).
        validate: check the graph at every forward before solving: dtypes and devices of
            ``x``, ``edge_index``, ``edge_weight``, ``batch`` and the field, the edge-weight
            length and the node-index range (one host synchronisation per forward). ``False``
            skips the checks, e.g. for a sync-free GPU loop over graphs known to be valid.
        **solver_kwargs: further keywords for :func:`graphode.solve` (``max_steps``,
            ``adjoint_method``, ``adjoint_rtol``, ...; ``compile=True`` or
            ``compile="reduce-overhead"`` compiles a fixed-step solve with
            ``gradient="autograd"``).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse adjacency ``adj_t``, optional edge weights
          :math:`(|\mathcal{E}|)`, optional batch vector :math:`(|\mathcal{V}|)`
        - **output:** node features :math:`(|\mathcal{V}|, C)`, or
          :math:`(T, |\mathcal{V}|, C)` with ``t_eval``

    Example::

        >>> import networkx as nx, torch
        >>> from torch_geometric.nn import GCNConv
        >>> from torch_geometric.utils import from_networkx
        >>> from graphode.nn import GDEConv
        >>> data = from_networkx(nx.karate_club_graph())
        >>> x = torch.randn(data.num_nodes, 16)
        >>> gde = GDEConv(GCNConv(16, 16), t_span=(0.0, 1.0), method="dopri5")
        >>> gde(x, data.edge_index).shape
        torch.Size([34, 16])
        >>> gde.stats.nfe > 0
        True
    """

    def __init__(self, field: Union[Module, Sequence[Module]],
                 t_span: Tuple[float, float] = (0.0, 1.0),
                 method: Union[str, Solver] = "dopri5",
                 rtol: float = 1e-3, atol: float = 1e-4, step_size: Optional[float] = None,
                 gradient: Union[str, Adjoint] = "adjoint", adjoint_seminorm: bool = True,
                 t_eval: Optional[Sequence[float]] = None, control: Optional[str] = None,
                 augment: int = 0, keep_augmented: bool = False, precompute: bool = True,
                 per_graph_steps: bool = False, validate: bool = True, **solver_kwargs):
        super().__init__()
        self.field = field if isinstance(field, GraphVectorField) else GraphVectorField(
            field, control=control, precompute=precompute)
        t0, t1 = (float(v) for v in t_span)
        if t0 == t1:
            raise ValueError(f"t_span must have two different times, got {t_span}")
        self.t_span = (t0, t1)
        if t_eval is not None:
            t_eval = [float(v) for v in t_eval]
            lo, hi = min(t0, t1), max(t0, t1)
            if not t_eval or any(not lo <= v <= hi for v in t_eval):
                raise ValueError(f"t_eval must be non-empty and lie within t_span={t_span}, "
                                 f"got {t_eval}")
            direction = 1.0 if t1 > t0 else -1.0
            if any(direction * (b - a) <= 0 for a, b in zip(t_eval, t_eval[1:])):
                raise ValueError(f"t_eval must run from t_span[0] towards t_span[1] without "
                                 f"repeats, got {t_eval}; sort it and remove repeated times")
        self.t_eval = t_eval
        if not isinstance(augment, int) or augment < 0:
            raise ValueError(f"augment must be a non-negative int, got {augment!r}")
        self.augment, self.keep_augmented = augment, keep_augmented
        self.method, self.rtol, self.atol, self.step_size = method, rtol, atol, step_size
        if isinstance(gradient, Adjoint):
            # the adjoint's own settings become solve()'s keywords
            if gradient.params is not None:
                raise ValueError("GDEConv differentiates its own parameters (and learned edge "
                                 "weights, control inputs): leave Adjoint(params=...) unset")
            settings = {k: v for k, v in gradient.solve_kwargs().items()
                        if v is not None and k not in ("adjoint_seminorm", "adjoint_params")}
            twice = sorted(set(settings) & set(solver_kwargs))
            if twice:
                raise ValueError(f"{', '.join(twice)} given both as keywords and through "
                                 f"gradient=Adjoint(...): set them on the Adjoint only")
            solver_kwargs = {**solver_kwargs, **settings}
            adjoint_seminorm = gradient.seminorm
            gradient = "adjoint"
        self.gradient, self.adjoint_seminorm = gradient, adjoint_seminorm
        self.solver_kwargs = solver_kwargs
        self.per_graph_steps = per_graph_steps
        self.validate = validate
        tableau, solver = resolve_method(method)
        adaptive = solver.adaptive if solver is not None else tableau.adaptive
        per_graph_solver = solver is None or (isinstance(solver, RKC) and getattr(
            solver, "stiff_method", "rkc") == "rkc")
        if per_graph_steps and (step_size is not None or not adaptive or not per_graph_solver
                                or gradient != "autograd"):
            raise ValueError(
                f"per_graph_steps=True needs an adaptive method (dopri5, tsit5, bosh3, or "
                f"'rkc'/'auto' for stiff graphs) without "
                f"step_size and gradient='autograd', got method={method!r}, "
                f"step_size={step_size!r}, gradient={gradient!r}")
        self.stats = SolverStats()
        # Fail at construction, not mid-training, for settings solve() would reject.
        _check_gradient_support(solver, gradient, None, solver_kwargs.get("compile"))
        _check_tolerances(rtol, atol)
        _check_positive("step_size", step_size)
        if gradient not in GRADIENT_MODES:
            raise ValueError(f"unknown gradient mode {gradient!r}; valid modes are: "
                             f"{', '.join(GRADIENT_MODES)}")
        if compile_options(solver_kwargs.get("compile")) is not None and (
                gradient != "autograd" or per_graph_steps
                or (step_size is None and adaptive)):
            raise ValueError(
                f"compile needs a fixed-step solve with gradient='autograd': pass "
                f"step_size=... (or method='rk4' and similar) and gradient='autograd', got "
                f"method={method!r}, step_size={step_size!r}, gradient={gradient!r}"
                f"{', per_graph_steps=True' if per_graph_steps else ''}")
        self._channels_checked: Optional[int] = None
        layers = list(self.field.layers)
        first = channels_of(layers[0])
        if first is not None:
            state = first[0] // 2 if self.field.control == "concat" else first[0]
            _check_channels(layers, state, self.field.control)

    def reset_parameters(self) -> None:
        self.field.reset_parameters()

    @property
    def last_solves(self) -> List[SolverStats]:
        """The statistics of the last forward's solve (see :class:`SolverStatsRecorder`)."""
        return [self.stats]

    def _times(self) -> list:
        t0, t1 = self.t_span
        if self.t_eval is None:
            return [t0, t1]
        return self.t_eval if self.t_eval[0] == t0 else [t0] + self.t_eval

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, control_input: Optional[Tensor] = None
                ) -> Tensor:
        """``control_input``: with ``control="add"`` or ``"concat"``, the input the field is
        controlled by (a source term other than ``x``, such as GRAND++'s); ``x`` by default."""
        if x.dim() != 2:
            raise ValueError(f"x must be node features of shape (num_nodes, channels), got "
                             f"{tuple(x.shape)}")
        if control_input is not None:
            if self.field.control is None:
                raise ValueError("control_input needs a block built with control='add' or "
                                 "'concat'")
            if control_input.shape != x.shape:
                raise ValueError(f"control_input must have the shape of x {tuple(x.shape)}, "
                                 f"got {tuple(control_input.shape)}")
        control = (x if control_input is None else control_input) if self.field.control \
            else None
        edge_index, edge_weight = to_edge_index(edge_index, edge_weight)
        h0 = self._initial(x, edge_index, edge_weight, batch)
        times = self._times()
        ys = self._flow(h0, edge_index, edge_weight, batch, control, times)
        return self._outputs(ys, x, times)

    def _initial(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor],
                 batch: Optional[Tensor]) -> Tensor:
        """Check the channels and the graph; the initial state (augmented with zeros)."""
        state = x.size(-1) + self.augment
        if self._channels_checked != state:
            _check_channels(list(self.field.layers), state, self.field.control)
            self._channels_checked = state
        if self.validate:
            check_graph(x, edge_index, edge_weight, batch, [self.field])
        if self.augment:
            return torch.cat([x, x.new_zeros(x.size(0), self.augment)], dim=-1)
        return x

    def _flow(self, h0: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor],
              batch: Optional[Tensor], control: Optional[Tensor], times: List[float]) -> Tensor:
        """The states at ``times`` of the flow on one graph."""
        def run(h0: Tensor, weight: Optional[Tensor], control: Optional[Tensor]) -> Tensor:
            field = self.field.bind(edge_index, weight, h0.size(0), h0.dtype, h0.device,
                                    control_input=control)
            extra = with_graph_inputs(self.solver_kwargs, self.gradient, field, weight, control)
            if self.per_graph_steps:
                extra["per_graph"] = batch if batch is not None else \
                    torch.zeros(h0.size(0), dtype=torch.long, device=h0.device)
            sol = solve(field, h0, times, method=self.method, rtol=self.rtol,
                        atol=self.atol, step_size=self.step_size, gradient=self.gradient,
                        adjoint_seminorm=self.adjoint_seminorm, **extra)
            self.stats = sol.stats
            return sol.ys
        if self.gradient == "autograd" or not _computed(edge_weight, control):
            return run(h0, edge_weight, control)
        # learned inputs computed from the field's parameters stay exact
        return solve_on_leaves(run, [h0, edge_weight, control], list(self.field.parameters()))

    def _outputs(self, ys: Tensor, x: Tensor, times: List[float]) -> Tensor:
        if self.t_eval is not None and self.t_eval[0] != times[0]:
            ys = ys[1:]
        if self.augment and not self.keep_augmented:
            ys = ys[..., : x.size(-1)]
        return ys if self.t_eval is not None else ys[-1]

    def __repr__(self) -> str:
        layers = list(self.field.layers)
        inner = repr(layers[0]) if len(layers) == 1 else "[" + ", ".join(map(repr, layers)) + "]"
        extra = "" if self.gradient == "adjoint" else f", gradient='{self.gradient}'"
        return f"{type(self).__name__}({inner}, method='{self.method}'{extra})"


class SwitchingGDEConv(GDEConv):
    r"""A graph neural ODE block on a graph that changes in time: piecewise constant, the
    :math:`k`-th graph in force from ``switch_times[k - 1]`` to ``switch_times[k]``,

    .. math::
        \frac{d\mathbf{H}(t)}{dt} = f\big(t, \mathbf{H}(t); \mathcal{G}_k\big), \qquad
        t \in [s_{k-1}, s_k),

    over the block's ``t_span`` (``s_0 = t_0`` and the last segment ends at ``t_1``). The solve
    restarts at every switch: the graph is bound anew (its normalisation computed once per
    segment) and an adaptive method picks a fresh first step, so no step straddles a
    discontinuity of the field. The state carries over; gradients flow through every segment
    in every gradient mode. Takes :class:`GDEConv`'s arguments (``t_eval`` included: outputs
    at times in any segment). Nodes stay the same across graphs; only edges change (for
    varying node sets, use separate blocks).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, ``graphs``: a sequence of
          ``edge_index`` :math:`(2, |\mathcal{E}_k|)` or ``(edge_index, edge_weight)`` pairs,
          ``switch_times``: ``len(graphs) - 1`` increasing times strictly inside ``t_span``
        - **output:** as :class:`GDEConv`
    """

    def forward(  # type: ignore[override]  # a sequence of graphs in place of one
            self, x: Tensor, graphs: Sequence[Union[Tensor, Tuple[Tensor, Optional[Tensor]]]],
            switch_times: Sequence[float], batch: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"x must be node features of shape (num_nodes, channels), got "
                             f"{tuple(x.shape)}")
        if self.field.control:
            raise ValueError("SwitchingGDEConv does not take control='add' or 'concat' blocks")
        pairs = [g if isinstance(g, (tuple, list)) else (g, None) for g in graphs]
        switches = [float(s) for s in switch_times]
        t0, t1 = self.t_span
        if not pairs:
            raise ValueError("graphs must hold at least one graph")
        if len(switches) != len(pairs) - 1:
            raise ValueError(f"switch_times must hold one time fewer than graphs (the times "
                             f"between them): {len(pairs)} graphs need {len(pairs) - 1} "
                             f"switch times, got {len(switches)}")
        lo, hi = min(t0, t1), max(t0, t1)
        ordered = switches == sorted(switches, reverse=t1 < t0) and len(set(switches)) == \
            len(switches)
        if not ordered or any(not lo < s < hi for s in switches):
            raise ValueError(f"switch_times must run strictly inside t_span {self.t_span}, "
                             f"in its direction, without repeats; got {switches}")
        pairs = [to_edge_index(ei, ew) for ei, ew in pairs]
        h = self._initial(x, *pairs[0], batch)
        for ei, ew in pairs[1:]:  # every graph checked before the first solve
            self._initial(x, ei, ew, batch)
        times = self._times()
        bounds = [t0, *switches, t1]
        forward = t1 > t0
        states, total = {times[0]: h}, SolverStats()
        for k, (ei, ew) in enumerate(pairs):
            a, b = bounds[k], bounds[k + 1]
            inside = [t for t in times if (a < t < b if forward else b < t < a)]
            ys = self._flow(h, ei, ew, batch, None, [a, *inside, b])
            total = total + self.stats
            states.update(zip(inside, ys[1:-1]))
            h = states[b] = ys[-1]
        self.stats = total
        ys = torch.stack([states[t] for t in times])
        return self._outputs(ys, x, times)
