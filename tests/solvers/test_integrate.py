"""The shared solver against exact solutions, torchdiffeq and scipy; dense output; bad input."""
import math

import pytest
import torch

import graphode
from graphode import SolveError, odeint, solve
from graphode.solvers.tableaux import METHODS
from tests.conftest import stable_matrix

DT = torch.float64
A = stable_matrix()
Y0 = torch.randn(8, dtype=DT, generator=torch.Generator().manual_seed(1))
T = torch.linspace(0, 2, 11, dtype=DT)
EXACT = torch.stack([torch.linalg.matrix_exp(A * t) @ Y0 for t in T])


def linear(t, y):
    return y @ A.T


@pytest.mark.parametrize("method, bound", [("dopri5", 1e-7), ("tsit5", 1e-7), ("bosh3", 1e-6)])
def test_adaptive_matches_matrix_exp(method, bound, device):
    ys = solve(lambda t, y: y @ A.T.to(device), Y0.to(device), T.to(device), method=method,
               rtol=1e-10, atol=1e-10).ys
    assert (ys.cpu() - EXACT).abs().max() <= bound


def test_adaptive_heun_matches_matrix_exp():
    ys = solve(linear, Y0, T, method="adaptive_heun", rtol=1e-8, atol=1e-8, max_steps=10 ** 6).ys
    assert (ys - EXACT).abs().max() <= 1e-5


def _slope(xs, ys):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)


def nonlinear(t, y):  # non-autonomous and nonlinear, so every elementary differential shows
    return torch.stack([y[1], -torch.sin(y[0]) + 0.3 * torch.cos(t) * y[1] ** 2])


NONLINEAR_REF = None


def _nonlinear_reference():
    global NONLINEAR_REF
    if NONLINEAR_REF is None:
        scipy = pytest.importorskip("scipy.integrate")
        sol = scipy.solve_ivp(lambda t, y: nonlinear(torch.tensor(t), torch.tensor(y)).numpy(),
                              (0.0, 2.0), [1.0, 0.2], method="DOP853", rtol=1e-13, atol=1e-13)
        NONLINEAR_REF = torch.tensor(sol.y[:, -1], dtype=DT)
    return NONLINEAR_REF


# On a linear autonomous problem only the "tall" trees act, and dopri5/tsit5 nearly satisfy
# them to order 6 (observed slope 5.6), so their order shows on the nonlinear problem.
@pytest.mark.parametrize("method, problem", [(m, "linear") for m in sorted(METHODS) if METHODS[m].order <= 4]
                         + [(m, "nonlinear") for m in sorted(METHODS)])
def test_convergence_order(method, problem):
    order = METHODS[method].order
    # Step sizes in the asymptotic range, above the reference's own error (about 4e-13).
    ks = {8: range(0, 3), 5: range(3, 6), 4: range(3, 7)}.get(order, range(3, 8))
    if problem == "linear":
        f, y0, ref = linear, Y0, EXACT[-1]
    else:
        f, y0, ref = nonlinear, torch.tensor([1.0, 0.2], dtype=DT), _nonlinear_reference()
    hs, errs = [], []
    for k in ks:
        h = 2.0 ** -k
        y = solve(f, y0, [0.0, 2.0], method=method, step_size=h).ys[-1]
        hs.append(math.log(h))
        errs.append(math.log((y - ref).abs().max().item()))
    assert abs(_slope(hs, errs) - order) <= 0.3


def test_fixed_step_counts_and_grid():
    sol = solve(linear, Y0, [0.0, 1.0], method="rk4", step_size=0.1)
    assert sol.stats.n_accepted == 10 and sol.stats.nfe == 40 and sol.stats.n_rejected == 0
    # a step that does not divide the span: the last step is shorter, torchdiffeq's grid
    assert solve(linear, Y0, [0.0, 1.0], method="rk4", step_size=0.3).stats.n_accepted == 4
    # fixed-grid methods without a step size step on t itself
    assert solve(linear, Y0, T, method="rk4").stats.n_accepted == len(T) - 1


