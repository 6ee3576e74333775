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

``method="rkc"`` and ``method="auto"`` (with its default ``stiff_method="rkc"``) run per graph
too: each graph has its own spectral-radius estimate, its own number of Runge-Kutta-Chebyshev
stages and, with ``auto``, its own switches between dopri5 and RKC, decided from its own
stages. A step evaluates the batch once per stage: dopri5's six stages while any graph is
non-stiff, and as many RKC stages as the stiffest graph needs while any graph is stiff; a graph
whose RKC step needs fewer stages keeps its result through the others unchanged (coefficients
``mu = 1, nu = 0``), so its answer is still its own. Graphs stiff and non-stiff in the same step
cost both passes; a batch whose non-stiff graphs have finished pays for RKC alone. Besides the
step's one synchronisation, a new spectral-radius estimate (every ``rho_every`` accepted
steps of a graph, and after its rejections) reads once per power iteration, and the graphs'
switches are read with the next step's synchronisation.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache, partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .integrate import IntegrationConfig, SolveError, SolverStats
from .rk import RungeKutta, combine
from .stabilized import RKC, rkc_coefficients, rough_direction, stability_bound

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


@lru_cache(maxsize=8)
def _rkc_table(max_stages: int) -> Tensor:
    """``(mu, nu, mu~, gamma~, c)`` of every damped RKC method up to ``max_stages`` stages, as
    a ``(max_stages + 1, max_stages + 1, 5)`` float64 tensor indexed ``[s, j]``. Past its last
    stage (``j > s``) a method holds its result: ``mu = 1``, the other weights 0, ``c = c_s``.
    """
    table = torch.zeros(max_stages + 1, max_stages + 1, 5, dtype=torch.float64)
    for s in range(2, max_stages + 1):
        mu, nu, mut, gt, c = rkc_coefficients(s)
        table[s, :s + 1] = torch.tensor([mu, nu, mut, gt, c], dtype=torch.float64).T
        table[s, s + 1:, 0] = 1.0
        table[s, s + 1:, 4] = c[s]
    return table


@lru_cache(maxsize=8)
def _stability_bounds(max_stages: int) -> Tensor:
    """``beta(s)`` for ``s = 2 .. max_stages``, increasing in ``s``."""
    return torch.tensor([stability_bound(s) for s in range(2, max_stages + 1)],
                        dtype=torch.float64)


