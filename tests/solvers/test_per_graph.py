"""Per-graph adaptive step control: exactness, batch invariance, per-node times, errors."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from graphode import SolveError, odeint_event, solve
from graphode.nn import GDEConv, LinearDiffusion
from graphode.solvers.per_graph import graph_index

from ..conftest import stable_matrix


def block_system(sizes, stiffness, seed=0):
    mats = [stable_matrix(n, seed=seed + i) * s for i, (n, s) in enumerate(zip(sizes, stiffness))]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return mats, torch.block_diag(*mats), batch


@pytest.mark.parametrize("method, rtol", [("dopri5", 1e-9), ("tsit5", 1e-9), ("bosh3", 1e-9),
                                          ("adaptive_heun", 1e-5)])  # heun: not FSAL
def test_exact_on_block_linear_systems(method, rtol):
    mats, a, batch = block_system([3, 5, 4], [1.0, 30.0, 3.0])
    y0 = torch.randn(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    times = [0.0, 0.3, 1.0]
    sol = solve(lambda t, y: a @ y, y0, times, method=method, rtol=rtol, atol=rtol * 1e-2,
                per_graph=batch)
    exact = torch.stack([torch.linalg.matrix_exp(a * t) @ y0 for t in times])
    assert (sol.ys - exact).abs().max() <= 1e3 * rtol * exact.abs().max()
    assert sol.stats.n_accepted > 0


def test_reverse_time_and_ptr():
    mats, a, batch = block_system([2, 3], [1.0, 5.0])
    y0 = torch.randn(5, dtype=torch.float64)
    ptr = torch.tensor([0, 2, 5])
    sol = solve(lambda t, y: a @ y, y0, [1.0, 0.0], rtol=1e-10, atol=1e-12, per_graph=ptr)
    assert torch.allclose(sol.ys[-1], torch.linalg.matrix_exp(-a) @ y0, atol=1e-8)


def random_graphs(count, seed=0):
    """Random graphs of different sizes and edge weights. (The GCN normalisation divides a
    graph's common edge weight out, so their spectra are alike: the stiff mixes are below.)"""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(count):
        n = int(torch.randint(5, 20, (1,), generator=g))
        e = int(torch.randint(n, 4 * n, (1,), generator=g))
        ei = torch.randint(0, n, (2, e), generator=g)
        rate = 10 ** float(torch.rand(1, generator=g) * 3 - 1)
        graphs.append(Data(x=torch.randn(n, 4, generator=g, dtype=torch.float64), edge_index=ei,
                           edge_weight=torch.full((e,), rate, dtype=torch.float64)))
    return graphs


def gde(per_graph):
    return GDEConv(LinearDiffusion(4, weight=False), t_span=(0.0, 1.0), method="dopri5",
                   rtol=1e-6, atol=1e-8, gradient="autograd", per_graph_steps=per_graph)


def test_batch_invariance_with_63_other_graphs():
    graphs = random_graphs(64)
    batch = Batch.from_data_list(graphs)
    per_graph = gde(True)
    together = per_graph(batch.x, batch.edge_index, batch.edge_weight, batch.batch)
    worst_shared = 0.0
    shared = gde(False)(batch.x, batch.edge_index, batch.edge_weight)
    for i in (0, 17, 63):
        g = graphs[i]
        nodes = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        alone = per_graph(g.x, g.edge_index, g.edge_weight)
        assert (together[nodes] - alone).abs().max() <= 1e-6
        alone_shared = gde(False)(g.x, g.edge_index, g.edge_weight)
        worst_shared = max(worst_shared, float((shared[nodes] - alone_shared).abs().max()))
    # A shared step makes each graph's answer depend on its batch mates (here: more accurate
    # for the easy graphs, at the cost of the hardest graph's steps for everyone).
    assert worst_shared > 0.0


def test_fields_receive_each_nodes_time():
    seen = []

    def f(t, y):
        seen.append(t.shape)
        return t.expand_as(y)  # y(t) = y0 + t^2 / 2 for every graph

    y0 = torch.zeros(6, 3, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1, 1, 2])
    sol = solve(f, y0, [0.0, 2.0], per_graph=batch, rtol=1e-10, atol=1e-12)
    assert seen[0] == (6, 1)
    assert torch.allclose(sol.ys[-1], torch.full_like(y0, 2.0), atol=1e-9)


