"""Implicit (diagonally implicit Runge-Kutta) methods: orders, L-stability, the stiff
classics against SciPy, the graph operator path, and gradients by the implicit function
theorem."""
import math

import pytest
import torch
from torch_geometric.utils import to_undirected

from graphode import SolveError, solve
from graphode.nn import GDEConv, GraphVectorField, LinearDiffusion
from graphode.solvers.implicit import DIRK_METHODS, Implicit, cg, gmres

DT = torch.float64
ORDERS = {"implicit_euler": 1, "trapezoid": 2, "trbdf2": 2, "kvaerno3": 3, "kvaerno5": 5}
ADAPTIVE = ["trbdf2", "kvaerno3", "kvaerno5"]


def _rotating(t, y):
    a = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=DT)
    return y @ a.T + torch.sin(3.0 * t) * torch.cos(y)


Y0 = torch.tensor([1.0, 0.5], dtype=DT)


def _reference(t1=2.0):
    return solve(_rotating, Y0, [0.0, t1], method="dopri8", rtol=1e-13, atol=1e-14).ys[-1]


@pytest.mark.parametrize("name", list(DIRK_METHODS))
def test_tableaux_satisfy_the_order_conditions_up_to_three(name):
    tab = DIRK_METHODS[name]
    b, c = tab.a[-1], tab.c
    a = [list(row) + [0.0] * (len(c) - len(row)) for row in tab.a]
    assert sum(b) == pytest.approx(1.0, abs=1e-14)
    if tab.order >= 2:
        assert sum(bi * ci for bi, ci in zip(b, c)) == pytest.approx(0.5, abs=1e-12)
    if tab.order >= 3:
        assert sum(bi * ci ** 2 for bi, ci in zip(b, c)) == pytest.approx(1 / 3, abs=1e-10)
        abc = sum(b[i] * a[i][j] * c[j] for i in range(len(c)) for j in range(len(c)))
        assert abc == pytest.approx(1 / 6, abs=1e-10)
    if tab.b_error is not None:
        assert sum(tab.b_error) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", list(DIRK_METHODS))
def test_order_of_convergence_on_a_fixed_grid(name):
    ref = _reference()
    order = ORDERS[name]
    steps = [160, 320] if order == 1 else [10, 20] if order == 5 else [20, 40]
    errors = [(solve(_rotating, Y0, [0.0, 2.0], method=name, step_size=2.0 / n).ys[-1] - ref)
              .norm().item() for n in steps]
    slope = math.log2(errors[0] / errors[1])
    assert abs(slope - order) < 0.3, (name, errors, slope)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_solves_reach_their_tolerance(name):
    ref = _reference()
    sol = solve(_rotating, Y0, [0.0, 1.0, 2.0], method=name, rtol=1e-8, atol=1e-10)
    assert (sol.ys[-1] - ref).norm().item() < 1e-6
    assert sol.stats.n_accepted > 0


@pytest.mark.parametrize("name", ["implicit_euler", "trbdf2", "kvaerno3", "kvaerno5"])
def test_l_stable_methods_damp_a_very_stiff_mode_in_one_large_step(name):
    y = solve(lambda t, y: -1e6 * y, torch.ones(1, dtype=DT), [0.0, 1.0], method=name,
              step_size=0.5).ys[-1]
    # L-stability: the stability function decays like 1/|h lambda| = 2e-6 per step
    assert abs(y.item()) < 1e-8


def test_the_trapezoidal_rule_is_only_a_stable():
    y = solve(lambda t, y: -1e6 * y, torch.ones(1, dtype=DT), [0.0, 1.0], method="trapezoid",
              step_size=0.5).ys[-1]
    assert 0.99 < abs(y.item()) <= 1.0  # bounded, but the stiff mode is not damped


def _robertson(t, y):
    return torch.stack([-0.04 * y[0] + 1e4 * y[1] * y[2],
                        0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
                        3e7 * y[1] ** 2])


@pytest.mark.parametrize("name", ["trbdf2", "kvaerno5"])
def test_robertson_against_scipy_radau(name):
    scipy = pytest.importorskip("scipy.integrate")
    ref = scipy.solve_ivp(lambda t, y: _robertson(t, torch.tensor(y)).numpy(), (0.0, 1e4),
                          [1.0, 0.0, 0.0], method="Radau", rtol=1e-12, atol=1e-14).y[:, -1]
    sol = solve(_robertson, torch.tensor([1.0, 0.0, 0.0], dtype=DT), [0.0, 1e4], method=name,
                rtol=1e-8, atol=1e-12, max_steps=50_000)
    rel = (sol.ys[-1] - torch.tensor(ref)).abs() / torch.tensor(ref).abs()
    assert rel.max().item() < 1e-5, rel
    assert sol.stats.n_accepted < 2_000  # an explicit method needs millions of steps here


