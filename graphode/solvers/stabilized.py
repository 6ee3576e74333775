"""Stiff graph diffusion without a linear solve: Runge-Kutta-Chebyshev, and stiffness switching.

Graph diffusion ``dX/dt = -k L X`` with a large rate is stiff: the eigenvalues of its
Jacobian spread along the negative real axis to ``-2k``, and an explicit method such as
dopri5 must keep ``h`` below ``3.3 / (2k)`` however smooth the solution is. A second-order
Runge-Kutta-Chebyshev method (RKC; Sommeijer, Shampine and Verwer, J. Comput. Appl. Math. 88
(1998) 315-326) with ``s`` stages is stable on ``[-0.65 s^2, 0]``, so the cost of a step grows
with the square root of the stiffness instead of linearly, with explicit stages only: no
Jacobian, no linear solve, the field's own memory. It needs the Jacobian's spectrum near the
negative real axis (diffusion, damping), which is the case for the graph operators GDEs use;
oscillatory stiffness (large imaginary parts) needs an implicit method.

``method="rkc"`` runs RKC throughout. ``method="auto"`` starts with dopri5, estimates the
stiffness from its last two stages after every step (Hairer and Wanner, IV.2) and switches to
RKC after 15 stiff steps, and back to dopri5 when RKC's stage count falls to two; the
switches are recorded in ``SolverStats.switches`` as ``(t, method)``. With
``AutoSwitch(stiff_method="kvaerno5")`` (or another adaptive implicit method) the stiff
stretches are solved implicitly instead, which also covers oscillatory stiffness.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .base import Func, Solver, register
from .controllers import error_ratio, initial_step_size, rms_norm
from .implicit import _NewtonFailure
from .interpolation import hermite, rk_dense
from .rk import RungeKutta, combine
from .tableaux import METHODS

__all__ = ["RKC", "AutoSwitch", "rkc_coefficients", "rough_direction", "stability_bound"]

_DAMPING = 2.0 / 13.0  # Sommeijer et al.'s damping: stability region width stays >= 0.05 s^2


def _chebyshev(s: int) -> Tuple[float, List[float], List[float], List[float]]:
    """``w0`` and the Chebyshev polynomials ``T_j``, ``T_j'``, ``T_j''`` at ``w0``, ``j <= s``."""
    w0 = 1.0 + _DAMPING / (s * s)
    T, dT, ddT = [1.0, w0], [0.0, 1.0], [0.0, 0.0]
    for j in range(2, s + 1):
        T.append(2 * w0 * T[j - 1] - T[j - 2])
        dT.append(2 * T[j - 1] + 2 * w0 * dT[j - 1] - dT[j - 2])
        ddT.append(4 * dT[j - 1] + 2 * w0 * ddT[j - 1] - ddT[j - 2])
    return w0, T, dT, ddT


@lru_cache(maxsize=None)
def rkc_coefficients(s: int) -> Tuple[Tuple[float, ...], ...]:
    """``(mu, nu, mu_tilde, gamma_tilde, c)`` of the damped ``s``-stage RKC method, each of
    length ``s + 1`` (index ``j`` is stage ``j``; entries unused by the recurrence are 0).

    The stages are ``Y_0 = y``, ``Y_1 = y + mu~_1 h F_0`` and ``Y_j = (1 - mu_j - nu_j) y +
    mu_j Y_{j-1} + nu_j Y_{j-2} + mu~_j h F(Y_{j-1}) + gamma~_j h F_0``; ``Y_s`` is the new
    solution and ``c_j`` the time of stage ``j`` in units of ``h``.
    """
    if s < 2:
        raise ValueError(f"RKC needs at least 2 stages, got {s}")
    w0, T, dT, ddT = _chebyshev(s)
    w1 = dT[s] / ddT[s]
    b = [0.0] * (s + 1)
    for j in range(2, s + 1):
        b[j] = ddT[j] / (dT[j] ** 2)
    b[0] = b[1] = b[2]
    a = [1.0 - b[j] * T[j] for j in range(s + 1)]
    mu, nu, mut, gt, c = ([0.0] * (s + 1) for _ in range(5))
    mut[1] = b[1] * w1
    c[1] = mut[1]
    for j in range(2, s + 1):
        mu[j] = 2 * b[j] * w0 / b[j - 1]
        nu[j] = -b[j] / b[j - 2]
        mut[j] = 2 * b[j] * w1 / b[j - 1]
        gt[j] = -a[j - 1] * mut[j]
        c[j] = mu[j] * c[j - 1] + nu[j] * c[j - 2] + mut[j] + gt[j]
    return tuple(mu), tuple(nu), tuple(mut), tuple(gt), tuple(c)