def test_gradients_through_per_graph_solves():
    mats, a, batch = block_system([2, 3], [1.0, 4.0])
    a = a.clone().requires_grad_()
    y0 = torch.randn(5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(
        lambda y, m: solve(lambda t, s: m @ s, y, [0.0, 0.5], rtol=1e-10, atol=1e-12,
                           per_graph=batch).ys[-1], (y0, a))


def test_errors():
    y0 = torch.randn(4, 2, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1])
    f = lambda t, y: -y  # noqa: E731
    with pytest.raises(ValueError, match="per_graph step control needs an adaptive method"):
        solve(f, y0, [0.0, 1.0], method="rk4", per_graph=batch)
    with pytest.raises(ValueError, match="needs an adaptive method .* with a fixed step"):
        solve(f, y0, [0.0, 1.0], step_size=0.1, per_graph=batch)
    with pytest.raises(ValueError, match="gradient='autograd' only"):
        solve(f, y0, [0.0, 1.0], gradient="adjoint", per_graph=batch)
    with pytest.raises(ValueError, match="pass Batch.batch"):
        solve(f, y0, [0.0, 1.0], per_graph=torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="sorted"):
        graph_index(torch.tensor([1, 0, 0, 1]), 4)
    with pytest.raises(ValueError, match="per_graph_steps=True needs an adaptive method"):
        GDEConv(LinearDiffusion(4), method="rk4", step_size=0.1, per_graph_steps=True)
    with pytest.raises(SolveError, match="graph 1 became non-finite") as err:
        solve(lambda t, y: y * torch.tensor([[0.0], [0.0], [float("nan")], [0.0]],
                                             dtype=y.dtype), y0, [0.0, 1.0], per_graph=batch)
    assert err.value.ys and err.value.ys[0] is y0
    with pytest.raises(SolveError, match="max_steps=3 exceeded"):
        solve(lambda t, y: -1000 * y, y0, [0.0, 10.0], per_graph=batch, max_steps=3)


# --- stiff graphs: method="auto" and "rkc" per graph ------------------------------------------