def test_van_der_pol_mu_1000_against_scipy_radau():
    scipy = pytest.importorskip("scipy.integrate")
    mu = 1000.0

    def vdp(t, y):
        return torch.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])
    ref = scipy.solve_ivp(lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]], (0.0, 1000.0),
                          [2.0, 0.0], method="Radau", rtol=1e-12, atol=1e-12).y[:, -1]
    sol = solve(vdp, torch.tensor([2.0, 0.0], dtype=DT), [0.0, 1000.0], method="kvaerno5",
                rtol=1e-8, atol=1e-10, max_steps=50_000)
    assert sol.ys[-1][0].item() == pytest.approx(ref[0], rel=1e-5)
    assert sol.ys[-1][1].item() == pytest.approx(ref[1], rel=1e-4)


def _graph(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = to_undirected(torch.randint(0, n, (2, 3 * n), generator=g), num_nodes=n)
    x0 = torch.randn(n, 3, dtype=DT, generator=g)
    return edge_index, x0


def _exact_diffusion(edge_index, x0, rate, t):
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    n = x0.size(0)
    ei, w = gcn_norm(edge_index, None, n, dtype=DT)
    a = torch.zeros(n, n, dtype=DT).index_put_((ei[1], ei[0]), w, accumulate=True)
    evals, evecs = torch.linalg.eigh(a)
    return evecs @ (torch.exp(rate * t * (evals - 1.0))[:, None] * (evecs.T @ x0))


@pytest.mark.parametrize("name", ADAPTIVE)
def test_stiff_graph_heat_equation_through_the_operator(name):
    edge_index, x0 = _graph()
    rate = 1e4
    field = GraphVectorField(LinearDiffusion(-1, weight=False, rate=rate)).bind(
        edge_index, None, x0.size(0), DT, x0.device)
    op = field.jacobian_operator(torch.zeros((), dtype=DT), x0)
    assert op is not None and op.linear and op.symmetric
    v = torch.randn_like(x0)
    assert torch.allclose(op.matvec(v), field(torch.zeros((), dtype=DT), v))
    exact = _exact_diffusion(edge_index, x0, rate, 1.0)
    operator = solve(field, x0, [0.0, 1.0], method=name, rtol=1e-6, atol=1e-9)
    generic = solve(field, x0, [0.0, 1.0], method=Implicit(name, use_operator=False),
                    rtol=1e-6, atol=1e-9)
    for sol in (operator, generic):
        assert ((sol.ys[-1] - exact).norm() / exact.norm()).item() < 1e-5
    # at the benchmark's tolerances, products of the operator counted as evaluations
    loose = dict(rtol=1e-4, atol=1e-6, max_steps=10 ** 6)
    dopri = solve(field, x0, [0.0, 1.0], method="dopri5", **loose)
    implicit = solve(field, x0, [0.0, 1.0], method=name, **loose)
    assert ((implicit.ys[-1] - exact).norm() / exact.norm()).item() < 1e-4
    assert implicit.stats.nfe < dopri.stats.nfe / 5


def test_directed_graphs_and_a_learned_mixing_are_not_symmetric():
    edge_index, x0 = _graph()
    directed = edge_index[:, edge_index[0] < edge_index[1]]
    field = GraphVectorField(LinearDiffusion(-1, weight=False)).bind(
        directed, None, x0.size(0), DT, x0.device)
    assert not field.jacobian_operator(torch.zeros((), dtype=DT), x0).symmetric
    layer = LinearDiffusion(3).double()
    with torch.no_grad():
        layer.weight.add_(torch.triu(torch.ones(3, 3, dtype=DT), 1))
    field = GraphVectorField(layer).bind(edge_index, None, x0.size(0), DT, x0.device)
    op = field.jacobian_operator(torch.zeros((), dtype=DT), x0)
    assert op.linear and not op.symmetric
    # and the non-symmetric operator path (GMRES) still solves it
    ref = solve(field, x0, [0.0, 0.5], method="dopri5", rtol=1e-10, atol=1e-12).ys[-1]
    got = solve(field, x0, [0.0, 0.5], method="kvaerno5", rtol=1e-8, atol=1e-10).ys[-1]
    assert (got - ref).abs().max().item() < 1e-6


def test_krylov_solvers_on_small_systems():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(30, 30, dtype=DT, generator=g)
    spd = m @ m.T + 30 * torch.eye(30, dtype=DT)
    rhs = torch.randn(30, dtype=DT, generator=g)
    tol = lambda r: r.norm() / 1e-10  # noqa: E731
    x, _, ok = cg(lambda v: spd @ v, rhs, tol, 200)
    assert ok and torch.allclose(spd @ x, rhs, atol=1e-9)
    general = m + 10 * torch.eye(30, dtype=DT)
    x, _, ok = gmres(lambda v: general @ v, rhs, tol, 300, restart=10)
    assert ok and torch.allclose(general @ x, rhs, atol=1e-9)


class _Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.nn.Parameter(torch.randn(3, 3, dtype=DT, generator=g) * 0.5)
        self.b = torch.nn.Parameter(torch.randn(3, dtype=DT, generator=g))

    def forward(self, t, y):
        return torch.tanh(y) @ self.w.T + self.b * torch.cos(t) - 20.0 * y


@pytest.mark.parametrize("name", ADAPTIVE)
@pytest.mark.parametrize("gradient", ["autograd", "adjoint"])
def test_gradients_equal_a_tight_explicit_solve(name, gradient):
    field = _Field()
    y0 = torch.tensor([0.3, -0.2, 0.5], dtype=DT, requires_grad=True)
    times = [0.0, 0.1, 0.2]
    rtol = 1e-10 if name == "kvaerno5" else 1e-8  # the low orders take thousands of steps
    sol = solve(field, y0, times, method=name, rtol=rtol, atol=rtol / 100, gradient=gradient)
    got = torch.autograd.grad((sol.ys ** 2).sum(), [y0, field.w, field.b])
    ref = solve(field, y0, times, method="dopri5", rtol=1e-12, atol=1e-13)
    want = torch.autograd.grad((ref.ys ** 2).sum(), [y0, field.w, field.b])
    for a, b in zip(got, want):  # within 100 rtol (trbdf2 at 1e-10: 8e-9 seen)
        assert (a - b).abs().max().item() < 100 * rtol
    if gradient == "autograd":
        assert sol.stats.nfe_backward > 0  # the transposed stage systems were solved


@pytest.mark.parametrize("name", ["implicit_euler", "kvaerno3"])
def test_gradcheck_through_fixed_step_implicit_solves(name):
    def run(y0, w):
        return solve(lambda t, y: torch.tanh(y @ w.T) - 5.0 * y, y0, [0.0, 0.3, 0.6],
                     method=name, step_size=0.1).ys
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(3, dtype=DT, generator=g).requires_grad_(True),
              torch.randn(3, 3, dtype=DT, generator=g).requires_grad_(True))
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.parametrize("gradient", ["autograd", "adjoint", "checkpoint"])
def test_gradients_through_the_operator_path_of_a_gde_layer(gradient):
    edge_index, x0 = _graph()
    layers = {}
    for method in ("kvaerno5", "dopri5"):
        torch.manual_seed(0)
        layer = GDEConv(LinearDiffusion(3, rate=50.0), t_span=(0.0, 0.2), method=method,
                        rtol=1e-8, atol=1e-10, gradient=gradient).double()
        with torch.no_grad():
            layer.field.layers[0].weight.add_(0.01 * torch.ones(3, 3, dtype=DT))
        out = layer(x0, edge_index)
        loss = (out ** 2).sum()
        layers[method] = torch.autograd.grad(loss, list(layer.parameters()))[0]
    assert torch.allclose(layers["kvaerno5"], layers["dopri5"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["kvaerno5", "trbdf2", "kencarp3"])
def test_checkpoint_gradients_equal_autograd_through_implicit_and_imex_solves(name):
    # Checkpointing replays each accepted step (the same Newton iterations from the same
    # values, stages attached by the implicit function theorem): the same discrete gradient.
    w = torch.tensor([[0.5, -1.0], [1.0, 0.3]], dtype=DT, requires_grad=True)
    y0 = Y0.clone().requires_grad_(True)
    field = (_split_problem(w) if name == "kencarp3" else
             lambda t, y: torch.tanh(y @ w.T) - 20.0 * y + torch.cos(t))
    grads, stats = {}, {}
    for gradient in ("autograd", "checkpoint"):
        sol = solve(field, y0, [0.0, 0.05, 0.3, 1.0], method=name, rtol=1e-6, atol=1e-8,
                    gradient=gradient, adjoint_params=[w])
        grads[gradient] = torch.autograd.grad((sol.ys ** 2).sum(), [y0, w])
        stats[gradient] = sol.stats
    for a, b in zip(grads["autograd"], grads["checkpoint"]):
        assert (a - b).abs().max().item() < 1e-12
    assert stats["checkpoint"].nfe_backward >= stats["checkpoint"].nfe  # the replay reran it


@pytest.mark.parametrize("name, gradient, step", [
    ("implicit_euler", "checkpoint", 0.1), ("kvaerno5", "checkpoint", 0.05),
    ("kencarp3", "checkpoint", 0.02), ("kvaerno5", "adjoint", 0.025),
    ("kencarp3", "adjoint", 0.01)])
def test_gradcheck_of_checkpoint_and_adjoint_gradients(name, gradient, step):
    # Checkpointing differentiates the discrete solution, on any step; the adjoint solves the
    # continuous adjoint equation, which matches the discrete gradient to gradcheck's
    # tolerance only where the method's error is below it (third order and up, small steps).

    def run(y0, w):
        field = (_split_problem(w) if name == "kencarp3" else
                 lambda t, y: torch.tanh(y @ w.T) - 5.0 * y)
        return solve(field, y0, [0.0, 0.15, 0.3], method=name, step_size=step,
                     gradient=gradient, adjoint_params=[w]).ys
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(2, dtype=DT, generator=g).requires_grad_(True),
              torch.randn(2, 2, dtype=DT, generator=g).requires_grad_(True))
    assert torch.autograd.gradcheck(run, inputs)


