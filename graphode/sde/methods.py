"""Fixed-step SDE methods. Each takes one step ``t0 -> t1`` of ``dy = f dt + g dW`` (Ito) or
``dy = f dt + g o dW`` (Stratonovich) with the increment of a Brownian motion.

A method carries an ``extra`` state from step to step (empty except for reversible Heun,
which keeps its second state and the last drift and diffusion) so that the gradient modes
can replay or invert any single step. Strong orders are for diagonal or commutative noise;
see Kloeden and Platen (1992), Rossler (2010) and Kidger et al. (2021).
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple, Type

import torch
from torch import Tensor

from .terms import Terms

Extra = Tuple[Tensor, ...]


def _time(t: float, y: Tensor) -> Tensor:
    # a fill, not torch.tensor(t, device=...): that copies from host memory and, on a GPU,
    # synchronises the stream at every evaluation
    return torch.full((), t, dtype=y.dtype, device=y.device)


def _gdg(terms: Terms, t: Tensor, y: Tensor, weight: Tensor) -> Tuple[Tensor, Tensor]:
    """The diffusion and the Milstein correction ``sum_j g_j d(g_i)/d(y_j) * weight`` (one
    vector-Jacobian product; exact for diagonal and scalar noise, where ``g_i`` depends on
    ``y_i`` only)."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        y_in = y if y.requires_grad else y.detach().requires_grad_(True)
        g = terms.g(t, y_in)
        gd = terms.diagonal(g)
        if not gd.requires_grad:  # a diffusion that does not depend on the state
            return g, torch.zeros_like(y)
        vjp, = torch.autograd.grad(gd, y_in, gd * weight, create_graph=outer, allow_unused=True)
    return g, (torch.zeros_like(y) if vjp is None else vjp)


class Method:
    """A fixed-step method: its name, the SDE types and noise types it is valid for, whether it
    needs the space-time Levy area, and its theoretical strong order."""
    name = ""
    sde_types: Tuple[str, ...] = ("ito",)
    noise_types: Tuple[str, ...] = ("diagonal", "additive", "scalar", "general")
    levy_area = False

    def __init__(self, derivative_free: bool = False):
        self.derivative_free = derivative_free

    def init(self, terms: Terms, t0: float, y0: Tensor) -> Extra:
        return ()

    def step(self, terms: Terms, bm: Callable, t0: float, t1: float, y: Tensor, extra: Extra
             ) -> Tuple[Tensor, Extra]:
        raise NotImplementedError


class Euler(Method):
    """Euler-Maruyama (Ito): strong order 0.5, 1.0 for additive noise."""
    name = "euler"

    def step(self, terms, bm, t0, t1, y, extra):
        dw = bm(t0, t1)
        t = _time(t0, y)
        return y + (t1 - t0) * terms.f(t, y) + terms.prod(terms.g(t, y), dw), ()


class Milstein(Method):
    """Milstein, Ito or Stratonovich (diagonal, scalar, additive noise): strong order 1.0.
    ``derivative_free=True`` replaces the derivative of ``g`` by a finite difference over
    ``sqrt(dt)`` (Kloeden and Platen, 11.1)."""
    name = "milstein"
    sde_types = ("ito", "stratonovich")
    noise_types = ("diagonal", "scalar", "additive")

    def step(self, terms, bm, t0, t1, y, extra):
        dw = bm(t0, t1)
        dt = t1 - t0
        t = _time(t0, y)
        ito = terms.sde_type == "ito"
        v = dw * dw - dt if ito else dw * dw
        if terms.noise_type == "additive":  # g does not depend on y: no correction
            return y + dt * terms.f(t, y) + terms.prod(terms.g(t, y), dw), ()
        if self.derivative_free:
            f, g = terms.f(t, y), terms.g(t, y)
            root = dt ** 0.5
            support = y + terms.diagonal(g) * root + (dt * f if ito else 0.0)
            correction = terms.prod(terms.g(t, support) - g, v) / (2 * root)
        else:
            f = terms.f(t, y)
            g, correction = _gdg(terms, t, y, 0.5 * v.expand_as(y) if v.shape != y.shape
                                 else 0.5 * v)
        return y + f * dt + terms.prod(g, dw) + correction, ()