@lru_cache(maxsize=None)
def stability_bound(s: int) -> float:
    """``beta(s)``: the ``s``-stage method is stable for ``h * rho <= beta(s)`` (about
    ``0.65 s^2``)."""
    w0, _, dT, ddT = _chebyshev(s)
    return (1.0 + w0) * ddT[s] / dT[s]


def stages_for(h_rho: float, max_stages: int) -> int:
    """The fewest stages (at least 2) whose stability interval covers ``h_rho``."""
    s = max(2, math.ceil(math.sqrt(max(h_rho, 0.0) / 0.65)) - 1)
    while s < max_stages and stability_bound(s) < h_rho:
        s += 1
    return min(s, max_stages)


def rkc_step(func: Func, time: Any, y: Tensor, f0: Tensor, h: float, s: int) -> Tensor:
    """One ``s``-stage RKC step from ``y`` (``f0 = F(t, y)``); ``time(c)`` is the stage time
    tensor at ``t + c h``. Costs ``s - 1`` evaluations."""
    mu, nu, mut, gt, c = rkc_coefficients(s)
    before, current = y, y + f0 * (h * mut[1])
    for j in range(2, s + 1):
        fj = func(time(c[j - 1]), current)
        nxt = (y * (1.0 - mu[j] - nu[j])).add_(current, alpha=mu[j]).add_(before, alpha=nu[j])
        nxt = nxt.add_(fj, alpha=h * mut[j]).add_(f0, alpha=h * gt[j])
        before, current = current, nxt
    return current


def rough_direction(index: Tensor, dtype: torch.dtype) -> Tensor:
    """A fixed, noise-like vector in ``[-1, 1]`` from integer positions ``index``: every
    eigenvector of the Jacobian has a share in it, however smooth the state is."""
    phase = torch.sin(index.to(torch.float64) * 12.9898 + 0.5) * 43758.5453
    return (2.0 * torch.frac(phase) - 1.0).to(dtype)


def spectral_radius(func: Func, t: Tensor, y: Tensor, fy: Tensor, start: Optional[Tensor],
                    norm: Any, max_iters: int = 20) -> Tuple[float, Tensor, int]:
    """Estimate the Jacobian's spectral radius at ``y`` by the nonlinear power method (as the
    RKC code does): ``rho ~ |F(y + v) - F(y)| / |v|`` for a small ``v`` iterated toward the
    dominant eigenvector. Returns ``(rho, direction, evaluations)``; the direction seeds the
    next estimate.

    The iteration starts from the last direction (else ``F(y)``) plus an equal share of a fixed
    noise-like vector (:func:`rough_direction`): near a steady state ``F(y)`` has lost its
    stiff components, and a power method started there settles, for many iterations, on the
    slow modes' rate, an underestimate that RKC's stability would pay for with pinned steps.
    """
    v = start if start is not None else fy
    rough = rough_direction(torch.arange(y.numel(), device=y.device), y.dtype).view_as(y)
    y_norm, v_norm, r_norm = torch.stack([norm(y), norm(v), norm(rough)]).tolist()
    v = rough / r_norm + (v / v_norm if 0.0 < v_norm < math.inf else 0.0)
    size = math.sqrt(torch.finfo(y.dtype).eps) * max(y_norm, 1.0)
    v = v * (size / float(norm(v)))
    rho, count = 0.0, 0
    for _ in range(max_iters):
        diff = func(t, y + v) - fy
        count += 1
        d_norm = float(norm(diff))
        previous, rho = rho, d_norm / size
        if d_norm == 0.0 or not math.isfinite(d_norm):
            break
        v = diff * (size / d_norm)
        if abs(rho - previous) <= 0.01 * rho:
            break
    return rho, v, count