def symmetric_blocks(sizes, scales):
    """Symmetric negative definite blocks (diffusion-like spectra on the negative real axis)
    with spectral radii about ``4 * scale``."""
    mats = []
    for i, (n, scale) in enumerate(zip(sizes, scales)):
        m = torch.randn(n, n, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        mats.append(-(m @ m.T) / n * scale - 0.1 * torch.eye(n, dtype=torch.float64))
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return mats, torch.block_diag(*mats), batch


@pytest.mark.parametrize("method", ["auto", "rkc"])
@pytest.mark.parametrize("rtol", [1e-5, 1e-7])
def test_stiff_methods_exact_on_blocks_of_mixed_stiffness(method, rtol):
    # spectral radii from about 4 to 2.9e4; RKC is second order, so its global error is a
    # larger multiple of the tolerance than dopri5's
    mats, a, batch = symmetric_blocks([3, 5, 4, 6], [1.0, 3e2, 1e4, 3.0])
    y0 = torch.randn(18, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    times = [0.0, 0.3, 1.0]
    sol = solve(lambda t, y: a @ y, y0, times, method=method, rtol=rtol, atol=rtol * 1e-2,
                per_graph=batch, max_steps=10 ** 5)
    exact = torch.stack([torch.linalg.matrix_exp(a * t) @ y0 for t in times])
    assert (sol.ys - exact).abs().max() <= 50 * rtol * exact.abs().max()
    if method == "auto":  # the two stiff graphs switch to RKC, the others stay with dopri5
        assert sorted(g for g, _, m in sol.stats.graph_switches if m == "rkc") == [1, 2]
    else:
        assert sol.stats.graph_switches == []


def test_auto_per_graph_is_batch_invariant_and_agrees_with_the_shared_solve():
    mats, a, batch = symmetric_blocks([3, 5, 4, 6], [1.0, 3e2, 1e4, 3.0])
    y0 = torch.randn(18, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kw = dict(method="auto", rtol=1e-6, atol=1e-8, max_steps=10 ** 5)
    together = solve(lambda t, y: a @ y, y0, [0.0, 1.0], per_graph=batch, **kw)
    start = 0
    for g, m in enumerate(mats):
        nodes = slice(start, start + m.size(0))
        start += m.size(0)
        one = torch.zeros(m.size(0), dtype=torch.long)
        alone = solve(lambda t, y: m @ y, y0[nodes], [0.0, 1.0], per_graph=one, **kw)
        assert (together.ys[-1][nodes] - alone.ys[-1]).abs().max() <= 1e-13
        switched = [(t, meth) for h, t, meth in together.stats.graph_switches if h == g]
        assert switched == [(t, meth) for _, t, meth in alone.stats.graph_switches]
        # one graph on its own: the same decisions as the shared-step auto solve
        shared = solve(lambda t, y: m @ y, y0[nodes], [0.0, 1.0], **kw)
        assert [meth for _, meth in shared.stats.switches] == ["dopri5"] + [
            meth for _, meth in switched]
        assert (shared.ys[-1] - alone.ys[-1]).abs().max() <= 1e-9 * (1 + shared.ys[-1].abs().max())


def test_auto_per_graph_saves_evaluations_on_stiff_graphs():
    mats, a, batch = symmetric_blocks([6, 5, 7], [1.0, 3e2, 3e3])
    y0 = torch.randn(18, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(rtol=1e-5, atol=1e-7, per_graph=batch, max_steps=10 ** 5)
    auto = solve(lambda t, y: a @ y, y0, [0.0, 1.0], method="auto", **kw)
    dopri5 = solve(lambda t, y: a @ y, y0, [0.0, 1.0], method="dopri5", **kw)
    exact = torch.linalg.matrix_exp(a) @ y0
    assert (auto.ys[-1] - exact).abs().max() <= 1e-4
    assert auto.stats.nfe * 3 < dopri5.stats.nfe


def test_gradients_through_per_graph_auto():
    mats, a, batch = symmetric_blocks([3, 4], [1.0, 1e3])
    a = a.clone().requires_grad_()
    y0 = torch.randn(7, 2, dtype=torch.float64, requires_grad=True,
                     generator=torch.Generator().manual_seed(4))
    w = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    sol = solve(lambda t, y: a @ y, y0, [0.0, 0.5], method="auto", rtol=1e-8, atol=1e-10,
                per_graph=batch, max_steps=10 ** 5)
    assert any(m == "rkc" for _, _, m in sol.stats.graph_switches)
    got = torch.autograd.grad((sol.ys[-1] * w).sum(), (y0, a))
    want = torch.autograd.grad((torch.linalg.matrix_exp(0.5 * a) @ y0 * w).sum(), (y0, a))
    # within the blocks only: an entry coupling two graphs has no meaning for a per-graph solve
    inside = torch.block_diag(*[torch.ones_like(m) for m in mats]).bool()
    for g, r in ((got[0], want[0]), (got[1][inside], want[1][inside])):
        assert ((g - r).norm() / r.norm()).item() < 1e-5


def test_per_graph_stiff_refusals():
    from graphode.solvers import AutoSwitch
    y0 = torch.randn(4, 2, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="stiff_method='rkc'"):
        solve(lambda t, y: -y, y0, [0.0, 1.0], method=AutoSwitch(stiff_method="kvaerno5"),
              per_graph=batch)
    with pytest.raises(ValueError, match="odeint_event needs an adaptive explicit"):
        odeint_event(lambda t, y: -y, y0, torch.tensor(0.0), method="auto", per_graph=batch,
                     event_fn=lambda t, y: torch.ones_like(t))


def test_gde_layer_with_per_graph_auto():
    graphs = random_graphs(4, seed=7)
    for g in graphs:
        g.edge_index = torch.cat([g.edge_index, g.edge_index.flip(0)], 1)  # undirected
        g.edge_weight = None
    batch = Batch.from_data_list(graphs)
    layer = GDEConv(LinearDiffusion(4, weight=False, rate=3e3), t_span=(0.0, 1.0),
                    method="auto", rtol=1e-5, atol=1e-7, gradient="autograd",
                    per_graph_steps=True)
    together = layer(batch.x, batch.edge_index, None, batch.batch)
    assert {m for _, _, m in layer.stats.graph_switches} == {"rkc"}
    for i, g in enumerate(graphs):
        nodes = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        assert (together[nodes] - layer(g.x, g.edge_index)).abs().max() <= 1e-12
