"""Property-based tests (hypothesis) over random graphs, sizes, dtypes and methods.

Run alone with ``python -m pytest tests/test_properties.py -q``; each property draws a few
dozen cases, small enough for CI.
"""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.utils import erdos_renyi_graph

from graphode import solve
from graphode.nn import GDEConv

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FIXED = ["euler", "midpoint", "rk4", "heun3"]
ADAPTIVE = ["dopri5", "tsit5", "bosh3"]
FEW = settings(SETTINGS, max_examples=8)  # the properties that solve several times per case


@st.composite
def graphs(draw, min_nodes=2, max_nodes=12):
    n = draw(st.integers(min_nodes, max_nodes))
    p = draw(st.floats(0.1, 0.9))
    seed = draw(st.integers(0, 2 ** 16))
    torch.manual_seed(seed)
    return n, erdos_renyi_graph(n, p), seed


def gde(make_layer, method, gradient="autograd", dtype=torch.float64, seed=0, **kw):
    """A GDE block with a ``[make_layer(), tanh]`` field, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    layer = make_layer()
    step = dict(step_size=0.25) if method in FIXED else dict(rtol=1e-8, atol=1e-10)
    return GDEConv([layer, torch.nn.Tanh()], t_span=(0.0, 1.0), method=method,
                   gradient=gradient, **step, **kw).to(dtype)


@SETTINGS
@given(graph=graphs(), channels=st.integers(1, 5), method=st.sampled_from(FIXED + ADAPTIVE),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       conv=st.sampled_from(["gcn", "sage"]))
def test_permutation_equivariance(graph, channels, method, dtype, conv):
    n, edge_index, seed = graph
    conv = GCNConv if conv == "gcn" else SAGEConv
    block = gde(lambda: conv(channels, channels), method, dtype=dtype, seed=seed)
    x = torch.randn(n, channels, dtype=dtype)
    perm = torch.randperm(n)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    out = block(x, edge_index)
    out_perm = block(x[perm], inverse[edge_index])
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out_perm, out[perm], rtol=tol, atol=tol)


@SETTINGS
@given(sizes=st.lists(graphs(max_nodes=8), min_size=2, max_size=4),
       method=st.sampled_from(FIXED), channels=st.integers(1, 4))
def test_a_batch_equals_the_graphs_alone(sizes, method, channels):
    datas = [Data(x=torch.randn(n, channels, dtype=torch.float64), edge_index=e, num_nodes=n)
             for n, e, _ in sizes]
    block = gde(lambda: GCNConv(channels, channels), method)
    batch = Batch.from_data_list(datas)
    together = block(batch.x, batch.edge_index)
    alone = torch.cat([block(d.x, d.edge_index) for d in datas])
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)


@FEW
@given(sizes=st.lists(graphs(max_nodes=8), min_size=2, max_size=4),
       method=st.sampled_from(ADAPTIVE))
def test_per_graph_steps_equal_the_graphs_alone(sizes, method):
    datas = [Data(x=torch.randn(n, 3, dtype=torch.float64), edge_index=e, num_nodes=n)
             for n, e, _ in sizes]
    block = gde(lambda: GCNConv(3, 3), method, per_graph_steps=True)
    batch = Batch.from_data_list(datas)
    together = block(batch.x, batch.edge_index, batch=batch.batch)
    alone = torch.cat([block(d.x, d.edge_index) for d in datas])
    # every graph takes the steps it would take alone: equal to rounding
    torch.testing.assert_close(together, alone, rtol=1e-9, atol=1e-9)


@FEW
@given(graph=graphs(max_nodes=8), channels=st.integers(1, 3),
       method=st.sampled_from(["rk4", "dopri5"]))
def test_adjoint_and_checkpoint_agree_with_autograd(graph, channels, method):
    n, edge_index, seed = graph
    x = torch.randn(n, channels, dtype=torch.float64)
    grads = {}
    for mode in ("autograd", "adjoint", "checkpoint"):
        block = gde(lambda: GCNConv(channels, channels), method, gradient=mode, seed=seed)
        xi = x.clone().requires_grad_()
        (block(xi, edge_index) ** 2).sum().backward()
        grads[mode] = [xi.grad] + [p.grad for p in block.parameters()]
    for a, c in zip(grads["autograd"], grads["checkpoint"]):
        torch.testing.assert_close(c, a, rtol=1e-9, atol=1e-9)  # the same computation
    # the adjoint solves a continuous backward ODE: equal up to the solve's error
    tol = 1e-3 if method == "rk4" else 1e-6
    for a, j in zip(grads["autograd"], grads["adjoint"]):
        torch.testing.assert_close(j, a, rtol=tol, atol=tol)


@SETTINGS
@given(n=st.integers(1, 10), scale=st.floats(0.1, 2.0), seed=st.integers(0, 2 ** 16),
       method=st.sampled_from(ADAPTIVE), t1=st.floats(0.2, 2.0))
def test_reverse_time_returns_to_the_start(n, scale, seed, method, t1):
    g = torch.Generator().manual_seed(seed)
    A = scale * torch.randn(n, n, generator=g, dtype=torch.float64) / n ** 0.5
    y0 = torch.randn(n, generator=g, dtype=torch.float64)
    f = lambda t, y: torch.tanh(A @ y) + 0.1 * torch.sin(t)  # noqa: E731
    forward = solve(f, y0, torch.tensor([0.0, t1], dtype=torch.float64), method=method,
                    rtol=1e-10, atol=1e-12).ys[-1]
    back = solve(f, forward, torch.tensor([t1, 0.0], dtype=torch.float64), method=method,
                 rtol=1e-10, atol=1e-12).ys[-1]
    torch.testing.assert_close(back, y0, rtol=1e-7, atol=1e-7)


@SETTINGS
@given(graph=graphs(max_nodes=15), channels=st.integers(1, 4),
       method=st.sampled_from(FIXED + ADAPTIVE), t1=st.floats(0.5, 20.0))
def test_stable_fields_stay_finite_and_bounded(graph, channels, method, t1):
    # dX/dt = (A_hat - I) X, a diffusion with eigenvalues in [-2, 0]: the solution neither
    # grows nor leaves the reals, for any graph and horizon
    n, edge_index, _ = graph
    from graphode.nn import LinearDiffusion
    step = dict(step_size=0.25) if method in FIXED else {}
    block = GDEConv(LinearDiffusion(channels, weight=False), t_span=(0.0, t1), method=method,
                    gradient="autograd", **step).double()
    x = torch.randn(n, channels, dtype=torch.float64)
    out = block(x, edge_index)
    assert torch.isfinite(out).all()
    assert out.abs().max() <= x.abs().max() * (1 + 1e-6)