class RKC(Solver):
    """Second-order Runge-Kutta-Chebyshev with an embedded error estimate (see the module).

    Args:
        max_stages: most stages per step; a step that would need more is shortened.
        rho_every: re-estimate the spectral radius after this many accepted steps (and after
            every rejected step).
        safety_rho: factor on the estimated spectral radius.
    """

    name = "rkc"
    tableau = METHODS["dopri5"]
    options = frozenset({"max_stages", "rho_every"})
    start_stiff = True
    switching = False

    def __init__(self, max_stages: int = 200, rho_every: int = 25, safety_rho: float = 1.2):
        if not isinstance(max_stages, int) or max_stages < 2:
            raise ValueError(f"max_stages must be an integer >= 2, got {max_stages!r}")
        if not isinstance(rho_every, int) or rho_every < 1:
            raise ValueError(f"rho_every must be a positive integer, got {rho_every!r}")
        self.max_stages, self.rho_every, self.safety_rho = max_stages, rho_every, safety_rho

    def settings(self) -> Dict[str, Any]:
        return {"max_stages": self.max_stages, "rho_every": self.rho_every,
                "safety_rho": self.safety_rho}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        return _Loop(self, func, y0, times, config, stats).run()


class AutoSwitch(RKC):
    """dopri5 while the problem is not stiff, RKC while it is (see the module).

    Args:
        stiff_after: consecutive dopri5 steps at the stability limit (``h rho > 3.25``)
            before switching to the stiff method.
        nonstiff_after: consecutive stiff steps that dopri5 could take as well (RKC with two
            stages; an implicit step with ``h rho <= 3``) before switching back.
        stiff_method: ``"rkc"`` (explicit, for spectra near the negative real axis, such as
            diffusion) or an adaptive implicit method, ``"kvaerno5"``, ``"kvaerno3"`` or
            ``"trbdf2"`` (any stiffness, oscillatory included, at the price of linear solves;
            see :mod:`graphode.solvers.implicit`).
    """

    name = "auto"
    options = RKC.options | {"stiff_after", "nonstiff_after", "stiff_method"}
    start_stiff = False
    switching = True

    def __init__(self, max_stages: int = 200, rho_every: int = 25, safety_rho: float = 1.2,
                 stiff_after: int = 15, nonstiff_after: int = 10, stiff_method: str = "rkc"):
        super().__init__(max_stages, rho_every, safety_rho)
        from .implicit import DIRK_METHODS
        valid = ["rkc"] + [m for m, tab in DIRK_METHODS.items() if tab.adaptive]
        if stiff_method not in valid:
            raise ValueError(f"stiff_method must be one of {valid}, got {stiff_method!r}")
        self.stiff_after, self.nonstiff_after = stiff_after, nonstiff_after
        self.stiff_method = stiff_method

    def settings(self) -> Dict[str, Any]:
        return {**super().settings(), "stiff_after": self.stiff_after,
                "nonstiff_after": self.nonstiff_after, "stiff_method": self.stiff_method}


