"""Runge-Kutta-Chebyshev and stiffness switching, on graph heat equations with exact solutions."""
import math

import pytest
import torch
from torch_geometric.utils import get_laplacian, to_undirected

from graphode import solve
from graphode.solvers.stabilized import (
    RKC,
    AutoSwitch,
    rkc_coefficients,
    rkc_step,
    spectral_radius,
    stability_bound,
    stages_for,
)

DT = torch.float64


@pytest.mark.parametrize("s", [2, 3, 7, 40, 200])
def test_coefficients_are_consistent(s):
    *_, c = rkc_coefficients(s)
    assert c[s] == pytest.approx(1.0, abs=1e-12)
    # The stability interval grows like 0.65 s^2 (0.49 s^2 for two stages).
    assert 0.49 * s * s <= stability_bound(s) <= 0.66 * s * s


def test_stage_count_covers_the_spectrum():
    for h_rho in (0.5, 3.0, 100.0, 5000.0):
        s = stages_for(h_rho, 1000)
        assert stability_bound(s) >= h_rho and (s == 2 or stability_bound(s - 1) < h_rho)
    assert stages_for(1e9, 50) == 50


@pytest.mark.parametrize("s", [2, 6])
def test_second_order_on_a_nonautonomous_problem(s):
    def f(t, y):
        return torch.cos(t) * y
    errs = []
    for n in (20, 40, 80):
        h, y, t = 1.0 / n, torch.ones(1, dtype=DT), 0.0
        for _ in range(n):
            y = rkc_step(f, lambda c, _t=t: torch.tensor(_t + c * h, dtype=DT), y,
                         f(torch.tensor(t, dtype=DT), y), h, s)
            t += h
        errs.append(abs(y.item() - math.exp(math.sin(1.0))))
    assert math.log2(errs[0] / errs[1]) == pytest.approx(2.0, abs=0.1)
    assert math.log2(errs[1] / errs[2]) == pytest.approx(2.0, abs=0.1)


def _heat_problem(rate, n=60, seed=0):
    """dX/dt = -rate L X on a random graph; exact solution by eigendecomposition."""
    g = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, 4 * n), generator=g)
    edges = to_undirected(edges[:, edges[0] != edges[1]], num_nodes=n)
    index, weight = get_laplacian(edges, normalization="sym", num_nodes=n)
    L = torch.zeros(n, n, dtype=DT)
    L[index[0], index[1]] = weight.to(DT)
    x0 = torch.randn(n, 3, generator=g, dtype=DT)
    evals, evecs = torch.linalg.eigh(L)

    def exact(t):
        return evecs @ (torch.exp(-rate * t * evals)[:, None] * (evecs.T @ x0))

    class Heat(torch.nn.Module):
        calls = 0

        def forward(self, t, x):
            Heat.calls += 1
            return -rate * (L @ x)
    return Heat, x0, exact


def test_auto_switches_on_stiff_diffusion_and_saves_evaluations():
    Heat, x0, exact = _heat_problem(rate=1e4)
    field = Heat()
    t = [0.0, 0.5, 1.0]
    dopri = solve(field, x0, t, method="dopri5", rtol=1e-5, atol=1e-7, max_steps=10 ** 6)
    nfe_dopri = Heat.calls
    Heat.calls = 0
    auto = solve(field, x0, t, method="auto", rtol=1e-5, atol=1e-7, max_steps=10 ** 6)
    assert auto.stats.nfe == Heat.calls
    assert [m for _, m in auto.stats.switches] == ["dopri5", "rkc"]
    assert auto.stats.switches[1][0] < 0.01
    assert auto.stats.nfe * 5 < nfe_dopri
    ref = torch.stack([exact(s) for s in t])
    for sol in (auto, dopri):
        assert ((sol.ys - ref).norm() / ref.norm()).item() < 1e-4


