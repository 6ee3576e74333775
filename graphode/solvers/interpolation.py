"""Dense output between accepted steps.

A tableau with its own continuous extension (dopri5, tsit5) interpolates with its stages;
every other method uses the cubic Hermite polynomial through both end points and their
derivatives, or (for torchdiffeq compatibility on fixed grids) linear interpolation.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from .rk import RungeKutta, combine

__all__ = ["hermite", "linear", "rk_dense"]


def linear(y0: Tensor, y1: Tensor, theta: float) -> Tensor:
    return y0 + theta * (y1 - y0)


def hermite(y0: Tensor, y1: Tensor, f0: Tensor, f1: Tensor, h: float, theta: float) -> Tensor:
    """Cubic Hermite interpolation at ``t0 + theta h`` (third-order accurate)."""
    t2, t3 = theta * theta, theta * theta * theta
    h00 = 1.0 - 3.0 * t2 + 2.0 * t3
    h10 = theta - 2.0 * t2 + t3
    h01 = 3.0 * t2 - 2.0 * t3
    h11 = t3 - t2
    return (y0 * h00).add_(y1, alpha=h01).add_(f0, alpha=h * h10).add_(f1, alpha=h * h11)


def rk_dense(rk: RungeKutta, y0: Tensor, ks: Sequence[Tensor], h: float, theta: float) -> Tensor:
    """The tableau's own continuous extension at ``t0 + theta h``."""
    return combine(y0, h, rk.dense_terms(theta), ks)