def test_user_grid_equals_step_size():
    a = solve(linear, Y0, [0.0, 1.0], method="rk4", step_size=0.25).ys
    b = solve(linear, Y0, [0.0, 1.0], method="rk4", grid=[0.0, 0.25, 0.5, 0.75, 1.0]).ys
    assert torch.equal(a, b)


def test_stats():
    sol = solve(linear, Y0, T, method="dopri5", rtol=1e-6, atol=1e-8)
    s = sol.stats
    assert s.n_accepted > 0 and s.nfe == 2 + 6 * s.n_steps  # f0, initial-step probe, FSAL
    assert sol.ys.shape == (len(T), 8) and torch.equal(sol.ts, T)


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3", "adaptive_heun"])
def test_reverse_time_returns_to_start(method):
    tol = 1e-8 if method == "adaptive_heun" else 1e-10  # second order: 1e-10 takes 10^5 steps
    fwd = solve(linear, Y0, T, method=method, rtol=tol, atol=tol, max_steps=10 ** 6).ys
    back = solve(linear, fwd[-1], T.flip(0), method=method, rtol=tol, atol=tol,
                 max_steps=10 ** 6).ys
    assert (back.flip(0) - EXACT).abs().max() <= (1e-6 if method != "adaptive_heun" else 1e-4)
    assert (back[-1] - Y0).abs().max() <= (1e-6 if method != "adaptive_heun" else 1e-4)


def test_reverse_fixed_grid():
    # backwards the stable system is unstable, so errors grow; rk4's order still shows
    errs = [(solve(linear, EXACT[-1], [2.0, 0.0], method="rk4", step_size=h).ys[-1] - Y0).abs().max()
            for h in (0.01, 0.005)]
    assert errs[1] <= 1e-7 and 12 <= errs[0] / errs[1] <= 20


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
def test_dense_output_costs_no_steps_and_keeps_accuracy(method):
    t100 = torch.linspace(0, 2, 100, dtype=DT)
    exact100 = torch.stack([torch.linalg.matrix_exp(A * t) @ Y0 for t in t100])
    two = solve(linear, Y0, [0.0, 2.0], method=method, rtol=1e-8, atol=1e-8)
    many = solve(linear, Y0, t100, method=method, rtol=1e-8, atol=1e-8)
    assert many.stats.nfe == two.stats.nfe and many.stats.n_steps == two.stats.n_steps
    err2 = (two.ys[-1] - EXACT[-1]).abs().max().item()
    err100 = (many.ys - exact100).abs().max().item()
    assert err100 <= max(5 * err2, 1e-8)


def test_fixed_grid_interpolation():
    t = torch.tensor([0.0, 0.33, 0.71, 1.0], dtype=DT)
    exact = torch.stack([torch.linalg.matrix_exp(A * s) @ Y0 for s in t])
    cubic = solve(linear, Y0, t, method="rk4", step_size=0.1).ys
    lin = solve(linear, Y0, t, method="rk4", step_size=0.1, interp="linear").ys
    assert (cubic - exact).abs().max() < 1e-4
    assert (lin - exact).abs().max() > 10 * (cubic - exact).abs().max()


# ---------------------------------------------------------------------- torchdiffeq parity
torchdiffeq = pytest.importorskip("torchdiffeq")


@pytest.mark.parametrize("method, options", [
    ("euler", dict(step_size=0.01)), ("midpoint", dict(step_size=0.05)),
    ("heun2", dict(step_size=0.05)), ("heun3", dict(step_size=0.05)),
    ("rk4", dict(step_size=0.1)), ("rk4", None), ("rk4", dict(step_size=0.1, interp="cubic")),
    ("rk4", dict(step_size=0.1, perturb=True)),
    ("dopri5", None), ("adaptive_heun", None),
    ("dopri5", dict(first_step=0.01, safety=0.8, ifactor=5.0, dfactor=0.3)),
    ("dopri5", dict(step_t=torch.tensor([0.35]), jump_t=torch.tensor([1.3]))),
])
def test_matches_torchdiffeq(method, options):
    t = torch.tensor([0.0, 0.3, 0.75, 1.2, 2.0], dtype=DT)
    a = odeint(linear, Y0, t, method=method, rtol=1e-6, atol=1e-8, options=options)
    b = torchdiffeq.odeint(linear, Y0, t, method=method, rtol=1e-6, atol=1e-8, options=options)
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-5