def test_auto_stays_explicit_when_not_stiff():
    Heat, x0, exact = _heat_problem(rate=1.0)
    auto = solve(Heat(), x0, [0.0, 1.0], method="auto", rtol=1e-6, atol=1e-8)
    dopri = solve(Heat(), x0, [0.0, 1.0], method="dopri5", rtol=1e-6, atol=1e-8)
    assert [m for _, m in auto.stats.switches] == ["dopri5"]
    assert torch.equal(auto.ys, dopri.ys)


def test_auto_switches_back_when_the_stiffness_goes():
    # The rate falls from 1e4 to 1 at t = 0.05: stiff, then not, with a forcing that keeps
    # the steps short (accuracy, not stability, limits them afterwards).
    Heat, x0, _ = _heat_problem(rate=1.0)
    inner = Heat()

    def field(t, x):
        return inner(t, x) * (1e4 if t < 0.05 else 1.0) + torch.cos(20 * t)
    sol = solve(field, x0, [0.0, 3.0], method="auto", rtol=1e-5, atol=1e-7, jump_t=[0.05])
    assert [m for _, m in sol.stats.switches] == ["dopri5", "rkc", "dopri5"]


@pytest.mark.parametrize("method", ["rkc", "auto"])
@pytest.mark.parametrize("gradient", ["autograd", "adjoint"])
def test_gradients_through_stiff_solves(method, gradient):
    Heat, x0, exact = _heat_problem(rate=300.0, n=30)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Heat()
            self.k = torch.nn.Parameter(torch.tensor(1.0, dtype=DT))

        def forward(self, t, x):
            return self.k * self.inner(t, x)
    field = Scaled()
    y0 = x0.clone().requires_grad_(True)
    weights = torch.randn(x0.shape, dtype=DT, generator=torch.Generator().manual_seed(1))
    sol = solve(field, y0, [0.0, 0.02], method=method, rtol=1e-7, atol=1e-9,
                gradient=gradient, max_steps=10 ** 5)
    gk, gy = torch.autograd.grad((sol.ys[-1] * weights).sum(), (field.k, y0))
    # Exact: X(T) = exp(-k rate T L) X0, so d/dk = -rate T L X(T) and d/dX0 = exp(...)^T w.
    k = torch.tensor(1.0, dtype=DT, requires_grad=True)
    y_ref = x0.clone().requires_grad_(True)
    Heat2, _, _ = _heat_problem(rate=300.0, n=30)
    ref = solve(lambda t, x: k * Heat2()(t, x), y_ref, [0.0, 0.02], method="dopri5",
                rtol=1e-10, atol=1e-12, max_steps=10 ** 5).ys[-1]
    rk, ry = torch.autograd.grad((ref * weights).sum(), (k, y_ref))
    assert gk.item() == pytest.approx(rk.item(), rel=1e-4)
    assert ((gy - ry).norm() / ry.norm()).item() < 1e-4


def test_spectral_radius_from_a_slow_mode():
    # The power method started on an exact slow eigenvector (F(y) at a nearly steady state
    # holds only the slow modes) would stay there; the fixed noise-like share finds the fast
    # end of the spectrum, and the estimate does not touch the global random stream.
    n = 40
    main = torch.full((n,), 2.0, dtype=DT)
    a = -(torch.diag(main) - torch.diag(torch.ones(n - 1, dtype=DT), 1)
          - torch.diag(torch.ones(n - 1, dtype=DT), -1)) * 1e3
    evals, evecs = torch.linalg.eigh(a)
    y = evecs[:, -1].clone()  # the slowest mode
    state = torch.random.get_rng_state()
    rho, _, count = spectral_radius(lambda t, x: a @ x, torch.tensor(0.0), y, a @ y, None,
                                    lambda x: x.square().mean().sqrt())
    assert torch.equal(state, torch.random.get_rng_state())
    assert abs(rho - evals.abs().max().item()) <= 0.1 * evals.abs().max().item()
    assert rho > 100 * abs(evals[-1].item()) and count <= 20


