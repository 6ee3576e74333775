"""``method="expm"``: the exact flow of a linear graph diffusion, by a Chebyshev series.

A field that is affine in the state with a symmetric operator of known spectrum,
``f(t, y) = J y + s`` (a :class:`~graphode.nn.LinearDiffusion` bound by
:class:`~graphode.nn.GraphVectorField` on an undirected graph, with or without a constant
source such as CGNN's), has the solution

    y(t) = exp(d J) y0 + d phi1(d J) s,    d = t - t0,    phi1(z) = (e^z - 1) / z.

With ``J``'s eigenvalues in ``[low, high]`` (the field's
:class:`~graphode.solvers.implicit.JacobianOperator` says so), ``S = (J - c) / r`` (``c`` and
``r`` the interval's centre and half-width) has its eigenvalues in ``[-1, 1]``, and both
functions of ``J`` are expanded in Chebyshev polynomials of ``S``, ``g(J) = sum_k a_k T_k(S)``.
The vectors ``T_k(S) y0`` come from the three-term recurrence, one operator product each,
shared by every output time. ``S`` is symmetric, so ``||T_k(S)|| <= 1`` and the truncated
series errs by at most ``sum_{k > K} |a_k|`` times the vector's norm. The degree ``K`` is the
smallest that keeps the error's Frobenius norm within ``rtol ||y(t)|| + atol sqrt(n)`` at
every output time (the adaptive methods' RMS criterion, measured against the solution), or
the round-off of the coefficients where the tolerance asks for less: a first degree from the
initial state's norm, then, with the solution's norms known (one read from the device), the
recurrence goes on as far as the solution's tolerance asks.

There are no steps and no stability limit: on a long or stiff horizon the degree grows as
the square root of ``|d| (high - low)``, where an explicit method's steps grow linearly
(GRAND's diffusion on Cora to t = 18 takes 15 operator products at rtol 1e-3, where dopri5
takes 86 evaluations). Gradients flow through the recurrence: ``"autograd"``
backpropagates through it (for a parameter-free operator nothing is stored per product) and
``"checkpoint"`` recomputes it in the backward pass. Operator products are counted as
evaluations in :class:`~graphode.SolverStats`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .base import Func, Solver, register

__all__ = ["Exponential", "chebyshev_coefficients"]


def chebyshev_coefficients(g: Callable[[np.ndarray], np.ndarray], points: int) -> np.ndarray:
    """The coefficients ``a_0 .. a_{points-1}`` of the Chebyshev interpolant of ``g`` on
    ``[-1, 1]`` through the ``points`` Chebyshev-Gauss points (a type-II cosine transform,
    float64): ``g(x) ~ sum_k a_k T_k(x)``."""
    from scipy.fft import dct
    theta = math.pi * (np.arange(points) + 0.5) / points
    a = dct(g(np.cos(theta)), type=2) / points
    a[0] /= 2.0
    return a


def _exp_and_phi1(d: float, centre: float, half: float) -> Tuple[Callable, Callable]:
    """``x -> exp(d z)`` and ``x -> d phi1(d z) = expm1(d z) / z`` with ``z = centre + half x``."""
    def exp(x: np.ndarray) -> np.ndarray:
        return np.exp(d * (centre + half * x))

    def phi1(x: np.ndarray) -> np.ndarray:
        z = centre + half * x
        safe = np.where(z == 0.0, 1.0, z)
        return np.where(z == 0.0, d, np.expm1(d * z) / safe)
    return exp, phi1


class _Series:
    """The Chebyshev coefficients of ``g`` with their tail sums: the points double until the
    upper half of the coefficients is round-off, so every tail is computed in full."""

    def __init__(self, g: Callable[[np.ndarray], np.ndarray], start: int, max_degree: int):
        points = start
        while True:
            a = chebyshev_coefficients(g, points)
            if not np.all(np.isfinite(a)):
                raise OverflowError("the flow overflows float64 over this interval")
            scale = float(np.abs(a).max()) or 1.0
            self.noise = 8.0 * np.finfo(np.float64).eps * points * scale
            half = points // 2
            if float(np.abs(a[half:]).max()) <= self.noise or half > max_degree:
                break
            points *= 2
        self.a = a[:half]
        # tail[k] = sum_{j >= k} |a_j|: the error of the series cut after degree k - 1
        self.tail = np.append(np.cumsum(np.abs(self.a)[::-1])[::-1], 0.0)
        self.max_degree = max_degree

    def degree(self, budget: float) -> int:
        """The smallest degree whose error bound is within ``budget`` (floored at the
        coefficients' round-off)."""
        within = np.nonzero(self.tail[1:] <= max(budget, self.noise))[0]
        if not len(within) or within[0] > self.max_degree:
            # the degree itself, where the coefficients computed reach the budget
            raise _DegreeExceeded(int(within[0]) if len(within) else None)
        return int(within[0])

    def __getitem__(self, k: int) -> float:
        return float(self.a[k]) if k < len(self.a) else 0.0


class _Recurrence:
    """``sum_{k <= K} a_k T_k(S) v`` for several coefficient series at once, the vectors
    ``T_k(S) v`` formed by ``T_{k+1} = 2 S T_k - T_{k-1}`` (one product each) and the sums
    extended in place when a higher degree ``K`` is asked for."""

    def __init__(self, product: Callable[[Tensor], Tensor], v: Tensor, series: Sequence[_Series]):
        self.product, self.series = product, series
        self.degree = 0
        self.previous: Optional[Tensor] = None
        self.current = v
        self.sums = [s[0] * v for s in series]

    def extend(self, degree: int) -> List[Tensor]:
        while self.degree < degree:
            k = self.degree + 1
            s_v = self.product(self.current)
            following = s_v if self.previous is None else 2.0 * s_v - self.previous
            self.previous, self.current = self.current, following
            self.sums = [out + s[k] * following for out, s in zip(self.sums, self.series)]
            self.degree = k
        return self.sums


class _DegreeExceeded(Exception):
    def __init__(self, degree: Optional[int]):
        super().__init__(degree)
        self.degree = degree


class Exponential(Solver):
    """The exact flow of a symmetric linear (or affine) graph diffusion by a Chebyshev series
    of the matrix exponential; see the module's description.

    Args:
        max_degree: the most operator products per series; a tolerance that needs more is
            refused with the degree it would take.
    """

    name = "expm"
    adaptive = True
    gradients = ("autograd", "checkpoint")
    gradient_notes = {
        "adjoint": "the series has no steps to solve backwards; 'autograd' backpropagates "
                   "through it with as many operator products as the forward pass, and "
                   "'checkpoint' recomputes it in the backward pass"}
    options = frozenset({"max_degree"})

    def __init__(self, max_degree: int = 10_000):
        if not isinstance(max_degree, int) or max_degree < 1:
            raise ValueError(f"max_degree must be a positive integer, got {max_degree!r}")
        self.max_degree = max_degree

    def settings(self) -> Dict[str, Any]:
        return {"max_degree": self.max_degree}

    # ------------------------------------------------------------------ checks
    def _refuse_settings(self, config: Any) -> None:
        for option, value in (("step_size", config.step_size), ("grid", config.grid),
                              ("event", config.event)):
            if value is not None:
                raise ValueError(f"method='expm' evaluates the exact flow without steps, so it "
                                 f"takes no {option}; drop it, or use a Runge-Kutta or "
                                 f"implicit method")
        if config.jump_t:
            raise ValueError("method='expm' needs a field that is the same at every time; it "
                             "takes no jump_t (solve the pieces separately)")

    def _operator(self, func: Func, t: Tensor, y0: Tensor) -> Any:
        source = getattr(func, "jacobian_operator", None)
        op = source(t, y0) if callable(source) else None
        if op is None or not op.linear or not op.symmetric or op.spectrum is None:
            why = ("the field does not say what its Jacobian is" if op is None else
                   "the field is not linear" if not op.linear else
                   "its operator is not symmetric (a directed graph, or a weight W that is "
                   "not symmetric; a learned W loses its symmetry at its first update, so "
                   "train with LinearDiffusion(weight=False))"
                   if not op.symmetric else
                   "the interval of its spectrum is unknown (negative edge weights)")
            raise ValueError(
                f"method='expm' solves linear graph diffusions with a symmetric operator "
                f"exactly, but {why}. It needs a GraphVectorField (GDEConv's field) holding "
                f"one LinearDiffusion on an undirected graph with non-negative edge weights "
                f"and no or a symmetric weight; for other fields use method='auto' or an "
                f"implicit method such as 'kvaerno5'")
        return op

    # ------------------------------------------------------------------ solve
    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        from .integrate import (
            Replay,
            SolveError,
            SolverStats,
            _non_finite,
            _time_tensor,
            check_finite_outputs,
        )
        self._refuse_settings(config)
        t0 = _time_tensor(times[0], y0)
        op = self._operator(func, t0, y0)
        low, high = op.spectrum
        centre, half = 0.5 * (high + low), max(0.5 * (high - low), 1e-12 * (1.0 + abs(low)))

        def source_of(y: Tensor, counted: Any) -> Tensor:
            counted.nfe += 2
            return func(t0, y) - op.matvec(y)

        s = source_of(y0, stats)
        with torch.no_grad():
            if not bool(torch.isfinite(y0).all() & torch.isfinite(s).all()):
                raise _non_finite("at the initial state,", times[0], math.nan, [])
            has_source = bool(torch.count_nonzero(s))
            if has_source:
                # the source must be the same at every time: one evaluation at the end says
                stats.nfe += 2
                late = func(_time_tensor(times[-1], y0), y0) - op.matvec(y0)
                if not torch.allclose(late, s, rtol=1e-10, atol=1e-12 * float(s.abs().max())):
                    raise ValueError("method='expm' needs a field that does not change with "
                                     "time, but its source term does; use method='auto' or "
                                     "an implicit method such as 'kvaerno5'")
            norms = [float(torch.linalg.vector_norm(v))
                     for v in ((y0, s) if has_source else (y0,))]
        n = y0.numel()
        parts = 2 if has_source else 1
        reach = max(abs(times[j] - times[0]) for j in range(len(times))) * half
        start = 1 << max(6, math.ceil(math.log2(4.0 * (reach + 8.0 * math.sqrt(reach) + 16.0))))
        # no more points than max_degree can use: a flow past it is refused, not transformed
        start = min(start, 1 << math.ceil(math.log2(4.0 * (self.max_degree + 1))))
        try:
            if 2.0 * reach > float(self.max_degree) ** 2:
                # the series needs a degree of at least sqrt(2 reach) (the scaled Bessel
                # coefficients fall as exp(-k^2 / (2 reach))), and points enough to resolve a
                # layer of width 1 / reach: refused before any transform
                raise _DegreeExceeded(None)
            series: List[List[_Series]] = [[], []]  # per output time: exp, phi1
            for j in range(1, len(times)):
                exp, phi1 = _exp_and_phi1(times[j] - times[0], centre, half)
                series[0].append(_Series(exp, start, self.max_degree))
                if has_source:
                    series[1].append(_Series(phi1, start, self.max_degree))

            def degrees(allowed: Sequence[float]) -> List[int]:
                """The degree of each part's series for errors within ``allowed`` (per output
                time), the allowance shared equally between the parts."""
                return [max(sj.degree(a / parts / max(norm, 1e-300))
                            for sj, a in zip(series[i], allowed))
                        for i, norm in enumerate(norms)]

            # a first degree from the initial state's norm, then, with the solution's norms
            # known, as many more products as the tolerance at the solution asks for
            first = degrees([config.rtol * norms[0] + config.atol * math.sqrt(n)] *
                            (len(times) - 1))
        except _DegreeExceeded as error:
            raise self._too_many(error.degree, times, config, y0) from None
        except OverflowError:
            raise SolveError(f"method='expm': the flow grows beyond float64 between "
                             f"t={times[0]:.6g} and t={times[-1]:.6g}", times[0], math.nan,
                             [y0]) from None

        def run(y: Tensor, counted: Any, source: Optional[Tensor] = None
                ) -> List[_Recurrence]:
            def product(v: Tensor) -> Tensor:
                counted.nfe += 1
                return (op.matvec(v) - centre * v) / half

            out = [_Recurrence(product, y, series[0])]
            if has_source:
                source = source_of(y, counted) if source is None else source
                out.append(_Recurrence(product, source, series[1]))
            return out

        def total(parts_: Sequence[_Recurrence], want: Sequence[int]) -> List[Tensor]:
            sums = [r.extend(d) for r, d in zip(parts_, want)]
            return [sum(terms[1:], terms[0]) for terms in zip(*sums)]

        recurrences = run(y0, stats, s)
        outs = total(recurrences, first)
        with torch.no_grad():
            reached = torch.stack([torch.linalg.vector_norm(o) for o in outs]).tolist()
        try:
            final = [max(a, b) for a, b in zip(first, degrees(
                [config.rtol * r + config.atol * math.sqrt(n) for r in reached]))]
        except _DegreeExceeded as error:
            raise self._too_many(error.degree, times, config, y0) from None
        if final != first:
            outs = total(recurrences, final)

        if record is not None:
            again = SolverStats()
            record.append(Replay(y0, (), [], lambda y, _: (y, (), []), again))
            outputs = [(j, (times[j] - times[0]) / (times[-1] - times[0]))
                       for j in range(1, len(times))]

            def replay(y: Tensor, _: Tuple[Tensor, ...]
                       ) -> Tuple[Tensor, Tuple[Tensor, ...], List[Tensor]]:
                replayed = total(run(y, again), final)
                return replayed[-1], (), replayed
            record.append(Replay(y0.detach(), (), outputs, replay, again))
        ys = [y0] + outs
        stats.n_accepted += 1
        if config.check_finite:
            check_finite_outputs(ys, times, list(times))
        return ys

    def _too_many(self, degree: Optional[int], times: Sequence[float], config: Any, y0: Tensor
                  ) -> Exception:
        from .integrate import SolveError
        need = f"more than {self.max_degree}" if degree is None else str(degree)
        return SolveError(
            f"method='expm' would need {need} operator products to reach t={times[-1]:.6g} "
            f"within rtol={config.rtol:g}, atol={config.atol:g}; raise max_degree "
            f"(method=Exponential(max_degree=...)) or loosen the tolerances", times[0],
            math.nan, [y0])


@register("expm")
def _expm() -> Solver:
    return Exponential()