def test_bosh3_matches_torchdiffeq_at_steps_and_beats_its_interpolant():
    # torchdiffeq interpolates bosh3 with a quartic through a crude midpoint estimate; graphode
    # uses cubic Hermite, so interior outputs differ by torchdiffeq's interpolation error.
    ends = torch.tensor([0.0, 2.0], dtype=DT)
    a = odeint(linear, Y0, ends, method="bosh3", rtol=1e-6, atol=1e-8)
    b = torchdiffeq.odeint(linear, Y0, ends, method="bosh3", rtol=1e-6, atol=1e-8)
    assert (a - b).abs().max() <= 1e-5
    t = torch.tensor([0.0, 0.3, 0.75, 1.2, 2.0], dtype=DT)
    exact = torch.stack([torch.linalg.matrix_exp(A * s) @ Y0 for s in t])
    ours = (odeint(linear, Y0, t, method="bosh3", rtol=1e-6, atol=1e-8) - exact).abs().max()
    theirs = (torchdiffeq.odeint(linear, Y0, t, method="bosh3", rtol=1e-6, atol=1e-8) - exact).abs().max()
    assert ours < theirs


def test_tuple_state_matches_torchdiffeq():
    def f(t, state):
        x, v = state
        return v, -x - 0.1 * v
    y0 = (torch.ones(3, dtype=DT), torch.zeros(3, dtype=DT))
    t = torch.linspace(0, 3, 7, dtype=DT)
    a = odeint(f, y0, t, rtol=1e-8, atol=1e-8)
    b = torchdiffeq.odeint(f, y0, t, rtol=1e-8, atol=1e-8)
    assert isinstance(a, tuple) and len(a) == 2
    for x, y in zip(a, b):
        assert x.shape == y.shape == (7, 3) and (x - y).abs().max() < 1e-6


def test_reverse_time_matches_torchdiffeq():
    t = torch.tensor([2.0, 1.0, 0.0], dtype=DT)
    a = odeint(linear, Y0, t, rtol=1e-7, atol=1e-9)
    b = torchdiffeq.odeint(linear, Y0, t, rtol=1e-7, atol=1e-9)
    # backwards, the stable system grows by 1e3: compare relative to the solution's size
    assert ((a - b).abs() / (1 + b.abs())).max() <= 1e-6


def test_default_method_and_norm_option():
    a = odeint(linear, Y0, T, options=dict(norm=lambda x: x.abs().max()))
    b = torchdiffeq.odeint(linear, Y0, T, options=dict(norm=lambda x: x.abs().max()))
    assert (a - b).abs().max() <= 1e-6


def test_grid_constructor():
    gc = lambda func, y0, t: torch.linspace(t[0], t[-1], 21, dtype=t.dtype)  # noqa: E731
    a = odeint(linear, Y0, T, method="rk4", options=dict(grid_constructor=gc))
    b = torchdiffeq.odeint(linear, Y0, T, method="rk4", options=dict(grid_constructor=gc))
    assert (a - b).abs().max() <= 1e-10


# ---------------------------------------------------------------------- scipy reference
scipy_integrate = pytest.importorskip("scipy.integrate")

CLASSIC = {
    "lotka_volterra": (lambda t, y: torch.stack([1.5 * y[0] - y[0] * y[1], y[0] * y[1] - 3 * y[1]]),
                       [10.0, 5.0], 10.0),
    "van_der_pol": (lambda t, y: torch.stack([y[1], (1 - y[0] ** 2) * y[1] - y[0]]), [2.0, 0.0], 10.0),
    "pendulum": (lambda t, y: torch.stack([y[1], -torch.sin(y[0])]), [2.5, 0.0], 20.0),
    "brusselator": (lambda t, y: torch.stack([1 + y[0] ** 2 * y[1] - 4 * y[0], 3 * y[0] - y[0] ** 2 * y[1]]),
                    [1.5, 3.0], 10.0),
}


