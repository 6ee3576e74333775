"""One generic explicit Runge-Kutta step over a :class:`ButcherTableau`.

The coefficients are turned into Python floats once per solve, with zero entries dropped, so
a stage costs one fused multiply-add per non-zero coefficient and no host synchronisation.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .tableaux import ButcherTableau

__all__ = ["RungeKutta", "combine"]

Terms = Tuple[Tuple[int, float], ...]


def _nonzero(coefficients: Sequence[float]) -> Terms:
    return tuple((j, float(a)) for j, a in enumerate(coefficients) if a != 0.0)


def combine(y: Optional[Tensor], h: Union[float, Tensor], terms: Terms, ks: Sequence[Tensor]
            ) -> Tensor:
    """``y + h * sum_j a_j ks[j]`` over the non-zero ``(j, a_j)`` in ``terms``.

    ``h`` is a number, or a tensor that broadcasts against the state (one step per graph of a
    batch, :mod:`graphode.solvers.per_graph`). ``y=None`` returns the increment alone. The
    sum is built in a fresh tensor, so in-place accumulation is safe under autograd.
    """
    acc: Optional[Tensor] = None
    for j, a in terms:
        if acc is None:
            acc = ks[j] * (h * a)
        elif isinstance(h, Tensor):
            acc = acc.addcmul_(ks[j], h, value=a)
        else:
            acc = acc.add_(ks[j], alpha=h * a)
    if acc is None:  # every weight is zero
        acc = torch.zeros_like(ks[0])
    return acc if y is None else y + acc


class RungeKutta:
    """The stepping routine of one tableau.

    Args:
        tableau: the method's Butcher tableau.
    """

    def __init__(self, tableau: ButcherTableau):
        self.tableau = tableau
        self.c = tuple(float(ci) for ci in tableau.c)
        self.rows = tuple(_nonzero(row) for row in tableau.a)
        self.b = _nonzero(tableau.b)
        self.e = None if tableau.b_error is None else _nonzero(tableau.b_error)
        self.fsal = tableau.fsal
        self.dense = tableau.dense

    @property
    def stages(self) -> int:
        return len(self.c)

    def step(self, func: Callable[[Tensor, Tensor], Tensor], times: Callable[[int], Tensor],
             y: Tensor, k1: Tensor, h: Union[float, Tensor], with_error: bool = True
             ) -> Tuple[Tensor, Optional[Tensor], List[Tensor]]:
        """Advance ``y`` by one step of size ``h``.

        Args:
            func: the vector field ``f(t, y)``.
            times: ``times(i)`` returns the time tensor of stage ``i`` (``t + c_i h``).
            y: the state at the start of the step.
            k1: ``f(t, y)``, the first stage (FSAL-reused or freshly evaluated).
            h: the signed step size (or a tensor of them that broadcasts against ``y``).
            with_error: whether to form the embedded error estimate.

        Returns:
            ``(y_next, error, stages)``; ``error`` is ``h * sum (b - b_hat) k`` or ``None``.
        """
        ks = [k1]
        for i, row in enumerate(self.rows, start=1):
            if self.fsal and i == len(self.rows):
                # The last FSAL stage is evaluated at the new solution itself.
                y_next = combine(y, h, self.b, ks)
                ks.append(func(times(i), y_next))
                break
            ks.append(func(times(i), combine(y, h, row, ks)))
        else:
            y_next = combine(y, h, self.b, ks)
        error = combine(None, h, self.e, ks) if (with_error and self.e is not None) else None
        return y_next, error, ks

    def dense_terms(self, theta: float) -> Terms:
        """Weights ``b_i(theta)`` of the tableau's own continuous extension."""
        assert self.dense is not None
        weights = []
        for row in self.dense:
            w, p = 0.0, theta
            for coefficient in row:
                w += coefficient * p
                p *= theta
            weights.append(w)
        return _nonzero(weights)
