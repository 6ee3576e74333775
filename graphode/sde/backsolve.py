"""The backsolve adjoint of an SDE (Li et al., 2020, "Scalable Gradients for Stochastic
Differential Equations"): memory flat in the number of steps, gradients to the accuracy of
the backward solve.

The forward solve keeps no graph. The backward pass solves, from the last output time to the
first on the forward's step grid and the same Brownian path, the Stratonovich SDE of the
state, its adjoint ``a = dL/dy`` and the parameters' adjoint, in reversed time ``s = -t``:

.. math::
    dy = -f\\,ds + g \\circ d\\tilde W, \\qquad
    da = a\\,\\partial_y f\\,ds - a\\,\\partial_y g \\circ d\\tilde W, \\qquad
    da_\\theta = a\\,\\partial_\\theta f\\,ds - a\\,\\partial_\\theta g \\circ d\\tilde W,

with :math:`\\tilde W(s) = W(-s)`, by the explicit midpoint rule (one vector-Jacobian product
of ``f h - g dW`` per stage). An Ito SDE is first written as the Stratonovich SDE with drift
:math:`f - \\tfrac12 g\\,\\partial_y g` (diagonal and scalar noise whose ``g_i`` depends on
``y_i`` only, as Milstein assumes; checked at the initial state before the solve). The state is restarted from the
forward's output wherever an output time is a step point.

Unlike reversible Heun's adjoint (:func:`graphode.sdeint_adjoint` with its default method),
these gradients are not those of the forward's discrete solution: they approach the exact
gradient of the SDE's solution on that path as ``dt`` shrinks (first order for
commutative noise).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .methods import _gdg, _time
from .terms import Terms

__all__ = ["BACKSOLVE_METHODS", "check_backsolve", "backsolve"]

BACKSOLVE_METHODS = ("midpoint",)


def check_backsolve(terms: Terms, adaptive: bool, adjoint_method: Optional[str], t0: Tensor,
                    y0: Tensor) -> None:
    """Refuse, before the forward solve, what the backsolve adjoint cannot differentiate."""
    if adjoint_method not in (None, *BACKSOLVE_METHODS):
        raise ValueError(f"adjoint_method={adjoint_method!r}: the backsolve adjoint solves its "
                         f"backward SDE by {' or '.join(BACKSOLVE_METHODS)}; reversible Heun's "
                         f"exact adjoint is method='reversible_heun'")
    if adaptive:
        raise ValueError("the backsolve adjoint retraces the forward's step grid: use fixed "
                         "steps (adaptive=False)")
    if terms.sde_type == "ito" and terms.noise_type == "general":
        raise ValueError("the backsolve adjoint of an Ito SDE converts it to Stratonovich, which "
                         "needs diagonal, scalar or additive noise: use sde_type="
                         "'stratonovich', or gradient='checkpoint' (exact)")
    if terms.sde_type == "ito" and terms.noise_type != "additive":
        _check_elementwise(terms, t0, y0)


def _check_elementwise(terms: Terms, t: Tensor, y: Tensor) -> None:
    """The Ito-Stratonovich correction ``g dg/dy`` is one vector-Jacobian product only when
    ``g_i`` depends on ``y_i`` alone (a diagonal Jacobian): compare ``J u / u`` with
    ``J^T v / v`` for random ``u``, ``v``; they agree for a diagonal Jacobian only."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    u = torch.rand(y.shape, generator=gen, dtype=y.dtype).add_(0.5).to(y.device)
    v = torch.rand(y.shape, generator=gen, dtype=y.dtype).add_(0.5).to(y.device)
    with torch.enable_grad():
        y_in = y.detach().requires_grad_(True)
        g = terms.diagonal(terms.g(t, y_in))
        if not g.requires_grad:
            return
        w = torch.zeros_like(g, requires_grad=True)
        (vjp_w,) = torch.autograd.grad(g, y_in, w, create_graph=True, allow_unused=True)
        if vjp_w is None:
            return
        (jvp,) = torch.autograd.grad(vjp_w, w, u)
        (vjp,) = torch.autograd.grad(g, y_in, v, allow_unused=True)
    scale = (jvp / u).abs().max().clamp_min(1e-30)
    if float(((jvp / u) - (vjp / v)).abs().max() / scale) > 1e-6:
        raise ValueError("the backsolve adjoint of an Ito SDE needs a diffusion whose entry i "
                         "depends on state entry i only (for the Ito-Stratonovich correction); "
                         "this g mixes entries (a graph layer, say): use sde_type="
                         "'stratonovich', or gradient='checkpoint' (exact for any diffusion)")


