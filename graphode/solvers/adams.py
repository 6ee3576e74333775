"""Adams multistep methods on a fixed grid: Adams-Bashforth and Adams-Bashforth-Moulton.

torchdiffeq's ``explicit_adams``, ``implicit_adams`` and ``fixed_adams`` (the last two are the
same predictor-corrector). The first steps are taken by the 3/8-rule ``rk4`` until enough past
derivatives exist, then the order grows with the history up to ``max_order``. The
coefficients assume equal steps, so a step of another size (the shorter last step of a
``step_size`` grid, uneven output times) restarts the history instead of using wrong
weights (torchdiffeq keeps the weights there).
"""
from __future__ import annotations

import math
import warnings
from fractions import Fraction
from functools import lru_cache, partial
from math import comb
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from .base import Func, Solver, register
from .controllers import error_ratio
from .interpolation import hermite, linear
from .rk import RungeKutta
from .tableaux import METHODS

__all__ = ["Adams", "bashforth", "moulton"]


@lru_cache(maxsize=None)
def _gammas(count: int, implicit: bool) -> Tuple[Fraction, ...]:
    """The backward-difference coefficients: ``sum_i gamma_i / (m + 1 - i) = [m == 0 or
    explicit]`` over ``i <= m`` (Hairer, Norsett and Wanner I, III.1)."""
    out: List[Fraction] = []
    for m in range(count):
        rhs = Fraction(1 if (m == 0 or not implicit) else 0)
        out.append(rhs - sum((g / (m + 1 - i) for i, g in enumerate(out)), Fraction(0)))
    return tuple(out)


@lru_cache(maxsize=None)
def bashforth(k: int) -> Tuple[float, ...]:
    """Weights of ``f_n, f_{n-1}, ..., f_{n-k+1}`` in the ``k``-step Adams-Bashforth method
    (order ``k``)."""
    g = _gammas(k, implicit=False)
    return tuple(float((-1) ** j * sum(comb(i, j) * g[i] for i in range(j, k))) for j in range(k))


@lru_cache(maxsize=None)
def moulton(k: int) -> Tuple[float, ...]:
    """Weights of ``f_{n+1}, f_n, ..., f_{n-k+1}`` in the Adams-Moulton method through
    ``k + 1`` points (order ``k + 1``)."""
    g = _gammas(k + 1, implicit=True)
    return tuple(float((-1) ** j * sum(comb(i, j) * g[i] for i in range(j, k + 1)))
                 for j in range(k + 1))


def _rk4_time(rk4: RungeKutta, t: float, h: float, like: Tensor, i: int) -> Tensor:
    from .integrate import _time_tensor
    return _time_tensor(t + rk4.c[i] * h, like)


def _weighted(y: Tensor, h: float, weights: Sequence[float], fs: Sequence[Tensor]) -> Tensor:
    out = y
    for w, f in zip(weights, fs):
        out = out + f * (h * w)
    return out


