"""The public solver API, graphode.solve: what it returns and what it refuses."""
import pytest
import torch

import graphode
from graphode import Solution, SolverStats, solve

Y0 = torch.tensor([1.0, 2.0])


def test_solution_holds_states_times_and_stats():
    sol = solve(lambda t, y: -y, Y0, [0.0, 0.5, 1.0])
    assert isinstance(sol, Solution) and isinstance(sol.stats, SolverStats)
    assert sol.ys.shape == (3, 2) and sol.ys.dtype == Y0.dtype
    assert sol.ts.dtype == torch.float64 and sol.ts.tolist() == [0.0, 0.5, 1.0]
    assert torch.allclose(sol.ys[-1], Y0 * torch.exp(torch.tensor(-1.0)), atol=1e-6)
    assert sol.stats.nfe > 0 and sol.stats.n_steps == sol.stats.n_accepted + sol.stats.n_rejected


@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_backward_work_is_counted_in_the_stats(mode):
    field = torch.nn.Linear(2, 2)
    y0 = Y0.clone().requires_grad_()
    sol = solve(lambda t, y: field(y), y0, [0.0, 1.0], gradient=mode,
                adjoint_params=list(field.parameters()))
    assert sol.stats.nfe_backward == 0
    sol.ys.sum().backward()
    assert sol.stats.nfe_backward > 0 and y0.grad is not None


@pytest.mark.parametrize("call, error, message", [
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], gradient="backprop"), ValueError,
     "unknown gradient mode 'backprop'"),
    (lambda: solve(lambda t, y: -y, Y0.clone().requires_grad_(), [0.0, 1.0], gradient="adjoint"),
     ValueError, "pass `func` as an nn.Module, or give them as `adjoint_params"),
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], method="dopri5", compile=True), ValueError,
     "compile needs a fixed-step solve"),
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], method="rk4", per_graph=torch.zeros(2)),
     ValueError, "per_graph step control needs an adaptive method"),
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], rtol=0, atol=0), ValueError,
     "rtol and atol are both 0"),
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], max_steps=0), ValueError,
     "max_steps must be a positive integer"),
    (lambda: solve(lambda t, y: -y, Y0, [0.0, 1.0], grid=[0.0, 0.5]), ValueError,
     "grid must start at t"),
    (lambda: solve(lambda t, y: -y, Y0.long(), [0.0, 1.0]), TypeError,
     "y0 must be a floating-point tensor"),
])
def test_bad_configurations_are_refused_up_front(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_package_exports_the_torchdiffeq_names():
    for name in ("solve", "odeint", "odeint_adjoint", "Solution", "SolverStats", "SolveError"):
        assert name in graphode.__all__


def test_an_adjoint_object_carries_the_adjoint_settings():
    import pytest
    import torch

    import graphode
    from graphode.gradients import Adjoint
    from graphode.nn import GDEConv

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 3).double()
    field = lambda t, y: torch.tanh(lin(y))  # noqa: E731
    y0 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    grads = []
    for kw in (dict(gradient="adjoint", adjoint_method="rk4", adjoint_step_size=0.05,
                    adjoint_params=list(lin.parameters())),
               dict(gradient=Adjoint(method="rk4", step_size=0.05, params=list(lin.parameters())))):
        sol = graphode.solve(field, y0, [0.0, 1.0], method="dopri5", rtol=1e-8, atol=1e-10, **kw)
        grads.append(torch.autograd.grad(sol.ys[-1].sum(), [y0, lin.weight]))
        assert sol.stats.nfe_backward == 4 * 20  # rk4 on a fixed step of 0.05, backward
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="adjoint_rtol given both"):
        graphode.solve(field, y0, [0.0, 1.0], gradient=Adjoint(), adjoint_rtol=1e-3)
    layer = GDEConv(torch.nn.Linear(3, 3), gradient=Adjoint(method="rk4", step_size=0.1))
    assert layer.gradient == "adjoint" and layer.solver_kwargs["adjoint_method"] == "rk4"
    x = torch.randn(5, 3)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    layer(x, edge_index).sum().backward()
    assert layer.stats.nfe_backward == 4 * 10
    with pytest.raises(ValueError, match="params"):
        GDEConv(torch.nn.Linear(3, 3), gradient=Adjoint(params=[]))