class _StiffGraphs:
    """Per-graph Runge-Kutta-Chebyshev stepping and stiffness switching for
    :func:`integrate_per_graph`: the batched counterpart of the shared loop in
    :mod:`graphode.solvers.stabilized`, with every decision (spectral radius, stage count,
    switch) taken per graph from that graph's own nodes."""

    def __init__(self, solver: RKC, seg: _Segments, y0: Tensor, config: IntegrationConfig):
        stiff_method = getattr(solver, "stiff_method", "rkc")
        if stiff_method != "rkc":
            raise ValueError(f"per-graph step control runs method='auto' with "
                             f"stiff_method='rkc' only, got stiff_method={stiff_method!r}: an "
                             f"implicit stiff method would need one Newton solve per graph; "
                             f"drop per_graph or use stiff_method='rkc'")
        self.solver, self.seg = solver, seg
        g, dev, f64 = seg.num_graphs, y0.device, torch.float64
        self.stiff = torch.full((g,), solver.start_stiff, dtype=torch.bool, device=dev)
        self.rho = torch.zeros(g, dtype=f64, device=dev)
        self.rho_age = torch.full((g,), solver.rho_every, dtype=torch.long, device=dev)
        self.stiff_steps = torch.zeros(g, dtype=torch.long, device=dev)
        self.nonstiff_steps = torch.zeros_like(self.stiff_steps)
        self.eigvec: Optional[Tensor] = None  # per node; None: start from f(t, y)
        self.has_vec = torch.zeros(g, dtype=torch.bool, device=dev)
        self.rough: Optional[Tensor] = None
        self.table = _rkc_table(solver.max_stages).to(dev)
        self.bounds = _stability_bounds(solver.max_stages).to(dev)
        base = config.controller()
        self.controllers = (replace(base, order=5, beta1=None),   # dopri5
                            replace(base, order=3, beta1=None))   # RKC
        self.pending: Optional[Tuple[Tensor, Tensor, Tensor]] = None  # switches to record

    def stages(self, step: Tensor, stiff: Tensor) -> Tensor:
        """Each stiff graph's fewest stages (at least 2) whose stability interval covers
        ``|h| rho`` (as :func:`~graphode.solvers.stabilized.stages_for`); 2 for the others."""
        h_rho = torch.where(stiff, step.abs() * self.rho, torch.zeros_like(self.rho))
        guess = ((h_rho / 0.65).sqrt().ceil() - 1).clamp(min=2).long()
        covering = torch.searchsorted(self.bounds, h_rho) + 2
        return torch.maximum(guess, covering).clamp(max=self.solver.max_stages)

    def estimate(self, f: Callable[[Tensor, Tensor], Tensor], t: Tensor, y: Tensor,
                 fy: Tensor, which: Tensor, max_iters: int = 20) -> None:
        """The nonlinear power method of :func:`~graphode.solvers.stabilized.spectral_radius`
        for the graphs in ``which``, each iterated until its own estimate settles."""
        seg = self.seg
        start = fy if self.eigvec is None else torch.where(
            seg.nodes(self.has_vec, y).bool(), self.eigvec, fy)
        if self.rough is None:  # the shared estimate's noise-like share, numbered per graph
            first = torch.zeros(seg.num_graphs, dtype=torch.long, device=y.device)
            first.scatter_reduce_(0, seg.batch, torch.arange(y.size(0), device=y.device),
                                  "amin", include_self=False)
            local = torch.arange(y.size(0), device=y.device) - first[seg.batch]
            width = y[0].numel()
            index = local.view(-1, 1) * width + torch.arange(width, device=y.device)
            rough = rough_direction(index, y.dtype).view_as(y)
            self.rough = rough * seg.nodes(1.0 / seg.rms(rough).clamp(min=1e-300), y)
        v_norm = seg.rms(start)
        usable = (v_norm > 0) & torch.isfinite(v_norm)
        start = self.rough + torch.where(seg.nodes(usable, y).bool(), start * seg.nodes(
            1.0 / torch.where(usable, v_norm, torch.ones_like(v_norm)), y), torch.zeros_like(y))
        v_norm = seg.rms(start)
        size = math.sqrt(torch.finfo(y.dtype).eps) * seg.rms(y).clamp(min=1.0)
        v = start * seg.nodes(size / v_norm, y)
        rho = torch.zeros_like(size)
        active = which.clone()
        for _ in range(max_iters):
            if not bool(active.any()):
                break
            diff = f(t, y + v) - fy
            d = seg.rms(diff)
            previous, new = rho, d / size
            rho = torch.where(active, new, rho)
            dead = (d == 0) | ~torch.isfinite(d)
            moving = active & ~dead
            v = torch.where(seg.nodes(moving, y).bool(),
                            diff * seg.nodes(size / d.clamp(min=1e-300), y), v)
            active = moving & ((new - previous).abs() > 0.01 * new)
        rho = rho.to(torch.float64) * self.solver.safety_rho
        self.rho = torch.where(which, rho, self.rho)
        self.rho_age = torch.where(which, torch.zeros_like(self.rho_age), self.rho_age)
        self.eigvec = v if self.eigvec is None else torch.where(
            seg.nodes(which, y).bool(), v, self.eigvec)
        self.has_vec = self.has_vec | which

    def largest_steps(self) -> Tensor:
        """The longest step the most stages allowed keep stable, per graph (inf for rho 0)."""
        bound = self.bounds[-1]
        return torch.where(self.rho > 0, bound / self.rho.clamp(min=1e-300),
                           torch.full_like(self.rho, math.inf))

    def step(self, f: Callable[[Tensor, Tensor], Tensor], t: Tensor, step: Tensor, y: Tensor,
             f0: Tensor, s_graph: Tensor, s_max: int) -> Tensor:
        """One RKC step per graph, ``s_graph`` stages each, ``s_max - 1`` batched
        evaluations; graphs past their last stage hold their result."""
        seg = self.seg
        coef = self.table[s_graph, :s_max + 1].to(y.dtype)  # (G, s_max + 1, 5)
        h = step.to(y.dtype).unsqueeze(-1)
        # per node and stage: y's weight, mu, nu, h mu~ and h gamma~; stage times per graph
        weights = torch.stack([1.0 - coef[..., 0] - coef[..., 1], coef[..., 0], coef[..., 1],
                               h * coef[..., 2], h * coef[..., 3]])[:, seg.batch]
        times = t.unsqueeze(-1) + coef[..., 4].to(t.dtype) * step.unsqueeze(-1)
        shape = (-1, *([1] * (y.dim() - 1)))
        keep_y, mu, nu, hmu, hgamma = (w.unbind(-1) for w in weights)
        before, current = y, y + f0 * hmu[1].view(shape)
        for j in range(2, s_max + 1):
            fj = f(times[:, j - 1], current)
            nxt = y * keep_y[j].view(shape)
            nxt = nxt.addcmul_(current, mu[j].view(shape)).addcmul_(before, nu[j].view(shape))
            nxt = nxt.addcmul_(fj, hmu[j].view(shape)).addcmul_(f0, hgamma[j].view(shape))
            before, current = current, nxt
        return current

    def switch(self, accepted: Tensor, stiff: Tensor, h_rho: Tensor, s_graph: Tensor,
               start: Optional[Tensor], t1: Tensor) -> None:
        """After a step: count stiff and non-stiff steps per graph and switch the graphs that
        have had enough (:class:`~graphode.solvers.stabilized.AutoSwitch`'s rules). Rejected
        stiff steps re-estimate the spectral radius before their retry."""
        solver = self.solver
        self.rho_age = torch.where(stiff & accepted, self.rho_age + 1, self.rho_age)
        self.rho_age = torch.where(stiff & ~accepted, torch.full_like(self.rho_age,
                                                                       solver.rho_every),
                                   self.rho_age)
        if not solver.switching:
            return
        one, zero = torch.ones_like(self.stiff_steps), torch.zeros_like(self.stiff_steps)
        # explicit graphs: Hairer's estimate of |h| rho against dopri5's stability limit
        dp = accepted & ~stiff
        hot = dp & (h_rho > 3.25)
        calm = dp & ~hot
        self.stiff_steps = torch.where(hot, self.stiff_steps + one, self.stiff_steps)
        self.nonstiff_steps = torch.where(hot, zero, torch.where(calm, self.nonstiff_steps + one,
                                                                 self.nonstiff_steps))
        self.stiff_steps = torch.where(calm & (self.nonstiff_steps >= 6), zero, self.stiff_steps)
        to_stiff = dp & (self.stiff_steps >= solver.stiff_after)  # type: ignore[attr-defined]
        # stiff graphs: two stages are what dopri5 could take as well
        rk = accepted & stiff
        self.nonstiff_steps = torch.where(rk, torch.where(s_graph <= 2, self.nonstiff_steps + one,
                                                          zero), self.nonstiff_steps)
        to_explicit = rk & (self.nonstiff_steps >= solver.nonstiff_after)  # type: ignore[attr-defined]
        changed = to_stiff | to_explicit
        self.stiff = self.stiff ^ changed
        self.stiff_steps = torch.where(changed, zero, self.stiff_steps)
        self.nonstiff_steps = torch.where(changed, zero, self.nonstiff_steps)
        self.rho_age = torch.where(to_stiff, torch.full_like(self.rho_age, solver.rho_every),
                                   self.rho_age)
        if start is not None:  # dopri5's last two stages seed the power method
            nodes = self.seg.nodes(to_stiff, start).bool()
            self.eigvec = start if self.eigvec is None else torch.where(nodes, start,
                                                                        self.eigvec)
            self.has_vec = self.has_vec | to_stiff
        self.pending = (changed, t1, self.stiff.clone())

    def record(self, stats: SolverStats) -> None:
        """Write the last step's switches (read one step late, with that step's sync)."""
        if self.pending is None:
            return
        changed, t1, stiff = self.pending
        self.pending = None
        for g in torch.nonzero(changed).flatten().tolist():
            stats.graph_switches.append((g, float(t1[g]), "rkc" if bool(stiff[g]) else "dopri5"))


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
            norm is the per-graph RMS); its solver may be ``rkc`` or ``auto`` (see the module).
        stats: counters; ``nfe`` counts batched evaluations, steps count graph-steps, and
            ``graph_switches`` records each graph's switches under ``auto``.
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
    if config.solver is not None and not isinstance(config.solver, RKC):
        raise ValueError(f"per-graph step control needs an explicit Runge-Kutta method or "
                         f"method='rkc'/'auto', got {config.solver.name!r}")
    if config.solver is not None and event is not None:
        raise ValueError("per-graph events need an explicit Runge-Kutta method")
    batch, num_graphs = graph_index(batch, y0.size(0))
    rk = RungeKutta(config.tableau)
    controller = config.controller()
    order = config.order()
    weights = rk.e  # the embedded error weights, resolved once per solve
    if weights is None or controller.beta1 is None:
        raise ValueError(f"per-graph step control needs an adaptive method with an error "
                         f"estimate, not {config.tableau.name!r}")
    seg = _Segments(batch, num_graphs, int(y0[0].numel()) if y0.size(0) else 1, y0.dtype)
    stiffs = _StiffGraphs(config.solver, seg, y0, config) if config.solver is not None else None
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

    def plan(h: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        running = target <= last
        goal = grid_t[target.clamp(max=last)]
        landing = running & (direction * (t + h * (1.0 + 1e-10) - goal) >= 0)
        step = torch.where(landing, goal - t, h)
        step = torch.where(running, step, torch.zeros_like(step))
        too_small = running & ((step.abs() < controller.min_step) | (t + step == t))
        return running, goal, landing, step, too_small

    for attempt in range(config.max_steps + 1):
        running, goal, landing, step, too_small = plan(h)
        flags = [running.any(), too_small.any(), bad.any()]
        if stiffs is not None:
            stiff = stiffs.stiff & running
            need = stiff & (stiffs.rho_age >= stiffs.solver.rho_every)
            s_graph = stiffs.stages(step, stiff)
            flags += [stiff.any(), (running & ~stiff).any(), need.any(), s_graph.max(),
                      stiffs.pending[0].any() if stiffs.pending is not None
                      else torch.zeros((), dtype=torch.bool, device=dev)]
        # The one synchronisation of a step: is any graph running, stuck or non-finite (and,
        # per graph stiff or not, which need a new spectral radius, how many RKC stages)?
        read = torch.stack([x.to(f64) for x in flags]).tolist()
        more, stuck, broken = (bool(x) for x in read[:3])
        if stiffs is not None and read[7]:
            stiffs.record(stats)
        if broken:
            g = int(bad.float().argmax())
            raise SolveError(f"the state of graph {g} became non-finite (NaN or inf) in the step "
                             f"from t={float(t[g]):.6g}: lower the tolerances or check the field "
                             f"for overflow", float(t[g]), float(h[g]), ys[:int(target.min())])
        if not more:
            break
        if stiffs is not None and read[5]:
            # New spectral radii, then steps no longer than the most stages keep stable.
            with torch.no_grad():
                stiffs.estimate(f, t, y.detach(), k1.detach(), need)
            h = torch.where(need, direction * torch.minimum(h.abs(), stiffs.largest_steps()), h)
            running, goal, landing, step, too_small = plan(h)
            s_graph = stiffs.stages(step, stiff)
            stuck, read[6] = bool(too_small.any()), int(s_graph.max())
        if stuck or attempt == config.max_steps:
            g = int(too_small.float().argmax()) if stuck else int(running.float().argmax())
            why = (f"step size underflow for graph {g}" if stuck else
                   f"max_steps={config.max_steps} exceeded (graph {g} still running)")
            raise SolveError(f"{why} at t={float(t[g]):.6g}, step {float(step[g]):.3g}: loosen "
                             f"rtol/atol, raise max_steps, or check that graph for stiffness",
                             float(t[g]), float(step[g]), ys[:int(target.min())])
        h_node = seg.nodes(step, y)
        y_start, k_start, t_start = y, k1, t
        any_stiff = stiffs is not None and bool(read[3])
        any_explicit = stiffs is None or bool(read[4])
        ks: List[Tensor] = []
        h_rho = None
        if any_explicit:
            # the shared loops' Runge-Kutta step, with one step size per graph
            y1, _, ks = rk.step(f, partial(_stage_time, rk, t, step), y, k1, h_node,
                                with_error=False)
            # Step sizes are not differentiated (as in every adaptive solver): the error
            # control works on detached values, which also keeps sqrt(0) out of the backward
            # pass.
            with torch.no_grad():
                error = combine(None, h_node, weights, [k.detach() for k in ks])
                scale = torch.maximum(y.abs(), y1.abs()) * config.rtol + config.atol
                ratio = seg.rms(error / scale).to(f64)
                if stiffs is not None:  # Hairer's estimate: |k7 - k6| / |y1 - Y6|, per graph
                    y6 = combine(y, h_node, rk.rows[4], ks).detach()
                    spread = seg.rms(y1.detach() - y6).to(f64)
                    h_rho = torch.where(spread > 0, step.abs() * seg.rms(
                        (ks[-1] - ks[-2]).detach()).to(f64) / spread.clamp(min=1e-300),
                        torch.zeros_like(spread))
        if any_stiff:
            assert stiffs is not None
            y_rkc = stiffs.step(f, t, step, y, k1, s_graph, int(read[6]))
            stiff_nodes = seg.nodes(stiff, y).bool()
            y1 = torch.where(stiff_nodes, y_rkc, y1) if any_explicit else y_rkc
            f1 = f(t + step, y1)  # every graph at its own new state
            with torch.no_grad():
                err = (y - y1).mul(0.8) + (k1 + f1).detach() * (0.4 * h_node)
                scale = torch.maximum(y.abs(), y1.abs()) * config.rtol + config.atol
                ratio_rkc = seg.rms(err.detach() / scale.detach()).to(f64)
            ratio = torch.where(stiff, ratio_rkc, ratio) if any_explicit else ratio_rkc
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
        if any_stiff:
            k_new = torch.where(stiff_nodes, f1, ks[-1]) if any_explicit else f1
            k1 = torch.where(keep, k_new, k1)
        else:
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
        if stiffs is None:
            # The shared PI controller, per graph; a rejection never grows h.
            grown, previous = controller.next_steps(step, ratio, accepted, previous)
        else:
            stiff_before = stiff
            # each graph's step from the controller of the method that took it (I control)
            grown_rkc, _ = stiffs.controllers[1].next_steps(step, ratio, accepted, previous)
            grown, previous = stiffs.controllers[0].next_steps(step, ratio, accepted, previous)
            grown = torch.where(stiff_before, grown_rkc, grown)
            start_vec = (ks[-1] - ks[-2]).detach() if ks else None
            stiffs.switch(accepted, stiff_before,
                          h_rho if h_rho is not None else torch.zeros_like(ratio),
                          s_graph, start_vec, t)
        h = torch.where(running, grown, h)
        h = direction * h.abs().clamp(max=controller.max_step)
    if stiffs is not None:
        stiffs.record(stats)
    n_accepted, n_tried = torch.stack([accepted_total, tried_total]).tolist()
    stats.n_accepted += n_accepted
    stats.n_rejected += n_tried - n_accepted
    return ys
