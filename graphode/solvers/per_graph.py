"""Adaptive step control per graph of a disjoint batch.

A PyG ``Batch`` stacks many small graphs into one state. With one shared step, the stiffest
graph sets the step for all and every graph's error depends on its batch mates. Here each graph
``g`` keeps its own time ``t_g``, step ``h_g`` and error control: the embedded error is reduced
per graph with segment sums over the node-to-graph vector, a graph whose step is rejected keeps
its state while others advance, and a graph that has reached the end stops advancing. Every
quantity of graph ``g`` is computed from its own nodes only, so its solution does not depend on
which graphs share its batch. The loop synchronises with the host once per step (to learn
whether any graph is still running).

The stages are the shared loops' own :meth:`RungeKutta.step
<graphode.solvers.rk.RungeKutta.step>`, with the step size a per-node tensor, and the step
sizes come from the shared :class:`~graphode.solvers.controllers.PIController`
(:meth:`~graphode.solvers.controllers.PIController.next_steps`, its rule elementwise).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .integrate import IntegrationConfig, SolveError, SolverStats
from .rk import RungeKutta, combine

__all__ = ["integrate_per_graph", "graph_index", "GraphEvent"]

Func = Callable[[Tensor, Tensor], Tensor]


def graph_index(batch: Tensor, num_nodes: int) -> Tuple[Tensor, int]:
    """``(batch vector, number of graphs)`` from a node-to-graph vector or a PyG ``ptr``."""
    if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.is_floating_point():
        raise ValueError("batch must be a 1-D integer tensor: the node-to-graph vector "
                         "(Batch.batch) or the graph offsets (Batch.ptr)")
    if batch.numel() == num_nodes:
        if num_nodes and (bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) < 0):
            raise ValueError("batch must be sorted with graph ids from 0, as in a PyG Batch")
        return batch, (int(batch[-1]) + 1 if num_nodes else 0)
    if int(batch[0]) != 0 or int(batch[-1]) != num_nodes or bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"batch has {batch.numel()} entries for a state of {num_nodes} nodes: "
                         f"pass Batch.batch ({num_nodes} entries) or Batch.ptr (graphs + 1 "
                         f"offsets from 0 to {num_nodes})")
    counts = batch[1:] - batch[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=batch.device), counts), \
        counts.numel()


class _Segments:
    """Per-graph RMS norms of node-major ``(N, ...)`` tensors."""

    def __init__(self, batch: Tensor, num_graphs: int, width: int, dtype: torch.dtype):
        self.batch, self.num_graphs = batch, num_graphs
        count = torch.zeros(num_graphs, dtype=dtype, device=batch.device)
        count.index_add_(0, batch, torch.ones_like(batch, dtype=dtype))
        self.size = (count * width).clamp(min=1)

    def rms(self, x: Tensor) -> Tensor:
        sq = x.reshape(x.size(0), -1).square().sum(-1)
        total = torch.zeros(self.num_graphs, dtype=sq.dtype, device=sq.device).index_add_(0, self.batch, sq)
        return (total / self.size).sqrt()

    def nodes(self, per_graph: Tensor, like: Tensor) -> Tensor:
        """A per-graph value broadcast to every node, shaped to multiply ``like``."""
        return per_graph[self.batch].view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def _initial_steps(f: Func, t0: Tensor, y0: Tensor, f0: Tensor, seg: _Segments, order: int,
                   rtol: float, atol: float, direction: float) -> Tensor:
    """Hairer's starting step, per graph (one extra evaluation for the whole batch)."""
    scale = y0.abs() * rtol + atol
    d0, d1 = seg.rms(y0 / scale), seg.rms(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    y1 = y0 + seg.nodes(direction * h0, y0) * f0
    f1 = f(t0 + direction * h0, y1)
    d2 = seg.rms((f1 - f0) / scale) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6),
                     (0.01 / big.clamp(min=1e-300)) ** (1.0 / order))
    return direction * torch.minimum(100.0 * h0, h1)