def test_checkpoint_refuses_a_random_field_through_stage_solves():
    w = torch.eye(2, dtype=DT, requires_grad=True)
    with pytest.raises(ValueError, match="draws random numbers .* replays the stage solves"):
        solve(lambda t, y: torch.nn.functional.dropout(y @ w, 0.5) - y, Y0, [0.0, 1.0],
              method="kvaerno3", gradient="checkpoint", adjoint_params=[w])


def test_refusals_and_failures_are_explained():
    with pytest.raises(ValueError, match="checkpoint"):
        solve(lambda t, y: -y, torch.ones(2, requires_grad=True), [0.0, 1.0],
              method="rkc", gradient="checkpoint", adjoint_params=())
    with pytest.raises(ValueError, match="newton_tol"):
        Implicit("kvaerno3", newton_tol=2.0)
    with pytest.raises(ValueError, match="linear_solver"):
        Implicit("kvaerno3", linear_solver="lu")
    with pytest.raises(ValueError, match="unknown implicit method"):
        Implicit("radau")
    assert Implicit("kvaerno3").configure(max_newton=3).max_newton == 3
    with pytest.raises(SolveError, match="max_steps=3 exceeded at t="):
        solve(_rotating, Y0, [0.0, 2.0], method="kvaerno5", rtol=1e-10, atol=1e-12, max_steps=3)
    # a non-finite start is named as such on a fixed grid too (not a Krylov solver's failure)
    for method in ("implicit_euler", "kvaerno5"):
        with pytest.raises(SolveError, match="non-finite .* at the initial state"):
            solve(lambda t, y: -y, torch.tensor([float("nan"), 1.0], dtype=DT), [0.0, 1.0],
                  method=method, step_size=0.1)
    # a stage equation without a solution (y = 1 + h y^2 with a large h) fails on a fixed grid
    with pytest.raises(SolveError, match="Newton"):
        solve(lambda t, y: y ** 2 + 10.0, torch.ones(1, dtype=DT), [0.0, 1.0],
              method=Implicit("implicit_euler", max_newton=4), step_size=1.0)


