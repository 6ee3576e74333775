"""torchdiffeq's remaining methods: dopri8, fehlberg2, the Adams family and scipy_solver,
against exact solutions, torchdiffeq itself and autograd."""
import math
import warnings

import pytest
import torch

import graphode
from graphode import odeint, solve
from graphode.solvers import Adams
from graphode.solvers.adams import bashforth, moulton

torchdiffeq = pytest.importorskip("torchdiffeq")
DT = torch.float64


def decay(t, y):
    return -y


def oscillator(t, y):
    return torch.stack([y[1], -y[0]])


def test_adams_coefficients_are_the_textbook_ones():
    assert bashforth(2) == pytest.approx((3 / 2, -1 / 2))
    assert bashforth(4) == pytest.approx((55 / 24, -59 / 24, 37 / 24, -9 / 24))
    assert moulton(1) == pytest.approx((1 / 2, 1 / 2))
    assert moulton(3) == pytest.approx((9 / 24, 19 / 24, -5 / 24, 1 / 24))
    for k in range(1, 12):
        assert sum(bashforth(k)) == pytest.approx(1.0)
        assert sum(moulton(k)) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams", "fixed_adams"])
def test_adams_reaches_the_exact_solution(method):
    y = odeint(decay, torch.ones(3, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT), method=method,
               options={"step_size": 0.01}, rtol=1e-8, atol=1e-10)
    assert (y[-1] - math.exp(-1)).abs().max() < 1e-8


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_adams_converges_at_its_order(implicit, order):
    def f(t, y):
        return torch.cos(t) * y
    errs = []
    for h in (0.02, 0.01):
        y = solve(f, torch.ones(1, dtype=DT), [0.0, 2.0], method=Adams(implicit, max_order=order, max_iters=50),
                  step_size=h, rtol=1e-13, atol=1e-14).ys[-1]
        errs.append(abs(y.item() - math.exp(math.sin(2.0))))
    assert math.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.35)


def test_adams_restarts_on_an_uneven_grid():
    # Output times of uneven spacing: equal-step weights would be wrong there, so every
    # step of another size restarts from rk4, and this grid is stepped by rk4 alone.
    t = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1.0], dtype=DT)
    y = odeint(decay, torch.ones(1, dtype=DT), t, method="explicit_adams")
    assert torch.allclose(y, odeint(decay, torch.ones(1, dtype=DT), t, method="rk4"),
                          rtol=1e-14, atol=0)
    # On an even grid the Adams steps take over after three rk4 steps.
    even = torch.linspace(0, 1, 11, dtype=DT)
    y = odeint(decay, torch.ones(1, dtype=DT), even, method="explicit_adams")
    assert not torch.allclose(y, odeint(decay, torch.ones(1, dtype=DT), even, method="rk4"),
                              rtol=1e-12, atol=0)


def test_adams_options_and_warning():
    with pytest.raises(ValueError, match="max_order"):
        odeint(decay, torch.ones(1), torch.tensor([0.0, 1.0]), method="explicit_adams",
               options={"max_order": 13})
    with pytest.warns(UserWarning, match="did not converge"):
        odeint(lambda t, y: -40 * y, torch.ones(1, dtype=DT), torch.tensor([0.0, 1.0], dtype=DT),
               method="implicit_adams", options={"step_size": 0.04, "max_iters": 1},
               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["dopri8", "fehlberg2"])
def test_new_tableaux_match_torchdiffeq(method):
    t = torch.linspace(0, 10, 7, dtype=DT)
    y0 = torch.tensor([1.0, 0.0], dtype=DT)
    ours = odeint(oscillator, y0, t, method=method, rtol=1e-9, atol=1e-11)
    theirs = torchdiffeq.odeint(oscillator, y0, t, method=method, rtol=1e-9, atol=1e-11)
    exact = torch.stack([torch.cos(t), -torch.sin(t)], 1)
    # At least as accurate as torchdiffeq, at the output times between steps too.
    assert (ours - exact).abs().max() <= 1.2 * (theirs - exact).abs().max() + 1e-12
    assert (ours - exact).abs().max() < 1e-5