class _Augmented:
    """``F h + G dW`` of the reversed-time augmented SDE (see the module), with one
    vector-Jacobian product."""

    def __init__(self, terms: Terms, params: Tuple[Tensor, ...]):
        self.terms, self.params = terms, params
        # additive noise has no Ito-Stratonovich correction: g does not depend on y
        self.ito = terms.sde_type == "ito" and terms.noise_type != "additive"

    def drift(self, t: Tensor, y: Tensor) -> Tensor:
        if not self.ito:
            return self.terms.f(t, y)
        _, correction = _gdg(self.terms, t, y, torch.full_like(y, 0.5))
        return self.terms.f(t, y) - correction

    def __call__(self, t: float, y: Tensor, a: Tensor, h: float, dw: Tensor
                 ) -> Tuple[Tensor, Tensor, List[Optional[Tensor]]]:
        time = _time(t, y)
        with torch.enable_grad():
            y_in = y.detach().requires_grad_(True)
            phi = h * self.drift(time, y_in) - self.terms.prod(self.terms.g(time, y_in), dw)
            grads = torch.autograd.grad(phi, (y_in, *self.params), a, allow_unused=True)
        da = grads[0] if grads[0] is not None else torch.zeros_like(a)
        return -phi.detach(), da, list(grads[1:])


def _axpy(x: List[Optional[Tensor]], alpha: float, y: List[Optional[Tensor]]
          ) -> List[Optional[Tensor]]:
    return [a if b is None else (alpha * b if a is None else a + alpha * b)
            for a, b in zip(x, y)]


def backsolve(terms: Terms, bm, grid: List[float], outputs: List[Tuple[int, float]],
              ys: Tensor, grad_ys: Tensor, params: Tuple[Tensor, ...]
              ) -> Tuple[Tensor, List[Optional[Tensor]]]:
    """``(dL/dy0, [dL/dp for p in params])`` by the backward SDE (see the module); ``ys`` are
    the forward outputs, ``outputs`` where each lies on the grid, ``(step, fraction)``."""
    field = _Augmented(terms, params)
    by_step: Dict[int, List[Tuple[float, Tensor, Tensor]]] = {}
    for (n, u), g, y_out in zip(outputs, grad_ys[1:], ys[1:]):
        by_step.setdefault(n, []).append((u, g, y_out))
    y = ys[-1]
    a = torch.zeros_like(ys[0])
    a_params: List[Optional[Tensor]] = [None] * len(params)
    with torch.no_grad():
        for n in range(len(grid) - 2, -1, -1):
            pending = torch.zeros_like(a)
            for u, g, y_out in by_step.get(n, ()):
                a = a + u * g
                pending = pending + (1.0 - u) * g
                if u == 1.0:
                    y = y_out  # restart the state from the forward's output
            t1, t0 = grid[n + 1], grid[n]
            h = t1 - t0
            dw = -bm(t0, t1)  # the increment of W(-s) over the reversed step
            dy, da, dp = field(t1, y, a, h, dw)
            y_half, a_half = y + 0.5 * dy, a + 0.5 * da
            dy, da, dp = field(t1 - 0.5 * h, y_half, a_half, h, dw)
            y, a = y + dy, a + da
            a_params = _axpy(a_params, 1.0, dp)
            a = a + pending
    return a + grad_ys[0], a_params