class Adams(Solver):
    """Adams-Bashforth (``implicit=False``) or Adams-Bashforth-Moulton on a fixed grid.

    Args:
        implicit: correct each Adams-Bashforth prediction with Adams-Moulton by functional
            iteration (``max_iters`` times at most, until the change is within
            ``rtol``/``atol``; a step that does not converge warns, as torchdiffeq does).
        max_order: highest order used (1 to 12). The default 4 is the classic
            Adams-Bashforth(-Moulton) 4; torchdiffeq's default, 12, has a stability interval
            of a few thousandths of ``1 / h``: its explicit method diverges on ``y' = -y``
            with ``step_size=0.01``.
        max_iters: most corrector iterations per step.
    """

    adaptive = False
    tableau = METHODS["rk4"]
    options = frozenset({"max_order", "max_iters"})

    def __init__(self, implicit: bool = True, max_order: int = 4, max_iters: int = 4):
        if not isinstance(max_order, int) or not 1 <= max_order <= 12:
            raise ValueError(f"max_order must be an integer from 1 to 12, got {max_order!r}")
        if not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
        self.implicit, self.max_order, self.max_iters = implicit, max_order, max_iters
        self.name = "implicit_adams" if implicit else "explicit_adams"

    def settings(self) -> Dict[str, Any]:
        return {"implicit": self.implicit, "max_order": self.max_order, "max_iters": self.max_iters}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        from .integrate import _emit, _time_tensor, check_finite_outputs, grid_of
        grid = grid_of(times, config)
        rk4 = RungeKutta(METHODS["rk4"])
        direction = math.copysign(1.0, times[-1] - times[0])
        cubic = config.output_mode() != "linear"
        # Start with rk4 until this many past derivatives exist.
        warm = min(4, self.max_order)

        def f(t: float, y: Tensor, toward: Optional[float] = None) -> Tensor:
            stats.nfe += 1
            return func(_time_tensor(t, y, toward if config.perturb else None), y)

        unconverged: List[float] = []
        ys = [y0]
        history: List[Tensor] = []  # past derivatives, newest first
        y, h_prev = y0, None
        f0: Optional[Tensor] = None
        for n in range(len(grid) - 1):
            t0, t1 = grid[n], grid[n + 1]
            h = t1 - t0
            if f0 is None:
                f0 = f(t0, y, t1)
            if h_prev is not None and abs(h - h_prev) > 1e-9 * abs(h_prev):
                history = []  # unequal step: the weights no longer apply
            history = [f0] + history[:self.max_order - 1]
            if config.callbacks is not None:
                config.callbacks("step", t0, y, h)
            if len(history) < warm:
                y1, _, _ = rk4.step(func, partial(_rk4_time, rk4, t0, h, y0), y, f0, h,
                                    with_error=False)
                stats.nfe += rk4.stages - 1
            else:
                k = len(history)
                y1 = _weighted(y, h, bashforth(k), history)
                if self.implicit:
                    y1, converged = self._correct(f, y, y1, history, t0, t1, h, config)
                    if not converged:
                        unconverged.append(t0)
            stats.n_accepted += 1
            f1 = f(t1, y1, t0) if (n + 2 < len(grid) or cubic) else None
            for _, theta in _emit(times, len(ys), direction, t0, t1):
                if theta == 1.0:
                    ys.append(y1)
                elif f1 is not None and cubic:
                    ys.append(hermite(y, y1, f0, f1, h, theta))
                else:
                    ys.append(linear(y, y1, theta))
            y, f0, h_prev = y1, f1, h
        if unconverged:
            warnings.warn(f"{self.name}: the corrector did not converge within rtol/atol in "
                          f"{self.max_iters} iterations in {len(unconverged)} of "
                          f"{len(grid) - 1} steps (the first from t={unconverged[0]:.6g}); "
                          f"the solution may be inaccurate: lower the step size, loosen rtol/atol "
                          f"or raise max_iters", stacklevel=2)
        if config.check_finite:
            check_finite_outputs(ys, times, grid)
        return ys

    def _correct(self, f: Any, y: Tensor, y1: Tensor, history: List[Tensor], t0: float,
                 t1: float, h: float, config: Any) -> Tuple[Tensor, bool]:
        """Adams-Moulton by functional iteration from the prediction ``y1``."""
        k = min(len(history), self.max_order - 1)
        weights = moulton(k)
        base = _weighted(y, h, weights[1:], history[:k])
        for _ in range(self.max_iters):
            previous = y1
            y1 = base + f(t1, previous, t0) * (h * weights[0])
            ratio = error_ratio(y1 - previous, previous, y1, config.rtol, config.atol, config.norm)
            if bool(ratio < 1):
                return y1, True
        return y1, False


@register("explicit_adams")
def _explicit_adams() -> Solver:
    return Adams(implicit=False)


@register("implicit_adams")
def _implicit_adams() -> Solver:
    return Adams(implicit=True)


@register("fixed_adams")
def _fixed_adams() -> Solver:
    solver = Adams(implicit=True)
    solver.name = "fixed_adams"
    return solver
