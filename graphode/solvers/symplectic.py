"""Symplectic partitioned methods for Hamiltonian flows: symplectic Euler and leapfrog.

A Hamiltonian system splits its state into positions and momenta, ``y = [q, p]`` along the
last dimension, and flows by ``dq/dt = dH/dp``, ``dp/dt = -dH/dq``. A partitioned method
updates the two halves in turn, each with the other's newest value. For a separable
Hamiltonian ``H(q, p) = T(p) + V(q)`` the map it takes per step is symplectic: the energy
error stays bounded over any number of steps instead of drifting, as it does under rk4 or
dopri5 (Hairer, Lubich and Wanner, *Geometric Numerical Integration*, 2006, ch. VI and IX).

- ``symplectic_euler``: ``p1 = p + h f_p(q, p)``, then ``q1 = q + h f_q(q, p1)``; order 1.
- ``leapfrog`` (Stormer-Verlet, kick-drift-kick): half a kick of ``p``, a drift of ``q``
  with the half-kicked ``p``, half a kick at the new ``q``; order 2, symmetric.

The field is an ordinary ``f(t, y)`` returning ``[f_q, f_p]``; each update reads its half.
With ``separable=True`` the methods use that ``f_p`` depends on ``q`` (and ``t``) only and
``f_q`` on ``p`` only: the final kick's evaluation is then the next step's first, and
leapfrog costs two evaluations per step instead of three. On a field that is not separable
the methods still converge at their order, but are not symplectic.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .base import Func, Solver, register
from .tableaux import METHODS

__all__ = ["Symplectic", "SYMPLECTIC_SCHEMES"]

SYMPLECTIC_SCHEMES = ("symplectic_euler", "leapfrog")


class Symplectic(Solver):
    """A symplectic partitioned method on a fixed grid (see the module).

    Args:
        scheme: ``"leapfrog"`` (order 2) or ``"symplectic_euler"`` (order 1).
        split: the number of position channels ``q``, the first ones along the state's last
            dimension; the rest are the momenta ``p``. ``None``: half the channels (the
            state's last dimension must then be even).
        separable: the field's ``f_p`` depends on ``q`` only and its ``f_q`` on ``p`` only
            (``H = T(p) + V(q)``), so an evaluation is shared between steps.
    """

    adaptive = False
    gradients = ("autograd", "checkpoint")
    options = frozenset({"split", "separable"})

    def __init__(self, scheme: str = "leapfrog", split: Optional[int] = None,
                 separable: bool = False):
        if scheme not in SYMPLECTIC_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SYMPLECTIC_SCHEMES)}, got "
                             f"{scheme!r}")
        if split is not None and (not isinstance(split, int) or split < 1):
            raise ValueError(f"split is the number of position channels: a positive integer "
                             f"or None (half the channels), got {split!r}")
        self.scheme, self.split, self.separable = scheme, split, bool(separable)
        self.name = scheme
        self.tableau = METHODS["midpoint" if scheme == "leapfrog" else "euler"]

    def settings(self) -> Dict[str, Any]:
        return {"scheme": self.scheme, "split": self.split, "separable": self.separable}

    def positions(self, y: Tensor) -> int:
        """The number of position channels of the state ``y``; raises naming the fix."""
        c = y.size(-1) if y.dim() else 0
        if self.split is None:
            if c < 2 or c % 2:
                raise ValueError(
                    f"{self.name} splits the state's last dimension into positions and momenta; "
                    f"it has {c} channels, not an even number: give split=<number of position "
                    f"channels> (method=Symplectic({self.scheme!r}, split=...))")
            return c // 2
        if not 0 < self.split < c:
            raise ValueError(f"split={self.split} must leave both positions and momenta in the "
                             f"state's {c} channels")
        return self.split

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        from .integrate import Replay, SolverStats, _emit, check_finite_outputs, grid_of
        from .interpolation import linear
        grid = grid_of(times, config)
        direction = 1.0 if times[-1] > times[0] else -1.0
        m = self.positions(y0)
        counted = _Stepper(self, func, m, config, stats)
        if record is not None:
            again = _Stepper(self, func, m, config, SolverStats())
            record.append(Replay(y0, (), [], lambda y, _: (y, again.carry_from(grid[0], y), []),
                                 again.stats))
        ys = [y0]
        y = y0
        fp = counted.kick_field(grid[0], y)
        for t0, t1 in zip(grid[:-1], grid[1:]):
            h = t1 - t0
            if config.callbacks is not None:
                config.callbacks("step", t0, y, h)
            outputs = _emit(times, len(ys), direction, t0, t1)
            if record is not None:
                record.append(Replay(y.detach(), (fp.detach(),), list(outputs),
                                     partial(again.replay, t0, t1, outputs), again.stats))
            y1, fp = counted.step(t0, t1, y, fp)
            stats.n_accepted += 1
            ys.extend(linear(y, y1, theta) if theta != 1.0 else y1 for _, theta in outputs)
            y = y1
        if config.check_finite:
            check_finite_outputs(ys, times, grid)
        return ys


class _Stepper:
    """One symplectic method's steps on one field, counting evaluations into ``stats``."""

    def __init__(self, solver: Symplectic, func: Func, m: int, config: Any, stats: Any):
        self.solver, self.func, self.m, self.config, self.stats = solver, func, m, config, stats

    def f(self, t: float, y: Tensor) -> Tensor:
        from .integrate import _time_tensor
        self.stats.nfe += 1
        return self.func(_time_tensor(t, y), y)

    def kick_field(self, t: float, y: Tensor) -> Tensor:
        """``f_p`` at ``(t, y)``."""
        return self.f(t, y)[..., self.m:]

    def carry_from(self, t: float, y: Tensor) -> Tuple[Tensor, ...]:
        return (self.kick_field(t, y),)

    def step(self, t0: float, t1: float, y: Tensor, fp: Tensor) -> Tuple[Tensor, Tensor]:
        """``(y1, f_p for the next step's first kick)`` from ``y`` at ``t0``, where ``fp`` is
        ``f_p`` at ``(t0, y)``."""
        m, h = self.m, t1 - t0
        q, p = y[..., :m], y[..., m:]
        if self.solver.scheme == "symplectic_euler":
            p1 = p + h * fp
            q1 = q + h * self.f(t0, torch.cat([q, p1], -1))[..., :m]
            y1 = torch.cat([q1, p1], -1)
            return y1, self.kick_field(t1, y1)
        half = 0.5 * h
        p_half = p + half * fp
        q1 = q + h * self.f(t0 + half, torch.cat([q, p_half], -1))[..., :m]
        mid = torch.cat([q1, p_half], -1)
        fp1 = self.kick_field(t1, mid)
        y1 = torch.cat([q1, p_half + half * fp1], -1)
        return y1, (fp1 if self.solver.separable else self.kick_field(t1, y1))

    def replay(self, t0: float, t1: float, outputs: List[Tuple[int, float]], y: Tensor,
               carry: Tuple[Tensor, ...]) -> Tuple[Tensor, Tuple[Tensor, ...], List[Tensor]]:
        from .interpolation import linear
        y1, fp1 = self.step(t0, t1, y, carry[0])
        return y1, (fp1,), [y1 if theta == 1.0 else linear(y, y1, theta) for _, theta in outputs]


@register("symplectic_euler")
def _symplectic_euler() -> Solver:
    return Symplectic("symplectic_euler")


@register("leapfrog")
def _leapfrog() -> Solver:
    return Symplectic("leapfrog")
