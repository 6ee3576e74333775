"""``method="expm"``: the Chebyshev series of the exact flow of a linear graph diffusion,
against ``torch.matrix_exp``, with its gradients and its refusals."""
import math

import numpy as np
import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import erdos_renyi_graph, to_undirected

from graphode import SolveError, solve
from graphode.nn import GDEConv, GraphVectorField, LinearDiffusion
from graphode.solvers import Exponential
from graphode.solvers.exponential import chebyshev_coefficients

DT = torch.float64


def _graph(n=50, seed=0):
    torch.manual_seed(seed)
    return to_undirected(erdos_renyi_graph(n, 0.12)), n


def _dense(edge_index, n, channels, rate=1.0, alpha=0.0, weight=None):
    """``J`` of ``LinearDiffusion`` acting on ``vec(X)`` (row-major), built densely."""
    e, w = gcn_norm(edge_index, None, n, dtype=DT)
    a = torch.zeros(n, n, dtype=DT)
    a[e[1], e[0]] += w
    mix = torch.eye(channels, dtype=DT) if weight is None else weight.T.contiguous()
    return rate * ((1 - alpha) * torch.kron(a, mix) - torch.eye(n * channels, dtype=DT))


def _bind(layer, edge_index, n):
    return GraphVectorField(layer).bind(edge_index, None, n, DT, torch.device("cpu"))


