"""Fixed-step solves compiled with torch.compile: same numbers, same statistics, one trace per
grid, clear errors for what cannot be compiled."""
import shutil

import pytest
import torch
from torch_geometric.nn import ChebConv, GCNConv, GINConv, GraphConv, SAGEConv

from graphode import SolveError, solve
from graphode.nn import GDEConv, LinearDiffusion
from graphode.solvers.compiled import compile_options

from ..conftest import stable_matrix


class CountingBackend:
    """A torch.compile backend that runs the traced graph as it is and counts the traces."""

    def __init__(self):
        self.traces = 0

    def __call__(self, gm, example_inputs):
        self.traces += 1
        return gm.forward


def graph(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, 4 * n), generator=g)


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4),
                                           ("dopri5", 5)])
def test_matches_eager_and_exact_solution(method, order):
    a = stable_matrix(6, seed=3)
    y0 = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    times = [0.0, 0.35, 1.0]
    eager = solve(lambda t, y: a @ y, y0, times, method=method, step_size=0.05)
    backend = CountingBackend()
    compiled = solve(lambda t, y: a @ y, y0, times, method=method, step_size=0.05,
                     compile={"backend": backend})
    assert backend.traces == 1
    assert torch.equal(compiled.ys, eager.ys)
    assert compiled.stats == eager.stats
    exact = torch.stack([torch.linalg.matrix_exp(a * t) @ y0 for t in times])
    assert (compiled.ys - exact).abs().max() <= 10 * 0.05 ** order  # global error O(h^order)


def test_gdeconv_forward_and_gradients_match_eager_without_retracing():
    torch.manual_seed(0)
    backend = CountingBackend()
    conv = GCNConv(8, 8).double()
    compiled = GDEConv([conv, torch.nn.Tanh()], method="rk4", step_size=0.25,
                       gradient="autograd", compile={"backend": backend})
    eager = GDEConv([conv, torch.nn.Tanh()], method="rk4", step_size=0.25, gradient="autograd")
    for seed in range(3):  # a new graph of the same size each forward: no new trace
        x = torch.randn(40, 8, dtype=torch.float64, requires_grad=True)
        ei = graph(40, seed)
        grads = []
        for layer in (compiled, eager):
            out = layer(x, ei)
            out.pow(2).sum().backward()
            grads.append((out.detach(), x.grad.clone(), conv.lin.weight.grad.clone()))
            x.grad = None
            conv.zero_grad()
        for c, e in zip(*grads):
            assert (c - e).abs().max() <= 1e-12
        assert compiled.stats.nfe == eager.stats.nfe == 16
    assert backend.traces == 2  # the forward graph and the backward graph, once


@pytest.mark.parametrize("make", [
    lambda: SAGEConv(4, 4), lambda: GraphConv(4, 4), lambda: ChebConv(4, 4, K=3),
    lambda: GCNConv(4, 4), lambda: LinearDiffusion(4)])
def test_precomputed_fields_trace_without_graph_breaks(make):
    torch.manual_seed(3)
    conv = make().double()
    backend = CountingBackend()
    x = torch.randn(30, 4, dtype=torch.float64)
    ei = graph(30, 2)
    kwargs = dict(method="rk4", step_size=0.25, gradient="autograd")
    with torch.no_grad():
        eager = GDEConv([conv, torch.nn.Tanh()], **kwargs)(x, ei)
        compiled = GDEConv([conv, torch.nn.Tanh()], compile={"backend": backend}, **kwargs)(x, ei)
    assert backend.traces == 1  # one graph: a graph break would split the solve
    assert (compiled - eager).abs().max() <= 1e-12


def test_sum_aggregation_field_compiles_through_the_gather_scatter_product():
    torch.manual_seed(1)
    backend = CountingBackend()
    conv = GINConv(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    ei = graph(30, 0)
    kwargs = dict(method="rk4", step_size=0.5, gradient="autograd", t_eval=[0.5, 1.0])
    eager = GDEConv(conv, **kwargs)(x, ei)
    compiled = GDEConv(conv, compile={"backend": backend}, **kwargs)(x, ei)
    assert backend.traces == 1
    assert (compiled - eager).abs().max() <= 1e-12


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="inductor needs a C++ compiler on CPU")
def test_inductor_default_matches_eager():
    torch.manual_seed(2)
    conv = GCNConv(8, 8)
    x = torch.randn(50, 8, requires_grad=True)
    ei = graph(50, 1)
    kwargs = dict(method="rk4", step_size=0.5, gradient="autograd")
    out = GDEConv([conv, torch.nn.Tanh()], compile=True, **kwargs)(x, ei)
    ref = GDEConv([conv, torch.nn.Tanh()], **kwargs)(x, ei)
    assert (out - ref).abs().max() <= 1e-5
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert (g - g_ref).abs().max() <= 1e-5


def test_non_finite_state_is_reported_after_the_compiled_solve():
    y0 = torch.ones(3, dtype=torch.float64)
    with pytest.raises(SolveError, match="non-finite") as err:
        solve(lambda t, y: y * y * 1e200, y0, [0.0, 0.5, 1.0], method="euler", step_size=0.25,
              compile={"backend": CountingBackend()})
    assert err.value.t == 0.5 and len(err.value.ys) == 1


def test_field_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for a state of shape \(5, 2\)"):
        solve(lambda t, y: y[:3], torch.randn(5, 2), [0.0, 1.0], method="rk4", step_size=0.5,
              compile={"backend": CountingBackend()})


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="dopri5"), "fixed-step solve"),
    (dict(method="rk4", step_size=0.5, gradient="adjoint"), "gradient='autograd' only"),
    (dict(method="rk4", step_size=0.5, gradient="checkpoint"), "gradient='autograd' only"),
    (dict(method="dopri5", per_graph=torch.zeros(4, dtype=torch.long)), "fixed-step"),
])
def test_what_cannot_be_compiled_is_refused(kwargs, message):
    f = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=message):
        solve(lambda t, y: f(y), torch.randn(4, 2), [0.0, 1.0], compile=True, **kwargs)


def test_time_gradients_are_refused():
    t = torch.tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(ValueError, match="does not differentiate with respect to t"):
        solve(lambda t, y: -y, torch.randn(3), t, method="rk4", step_size=0.5, compile=True)


def test_gdeconv_refuses_compile_at_construction():
    with pytest.raises(ValueError, match="compile needs a fixed-step solve"):
        GDEConv(GCNConv(4, 4), method="dopri5", gradient="autograd", compile=True)
    with pytest.raises(ValueError, match="compile needs a fixed-step solve"):
        GDEConv(GCNConv(4, 4), method="rk4", step_size=0.1, compile=True)  # adjoint default


def test_compile_options():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {}
    assert compile_options("reduce-overhead") == {"mode": "reduce-overhead"}
    assert compile_options({"backend": "eager"}) == {"backend": "eager"}
    with pytest.raises(TypeError, match="compile must be True, False"):
        compile_options(3)