class GraphEvent:
    """Terminal events per graph: graph ``g`` stops where ``fn(t, y)[g]`` first changes sign.

    ``fn`` receives the graphs' times ``(G,)`` and the batched state ``(N, ...)`` and returns
    ``(G,)`` or ``(G, k)`` values (``k`` events per graph, the first to change sign stops the
    graph); each graph's values must depend on its own nodes and time only (a segment
    reduction over ``batch``), as the field does. A crossing is located by bisection on the
    step's interpolant (the tableau's own, else cubic Hermite), per graph, to ``tol`` in time; ``t`` holds the graphs'
    event times afterwards."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], tol: float):
        self.fn, self.tol = fn, tol
        self.sign0: Optional[Tensor] = None
        self.t: Optional[Tensor] = None

    def value(self, t: Tensor, y: Tensor) -> Tensor:
        """One number per graph, positive before its first crossing."""
        assert self.sign0 is not None
        out = self.fn(t.to(y.dtype), y)
        return (out.reshape(self.sign0.shape) * self.sign0).min(-1).values

    def start(self, t: Tensor, y: Tensor) -> None:
        num_graphs = t.numel()
        with torch.no_grad():
            value = self.fn(t.to(y.dtype), y)
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError("event_fn must return a floating-point tensor")
        if value.dim() == 0 or value.size(0) != num_graphs or value.dim() > 2:
            raise ValueError(f"with per_graph, event_fn(t, y) receives the graphs' times "
                             f"(shape ({num_graphs},)) and must return one value per graph, "
                             f"shape ({num_graphs},) or ({num_graphs}, k), got "
                             f"{tuple(value.shape)}")
        self.sign0 = torch.sign(value.detach()).reshape(num_graphs, -1)
        zero = (self.sign0 == 0).any(-1)
        if bool(zero.any()):
            g = int(zero.float().argmax())
            raise ValueError(f"event_fn is zero at the initial time for graph {g}: an event "
                             f"needs a non-zero value to start from")
        self.t = torch.full((num_graphs,), math.nan, dtype=torch.float64, device=t.device)

    def locate(self, crossed: Tensor, t0: Tensor, step: Tensor, seg: "_Segments",
               interp: Callable[[Tensor], Tensor]) -> Tensor:
        """The crossed graphs' states at their events (other graphs' rows are arbitrary);
        their event times go to :attr:`t`. Every graph bisects its own step only."""
        lo = torch.zeros_like(t0)
        hi = torch.ones_like(t0)
        active = crossed.clone()
        with torch.no_grad():
            while bool(active.any()):
                mid = 0.5 * (lo + hi)
                t_mid = t0 + mid * step
                above = self.value(t_mid, interp(mid).detach()) > 0
                lo = torch.where(active & above, mid, lo)
                hi = torch.where(active & ~above, mid, hi)
                nxt = t0 + 0.5 * (lo + hi) * step
                active = active & ((hi - lo) * step.abs() > self.tol) & (
                    nxt != t0 + lo * step) & (nxt != t0 + hi * step)
        theta = 0.5 * (lo + hi)
        assert self.t is not None
        self.t = torch.where(crossed, t0 + theta * step, self.t)
        return interp(theta)


def _stage_time(rk: RungeKutta, t: Tensor, step: Tensor, i: int) -> Tensor:
    """Every graph's time at stage ``i`` of its own step."""
    return t + rk.c[i] * step


def _dense(rk: RungeKutta, seg: "_Segments", y0: Tensor, ks: List[Tensor], h: Tensor,
           theta: Tensor) -> Tensor:
    """The tableau's own continuous extension with one ``theta`` and step ``h`` per graph."""
    assert rk.dense is not None
    out = y0
    for k, row in zip(ks, rk.dense):
        if any(c != 0.0 for c in row):
            weight, power = torch.zeros_like(theta), theta
            for c in row:
                weight, power = weight + c * power, power * theta
            out = out + k * seg.nodes(h * weight, y0)
    return out


