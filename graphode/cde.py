"""Neural controlled differential equations: paths interpolated from (possibly irregular,
possibly incomplete) observations, and :func:`cdeint`, which drives a state by such a path,

.. math::
    \\mathbf{z}(t) = \\mathbf{z}(t_0) + \\int_{t_0}^{t} F\\big(s, \\mathbf{z}(s)\\big)\\,
        d\\mathbf{X}(s) = \\mathbf{z}(t_0) + \\int_{t_0}^{t} F\\big(s, \\mathbf{z}(s)\\big)\\,
        \\frac{d\\mathbf{X}}{ds}(s)\\, ds,

(Kidger et al., `"Neural Controlled Differential Equations for Irregular Time Series"
<https://arxiv.org/abs/2005.08926>`_), solved by graphode's shared solver with its gradient
modes. A graph neural CDE (:class:`graphode.nn.GraphNCDE`) is one whose :math:`F` is a graph
layer.

Paths follow torchcde's layout: values ``(..., T, C)``, the time along the second-to-last
dimension, channels last. Missing values (a ``mask``) are filled by linear interpolation in
time between a series' observed values (constant before the first and after the last), as
torchcde does with NaNs, and the spline runs through every time stamp.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .api import Solution, solve

__all__ = ["fill_missing", "CubicSpline", "LinearInterpolation", "cdeint"]

Time = Union[float, Tensor]


def _check_path(values: Tensor, times: Optional[Tensor], mask: Optional[Tensor]
                ) -> Tuple[Tensor, Tensor]:
    if not isinstance(values, Tensor) or not values.is_floating_point() or values.dim() < 2:
        raise ValueError(f"values must be a floating-point tensor of shape (..., T, C), got "
                         f"{getattr(values, 'shape', type(values).__name__)}")
    steps = values.size(-2)
    if steps < 2:
        raise ValueError(f"a path needs at least 2 time stamps (values' dimension -2), got "
                         f"{steps}")
    if times is None:
        times = torch.arange(steps, dtype=values.dtype, device=values.device)
    times = torch.as_tensor(times, dtype=values.dtype, device=values.device)
    if times.shape != (steps,):
        raise ValueError(f"times must have shape ({steps},), one per row of values' dimension "
                         f"-2, got {tuple(times.shape)}")
    if not bool((times[1:] > times[:-1]).all()):
        raise ValueError("times must be strictly increasing")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True where observed), got {mask.dtype}")
        if mask.shape not in (values.shape, values.shape[:-1]):
            raise ValueError(f"mask must have values' shape {tuple(values.shape)} or "
                             f"{tuple(values.shape[:-1])} (one flag per time stamp and "
                             f"channel, or per time stamp), got {tuple(mask.shape)}")
    return values, times


def fill_missing(values: Tensor, mask: Tensor, times: Optional[Tensor] = None) -> Tensor:
    """Fill the unobserved entries of ``values`` ``(..., T, C)`` by linear interpolation in
    ``times`` between each series' observed neighbours; before the first observation the
    first observed value, after the last the last; a series never observed becomes zeros.

    Args:
        values: ``(..., T, C)``.
        mask: ``True`` where observed, ``(..., T, C)`` or ``(..., T)``.
        times: ``(T,)`` (default ``0, 1, ..., T - 1``).
    """
    values, times = _check_path(values, times, mask)
    if mask.dim() == values.dim() - 1:
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values)
    steps = values.size(-2)
    index = torch.arange(steps, device=values.device).view(-1, 1)
    prev = torch.where(mask, index, -1).cummax(-2).values
    after = torch.where(mask, index, steps).flip(-2).cummin(-2).values.flip(-2)
    has_prev, has_next = prev >= 0, after < steps
    prev_c, next_c = prev.clamp(0, steps - 1), after.clamp(0, steps - 1)
    v_prev, v_next = values.gather(-2, prev_c), values.gather(-2, next_c)
    t_prev, t_next = times[prev_c], times[next_c]
    span = t_next - t_prev
    w = torch.where(span > 0, (times.view(-1, 1) - t_prev) / span.where(span > 0, 1),
                    torch.zeros_like(span))
    between = v_prev + w * (v_next - v_prev)
    filled = torch.where(has_prev & has_next, between,
                         torch.where(has_prev, v_prev, torch.where(has_next, v_next,
                                                                   torch.zeros_like(values))))
    return torch.where(mask, values, filled)


class _Path:
    """A piecewise-polynomial path: ``coefficients[k]`` of shape ``(..., T - 1, C)`` multiply
    ``(t - t_i)^k`` on ``[t_i, t_{i+1}]``; the end pieces extend beyond the ends."""

    times: Tensor
    coefficients: Tuple[Tensor, ...]

    def _locate(self, t: Time) -> Tuple[Tensor, Tensor, bool]:
        t = torch.as_tensor(t, dtype=self.times.dtype, device=self.times.device)
        scalar = t.dim() == 0
        flat = t.reshape(-1)
        piece = (torch.searchsorted(self.times, flat, right=True) - 1).clamp(
            0, self.times.numel() - 2)
        return piece, (flat - self.times[piece]).unsqueeze(-1), scalar

    def _polynomial(self, t: Time, derivative: bool) -> Tensor:
        piece, s, scalar = self._locate(t)
        coeffs = [c.index_select(-2, piece) for c in self.coefficients]
        if derivative:
            coeffs = [k * c for k, c in enumerate(coeffs)][1:]
        out = coeffs[-1]
        for c in reversed(coeffs[:-1]):
            out = c + s * out
        return out.squeeze(-2) if scalar else out

    def evaluate(self, t: Time) -> Tensor:
        """``X(t)``: ``(..., C)`` for a scalar ``t``, ``(..., K, C)`` for ``K`` times."""
        return self._polynomial(t, derivative=False)

    def derivative(self, t: Time) -> Tensor:
        """``dX/dt(t)``, shaped as :meth:`evaluate`."""
        return self._polynomial(t, derivative=True)

    @property
    def knots(self) -> List[float]:
        """The interior time stamps, where the path's pieces meet."""
        return [float(v) for v in self.times[1:-1]]

    def with_coefficients(self, coefficients: Sequence[Tensor]) -> "_Path":
        """The same path on other coefficient tensors (leaf copies for a gradient mode)."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.coefficients = tuple(coefficients)
        return other


class LinearInterpolation(_Path):
    """The piecewise-linear path through ``values`` ``(..., T, C)`` at ``times`` ``(T,)``
    (missing values filled first, see :func:`fill_missing`). Its derivative jumps at every
    time stamp: :func:`cdeint` hands them to the solver as ``jump_t``."""

    def __init__(self, values: Tensor, times: Optional[Tensor] = None,
                 mask: Optional[Tensor] = None):
        values, self.times = _check_path(values, times, mask)
        if mask is not None:
            values = fill_missing(values, mask, self.times)
        h = (self.times[1:] - self.times[:-1]).unsqueeze(-1)
        self.coefficients = (values[..., :-1, :], (values[..., 1:, :] - values[..., :-1, :]) / h)


class CubicSpline(_Path):
    """The cubic spline through ``values`` ``(..., T, C)`` at ``times`` ``(T,)``: twice
    continuously differentiable, so a CDE driven by it is an ODE with a smooth field.

    Args:
        values: ``(..., T, C)``.
        times: ``(T,)``, strictly increasing (default ``0, 1, ..., T - 1``).
        mask: ``True`` where observed, ``(..., T, C)`` or ``(..., T)``; the rest is filled by
            :func:`fill_missing` before the spline is fitted.
        boundary: ``"not-a-knot"`` (the default: the third derivative is continuous at the
            second and the second-to-last time stamps, so a cubic is reproduced exactly; with
            fewer than 4 time stamps this falls back to ``"natural"``) or ``"natural"`` (zero
            second derivative at both ends, torchcde's natural cubic spline).
    """

    def __init__(self, values: Tensor, times: Optional[Tensor] = None,
                 mask: Optional[Tensor] = None, boundary: str = "not-a-knot"):
        if boundary not in ("not-a-knot", "natural"):
            raise ValueError(f"boundary must be 'not-a-knot' or 'natural', got {boundary!r}")
        values, self.times = _check_path(values, times, mask)
        if mask is not None:
            values = fill_missing(values, mask, self.times)
        self.boundary = boundary
        self.coefficients = self._fit(values, boundary)

    def _fit(self, values: Tensor, boundary: str) -> Tuple[Tensor, ...]:
        steps = values.size(-2)
        t = self.times.double()
        h = t[1:] - t[:-1]
        y = values.double().movedim(-2, 0).reshape(steps, -1)  # (T, K): one column a series
        slope = (y[1:] - y[:-1]) / h.unsqueeze(-1)
        # Second derivatives M at the time stamps: continuity of the first derivative inside,
        # a boundary condition at each end. T is small (a window), so a dense solve is cheap.
        system = torch.zeros(steps, steps, dtype=torch.float64, device=values.device)
        rhs = torch.zeros_like(y)
        for i in range(1, steps - 1):
            system[i, i - 1], system[i, i], system[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        rhs[1:-1] = 6 * (slope[1:] - slope[:-1])
        if boundary == "not-a-knot" and steps >= 4:
            system[0, 0], system[0, 1], system[0, 2] = h[1], -(h[0] + h[1]), h[0]
            system[-1, -3], system[-1, -2], system[-1, -1] = h[-1], -(h[-2] + h[-1]), h[-2]
        else:  # natural
            system[0, 0] = system[-1, -1] = 1.0
        m = torch.linalg.solve(system, rhs)
        hh = h.unsqueeze(-1)
        b = slope - hh * (2 * m[:-1] + m[1:]) / 6
        c = m[:-1] / 2
        d = (m[1:] - m[:-1]) / (6 * hh)
        shape = values.shape[:-2] + values.shape[-1:]

        def back(k: Tensor) -> Tensor:  # (T - 1, K) -> (..., T - 1, C)
            return k.reshape(steps - 1, *shape).movedim(0, -2).to(values.dtype)
        return values[..., :-1, :], back(b), back(c), back(d)


class _Driven(nn.Module):
    """``f(t, z) = F(t, z) dX/dt(t)``: a CDE written as the ODE the solver integrates."""

    def __init__(self, func: nn.Module, path: _Path):
        super().__init__()
        self.func, self.path = func, path
        self.checked = False

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        matrix = self.func(t, z)
        dx = self.path.derivative(t)
        if not self.checked:
            if matrix.dim() != z.dim() + 1 or matrix.shape[:-1] != z.shape \
                    or matrix.size(-1) != dx.size(-1):
                raise ValueError(
                    f"cdeint: func(t, z) must return (*z.shape, C) = "
                    f"{(*z.shape, dx.size(-1))} (a matrix per state that multiplies the path's "
                    f"C channels), got {tuple(matrix.shape)}")
            self.checked = True
        return (matrix @ dx.unsqueeze(-1)).squeeze(-1)


def cdeint(X: _Path, func: nn.Module, z0: Tensor, t: Any, **solve_kwargs: Any) -> Solution:
    """Solve the controlled differential equation ``dz = func(t, z) dX(t)`` from ``z0`` at
    ``t[0]``, with graphode's solver (:func:`graphode.solve`).

    Args:
        X: the driving path, a :class:`CubicSpline` or :class:`LinearInterpolation` whose
            leading dimensions broadcast against ``z0``'s.
        func: ``func(t, z)`` returns ``(*z.shape, C)``, a matrix per state (rows: the state's
            channels; columns: the path's ``C`` channels).
        z0: the initial state ``(..., hidden)``.
        t: output times (see :func:`graphode.solve`).
        **solve_kwargs: ``method``, ``step_size``, ``rtol``, ``atol``, ``gradient`` and the
            rest of :func:`graphode.solve`. With a :class:`LinearInterpolation` the path's
            time stamps become ``jump_t`` of adaptive solves (its derivative jumps there).
            In the adjoint and checkpoint modes the path's coefficients are differentiated too
            when they require a gradient.

    Returns:
        a :class:`graphode.Solution`; ``ys`` is ``(len(t), *z0.shape)`` (time first, as
        :func:`graphode.solve`; torchcde puts it at ``-2``).
    """
    if not isinstance(X, _Path):
        raise TypeError(f"X must be a graphode.cde.CubicSpline or LinearInterpolation, got "
                        f"{type(X).__name__}")
    if not isinstance(func, nn.Module):
        raise TypeError(f"func must be an nn.Module (its parameters are differentiated), got "
                        f"{type(func).__name__}")
    if isinstance(X, LinearInterpolation) and "jump_t" not in solve_kwargs \
            and solve_kwargs.get("step_size") is None and "grid" not in solve_kwargs:
        solve_kwargs["jump_t"] = X.knots
    params = [p for p in func.parameters() if p.requires_grad]
    learned = [c.requires_grad for c in X.coefficients]
    mode = solve_kwargs.get("gradient", "autograd")
    if mode == "autograd" or not any(learned):
        return solve(_Driven(func, X), z0, t, adjoint_params=params, **solve_kwargs)
    from .nn.gde import solve_on_leaves
    out: List[Solution] = []

    def run(y0: Tensor, *coefficients: Tensor) -> Tensor:
        sol = solve(_Driven(func, X.with_coefficients(coefficients)), y0, t,
                    adjoint_params=params + [c for c in coefficients if c.requires_grad],
                    **solve_kwargs)
        out.append(sol)
        return sol.ys
    ys = solve_on_leaves(run, [z0, *X.coefficients], params)
    return Solution(ys=ys, ts=out[-1].ts, stats=out[-1].stats)
