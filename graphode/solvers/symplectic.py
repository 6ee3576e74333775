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
leapfrog costs two evaluations per step instead of three. With ``kinematic=True`` the
positions' rate is the momenta themselves (``f_q = p``, a second-order system ``q'' = f_p``
such as :class:`~graphode.nn.SecondOrderGDEConv` solves), so a drift needs no evaluation:
symplectic Euler costs one evaluation per step, and separable leapfrog one per step plus one.
A step's first kick is evaluated when the step starts, so no evaluation is spent past the
last step. On a field that is not separable the methods still converge at their order, but
are not symplectic.
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
        kinematic: the field's ``f_q`` is ``p`` itself (positions and momenta have the same
            channels), so drifts are taken without evaluating the field.
            :class:`~graphode.nn.SecondOrderGDEConv` sets it for its ``[X, V]`` system.
    """

    adaptive = False
    gradients = ("autograd", "checkpoint")
    replays_random = True
    options = frozenset({"split", "separable", "kinematic"})

    def __init__(self, scheme: str = "leapfrog", split: Optional[int] = None,
                 separable: bool = False, kinematic: bool = False):
        if scheme not in SYMPLECTIC_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SYMPLECTIC_SCHEMES)}, got "
                             f"{scheme!r}")
        if split is not None and (not isinstance(split, int) or split < 1):
            raise ValueError(f"split is the number of position channels: a positive integer "
                             f"or None (half the channels), got {split!r}")
        self.scheme, self.split, self.separable = scheme, split, bool(separable)
        self.kinematic = bool(kinematic)
        self.name = scheme
        self.tableau = METHODS["midpoint" if scheme == "leapfrog" else "euler"]

    def settings(self) -> Dict[str, Any]:
        return {"scheme": self.scheme, "split": self.split, "separable": self.separable,
                "kinematic": self.kinematic}

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
        if self.kinematic and 2 * self.split != c:
            raise ValueError(f"kinematic=True takes the positions' rate to be the momenta, so "
                             f"both need the same channels: split={self.split} leaves "
                             f"{c - self.split} momenta; give split=None or {c // 2} channels each")
        return self.split

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        from .integrate import Replay, SolverStats, _emit, check_finite_outputs, grid_of, rng_state
        from .interpolation import linear
        grid = grid_of(times, config)
        direction = 1.0 if times[-1] > times[0] else -1.0
        m = self.positions(y0)
        counted = _Stepper(self, func, m, config, stats)
        if record is not None:
            again = _Stepper(self, func, m, config, SolverStats())
            record.append(Replay(y0, (), [], lambda y, _: (y, (), []), again.stats))
        ys = [y0]
        y = y0
        fp: Optional[Tensor] = None  # f_p at the step's start, where the last step left it
        for t0, t1 in zip(grid[:-1], grid[1:]):
            h = t1 - t0
            if config.callbacks is not None:
                config.callbacks("step", t0, y, h)
            outputs = _emit(times, len(ys), direction, t0, t1)
            if record is not None:
                record.append(Replay(y.detach(), () if fp is None else (fp.detach(),),
                                     list(outputs), partial(again.replay, t0, t1, outputs),
                                     again.stats, rng_state(y.device)))
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

    def drift(self, t: float, q: Tensor, p: Tensor) -> Tensor:
        """``f_q`` at ``(t, [q, p])``: ``p`` itself for a kinematic field."""
        return p if self.solver.kinematic else self.f(t, torch.cat([q, p], -1))[..., :self.m]

    def step(self, t0: float, t1: float, y: Tensor, fp: Optional[Tensor]
             ) -> Tuple[Tensor, Optional[Tensor]]:
        """``(y1, f_p at the end where the step computed it, else None)`` from ``y`` at
        ``t0``; ``fp`` is ``f_p`` at ``(t0, y)`` where the last step left it."""
        m, h = self.m, t1 - t0
        q, p = y[..., :m], y[..., m:]
        if fp is None:
            fp = self.kick_field(t0, y)
        if self.solver.scheme == "symplectic_euler":
            p1 = p + h * fp
            q1 = q + h * self.drift(t0, q, p1)
            return torch.cat([q1, p1], -1), None
        half = 0.5 * h
        p_half = p + half * fp
        q1 = q + h * self.drift(t0 + half, q, p_half)
        fp1 = self.kick_field(t1, torch.cat([q1, p_half], -1))
        y1 = torch.cat([q1, p_half + half * fp1], -1)
        # separable: f_p reads q1 alone, so this kick is also the next step's first
        return y1, (fp1 if self.solver.separable else None)

    def replay(self, t0: float, t1: float, outputs: List[Tuple[int, float]], y: Tensor,
               carry: Tuple[Tensor, ...]) -> Tuple[Tensor, Tuple[Tensor, ...], List[Tensor]]:
        from .interpolation import linear
        y1, fp1 = self.step(t0, t1, y, carry[0] if carry else None)
        return y1, (() if fp1 is None else (fp1,)), \
            [y1 if theta == 1.0 else linear(y, y1, theta) for _, theta in outputs]


@register("symplectic_euler")
def _symplectic_euler() -> Solver:
    return Symplectic("symplectic_euler")


@register("leapfrog")
def _leapfrog() -> Solver:
    return Symplectic("leapfrog")
