"""Dense output: linear and cubic Hermite interpolation are exact on polynomials of their
degree, and a tableau's own continuous extension has its order."""
import math

import pytest
import torch

from graphode.solvers.interpolation import hermite, linear, rk_dense
from graphode.solvers.rk import RungeKutta
from graphode.solvers.tableaux import get_tableau

DT = torch.float64


def test_linear_is_exact_on_lines():
    y0, y1 = torch.tensor([1.0, -2.0], dtype=DT), torch.tensor([3.0, 4.0], dtype=DT)
    for theta in (0.0, 0.25, 0.5, 1.0):
        assert torch.allclose(linear(y0, y1, theta), y0 + theta * (y1 - y0))


def test_hermite_is_exact_on_cubics():
    p = lambda t: t ** 3 - 2 * t ** 2 + t - 0.5  # noqa: E731
    dp = lambda t: 3 * t ** 2 - 4 * t + 1  # noqa: E731
    t0, h = 0.3, 0.8
    y0, y1 = torch.tensor([p(t0)], dtype=DT), torch.tensor([p(t0 + h)], dtype=DT)
    f0, f1 = torch.tensor([dp(t0)], dtype=DT), torch.tensor([dp(t0 + h)], dtype=DT)
    for theta in (0.1, 0.37, 0.5, 0.9):
        got = hermite(y0.clone(), y1, f0, f1, h, theta)
        assert got.item() == pytest.approx(p(t0 + theta * h), abs=1e-13)


@pytest.mark.parametrize("method, order", [("dopri5", 4), ("tsit5", 4)])
def test_the_tableau_interpolant_has_its_order(method, order):
    """One step of y' = y from y = 1: the interpolant's local error falls as h^(order + 1)."""
    rk = RungeKutta(get_tableau(method))

    def error(h):
        y = torch.ones(1, dtype=DT)
        times = lambda i: torch.tensor(rk.c[i] * h, dtype=DT)  # noqa: E731
        _, _, ks = rk.step(lambda t, z: z, times, y, y.clone(), h, with_error=False)
        return max(abs(rk_dense(rk, y, ks, h, theta).item() - math.exp(theta * h))
                   for theta in (0.2, 0.5, 0.8))
    rate = math.log2(error(0.2) / error(0.1))
    assert rate > order + 0.5  # local error: order + 1
