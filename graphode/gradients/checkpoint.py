"""Exact, memory-bounded gradients of the discrete solution.

The forward solve runs without a graph and keeps only the start state and size of each
accepted step. The backward pass walks the steps in reverse, recomputes one step at a time
with autograd and pulls the gradient through it, so gradients equal plain autograd's (the same
discrete solution) while memory holds one state per step plus a single step's graph.

A solver object (the implicit and IMEX methods) records its steps as
:class:`~graphode.solvers.integrate.Replay` entries instead: each step is replayed from its
start state and the values its loop carries between steps, its stage solves rerun from the
same values and attached to autograd by the implicit function theorem.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..solvers.integrate import Replay, Step, _set_rng_state, integrate, replay_step
from ..solvers.rk import RungeKutta
from .common import Problem

__all__ = ["checkpoint_solve"]


class _CheckpointSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, problem: Problem, y0: Tensor, *params: Tensor) -> Tensor:
        steps: List[Union[Step, Replay]] = []
        with torch.no_grad():
            ys = integrate(problem.func, y0, problem.times, problem.config, problem.stats,
                           record=steps)
        ctx.problem, ctx.steps = problem, steps
        ctx.save_for_backward(*params)
        return torch.stack(ys)

    @staticmethod
    def backward(ctx, grad_ys: Tensor):
        problem: Problem = ctx.problem
        params: Tuple[Tensor, ...] = ctx.saved_tensors
        if ctx.steps and isinstance(ctx.steps[0], Replay):
            return _replay_backward(problem, ctx.steps, params, grad_ys)
        rk = RungeKutta(problem.config.tableau)
        mode = problem.config.output_mode()
        calls = [0]

        def counted(t: Tensor, y: Tensor) -> Tensor:
            calls[0] += 1
            return problem.func(t, y)

        adj = torch.zeros_like(grad_ys[0])
        param_grads: List[Optional[Tensor]] = [None] * len(params)
        for step in reversed(ctx.steps):
            with torch.enable_grad():
                y = step.y.detach().requires_grad_(True)
                y1, outs = replay_step(counted, rk, mode, step, y)
            grads = torch.autograd.grad(
                [y1] + outs, (y,) + params,
                [adj] + [grad_ys[j] for j, _ in step.outputs], allow_unused=True)
            adj = grads[0] if grads[0] is not None else torch.zeros_like(adj)
            for i, g in enumerate(grads[1:]):
                before = param_grads[i]
                if g is not None:
                    param_grads[i] = g if before is None else before + g
        problem.stats.nfe_backward += calls[0]
        return (None, adj + grad_ys[0], *param_grads)


def _replay_backward(problem: Problem, steps: List[Replay], params: Tuple[Tensor, ...],
                     grad_ys: Tensor) -> tuple:
    """The backward pass over a solver object's recorded steps: each replayed from its start
    state and carry, the gradient pulled through the end state, the carry into the next step
    and the outputs inside the step."""
    adj = torch.zeros_like(grad_ys[0])
    adj_carry: Tuple[Optional[Tensor], ...] = ()
    param_grads: List[Optional[Tensor]] = [None] * len(params)
    for step in reversed(steps):
        with torch.enable_grad():
            y = step.y.detach().requires_grad_(True)
            carry = tuple(c.detach().requires_grad_(True) for c in step.carry)
            if step.rng is None:
                y1, carry1, outs = step.run(y, carry)
            else:  # the forward's draws, the caller's random state left as it was
                with torch.random.fork_rng(devices=[y.device] if y.device.type == "cuda" else []):
                    _set_rng_state(step.rng, y.device)
                    y1, carry1, outs = step.run(y, carry)
        pairs = [(y1, adj)] + list(zip(carry1, adj_carry)) + [
            (out, grad_ys[j]) for out, (j, _) in zip(outs, step.outputs)]
        pairs = [(o, g) for o, g in pairs if g is not None and o.requires_grad]
        inputs = (y,) + carry + params
        grads: Sequence[Optional[Tensor]] = [None] * len(inputs)
        if pairs:
            grads = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                        allow_unused=True)
        adj = grads[0] if grads[0] is not None else torch.zeros_like(adj)
        adj_carry = tuple(grads[1:1 + len(carry)])
        for i, g in enumerate(grads[1 + len(carry):]):
            before = param_grads[i]
            if g is not None:
                param_grads[i] = g if before is None else before + g
    problem.stats.nfe_backward += steps[0].stats.nfe + steps[0].stats.nfe_backward
    return (None, adj + grad_ys[0], *param_grads)


def checkpoint_solve(problem: Problem, y0: Tensor, params: Sequence[Tensor]) -> Tensor:
    """Solve with exact checkpointed gradients; returns the stacked outputs."""
    return _CheckpointSolve.apply(problem, y0, *params)