@pytest.mark.parametrize("problem", sorted(CLASSIC))
@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_against_scipy_dop853(problem, method):
    f, y0, t_end = CLASSIC[problem]
    ts = torch.linspace(0, t_end, 9, dtype=DT)
    ref = scipy_integrate.solve_ivp(lambda t, y: f(t, torch.tensor(y)).numpy(), (0, t_end), y0,
                                    method="DOP853", rtol=1e-13, atol=1e-13, t_eval=ts.numpy())
    ys = solve(f, torch.tensor(y0, dtype=DT), ts, method=method, rtol=1e-10, atol=1e-10).ys
    ref_y = torch.tensor(ref.y.T)
    assert ((ys - ref_y).abs() / (1 + ref_y.abs())).max() <= 1e-6


# ---------------------------------------------------------------------- stops and jumps
def test_jump_t_lands_on_discontinuity():
    f = lambda t, y: torch.where(t < 0.5, torch.ones_like(y), -torch.ones_like(y))  # noqa: E731
    y0 = torch.zeros(1, dtype=DT)
    with_jump = solve(f, y0, [0.0, 1.0], jump_t=[0.5], rtol=1e-9, atol=1e-9)
    assert abs(with_jump.ys[-1].item()) < 1e-12  # piecewise linear: exact on both sides
    without = solve(f, y0, [0.0, 1.0], rtol=1e-9, atol=1e-9)
    assert with_jump.stats.nfe < without.stats.nfe


def test_step_t_is_landed_on():
    seen = []

    def f(t, y):
        seen.append(t.item())
        return -y
    solve(f, torch.ones(1, dtype=DT), [0.0, 1.0], step_t=[0.3337])
    assert any(abs(s - 0.3337) < 1e-15 for s in seen)


def test_perturb_evaluates_inside_steps():
    seen = []

    def f(t, y):
        seen.append(t.item())
        return -y
    solve(f, torch.ones(1, dtype=DT), [0.0, 1.0], method="euler", step_size=0.5, perturb=True)
    assert seen[0] > 0.0 and seen[1] > 0.5


# ---------------------------------------------------------------------- failures and bad input
def test_nan_state_raises_with_time_and_partial_solution():
    f = lambda t, y: torch.where(t < 0.5, -y, y * float("nan"))  # noqa: E731
    with pytest.raises(SolveError, match=r"non-finite .* t=0\.\d+ with step size") as info:
        solve(f, Y0, T)
    assert isinstance(info.value, RuntimeError)
    assert 0.3 < info.value.t <= 0.5 and len(info.value.ys) >= 2  # outputs at 0, 0.2, (0.4)


def test_nan_in_fixed_grid_raises_after_the_loop():
    f = lambda t, y: torch.where(t < 0.5, -y, y * float("nan"))  # noqa: E731
    with pytest.raises(SolveError, match=r"non-finite .* by output time t=0\.6"):
        solve(f, Y0, T, method="rk4", step_size=0.1)


def test_max_steps():
    with pytest.raises(SolveError, match=r"max_steps=5 exceeded at t=.*raise max_steps"):
        solve(lambda t, y: 1e3 * y, Y0, T, max_steps=5)
    with pytest.raises(RuntimeError, match="max_steps"):
        odeint(lambda t, y: 1e3 * y, Y0, T, options=dict(max_num_steps=5))


def test_step_size_underflow():
    f = lambda t, y: 1.0 / (1.0 - t) ** 2 * torch.ones_like(y)  # noqa: E731  blows up at t = 1
    with pytest.raises(SolveError, match=r"step size underflow at t=(0\.99|1)"):
        solve(f, torch.zeros(1, dtype=DT), [0.0, 2.0])


