"""Implicit-explicit (IMEX) additive Runge-Kutta methods for ``f = stiff + nonstiff``.

Reaction-diffusion graph models (GREAD and its kin) have a stiff linear diffusion and a mild
nonlinear reaction. An additive Runge-Kutta method treats the first implicitly and the second
explicitly, so each stage is a linear system in the diffusion alone (one CG solve with the
graph operator when the diffusion is a :class:`~graphode.nn.LinearDiffusion`), and the
reaction is never differentiated inside the stages.

The split is declared by the field: wrap the two parts in :class:`Split` (which is itself a
plain vector field, their sum, so every other method solves the same problem)::

    field = Split(implicit=diffusion, explicit=reaction)
    solve(field, x0, t, method="kencarp3")

``kencarp3`` is Kennedy and Carpenter's ARK3(2)4L[2]SA (Appl. Numer. Math. 44 (2003)
139-181): third order, an L-stable stiffly accurate ESDIRK for the implicit part, an embedded
second-order estimate. Stage solves, options and gradients are those of
:class:`~graphode.solvers.implicit.Implicit`: ``gradient="autograd"`` and
``"checkpoint"`` by the implicit function theorem, and ``"adjoint"``, whose backward solve
splits the augmented field as the field is split (each side's Jacobian products with its side).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .base import Func, register
from .implicit import DIRKTableau, Implicit, _Loop

__all__ = ["ARKTableau", "Split", "IMEX", "ARK_METHODS"]


@dataclass(frozen=True)
class ARKTableau:
    """An additive Runge-Kutta pair: explicit rows ``a_explicit`` (row ``i`` has ``i``
    entries), implicit rows ``a_implicit`` (row ``i`` has ``i + 1``, the last the diagonal),
    shared weights ``b`` and stage times ``c``; ``b_error = b - b_hat``."""

    name: str
    a_explicit: Tuple[Tuple[float, ...], ...]
    a_implicit: Tuple[Tuple[float, ...], ...]
    b: Tuple[float, ...]
    b_error: Tuple[float, ...]
    c: Tuple[float, ...]
    order: int
    error_order: int

    def __post_init__(self) -> None:
        for i, (e, im) in enumerate(zip(self.a_explicit, self.a_implicit)):
            assert len(e) == i and len(im) == i + 1, f"{self.name}: row {i} has the wrong length"
            assert abs(sum(e) - self.c[i]) < 1e-12 and abs(sum(im) - self.c[i]) < 1e-12, (
                f"{self.name}: row {i} does not sum to c")

    def implicit_tableau(self) -> DIRKTableau:
        """The implicit part alone, as the DIRK loop's settings read it."""
        return DIRKTableau(self.name, self.a_implicit, self.c, self.order,
                           self.b_error, self.error_order)


def _kencarp3() -> ARKTableau:
    g = 1767732205903 / 4055673282236
    b = (1471266399579 / 7840856788654, -4482444167858 / 7529755066697,
         11266239266428 / 11593286722821, g)
    b_hat = (2756255671327 / 12835298489170, -10771552573575 / 22201958757719,
             9247589265047 / 10645013368117, 2193209047091 / 5459859503100)
    explicit = ((), (2 * g,),
                (5535828885825 / 10492691773637, 788022342437 / 10882634858940),
                (6485989280629 / 16251701735622, -4246266847089 / 9704473918619,
                 10755448449292 / 10357097424841))
    implicit = ((0.0,), (g, g),
                (2746238789719 / 10658868560708, -640167445237 / 6845629431997, g),
                b)
    c = (0.0, 2 * g, 3 / 5, 1.0)
    # c_3 is exactly 3/5 in the paper; the rounded rational entries sum to it within 1e-12
    return ARKTableau("kencarp3", explicit, implicit, b,
                      tuple(x - y for x, y in zip(b, b_hat)), c, order=3, error_order=2)


ARK_METHODS: Dict[str, ARKTableau] = {"kencarp3": _kencarp3()}