class EulerHeun(Method):
    """Euler-Heun (Stratonovich): strong order 0.5, 1.0 for commutative noise."""
    name = "euler_heun"
    sde_types = ("stratonovich",)

    def step(self, terms, bm, t0, t1, y, extra):
        dw = bm(t0, t1)
        t = _time(t0, y)
        f, gdw = terms.f(t, y), terms.prod(terms.g(t, y), dw)
        gdw_end = terms.prod(terms.g(_time(t1, y), y + gdw), dw)
        return y + (t1 - t0) * f + 0.5 * (gdw + gdw_end), ()


class Heun(Method):
    """Heun (Stratonovich): the trapezoidal predictor-corrector in drift and diffusion."""
    name = "heun"
    sde_types = ("stratonovich",)

    def step(self, terms, bm, t0, t1, y, extra):
        dw = bm(t0, t1)
        dt = t1 - t0
        t, t_end = _time(t0, y), _time(t1, y)
        f, gdw = terms.f(t, y), terms.prod(terms.g(t, y), dw)
        guess = y + dt * f + gdw
        f_end, gdw_end = terms.f(t_end, guess), terms.prod(terms.g(t_end, guess), dw)
        return y + 0.5 * (dt * (f + f_end) + gdw + gdw_end), ()


class Midpoint(Method):
    """Explicit midpoint (Stratonovich)."""
    name = "midpoint"
    sde_types = ("stratonovich",)

    def step(self, terms, bm, t0, t1, y, extra):
        dw = bm(t0, t1)
        dt = t1 - t0
        t = _time(t0, y)
        half = y + 0.5 * dt * terms.f(t, y) + 0.5 * terms.prod(terms.g(t, y), dw)
        t_half = _time(t0 + 0.5 * dt, y)
        return y + dt * terms.f(t_half, half) + terms.prod(terms.g(t_half, half), dw), ()


class ReversibleHeun(Method):
    """Reversible Heun (Stratonovich; Kidger et al., 2021): one drift and one diffusion
    evaluation per step, and algebraically reversible, so its adjoint reconstructs every
    state backwards and gives the same gradients as autograd up to floating point."""
    name = "reversible_heun"
    sde_types = ("stratonovich",)

    def init(self, terms, t0, y0):
        t = _time(t0, y0)
        return y0, terms.f(t, y0), terms.g(t, y0)

    def step(self, terms, bm, t0, t1, y, extra):
        z, f, g = extra
        dw = bm(t0, t1)
        dt = t1 - t0
        z1 = 2 * y - z + f * dt + terms.prod(g, dw)
        t = _time(t1, y)
        f1, g1 = terms.f(t, z1), terms.g(t, z1)
        y1 = y + 0.5 * (f + f1) * dt + 0.5 * terms.prod(g + g1, dw)
        return y1, (z1, f1, g1)

    def unstep(self, terms, bm, t0, t1, y1, extra1) -> Tuple[Tensor, Extra]:
        """The state before a step, from the state after it."""
        z1, f1, g1 = extra1
        dw = bm(t0, t1)
        dt = t1 - t0
        z = 2 * y1 - z1 - f1 * dt - terms.prod(g1, dw)
        t = _time(t0, y1)
        f, g = terms.f(t, z), terms.g(t, z)
        y = y1 - 0.5 * (f + f1) * dt - 0.5 * terms.prod(g + g1, dw)
        return y, (z, f, g)