# --------------------------------------------------------------------------- IMEX
def _split_problem(w):
    from graphode.solvers.imex import Split
    a = torch.tensor([[-1.0, 0.4], [0.4, -1.6]], dtype=DT)
    return Split(implicit=lambda t, y: y @ a.T, explicit=lambda t, y: torch.tanh(y @ w.T) + torch.cos(t))


def test_kencarp3_tableau_and_third_order():
    from graphode.solvers.imex import ARK_METHODS
    ark = ARK_METHODS["kencarp3"]
    assert sum(ark.b) == pytest.approx(1.0, abs=1e-12)
    assert sum(b * c for b, c in zip(ark.b, ark.c)) == pytest.approx(0.5, abs=1e-12)
    w = torch.tensor([[0.5, -1.0], [1.0, 0.3]], dtype=DT)
    field = _split_problem(w)
    ref = solve(field, Y0, [0.0, 1.0], method="dopri8", rtol=1e-13, atol=1e-14).ys[-1]
    errors = [(solve(field, Y0, [0.0, 1.0], method="kencarp3", step_size=1.0 / n).ys[-1] - ref)
              .norm().item() for n in (10, 20)]
    assert abs(math.log2(errors[0] / errors[1]) - 3) < 0.3, errors


def test_imex_reaction_diffusion_on_a_stiff_graph():
    from graphode.solvers.imex import Split
    edge_index, x0 = _graph()
    diffusion = GraphVectorField(LinearDiffusion(-1, weight=False, rate=1e4)).bind(
        edge_index, None, x0.size(0), DT, x0.device)
    field = Split(implicit=diffusion, explicit=lambda t, x: torch.sin(x) * (1.0 - x))
    ref = solve(field, x0, [0.0, 1.0], method="kvaerno5", rtol=1e-10, atol=1e-12).ys[-1]
    loose = dict(rtol=1e-5, atol=1e-8, max_steps=10 ** 6)
    imex = solve(field, x0, [0.0, 1.0], method="kencarp3", **loose)
    dopri = solve(field, x0, [0.0, 1.0], method="dopri5", **loose)
    assert ((imex.ys[-1] - ref).norm() / ref.norm()).item() < 1e-4
    assert imex.stats.nfe < dopri.stats.nfe / 5