def test_dopri8_gradient_matches_autograd_of_the_exact_solution():
    k = torch.tensor(0.7, dtype=DT, requires_grad=True)
    y = solve(lambda t, y: -k * y, torch.ones(1, dtype=DT), [0.0, 2.0], method="dopri8",
              rtol=1e-10, atol=1e-12).ys[-1].sum()
    (g,) = torch.autograd.grad(y, k)
    assert g.item() == pytest.approx(-2.0 * math.exp(-1.4), rel=1e-8)


@pytest.mark.parametrize("gradient", ["autograd", "adjoint"])
def test_adams_gradients(gradient):
    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = torch.nn.Parameter(torch.tensor(0.7, dtype=DT))

        def forward(self, t, y):
            return -self.k * y
    field = Field()
    y = solve(field, torch.ones(1, dtype=DT), [0.0, 2.0], method="implicit_adams",
              step_size=0.005, rtol=1e-12, atol=1e-14, gradient=gradient).ys[-1].sum()
    (g,) = torch.autograd.grad(y, field.k)
    assert g.item() == pytest.approx(-2.0 * math.exp(-1.4), rel=1e-6)


def test_checkpoint_is_refused_for_solver_objects():
    with pytest.raises(ValueError, match="checkpoint"):
        solve(decay, torch.ones(1), [0.0, 1.0], method="explicit_adams", gradient="checkpoint")


@pytest.mark.parametrize("solver", ["LSODA", "Radau", "BDF", "RK45"])
def test_scipy_solver(solver):
    t = torch.tensor([0.0, 0.5, 1.0], dtype=DT)
    y = odeint(decay, torch.ones(3, dtype=DT), t, method="scipy_solver",
               options={"solver": solver}, rtol=1e-8, atol=1e-10)
    assert y.shape == (3, 3)
    assert (y - torch.exp(-t)[:, None]).abs().max() < 1e-6
    back = odeint(decay, torch.ones(1, dtype=DT), t.flip(0), method="scipy_solver")
    assert back[-1].item() == pytest.approx(math.e, rel=1e-5)


def test_scipy_solver_refuses_to_drop_gradients():
    lin = torch.nn.Linear(2, 2).double()
    with pytest.raises(ValueError, match="no gradients"):
        odeint(lambda t, y: lin(y), torch.ones(2, dtype=DT),
               torch.tensor([0.0, 1.0], dtype=DT), method="scipy_solver")
    with pytest.raises(ValueError, match="no gradients"):
        odeint(decay, torch.ones(2, dtype=DT, requires_grad=True),
               torch.tensor([0.0, 1.0], dtype=DT), method="scipy_solver")
    with torch.no_grad():
        y = odeint(lambda t, y: lin(y), torch.ones(2, dtype=DT),
                   torch.tensor([0.0, 1.0], dtype=DT), method="scipy_solver")
    assert torch.isfinite(y).all()
    with pytest.raises(ValueError, match="solver must be one of"):
        odeint(decay, torch.ones(1), torch.tensor([0.0, 1.0]), method="scipy_solver",
               options={"solver": "Euler"})


def test_method_objects_and_names():
    assert {"dopri8", "fehlberg2", "explicit_adams", "implicit_adams", "fixed_adams",
            "scipy_solver", "rkc", "auto"} <= set(graphode.solvers.method_names())
    with pytest.raises(ValueError, match="valid methods"):
        solve(decay, torch.ones(1), [0.0, 1.0], method="adams")
    tab = graphode.METHODS["bosh3"]
    a = solve(decay, torch.ones(1, dtype=DT), [0.0, 1.0], method=tab).ys
    b = solve(decay, torch.ones(1, dtype=DT), [0.0, 1.0], method="bosh3").ys
    assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        odeint(decay, torch.ones(1), torch.tensor([0.0, 1.0]), method="explicit_adams",
               options={"step_size": 0.1, "max_order": 3})
