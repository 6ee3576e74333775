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


class _TimeGradient(torch.autograd.Function):
    """Identity on ``y``; in the backward pass, ``sign * (grad . f(t, y))`` goes to ``t``."""

    @staticmethod
    def forward(ctx, func: Func, sign: float, y: Tensor, t: Tensor) -> Tensor:
        ctx.func, ctx.sign = func, sign
        ctx.save_for_backward(y, t)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        y, t = ctx.saved_tensors
        with torch.no_grad():
            f = ctx.func(t.to(y.dtype), y)
        return None, None, grad, (ctx.sign * (grad * f).sum()).to(t.dtype)


def attach_time_gradients(func: Func, t: Tensor, solve: Callable[[Tensor], List[Tensor]],
                          y0: Tensor) -> List[Tensor]:
    """Run ``solve(y0)`` so that its outputs carry gradients with respect to ``t``."""
    ys = solve(_TimeGradient.apply(func, -1.0, y0, t[0]))
    # The first output is the initial state itself, which does not move with t_0.
    return [y0] + [_TimeGradient.apply(func, 1.0, y, t[i]) for i, y in enumerate(ys) if i > 0]