class Split(torch.nn.Module):
    """A vector field declared as ``implicit + explicit`` for the IMEX methods.

    Args:
        implicit: the stiff part ``f_I(t, y)`` (a :class:`~graphode.nn.GraphVectorField`
            holding a ``LinearDiffusion`` lends its sparse operator to the stage solves).
        explicit: the non-stiff part ``f_E(t, y)``.

    Called, it returns the sum, so any other method solves the same equation.
    """

    def __init__(self, implicit: Callable[[Tensor, Tensor], Tensor],
                 explicit: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        if not (callable(implicit) and callable(explicit)):
            raise TypeError("Split needs two vector fields f(t, y): implicit= and explicit=")
        self.implicit, self.explicit = implicit, explicit

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.implicit(t, y) + self.explicit(t, y)


class IMEX(Implicit):
    """An additive Runge-Kutta method on a :class:`Split` field (see the module); the other
    arguments are :class:`~graphode.solvers.implicit.Implicit`'s."""

    gradients = ("autograd", "adjoint", "checkpoint")
    needs_split = True  # an adjoint solve with this method splits its augmented field too

    def __init__(self, method: Any = "kencarp3", **options: Any):
        if isinstance(method, str):
            if method not in ARK_METHODS:
                raise ValueError(f"unknown IMEX method {method!r}; valid: {', '.join(ARK_METHODS)}")
            method = ARK_METHODS[method]
        if not isinstance(method, ARKTableau):
            raise TypeError(f"method must be a name or an ARKTableau, got {type(method).__name__}")
        super().__init__(method.implicit_tableau(), **options)
        self.ark = method

    def settings(self) -> Dict[str, Any]:
        return {**super().settings(), "method": self.ark}

    def integrate(self, func: Func, y0: Tensor, times: Sequence[float], config: Any, stats: Any,
                  record: Optional[List[Any]] = None) -> List[Tensor]:
        return _IMEXLoop(self, func, y0, times, config, stats).run(record)


def split_of(func: Any) -> Optional[Split]:
    """The :class:`Split` behind ``func`` (``solve`` wraps the field in a checker)."""
    inner = getattr(func, "func", func)
    return inner if isinstance(inner, Split) else None


class _IMEXLoop(_Loop):
    """The DIRK loop with an explicit part in every stage; a step's start holds both parts."""

    def implicit_part(self, func: Func) -> Func:
        split = split_of(func)
        if split is None:
            raise TypeError(
                f"method={self.solver.name!r} needs the field split into its stiff and "
                f"non-stiff parts: pass graphode.solvers.imex.Split(implicit=..., explicit=...)")
        self.explicit = split.explicit
        return split.implicit

    def fe(self, t: float, y: Tensor, toward: Optional[float] = None) -> Tensor:
        from .integrate import _time_tensor
        self.stats.nfe += 1
        return self.explicit(_time_tensor(t, self.y0, toward), y)

    def start(self, t: float, y: Tensor, toward: Optional[float] = None) -> Any:
        from .integrate import _time_tensor
        self.stats.nfe += 2
        time = _time_tensor(t, self.y0, toward)
        return self.implicit(time, y), self.explicit(time, y)

    def total(self, start: Any) -> Tensor:
        return start[0] + start[1]

    def pack(self, start: Any) -> Tuple[Tensor, ...]:
        return tuple(start)

    def unpack(self, carry: Tuple[Tensor, ...]) -> Any:
        return tuple(carry)

    def step(self, t: float, y: Tensor, f0: Any, h: float, estimate: bool = True
             ) -> Tuple[Tensor, Any, Optional[Tensor]]:
        ark, config = self.solver.ark, self.config  # type: ignore[attr-defined]
        with torch.no_grad():
            scale = y.detach().abs().mul(config.rtol).add_(config.atol)
        k_i: List[Tensor] = [f0[0]]
        k_e: List[Tensor] = [f0[1]]
        guess = y
        for i in range(1, len(ark.c)):
            base = y
            for j in range(i):
                a_e, a_i = ark.a_explicit[i][j], ark.a_implicit[i][j]
                if a_e != 0.0:
                    base = base + (h * a_e) * k_e[j]
                if a_i != 0.0:
                    base = base + (h * a_i) * k_i[j]
            ti = t + ark.c[i] * h
            z, k = self.stage(ti, base, h * ark.a_implicit[i][-1], guess, scale)
            k_i.append(k)
            k_e.append(self.fe(ti, z))
            guess = z
        y1 = y
        error: Optional[Tensor] = None
        for bj, ej, ki, ke in zip(ark.b, ark.b_error, k_i, k_e):
            both = ki + ke
            y1 = y1 + (h * bj) * both
            if estimate and ej != 0.0:
                error = (h * ej) * both if error is None else error + (h * ej) * both
        return y1, self.start(t + h, y1), error


@register("kencarp3")
def _kencarp3_solver() -> IMEX:
    return IMEX("kencarp3")