def test_min_step():
    with pytest.raises(SolveError, match="below min_step=0.1"):
        solve(linear, Y0, T, rtol=1e-12, atol=1e-12, min_step=0.1)


@pytest.mark.parametrize("call, error, message", [
    (lambda: odeint(linear, Y0, torch.tensor([0.0, 1.0, 0.5], dtype=DT)), ValueError, "strictly increasing or strictly decreasing"),
    (lambda: odeint(linear, Y0, torch.tensor([0.0, 1.0, 1.0], dtype=DT)), ValueError, "remove repeated times"),
    (lambda: odeint(linear, Y0, torch.zeros(2, 2, dtype=DT)), ValueError, "t must be a 1-D tensor"),
    (lambda: odeint(linear, Y0, torch.tensor([], dtype=DT)), ValueError, "t is empty"),
    (lambda: odeint(linear, Y0, torch.tensor([0.0, float("inf")], dtype=DT)), ValueError, "t must be finite"),
    (lambda: odeint(linear, Y0, "abc"), TypeError, "t must be a 1-D tensor or a sequence"),
    (lambda: odeint(linear, torch.arange(8), T), TypeError, r"y0 must be a floating-point tensor, got dtype torch.int64; convert"),
    (lambda: odeint(linear, [1.0, 2.0], T), TypeError, "y0.0. must be a torch.Tensor"),
    (lambda: odeint(linear, Y0, T, rtol=-1e-3), ValueError, "rtol must be a non-negative finite number"),
    (lambda: odeint(linear, Y0, T, atol=float("nan")), ValueError, "atol must be a non-negative"),
    (lambda: odeint(linear, Y0, T, rtol=0, atol=0), ValueError, "both 0"),
    (lambda: odeint(linear, Y0, T.to("meta")), ValueError, "t is on meta but y0 is on cpu"),
    (lambda: odeint(lambda t, y: y[:3], Y0, T), ValueError, r"func returned a tensor of shape \(3,\) for a state of shape \(8,\)"),
    (lambda: odeint(lambda t, y: 1.0, Y0, T), TypeError, "func must return a tensor"),
    (lambda: odeint(linear, Y0, T, method="rk5"), ValueError, "unknown method 'rk5'; valid methods are"),
    (lambda: odeint(linear, Y0, T, method="rk4", options=dict(step_size=-0.1)), ValueError, "step_size must be a positive"),
    (lambda: odeint(linear, Y0, T, options=dict(max_num_steps=0)), ValueError, "max_num_steps must be a positive integer"),
    (lambda: odeint(linear, Y0, T, options=dict(safety=-1.0)), ValueError, "`safety` must be a positive"),
    (lambda: odeint(linear, Y0, T, options=dict(dfactor=2.0)), ValueError, "need dfactor <= 1 <= ifactor"),
    (lambda: solve(linear, Y0, T, max_steps=0), ValueError, "max_steps must be a positive integer"),
    (lambda: solve(linear, Y0, T, method="rk4", grid=[0.0, 1.0]), ValueError, "grid must start at t.0.=0.0 and end at t.-1.=2.0"),
    (lambda: solve(linear, Y0, T, method="rk4", interp="quadratic"), ValueError, "interp must be"),
    (lambda: solve(linear, Y0, T, gradient="backprop"), ValueError, "unknown gradient mode 'backprop'; valid modes are: autograd, adjoint, checkpoint"),
])
def test_bad_input_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_single_time_returns_initial_state():
    assert torch.equal(odeint(linear, Y0, T[:1]), Y0[None])


def test_float32_state_float64_time():
    seen = []

    def f(t, y):
        seen.append(t.dtype)
        return -y
    ys = solve(f, torch.ones(3), [0.0, 1.0])
    assert ys.ys.dtype == torch.float32 and set(seen) == {torch.float32}
    assert abs(ys.ys[-1, 0].item() - math.exp(-1)) < 1e-6


def test_public_api_names():
    for name in ["solve", "odeint", "odeint_adjoint", "Solution", "SolverStats", "SolveError"]:
        assert hasattr(graphode, name)
