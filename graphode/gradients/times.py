"""Gradients with respect to the integration times, for the autograd and checkpoint modes.

For the exact flow, ``dy(t_i)/dt_i = f(t_i, y_i)`` and ``dy(t_i)/dt_0 = -J_i f(t_0, y_0)`` with
``J_i = dy(t_i)/dy_0``, so ``dL/dt_0 = -(dL/dy_0 . f(t_0, y_0))`` where ``dL/dy_0`` is the
gradient that reaches the initial state through the solve. Two identity nodes carry these
terms: one on the initial state before the solve, one on each output after it. The field is
evaluated only in the backward pass, and only when ``t`` requires a gradient.
"""
from __future__ import annotations

from typing import Callable, List

import torch
from torch import Tensor

__all__ = ["attach_time_gradients"]

Func = Callable[[Tensor, Tensor], Tensor]


class _StartTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, func: Func, y0: Tensor, t0: Tensor) -> Tensor:
        ctx.func = func
        ctx.save_for_backward(y0, t0)
        return y0.view_as(y0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        y0, t0 = ctx.saved_tensors
        with torch.no_grad():
            f0 = ctx.func(t0.to(y0.dtype), y0)
        return None, grad, -(grad * f0).sum().to(t0.dtype)


class _OutputTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, func: Func, y: Tensor, t: Tensor) -> Tensor:
        ctx.func = func
        ctx.save_for_backward(y, t)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        y, t = ctx.saved_tensors
        with torch.no_grad():
            f = ctx.func(t.to(y.dtype), y)
        return None, grad, (grad * f).sum().to(t.dtype)


def attach_time_gradients(func: Func, t: Tensor, solve: Callable[[Tensor], List[Tensor]],
                          y0: Tensor) -> List[Tensor]:
    """Run ``solve(y0)`` so that its outputs carry gradients with respect to ``t``."""
    ys = solve(_StartTime.apply(func, y0, t[0]))
    # The first output is the initial state itself, which does not move with t_0.
    return [y0] + [_OutputTime.apply(func, y, t[i]) for i, y in enumerate(ys) if i > 0]