# Rossler (2010), SRI2 for diagonal and scalar noise and SRA1 for additive noise: stochastic
# Runge-Kutta methods of strong order 1.5 that use the space-time Levy area.
_SRI2 = dict(
    c0=(0.0, 1.0, 0.5, 0.0), c1=(0.0, 0.25, 1.0, 0.25),
    a0=((), (1.0,), (0.25, 0.25), (0.0, 0.0, 0.0)),
    a1=((), (0.25,), (1.0, 0.0), (0.0, 0.0, 0.25)),
    b0=((), (0.0,), (1.0, 0.5), (0.0, 0.0, 0.0)),
    b1=((), (-0.5,), (1.0, 0.0), (2.0, -1.0, 0.5)),
    alpha=(1 / 6, 1 / 6, 2 / 3, 0.0),
    beta1=(-1.0, 4 / 3, 2 / 3, 0.0), beta2=(1.0, -4 / 3, 1 / 3, 0.0),
    beta3=(2.0, -4 / 3, -2 / 3, 0.0), beta4=(-2.0, 5 / 3, -2 / 3, 1.0))
_SRA1 = dict(c0=(0.0, 0.75), c1=(1.0, 0.0), a0=((), (0.75,)), b0=((), (1.5,)),
             alpha=(1 / 3, 2 / 3), beta1=(1.0, 0.0), beta2=(-1.0, 1.0))


class SRK(Method):
    """Stochastic Runge-Kutta (Ito; Rossler, 2010): SRI2 for diagonal and scalar noise, SRA1
    for additive noise, strong order 1.5. Needs the space-time Levy area of the path."""
    name = "srk"
    noise_types = ("diagonal", "scalar", "additive")
    levy_area = True

    def step(self, terms, bm, t0, t1, y, extra):
        if terms.noise_type == "additive":
            return self._additive(terms, bm, t0, t1, y), ()
        return self._diagonal(terms, bm, t0, t1, y), ()

    def _diagonal(self, terms, bm, t0, t1, y):
        c = _SRI2
        dt = t1 - t0
        root = dt ** 0.5
        dw, u = bm(t0, t1, return_U=True)  # u = int (W - W(t0)) dt, the I_(k,0) integral
        i_kk = 0.5 * (dw * dw - dt)
        i_kkk = (dw ** 3 - 3 * dt * dw) / 6
        fs, gs = [], []  # the drift at the H0 stages, the diffusion at the H1 stages
        out = y
        for s in range(4):
            h0, h1 = y, y
            for j in range(s):
                if c["a0"][s][j] or c["b0"][s][j]:
                    h0 = h0 + c["a0"][s][j] * dt * fs[j] + c["b0"][s][j] / dt * (gs[j] * u)
                if c["a1"][s][j] or c["b1"][s][j]:
                    h1 = h1 + c["a1"][s][j] * dt * fs[j] + c["b1"][s][j] * root * gs[j]
            f = terms.f(_time(t0 + c["c0"][s] * dt, y), h0) if s < 3 else None
            g = terms.g(_time(t0 + c["c1"][s] * dt, y), h1)
            fs.append(f)
            gs.append(terms.diagonal(g))
            weight = (c["beta1"][s] * dw + c["beta2"][s] / root * i_kk
                      + c["beta3"][s] / dt * u + c["beta4"][s] / dt * i_kkk)
            if c["alpha"][s]:
                out = out + c["alpha"][s] * dt * f
            out = out + terms.prod(g, weight)
        return out

    def _additive(self, terms, bm, t0, t1, y):
        c = _SRA1
        dt = t1 - t0
        dw, u = bm(t0, t1, return_U=True)
        stages = []
        out = y
        for i in range(2):
            hi = y
            for j in range(i):
                f = terms.f(_time(t0 + c["c0"][j] * dt, y), stages[j])
                g = terms.g(_time(t0 + c["c1"][j] * dt, y), y)
                hi = hi + c["a0"][i][j] * dt * f + terms.prod(g, c["b0"][i][j] / dt * u)
            stages.append(hi)
            f = terms.f(_time(t0 + c["c0"][i] * dt, y), hi)
            g = terms.g(_time(t0 + c["c1"][i] * dt, y), y)
            out = out + c["alpha"][i] * dt * f + terms.prod(g, c["beta1"][i] * dw
                                                            + c["beta2"][i] / dt * u)
        return out


METHODS: Dict[str, Type[Method]] = {m.name: m for m in
                            (Euler, Milstein, SRK, EulerHeun, Heun, Midpoint, ReversibleHeun)}
DEFAULTS = {"ito": "srk", "stratonovich": "midpoint"}