def test_imex_gradients():
    w = torch.tensor([[0.5, -1.0], [1.0, 0.3]], dtype=DT, requires_grad=True)
    y0 = Y0.clone().requires_grad_(True)

    def loss(method, **kw):
        ys = solve(_split_problem(w), y0, [0.0, 0.5, 1.0], method=method, **kw).ys
        return torch.autograd.grad((ys ** 2).sum(), [y0, w])
    want = loss("dopri5", rtol=1e-12, atol=1e-13)
    for gradient in ("autograd", "adjoint"):
        got = loss("kencarp3", rtol=1e-10, atol=1e-12, gradient=gradient, adjoint_params=[w])
        for a, b in zip(got, want):
            assert (a - b).abs().max().item() < 1e-8, gradient
    run = lambda y, m: solve(_split_problem(m), y, [0.0, 0.3], method="kencarp3",  # noqa: E731
                             step_size=0.1).ys
    assert torch.autograd.gradcheck(run, (y0, w))


def test_imex_refusals():
    with pytest.raises(TypeError, match="Split"):
        solve(lambda t, y: -y, torch.ones(2, dtype=DT), [0.0, 1.0], method="kencarp3")
    # the adjoint's backward solve with kencarp3 needs the split as much as the forward one
    with pytest.raises(TypeError, match="Split"):
        solve(lambda t, y: -y, Y0.clone().requires_grad_(True), [0.0, 1.0],
              gradient="adjoint", adjoint_method="kencarp3", adjoint_params=())


def test_an_unconverged_linear_solve_is_never_silent():
    edge_index, x0 = _graph()
    field = GraphVectorField(LinearDiffusion(-1, weight=False, rate=1e4)).bind(
        edge_index, None, x0.size(0), DT, x0.device)
    # two CG products cannot solve a stage of a stiff diffusion on a 1.0 step
    with pytest.raises(SolveError, match="max_krylov=2"):
        solve(field, x0, [0.0, 1.0], method=Implicit("implicit_euler", max_krylov=2),
              step_size=1.0)
    w = torch.randn(3, 3, dtype=DT, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y0 = torch.randn(3, dtype=DT, generator=torch.Generator().manual_seed(1))
    sol = solve(lambda t, y: torch.tanh(y @ w.T) - 50.0 * y, y0, [0.0, 1.0],
                method=Implicit("implicit_euler", max_krylov=1), step_size=0.5)
    with pytest.raises(RuntimeError, match="transposed stage system"):
        sol.ys[-1].sum().backward()
