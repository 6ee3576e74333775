"""The continuous backsolve adjoint (Chen et al., 2018; Pontryagin), O(1) memory in steps.

The forward solve keeps no graph. The backward pass integrates the augmented system

.. math::
    \\dot y = f(t, y), \\quad \\dot a = -a^\\top \\partial_y f, \\quad
    \\dot g = -a^\\top \\partial_\\theta f

backwards from the last output time to the first, one interval at a time, adding each
output's incoming gradient to ``a`` as it passes that time and restarting ``y`` from the stored
forward output there. ``g`` at the first time is the parameter gradient.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor

from ..solvers.imex import Split, split_of
from ..solvers.integrate import SolverStats, integrate
from .common import Problem

__all__ = ["adjoint_solve"]


def _segment_norm(sizes: Sequence[int], count: int):
    """Max over the first ``count`` segments of their RMS norms (mixed norm / seminorm)."""
    bounds = [0]
    for s in sizes:
        bounds.append(bounds[-1] + s)

    def norm(x: Tensor) -> Tensor:
        parts = [torch.linalg.vector_norm(x[bounds[i]:bounds[i + 1]]) / math.sqrt(max(sizes[i], 1))
                 for i in range(count) if sizes[i] > 0]
        return torch.stack(parts).max()

    return norm


def _interval_grid(grid: Optional[Sequence[float]], start: float, end: float) -> Optional[List[float]]:
    """The part of a user grid that lies between two output times, from ``start`` to ``end``."""
    if grid is None:
        return None
    lo, hi = min(start, end), max(start, end)
    inner = sorted((g for g in grid if lo < g < hi), reverse=start > end)
    return [start] + inner + [end]


class _AdjointSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, problem: Problem, y0: Tensor, t: Optional[Tensor], *params: Tensor) -> Tensor:
        with torch.no_grad():
            ys = torch.stack(integrate(problem.func, y0, problem.times, problem.config,
                                       problem.stats))
        ctx.problem = problem
        ctx.has_t = t is not None
        ctx.save_for_backward(ys, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        problem: Problem = ctx.problem
        ys, *params = ctx.saved_tensors
        params = tuple(params)
        func, times = problem.func, problem.times
        shape, dtype = ys.shape[1:], ys.dtype
        n = ys[0].numel()
        sizes = [n, n] + [p.numel() for p in params]
        assert problem.adjoint is not None
        zero_t = torch.zeros((), dtype=dtype, device=ys.device)

        def parts(z: Tensor):
            views, offset = [zero_t, z[:n].view(shape), z[n:2 * n].view(shape)], 2 * n
            for p in params:
                views.append(z[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
            return tuple(views)
        user_norm, callbacks = problem.adjoint_norm, problem.adjoint.callbacks
        # A local copy: the problem's backward settings stay as the caller gave them.
        config = replace(
            problem.adjoint,
            norm=(lambda z: user_norm(parts(z))) if user_norm is not None else
            problem.adjoint.norm or _segment_norm(sizes, 2 if problem.adjoint_seminorm else len(sizes)),
            callbacks=None if callbacks is None else callbacks.mapped(parts))
        stats = SolverStats()

        def augment(part: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
            """The augmented field of ``part`` (the whole field, or one side of a split)."""
            def augmented(t: Tensor, z: Tensor) -> Tensor:
                y, a = z[:n].view(shape), z[n:2 * n].view(shape)
                with torch.enable_grad():
                    y = y.detach().requires_grad_(True)
                    f = part(t, y)
                    vjps = torch.autograd.grad(f, (y,) + params, -a, allow_unused=True)
                pieces = [f.reshape(-1), vjps[0].reshape(-1) if vjps[0] is not None
                          else torch.zeros(n, dtype=dtype, device=z.device)]
                for p, v in zip(params, vjps[1:]):
                    pieces.append(torch.zeros(p.numel(), dtype=dtype, device=z.device)
                                  if v is None else v.reshape(-1).to(dtype))
                return torch.cat(pieces)
            return augmented

        augmented: Callable[[Tensor, Tensor], Tensor] = augment(func)
        split = split_of(func) if getattr(config.solver, "needs_split", False) else None
        if split is not None:
            # an IMEX backward solve: the augmented system splits as the field does, each side
            # carrying its own part of the adjoint's Jacobian products
            augmented = Split(implicit=augment(split.implicit), explicit=augment(split.explicit))

        adj = grad_ys[-1]
        g = torch.zeros(sum(sizes[2:]), dtype=dtype, device=ys.device)
        time_grads: List[Tensor] = [] if not ctx.has_t else [None] * len(times)  # type: ignore
        for i in range(len(times) - 1, 0, -1):
            if ctx.has_t:
                with torch.no_grad():
                    f_i = func(torch.full((), times[i], dtype=dtype, device=ys.device), ys[i])
                time_grads[i] = (grad_ys[i] * f_i).sum()
            z0 = torch.cat([ys[i].reshape(-1), adj.reshape(-1), g])
            interval = replace(config, grid=_interval_grid(problem.config.grid, times[i], times[i - 1]))
            with torch.no_grad():
                z = integrate(augmented, z0, [times[i], times[i - 1]], interval, stats)[-1]
            adj = z[n:2 * n].view(shape) + grad_ys[i - 1]
            g = z[2 * n:]
        if ctx.has_t:
            with torch.no_grad():
                f0 = func(torch.full((), times[0], dtype=dtype, device=ys.device), ys[0])
            # a(t0) without the first output's own gradient, which does not move with t0.
            time_grads[0] = -((adj - grad_ys[0]) * f0).sum()
        problem.stats.nfe_backward += stats.nfe
        problem.stats.n_accepted_backward += stats.n_accepted
        problem.stats.n_rejected_backward += stats.n_rejected
        param_grads: List[Tensor] = []
        offset = 0
        for p in params:
            param_grads.append(g[offset:offset + p.numel()].view_as(p).to(p.dtype))
            offset += p.numel()
        grad_t = torch.stack(time_grads) if ctx.has_t else None
        return (None, adj, grad_t, *param_grads)


def adjoint_solve(problem: Problem, y0: Tensor, t: Optional[Tensor], params: Sequence[Tensor]
                  ) -> Tensor:
    """Solve with adjoint gradients; returns the stacked outputs. ``t`` (a tensor that needs
    gradients) or ``None``."""
    return _AdjointSolve.apply(problem, y0, t, *params)