def test_rkc_options_and_refusals():
    with pytest.raises(ValueError, match="max_stages"):
        RKC(max_stages=1)
    assert AutoSwitch().configure(stiff_after=5).stiff_after == 5
    with pytest.raises(ValueError, match="checkpoint"):
        solve(lambda t, y: -y, torch.ones(2), [0.0, 1.0], method="auto", gradient="checkpoint")
    with pytest.raises(ValueError, match="per_graph"):
        solve(lambda t, y: -y, torch.ones(2, 1), [0.0, 1.0],
              method=AutoSwitch(stiff_method="trbdf2"),
              per_graph=torch.zeros(2, dtype=torch.long))


def _oscillatory_stiff(t, y):
    # fast modes at -1e4 +- 1e4 i (far from RKC's thin strip along the real axis), a slow one
    b = torch.tensor([[-1e4, 1e4], [-1e4, -1e4]], dtype=DT)
    fast = y[:2] @ b.T + torch.stack([torch.cos(t), torch.sin(t)]) * 1e4
    return torch.cat([fast, -y[2:] + torch.sin(t)])


def test_auto_with_an_implicit_stiff_method_handles_oscillatory_stiffness():
    y0 = torch.tensor([1.0, 0.0, 1.0, 0.5], dtype=DT)
    ref = solve(_oscillatory_stiff, y0, [0.0, 1.0], method="kvaerno5", rtol=1e-10,
                atol=1e-12).ys[-1]
    kw = dict(rtol=1e-6, atol=1e-8, max_steps=10 ** 6)
    implicit = solve(_oscillatory_stiff, y0, [0.0, 1.0],
                     method=AutoSwitch(stiff_method="kvaerno5"), **kw)
    rkc = solve(_oscillatory_stiff, y0, [0.0, 1.0], method="auto", **kw)
    assert [m for _, m in implicit.stats.switches] == ["dopri5", "kvaerno5"]
    assert (implicit.ys[-1] - ref).abs().max().item() < 1e-5
    assert implicit.stats.nfe * 10 < rkc.stats.nfe  # measured on [0, 5]: 1,595 against 101,065


@pytest.mark.parametrize("stiff_method", ["kvaerno5", "trbdf2"])
def test_auto_switches_to_an_implicit_method_and_back(stiff_method):
    Heat, x0, _ = _heat_problem(rate=2000.0, n=30)

    class Fading(torch.nn.Module):  # stiff until t = 0.5, then mild
        def __init__(self):
            super().__init__()
            self.heat = Heat()

        def forward(self, t, x):
            return self.heat(t, x) * torch.where(t < 0.5, 1.0, 1e-4)
    sol = solve(Fading(), x0, [0.0, 3.0],
                method=AutoSwitch(stiff_method=stiff_method, nonstiff_after=3),
                rtol=1e-6, atol=1e-9, jump_t=[0.5], max_steps=10 ** 5)
    names = [m for _, m in sol.stats.switches]
    assert names[:2] == ["dopri5", stiff_method] and names[-1] == "dopri5"
    with pytest.raises(ValueError, match="stiff_method"):
        AutoSwitch(stiff_method="kvaerno4")


def test_gradients_through_auto_with_an_implicit_stiff_method():
    Heat, x0, _ = _heat_problem(rate=3000.0, n=30)
    field = Heat()
    y0 = x0.clone().requires_grad_(True)
    weights = torch.randn(x0.shape, dtype=DT, generator=torch.Generator().manual_seed(1))
    sol = solve(field, y0, [0.0, 0.05], method=AutoSwitch(stiff_method="kvaerno5", stiff_after=5),
                rtol=1e-9, atol=1e-11, max_steps=10 ** 5)
    assert "kvaerno5" in [m for _, m in sol.stats.switches]
    (got,) = torch.autograd.grad((sol.ys[-1] * weights).sum(), y0)
    ref = solve(field, y0, [0.0, 0.05], method="dopri5", rtol=1e-11, atol=1e-13,
                max_steps=10 ** 5).ys[-1]
    (want,) = torch.autograd.grad((ref * weights).sum(), y0)
    assert ((got - want).norm() / want.norm()).item() < 1e-6