class _Loop:
    """One adaptive solve that steps with dopri5 or RKC, switching as the solver says."""

    def __init__(self, solver: RKC, func: Func, y0: Tensor, times: Sequence[float], config: Any,
                 stats: Any):
        self.solver, self.func, self.y0, self.times, self.config, self.stats = (
            solver, func, y0, times, config, stats)
        self.rk = RungeKutta(METHODS["dopri5"])
        base = config.controller()
        self.controllers = {False: replace(base, order=5, beta1=None),
                            True: replace(base, order=3, beta1=None)}
        self.norm = config.norm or rms_norm
        self.implicit = None
        if getattr(solver, "stiff_method", "rkc") != "rkc":
            from .implicit import Implicit
            from .implicit import _Loop as ImplicitLoop
            method = Implicit(solver.stiff_method)  # type: ignore[attr-defined]
            self.implicit = ImplicitLoop(method, func, y0, times, config, stats)
            error_order = method.dirk.error_order or method.dirk.order
            self.controllers[True] = replace(base, order=min(method.dirk.order, error_order) + 1,
                                             beta1=None)
        self.stiff_name = "rkc" if self.implicit is None else solver.stiff_method  # type: ignore[attr-defined]

    def _stage_time(self, t: float, h: float, at_jump: bool) -> Callable[[int], Tensor]:
        from .integrate import _time_tensor

        def stage(i: int) -> Tensor:
            if at_jump and self.rk.c[i] == 1.0:  # the left limit at the discontinuity
                return _time_tensor(t + h, self.y0, toward=t)
            return _time_tensor(t + self.rk.c[i] * h, self.y0)
        return stage

    def f(self, t: float, y: Tensor, toward: Optional[float] = None) -> Tensor:
        from .integrate import _time_tensor
        self.stats.nfe += 1
        return self.func(_time_tensor(t, self.y0, toward), y)

    def run(self) -> List[Tensor]:
        from .integrate import _emit, _non_finite, _stops, _time_tensor, check_step
        solver, config, stats, times = self.solver, self.config, self.stats, self.times
        rtol, atol = config.rtol, config.atol
        direction = math.copysign(1.0, times[-1] - times[0])
        stops = _stops(times, config, direction)
        stiff = solver.start_stiff
        t, y = times[0], self.y0
        f0 = self.f(t, y)
        controller = self.controllers[stiff]
        if config.first_step is not None:
            h = direction * abs(config.first_step)
        else:
            h = initial_step_size(self.f, t, y, f0, direction, controller.order, rtol, atol,
                                  config.norm)
            if not math.isfinite(h):
                raise _non_finite("at the initial state,", t, h, ys=[])
        h = controller.clip(h)
        stats.switches.append((t, solver.name if not solver.switching else
                               (self.stiff_name if stiff else "dopri5")))
        rho: Optional[float] = None
        eigvec: Optional[Tensor] = None
        rho_age = 0
        stiff_steps = nonstiff_steps = 0
        ys = [self.y0]
        j, stop_index, attempts = 1, 0, 0
        while j < len(times):
            stop, is_jump = stops[stop_index]
            if stiff and (rho is None or rho_age >= solver.rho_every):
                estimate, eigvec, count = spectral_radius(
                    self.func, _time_tensor(t, y), y, f0, eigvec, self.norm)
                stats.nfe += count
                rho, rho_age = solver.safety_rho * estimate, 0
                if rho > 0 and self.implicit is None:  # never ask for more stages than allowed
                    limit = stability_bound(solver.max_stages) / rho
                    h = math.copysign(min(abs(h), limit), h)
            landing = direction * (t + h * (1.0 + 1e-10) - stop) >= 0
            if landing:
                h = stop - t
            check_step(t, h, controller.min_step, attempts, config, stats, times[-1], ys,
                       f"{solver.name!r} ({self.stiff_name if stiff else 'dopri5'} stepping)")
            attempts += 1
            if config.callbacks is not None:
                config.callbacks("step", t, y, h)
            if stiff and self.implicit is not None:
                try:
                    y1, f1, error = self.implicit.step(t, y, f0, h)
                except _NewtonFailure:
                    stats.n_rejected += 1
                    h = controller.clip(0.25 * h)
                    continue
                assert error is not None and rho is not None
                values = error_ratio(error.detach(), y.detach(), y1.detach(), rtol, atol,
                                     config.norm).reshape(1)
                s = 2 if abs(h) * rho <= 3.0 else 3  # "two stages": dopri5 would be stable
                ks: List[Tensor] = []
            elif stiff:
                assert rho is not None
                s = stages_for(abs(h) * rho, solver.max_stages)
                y1 = rkc_step(self.func, lambda c, _t=t, _h=h: _time_tensor(_t + c * _h, self.y0),
                              y, f0, h, s)
                stats.nfe += s - 1
                # At a discontinuity the step ends on the field's left limit.
                f1 = self.f(t + h, y1, toward=t if landing and is_jump else None)
                err = (y - y1).mul_(0.8).add_(f0 + f1, alpha=0.4 * h)
                values = error_ratio(err, y, y1, rtol, atol, config.norm).reshape(1)
                ks = []
            else:
                y1, error, ks = self.rk.step(self.func, self._stage_time(t, h, landing and is_jump), y,
                                             f0, h)
                assert error is not None
                stats.nfe += self.rk.stages - 1
                f1 = ks[-1]
                # Hairer's stiffness estimate: |k7 - k6| / |y1 - Y6| (both stages at t + h).
                y6 = combine(y, h, self.rk.rows[4], ks)
                values = torch.stack([error_ratio(error, y, y1, rtol, atol, config.norm),
                                      self.norm(ks[-1] - ks[-2]), self.norm(y1 - y6)])
            read = values.tolist()  # the one synchronisation of a step
            ratio = read[0]
            if math.isnan(ratio):
                raise _non_finite("in the step from", t, h, ys)
            accepted = ratio <= 1.0
            if config.callbacks is not None:
                config.callbacks("accept" if accepted else "reject", t, y, h)
            if accepted:
                stats.n_accepted += 1
                t1 = stop if landing else t + h
                outputs = _emit(times, j, direction, t, t1)
                for _, theta in outputs:
                    ys.append(y1 if theta == 1.0 else hermite(y, y1, f0, f1, h, theta) if stiff
                              else rk_dense(self.rk, y, ks, h, theta))
                j += len(outputs)
                if landing:
                    stop_index = min(stop_index + 1, len(stops) - 1)
                if solver.switching and not stiff:
                    h_rho = abs(h) * read[1] / read[2] if read[2] > 0 else 0.0
                    if h_rho > 3.25:
                        stiff_steps, nonstiff_steps = stiff_steps + 1, 0
                    else:
                        nonstiff_steps += 1
                        if nonstiff_steps >= 6:
                            stiff_steps = 0
                    if stiff_steps >= solver.stiff_after:  # type: ignore[attr-defined]
                        stiff, rho, eigvec, stiff_steps, nonstiff_steps = (
                            True, None, ks[-1] - ks[-2], 0, 0)
                        stats.switches.append((t1, self.stiff_name))
                elif stiff:
                    rho_age += 1
                    if solver.switching:
                        nonstiff_steps = nonstiff_steps + 1 if s <= 2 else 0
                        if nonstiff_steps >= solver.nonstiff_after:  # type: ignore[attr-defined]
                            stiff, nonstiff_steps = False, 0
                            stats.switches.append((t1, "dopri5"))
                if landing and is_jump:
                    # Re-evaluate past the discontinuity and re-estimate the spectrum there.
                    f1 = self.f(t1, y1, toward=t1 + direction)
                    rho_age = solver.rho_every
                t, y, f0 = t1, y1, f1
                h = controller.next_step(h, ratio, True)
                if controller is not self.controllers[stiff]:
                    controller = self.controllers[stiff]
            else:
                stats.n_rejected += 1
                if stiff:
                    rho_age = solver.rho_every  # re-estimate before the retry
                h = controller.next_step(h, ratio, False)
        return ys


@register("rkc")
def _rkc() -> Solver:
    return RKC()


@register("auto")
def _auto() -> Solver:
    return AutoSwitch()
