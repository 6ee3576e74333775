"""Solving until an event: :func:`odeint_event`, as torchdiffeq's.

The solve runs until ``event_fn(t, y)`` first changes sign, the crossing is located on the
step's interpolant, and the event time carries the gradient the implicit function theorem
gives: at the event ``g(t*, y(t*; theta), theta) = 0``, so ``dt*/dtheta = -(dg/dtheta) /
(dg/dt)`` with ``dg/dt = dg/dt|_y + dg/dy . f(t*, y*)``; the state at the event moves with it,
``dy*/dtheta += f(t*, y*) dt*/dtheta``.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor

from .api import _Field, _run
from .compat import State, _config, _flatten_state, _unflatten, odeint
from .solvers.integrate import Event, SolverStats
from .solvers.per_graph import GraphEvent, graph_index, integrate_per_graph

__all__ = ["odeint_event"]


def odeint_event(func: Callable, y0: State, t0: Any, *, event_fn: Callable[[Tensor, State], Tensor],
                 reverse_time: bool = False, odeint_interface: Optional[Callable] = None,
                 rtol: float = 1e-7, atol: float = 1e-9, method: Optional[str] = None,
                 options: Optional[dict] = None, per_graph: Optional[Tensor] = None
                 ) -> Tuple[Tensor, State]:
    """Solve from ``t0`` until ``event_fn(t, y)`` changes sign; return ``(event_t, solution)``.

    Same signature and results as ``torchdiffeq.odeint_event``: ``solution`` stacks the state
    at ``t0`` and at the event (shape ``(2, *y0.shape)``, or a tuple for tuple states);
    ``event_fn`` may return several events, and the first to change sign stops the solve;
    ``reverse_time=True`` solves backward in time. The event is located to ``atol`` in time.
    Gradients flow by autograd to ``y0``, the field's parameters and ``event_fn``'s, through
    the event time as well (see the module). Adaptive explicit Runge-Kutta methods only
    (``dopri5`` by default).

    ``per_graph`` (a PyG ``Batch.batch`` or ``Batch.ptr`` for a node-major ``y0``) gives every
    graph of a batch its own step control and its own event: ``event_fn(t, y)`` then receives
    the graphs' times, shape ``(G,)``, and the batched state, and returns one value per graph,
    ``(G,)`` or ``(G, k)`` (a segment reduction over the graph's nodes, e.g.
    ``torch_geometric.utils.scatter(y.sum(-1), batch, reduce="mean")``); each graph stops at
    its own first crossing, ``event_t`` has shape ``(G,)`` and ``solution[1]`` holds every
    graph's state at its own event, equal to solving that graph alone.

    Raises:
        ValueError: for a fixed-grid or non-Runge-Kutta method, ``odeint_interface`` other
            than :func:`graphode.odeint`, a ``t0`` that requires grad, or an event function
            that is zero at ``t0``.
        SolveError: when no event happens within ``max_num_steps`` steps (an option).
    """
    if odeint_interface not in (None, odeint):
        raise ValueError("odeint_event supports odeint_interface=graphode.odeint (gradients by "
                         "autograd) only; the adjoint through an event time is not implemented")
    t0 = torch.as_tensor(t0)
    if t0.numel() != 1:
        raise ValueError(f"t0 must be a scalar, got shape {tuple(t0.shape)}")
    if t0.requires_grad and torch.is_grad_enabled():
        raise ValueError("odeint_event does not differentiate with respect to t0: pass a t0 "
                         "without requires_grad")
    if per_graph is not None:
        return _per_graph_event(func, y0, t0, event_fn, reverse_time, rtol, atol, method,
                                options, per_graph)
    flat, shapes = _flatten_state(y0)
    field = func if shapes is None else shapes.field(func)
    event = event_fn if shapes is None else (lambda t, y: event_fn(t, shapes.split(y)))
    start = float(t0)
    direction = -1.0 if reverse_time else 1.0
    values = [start, start + direction]  # torchdiffeq's nominal end; the solve runs past it
    config = _config(method, rtol, atol, options, values, func, y0,
                     torch.tensor(values, dtype=torch.float64), shapes)
    if config.solver is not None or config.fixed:
        raise ValueError(f"odeint_event needs an adaptive explicit Runge-Kutta method (dopri5, "
                         f"tsit5, bosh3, dopri8, ...), got method={config.name!r}")
    locator = Event(event, tol=config.atol)
    config = replace(config, event=locator)
    ts = torch.tensor([start, start + direction * math.inf], dtype=torch.float64,
                      device=flat.device)
    ys, _ = _run(field, flat, ts, [start, start + direction * math.inf], config, "autograd",
                 None, None, False, func)
    assert locator.t is not None  # the solve only ends early at an event
    event_t, y_event = _reroute(field, locator, ys[-1], flat)
    solution = torch.stack([ys[0], y_event])
    return event_t.to(t0.dtype if t0.is_floating_point() else flat.dtype).to(t0.device), \
        _unflatten(solution, shapes)


def _per_graph_event(func: Callable, y0: State, t0: Tensor, event_fn: Callable,
                     reverse_time: bool, rtol: float, atol: float, method: Optional[str],
                     options: Optional[dict], batch: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`odeint_event` with one step control and one event per graph of a batch."""
    if not isinstance(y0, Tensor) or y0.dim() < 1:
        raise ValueError("per_graph needs a node-major state tensor of shape (num_nodes, ...)")
    start = float(t0)
    direction = -1.0 if reverse_time else 1.0
    values = [start, start + direction]
    config = _config(method, rtol, atol, options, values, func, y0,
                     torch.tensor(values, dtype=torch.float64), None)
    if config.solver is not None or config.fixed:
        raise ValueError(f"odeint_event needs an adaptive explicit Runge-Kutta method (dopri5, "
                         f"tsit5, bosh3, dopri8, ...), got method={config.name!r}")
    batch, _ = graph_index(batch.to(y0.device) if isinstance(batch, Tensor) else batch,
                           y0.size(0))
    field = _Field(func, y0)
    locator = GraphEvent(event_fn, tol=config.atol)
    ys = integrate_per_graph(field, y0, [start, start + direction * math.inf], batch, config,
                             SolverStats(), event=locator)
    assert locator.t is not None and not bool(torch.isnan(locator.t).any())
    event_t, y_event = _reroute_per_graph(field, locator, ys[-1], batch)
    dtype = t0.dtype if t0.is_floating_point() else y0.dtype
    return event_t.to(dtype).to(t0.device), torch.stack([ys[0], y_event])