def test_chebyshev_coefficients_of_exp_are_scaled_bessel_functions():
    from scipy.special import ive
    a = chebyshev_coefficients(lambda x: np.exp(3.0 * x), 64)
    k = np.arange(20)
    exact = 2.0 * ive(k, 3.0) * math.exp(3.0)
    exact[0] /= 2.0
    assert np.allclose(a[:20], exact, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("rate, alpha, t_end", [(1.0, 0.0, 18.0), (1e4, 0.0, 1.0),
                                                 (3.0, 0.2, 2.0)])
@pytest.mark.parametrize("rtol", [1e-3, 1e-9])
def test_exact_flow_within_the_tolerance(rate, alpha, t_end, rtol):
    edge_index, n = _graph()
    field = _bind(LinearDiffusion(-1, weight=False, alpha=alpha, rate=rate), edge_index, n)
    y0 = torch.randn(n, 4, dtype=DT)
    times = [0.0, t_end / 3, t_end]
    sol = solve(field, y0, times, method="expm", rtol=rtol, atol=rtol * 1e-2)
    j = _dense(edge_index, n, 4, rate, alpha)
    for t, y in zip(times, sol.ys):
        exact = (torch.linalg.matrix_exp(j * t) @ y0.reshape(-1)).reshape(n, 4)
        # the error's norm is within the tolerance measured against the solution
        allowed = rtol * exact.norm() + rtol * 1e-2 * math.sqrt(y0.numel())
        assert (y - exact).norm() <= allowed
    assert sol.ys[0] is not None and torch.equal(sol.ys[0], y0)
    # the degree grows as the square root of the horizon's stiffness, not linearly
    if rate == 1e4:
        assert sol.stats.nfe < 800


def test_backwards_in_time_and_a_symmetric_weight():
    edge_index, n = _graph(30, seed=1)
    layer = LinearDiffusion(3).double()
    with torch.no_grad():
        w = torch.randn(3, 3, dtype=DT)
        layer.weight.copy_(0.5 * (w + w.T))
    field = _bind(layer, edge_index, n)
    y1 = torch.randn(n, 3, dtype=DT)
    sol = solve(field, y1, [1.0, 0.5, 0.0], method="expm", rtol=1e-10, atol=1e-12)
    j = _dense(edge_index, n, 3, weight=layer.weight.detach())
    exact = (torch.linalg.matrix_exp(-j) @ y1.reshape(-1)).reshape(n, 3)
    assert torch.allclose(sol.ys[-1], exact, rtol=1e-8, atol=1e-9)


def test_a_constant_source_term_is_integrated_exactly():
    # CGNN's field dX/dt = (A_hat - I) X + X0 (GDEConv's control="add"), from X(0) = X0:
    # X(t) = exp(tJ) X0 + t phi1(tJ) X0, here against the augmented matrix exponential
    edge_index, n = _graph(40, seed=2)
    x0 = torch.randn(n, 2, dtype=DT)
    layer = GDEConv(LinearDiffusion(-1, weight=False, alpha=0.1), t_span=(0.0, 3.0),
                    control="add", method="expm", gradient="autograd", rtol=1e-10,
                    atol=1e-12)
    out = layer(x0, edge_index)
    j = _dense(edge_index, n, 2, alpha=0.1)
    m = n * 2
    aug = torch.zeros(2 * m, 2 * m, dtype=DT)
    aug[:m, :m], aug[:m, m:] = j, torch.eye(m, dtype=DT)
    exact = (torch.linalg.matrix_exp(3.0 * aug) @ torch.cat([x0.reshape(-1)] * 2))[:m]
    assert torch.allclose(out, exact.reshape(n, 2), rtol=1e-8, atol=1e-9)
    reference = GDEConv(LinearDiffusion(-1, weight=False, alpha=0.1), t_span=(0.0, 3.0),
                        control="add", method="dopri8", rtol=1e-12, atol=1e-13)
    assert torch.allclose(out, reference(x0, edge_index), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("gradient", ["autograd", "checkpoint"])
def test_gradients_against_the_matrix_exponential(gradient):
    edge_index, n = _graph(30, seed=3)
    field = _bind(LinearDiffusion(-1, weight=False, rate=5.0), edge_index, n)
    y0 = torch.randn(n, 2, dtype=DT, requires_grad=True)
    probe = torch.randn(n, 2, dtype=DT)
    sol = solve(field, y0, [0.0, 0.7, 2.0], method="expm", rtol=1e-11, atol=1e-13,
                gradient=gradient)
    (grad,) = torch.autograd.grad((sol.ys[1:] * probe).sum(), y0)
    j = _dense(edge_index, n, 2, rate=5.0)
    exact = sum(torch.linalg.matrix_exp(j * t).T @ probe.reshape(-1) for t in (0.7, 2.0))
    assert torch.allclose(grad.reshape(-1), exact, rtol=1e-8, atol=1e-9)
    if gradient == "checkpoint":
        assert sol.stats.nfe_backward >= sol.stats.nfe - 2  # the series ran again


def test_checkpoint_equals_autograd_with_a_learned_source_and_weight():
    edge_index, n = _graph(30, seed=4)
    x = torch.randn(n, 3, dtype=DT)
    grads = {}
    for gradient in ("autograd", "checkpoint"):
        torch.manual_seed(0)
        encoder = torch.nn.Linear(3, 3).double()
        layer = GDEConv(LinearDiffusion(-1, weight=False), t_span=(0.0, 2.0), control="add",
                        method="expm", gradient=gradient, rtol=1e-9, atol=1e-11)
        out = layer(encoder(x), edge_index)
        grads[gradient] = torch.autograd.grad(out.square().sum(), list(encoder.parameters()))
    for a, b in zip(grads["autograd"], grads["checkpoint"]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)


def test_a_gde_layer_trains_with_expm_as_with_dopri5():
    edge_index, n = _graph(40, seed=5)
    x = torch.randn(n, 4, dtype=DT)
    outs = {}
    for method in ("expm", "dopri8"):
        layer = GDEConv(LinearDiffusion(-1, weight=False), t_span=(0.0, 18.0), method=method,
                        gradient="autograd", rtol=1e-10, atol=1e-12)
        outs[method] = layer(x, edge_index)
    assert torch.allclose(outs["expm"], outs["dopri8"], rtol=1e-7, atol=1e-8)


def test_refusals_name_the_reason_and_the_fix():
    edge_index, n = _graph(20, seed=6)
    y0 = torch.randn(n, 2, dtype=DT)
    with pytest.raises(ValueError, match="does not say what its Jacobian is.*method='auto'"):
        solve(lambda t, y: -y, y0, [0.0, 1.0], method="expm")
    directed = erdos_renyi_graph(n, 0.2, directed=True)
    with pytest.raises(ValueError, match="not symmetric"):
        solve(_bind(LinearDiffusion(-1, weight=False), directed, n), y0, [0.0, 1.0],
              method="expm")
    layer = LinearDiffusion(2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.3], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="not symmetric"):
        solve(_bind(layer, edge_index, n), y0, [0.0, 1.0], method="expm")
    field = _bind(LinearDiffusion(-1, weight=False), edge_index, n)
    with pytest.raises(ValueError, match="no step_size"):
        solve(field, y0, [0.0, 1.0], method="expm", step_size=0.1)
    with pytest.raises(ValueError, match="no steps to solve backwards"):
        solve(field, y0.requires_grad_(), [0.0, 1.0], method="expm", gradient="adjoint")
    with pytest.raises(SolveError, match="would need .* operator products.*max_degree"):
        solve(_bind(LinearDiffusion(-1, weight=False, rate=1e6), edge_index, n), y0,
              [0.0, 1.0], method=Exponential(max_degree=50))
    # far past max_degree the refusal comes before any large transform
    with pytest.raises(SolveError, match="would need more than 10000 operator products"):
        solve(_bind(LinearDiffusion(-1, weight=False, rate=1e12), edge_index, n), y0,
              [0.0, 1.0], method="expm")
    with pytest.raises(ValueError, match="max_degree"):
        Exponential(max_degree=0)
    bad = y0.detach().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(SolveError, match="non-finite .* at the initial state"):
        solve(field, bad, [0.0, 1.0], method="expm")


def test_the_tolerance_holds_against_a_decaying_solution():
    # with damping the flow decays by e^{-rate * alpha * t}: a degree chosen from the initial
    # state's norm alone would leave a relative error far above rtol at the end
    edge_index, n = _graph(40, seed=7)
    field = _bind(LinearDiffusion(-1, weight=False, alpha=0.5, rate=10.0), edge_index, n)
    y0 = torch.randn(n, 3, dtype=DT)
    sol = solve(field, y0, [0.0, 1.0, 3.0], method="expm", rtol=1e-6, atol=1e-300)
    j = _dense(edge_index, n, 3, rate=10.0, alpha=0.5)
    for t, y in zip((1.0, 3.0), sol.ys[1:]):
        exact = (torch.linalg.matrix_exp(j * t) @ y0.reshape(-1)).reshape(n, 3)
        assert exact.norm() < (1e-2 if t == 1.0 else 1e-5) * y0.norm()
        assert (y - exact).norm() <= 1e-6 * exact.norm()