def _hermite(seg: "_Segments", y0: Tensor, y1: Tensor, f0: Tensor, f1: Tensor, h: Tensor,
             theta: Tensor) -> Tensor:
    """Cubic Hermite interpolation with one ``theta`` and step ``h`` per graph."""
    t2, t3 = theta * theta, theta * theta * theta
    c = [seg.nodes(x, y0) for x in (1.0 - 3.0 * t2 + 2.0 * t3, 3.0 * t2 - 2.0 * t3,
                                     h * (theta - 2.0 * t2 + t3), h * (t3 - t2))]
    return y0 * c[0] + y1 * c[1] + f0 * c[2] + f1 * c[3]


def integrate_per_graph(func: Func, y0: Tensor, times: Sequence[float], batch: Tensor,
                        config: IntegrationConfig, stats: SolverStats,
                        event: Optional[GraphEvent] = None) -> List[Tensor]:
    """Integrate ``dy/dt = func(t, y)`` with one adaptive step size per graph.

    Args:
        func: the field; it receives ``t`` of shape ``(N, 1)``, each node's own time.
        y0: node-major state ``(N, ...)``.
        times: output times shared by all graphs; every graph lands on each exactly.
        batch: the node-to-graph vector (sorted, as ``Batch.batch``) or ``Batch.ptr``.
        config: an adaptive configuration (I/PI controller settings are taken from it; the
            norm is the per-graph RMS).
        stats: counters; ``nfe`` counts batched evaluations, steps count graph-steps.
        event: terminal events per graph (:class:`GraphEvent`): a graph stops at its first
            crossing, and the last output holds each graph's state there.

    Returns:
        the states at ``times``, each of shape ``y0.shape``.
    """
    if config.fixed:
        raise ValueError("per-graph step control is for adaptive methods: drop step_size/grid "
                         "(a fixed grid is already the same for every graph)")
    if config.norm is not None or config.step_t or config.jump_t:
        raise ValueError("per-graph step control does not take norm, step_t or jump_t")
    batch, num_graphs = graph_index(batch, y0.size(0))
    rk = RungeKutta(config.tableau)
    controller = config.controller()
    order = config.order()
    weights = rk.e  # the embedded error weights, resolved once per solve
    if weights is None or controller.beta1 is None:
        raise ValueError(f"per-graph step control needs an adaptive method with an error "
                         f"estimate, not {config.tableau.name!r}")
    seg = _Segments(batch, num_graphs, int(y0[0].numel()) if y0.size(0) else 1, y0.dtype)
    dev, f64 = y0.device, torch.float64
    direction = math.copysign(1.0, times[-1] - times[0])
    grid_t = torch.tensor([float(s) for s in times], dtype=f64, device=dev)

    def f(t_graph: Tensor, y: Tensor) -> Tensor:
        stats.nfe += 1
        return func(t_graph[batch].to(y.dtype).unsqueeze(-1), y)

    t = torch.full((num_graphs,), float(times[0]), dtype=f64, device=dev)
    y, k1 = y0, f(t, y0)
    if event is not None:
        event.start(t, y0)
    if config.first_step is not None:
        h = torch.full_like(t, direction * abs(config.first_step))
    else:
        with torch.no_grad():
            h = _initial_steps(f, t, y0.detach(), k1.detach(), seg, order, config.rtol,
                               config.atol, direction)
    h = direction * h.abs().clamp(max=controller.max_step)
    ys = [y0] + [y0] * (len(times) - 1)
    target = torch.ones(num_graphs, dtype=torch.long, device=dev)  # next output per graph
    previous = torch.full_like(t, 1e-4)  # the PI controller's last accepted ratio, per graph
    accepted_total = torch.zeros((), dtype=torch.long, device=dev)
    tried_total = torch.zeros((), dtype=torch.long, device=dev)
    bad = torch.zeros(num_graphs, dtype=torch.bool, device=dev)
    last = len(times) - 1
    for attempt in range(config.max_steps + 1):
        running = target <= last
        goal = grid_t[target.clamp(max=last)]
        landing = running & (direction * (t + h * (1.0 + 1e-10) - goal) >= 0)
        step = torch.where(landing, goal - t, h)
        step = torch.where(running, step, torch.zeros_like(step))
        too_small = running & ((step.abs() < controller.min_step) | (t + step == t))
        # The one synchronisation of a step: is any graph running, stuck or non-finite?
        more, stuck, broken = torch.stack([running.any(), too_small.any(), bad.any()]).tolist()
        if broken:
            g = int(bad.float().argmax())
            raise SolveError(f"the state of graph {g} became non-finite (NaN or inf) in the step "
                             f"from t={float(t[g]):.6g}: lower the tolerances or check the field "
                             f"for overflow", float(t[g]), float(h[g]), ys[:int(target.min())])
        if not more:
            break
        if stuck or attempt == config.max_steps:
            g = int(too_small.float().argmax()) if stuck else int(running.float().argmax())
            why = (f"step size underflow for graph {g}" if stuck else
                   f"max_steps={config.max_steps} exceeded (graph {g} still running)")
            raise SolveError(f"{why} at t={float(t[g]):.6g}, step {float(step[g]):.3g}: loosen "
                             f"rtol/atol, raise max_steps, or check that graph for stiffness",
                             float(t[g]), float(step[g]), ys[:int(target.min())])
        h_node = seg.nodes(step, y)
        y_start, k_start, t_start = y, k1, t
        # the shared loops' Runge-Kutta step, with one step size per graph
        y1, _, ks = rk.step(f, partial(_stage_time, rk, t, step), y, k1, h_node,
                            with_error=False)
        # Step sizes are not differentiated (as in every adaptive solver): the error control
        # works on detached values, which also keeps sqrt(0) out of the backward pass.
        with torch.no_grad():
            error = combine(None, h_node, weights, [k.detach() for k in ks])
            scale = torch.maximum(y.abs(), y1.abs()) * config.rtol + config.atol
            ratio = seg.rms(error / scale).to(f64)
        ratio = torch.where(running, ratio, torch.zeros_like(ratio))
        if config.check_finite:
            bad = running & ~torch.isfinite(ratio)
        accepted = running & (ratio <= 1.0)
        accepted_total = accepted_total + accepted.sum()
        tried_total = tried_total + running.sum()
        keep = seg.nodes(accepted, y).bool()
        y = torch.where(keep, y1, y)
        t = torch.where(accepted, torch.where(landing, goal, t + step), t)
        arrived = accepted & landing
        for j in range(1, len(times)):
            here = seg.nodes(arrived & (target == j), y).bool()
            ys[j] = torch.where(here, y1, ys[j])
        target = target + arrived.long()
        k1 = torch.where(keep, ks[-1], k1) if rk.fsal else f(t, y)
        if event is not None:
            with torch.no_grad():
                crossed = accepted & (event.value(t, y) <= 0)
            if bool(crossed.any()):
                interp = (partial(_dense, rk, seg, y_start, ks, step) if rk.dense is not None
                          else partial(_hermite, seg, y_start, y1, k_start,
                                       ks[-1] if rk.fsal else k1, step))
                at = event.locate(crossed, t_start, step, seg, interp)
                ys[last] = torch.where(seg.nodes(crossed, y).bool(), at, ys[last])
                target = torch.where(crossed, torch.full_like(target, last + 1), target)
        # The shared PI controller, per graph; a rejection never grows h.
        grown, previous = controller.next_steps(step, ratio, accepted, previous)
        h = torch.where(running, grown, h)
        h = direction * h.abs().clamp(max=controller.max_step)
    n_accepted, n_tried = torch.stack([accepted_total, tried_total]).tolist()
    stats.n_accepted += n_accepted
    stats.n_rejected += n_tried - n_accepted
    return ys