def _reroute_per_graph(field: Callable, locator: GraphEvent, y_star: Tensor, batch: Tensor
                       ) -> Tuple[Tensor, Tensor]:
    """Each graph's event time and state with the implicit-function-theorem gradient: the
    per-graph form of :func:`_reroute` (every graph's event depends on its own nodes)."""
    assert locator.t is not None
    t_star = locator.t.to(y_star.dtype)
    if not (torch.is_grad_enabled() and y_star.requires_grad) and not _has_params(locator):
        return t_star, y_star
    shape = (-1,) + (1,) * (y_star.dim() - 1)
    node_t = t_star[batch].unsqueeze(-1)
    with torch.enable_grad():
        t_var = t_star.clone().requires_grad_(True)
        y_var = y_star.detach().requires_grad_(True)
        f_star = field(node_t, y_var.detach())
        dg_t, dg_y = torch.autograd.grad(locator.value(t_var, y_var).sum(), (t_var, y_var),
                                         allow_unused=True)
    dgdt = torch.zeros_like(t_star) if dg_t is None else dg_t.detach()
    if dg_y is not None:
        along = (dg_y * f_star.detach()).reshape(y_star.size(0), -1).sum(-1)
        dgdt = dgdt.index_add(0, batch, along)
    g = locator.value(t_star, y_star)
    if not g.requires_grad:
        return t_star, y_star
    event_t = t_star - (g - g.detach()) / dgdt
    return event_t, y_star + f_star.detach() * (event_t - t_star)[batch].view(shape)


def _reroute(field: Callable, locator: Event, y_star: Tensor, like: Tensor
             ) -> Tuple[Tensor, Tensor]:
    """The event time and state with the implicit-function-theorem gradient attached."""
    assert locator.t is not None
    t_star = torch.full((), locator.t, dtype=like.dtype, device=like.device)
    if not (torch.is_grad_enabled() and y_star.requires_grad) and not _has_params(locator):
        return t_star, y_star
    with torch.enable_grad():
        t_var = t_star.clone().requires_grad_(True)
        y_var = y_star.detach().requires_grad_(True)
        f_star = field(t_var.detach(), y_var.detach())
        dg_t, dg_y = torch.autograd.grad(locator.value(t_var, y_var), (t_var, y_var),
                                         allow_unused=True)
    dgdt = (dg_t if dg_t is not None else 0.0) + (
        (dg_y * f_star.detach()).sum() if dg_y is not None else 0.0)
    g = locator.value(t_star, y_star)
    if not isinstance(dgdt, Tensor) or not g.requires_grad:
        return t_star, y_star
    event_t = t_star - (g - g.detach()) / dgdt.detach()
    return event_t, y_star + f_star.detach() * (event_t - t_star)


def _has_params(locator: Union[Event, GraphEvent]) -> bool:
    fn = locator.fn
    return isinstance(fn, torch.nn.Module) and any(p.requires_grad for p in fn.parameters())
