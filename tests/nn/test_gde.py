"""GDEConv in PyG's test style: shapes, repr, sparse input, wrapped convs, exactness, batches."""
import doctest

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import (
    ChebConv,
    GATConv,
    GCNConv,
    GINConv,
    GraphConv,
    MessagePassing,
    SAGEConv,
)
from torch_geometric.utils import from_networkx, to_dense_adj

import graphode.nn.gde
from graphode.nn import GDEConv, GraphVectorField, LinearDiffusion, SecondOrderGDEConv, TimeConcat

MODES = ["autograd", "adjoint", "checkpoint"]


def graph(n=30, e=120, c=16, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=dtype), torch.randint(0, n, (2, e), generator=g)


def make_conv(name, c=16):
    return {
        "gcn": lambda: GCNConv(c, c),
        "gat": lambda: GATConv(c, c),
        "gat2heads": lambda: GATConv(c, c // 2, heads=2),
        "sage": lambda: SAGEConv(c, c),
        "gin": lambda: GINConv(torch.nn.Sequential(torch.nn.Linear(c, c), torch.nn.Tanh(),
                                                   torch.nn.Linear(c, c))),
        "graph": lambda: GraphConv(c, c),
        "cheb": lambda: ChebConv(c, c, K=3),
        "diffusion": lambda: LinearDiffusion(c),
        "damped": lambda: LinearDiffusion(c, alpha=0.1),
    }[name]()


CONVS = ["gcn", "gat", "gat2heads", "sage", "gin", "graph", "cheb"]


def test_shapes_and_repr():
    x, ei = graph()
    layer = GDEConv(GCNConv(16, 16))
    assert str(layer) == "GDEConv(GCNConv(16, 16), method='dopri5')"
    assert str(GDEConv(GCNConv(16, 16), method="rk4", step_size=0.1, gradient="autograd")) == \
        "GDEConv(GCNConv(16, 16), method='rk4', gradient='autograd')"
    assert layer(x, ei).shape == (30, 16)
    traj = GDEConv(GCNConv(16, 16), t_eval=[0.25, 0.5, 1.0])(x, ei)
    assert traj.shape == (3, 30, 16)


def test_docstring_example():
    result = doctest.testmod(graphode.nn.gde, verbose=False)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("mode", MODES)
def test_wrapped_convs_train_one_step(name, mode):
    torch.manual_seed(0)
    x, ei = graph()
    conv = make_conv(name)
    layer = GDEConv(conv, method="rk4", step_size=0.25, gradient=mode)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    target = torch.randn_like(x)
    before = [p.detach().clone() for p in layer.parameters()]
    loss = (layer(x, ei) - target).square().mean()
    loss.backward()
    missing = [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    assert (layer(x, ei) - target).square().mean() < loss


@pytest.mark.parametrize("name", CONVS)
def test_gradient_modes_agree(name):
    torch.manual_seed(0)
    x, ei = graph(dtype=torch.float64)
    conv = make_conv(name).double()
    # Fixed steps: GAT's LeakyReLU makes the field non-smooth, and adaptive solves of it at
    # tight tolerances take thousands of steps. The field is squashed by tanh, as GDE fields
    # usually are: an unbounded random field grows the state 600-fold, and re-integrating the
    # state backwards through that growth (the backsolve adjoint) loses digits.
    grads = {}
    for mode in MODES:
        layer = GDEConv([conv, torch.nn.Tanh()], method="rk4", step_size=0.02, gradient=mode)
        conv.zero_grad()
        layer(x, ei).square().sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in conv.parameters()])
    scale = 1 + grads["autograd"].abs().max()
    assert (grads["checkpoint"] - grads["autograd"]).abs().max() <= 1e-9 * scale
    assert (grads["adjoint"] - grads["autograd"]).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("name", ["gcn", "sage", "gin", "graph", "cheb", "diffusion", "damped"])
@pytest.mark.parametrize("weighted", [False, True])
def test_precomputed_operator_equals_the_layer(name, weighted):
    torch.manual_seed(0)
    x, ei = graph(dtype=torch.float64)
    conv = make_conv(name).double()
    if name == "gin" or name == "sage":
        weighted = False  # these layers take no edge weights
    w = torch.rand(ei.size(1), dtype=torch.float64) if weighted else None
    kwargs = {} if w is None else {"edge_weight": w}
    if name in ("diffusion", "damped"):
        with torch.no_grad():
            conv.weight.add_(0.1 * torch.randn_like(conv.weight))
    field = GraphVectorField(conv).bind(ei, w, x.size(0), x.dtype, x.device)
    assert not isinstance(field._calls[0], torch.nn.Module)  # a precomputed plan is used
    t = torch.zeros((), dtype=torch.float64)
    assert (field(t, x) - conv(x, ei, **kwargs)).abs().max() <= 1e-12
    # gradients too
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    field(t, xa).sin().sum().backward()
    conv(xb, ei, **kwargs).sin().sum().backward()
    assert (xa.grad - xb.grad).abs().max() <= 1e-12


def test_sparse_adjacency_equals_edge_index():
    x, ei = graph()
    ei = torch.unique(ei, dim=1)  # a sparse matrix merges duplicate edges
    w = torch.rand(ei.size(1))
    layer = GDEConv(GCNConv(16, 16), method="rk4", step_size=0.25)
    adj_t = torch.sparse_coo_tensor(ei.flip(0), w, (30, 30))
    a = layer(x, ei, w)
    assert (layer(x, adj_t) - a).abs().max() <= 1e-5
    assert (layer(x, adj_t.to_sparse_csr()) - a).abs().max() <= 1e-5
    unweighted = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1)), (30, 30))
    assert (layer(x, unweighted) - layer(x, ei)).abs().max() <= 1e-5


class NegLaplacian(MessagePassing):
    """dX/dt = -L X with L = D - A."""

    def __init__(self, channels):
        super().__init__(aggr="add")
        self.in_channels = self.out_channels = channels

    def forward(self, x, edge_index, edge_weight=None):
        deg = torch.zeros(x.size(0), dtype=x.dtype).index_add_(
            0, edge_index[1], torch.ones(edge_index.size(1), dtype=x.dtype))
        return self.propagate(edge_index, x=x) - deg[:, None] * x

    def message(self, x_j):
        return x_j


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_heat_equation_on_karate_club(method):
    G = nx.karate_club_graph()
    ei = from_networkx(G).edge_index
    A = to_dense_adj(ei)[0].double()
    L = torch.diag(A.sum(1)) - A
    x0 = torch.randn(34, 3, dtype=torch.float64)
    layer = GDEConv(NegLaplacian(3), t_span=(0.0, 0.5), method=method, rtol=1e-10, atol=1e-10)
    assert (layer(x0, ei) - torch.linalg.matrix_exp(-0.5 * L) @ x0).abs().max() <= 1e-6


def test_gcn_diffusion_is_exact():
    # A linear GCN field without weights is dX/dt = A_hat X: compare with matrix_exp.
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    x, ei = graph(n=20, e=60, c=4, dtype=torch.float64)
    conv = GCNConv(4, 4, bias=False).double()
    with torch.no_grad():
        conv.lin.weight.copy_(torch.eye(4))
    ei2, w = gcn_norm(ei, None, 20, add_self_loops=True, dtype=torch.float64)
    A_hat = torch.zeros(20, 20, dtype=torch.float64).index_put_((ei2[1], ei2[0]), w, accumulate=True)
    layer = GDEConv(conv, rtol=1e-10, atol=1e-10)
    assert (layer(x, ei) - torch.linalg.matrix_exp(A_hat) @ x).abs().max() <= 1e-7


@pytest.mark.parametrize("name", ["gcn", "gat", "sage", "cheb"])
def test_batch_equals_graphs_alone(name):
    torch.manual_seed(0)
    graphs = []
    for n in (5, 9, 14):
        x, ei = graph(n, 3 * n, 8, seed=n, dtype=torch.float64)
        graphs.append(Data(x=x, edge_index=ei))
    b = Batch.from_data_list(graphs)
    layer = GDEConv(make_conv(name, 8).double(), method="rk4", step_size=0.1)
    yb = layer(b.x, b.edge_index, batch=b.batch)
    ys = torch.cat([layer(d.x, d.edge_index) for d in graphs])
    assert (yb - ys).abs().max() <= 1e-12


@pytest.mark.parametrize("name", CONVS)
def test_permutation_equivariance(name):
    torch.manual_seed(0)
    x, ei = graph(dtype=torch.float64)
    perm = torch.randperm(30)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(30)
    layer = GDEConv(make_conv(name).double(), method="rk4", step_size=0.1)
    with torch.no_grad():
        a = layer(x, ei)[perm]
        b = layer(x[perm], inv[ei])
    assert (a - b).abs().max() <= 1e-10 * (1 + a.abs().max())


def test_dtypes_no_grad_train_eval(device):
    x, ei = graph()
    conv = torch.nn.ModuleList([GCNConv(16, 16), torch.nn.Dropout(0.5), torch.nn.Tanh()])
    layer = GDEConv(list(conv), method="rk4", step_size=0.25, gradient="checkpoint").to(device)
    x, ei = x.to(device), ei.to(device)
    layer.eval()
    with torch.no_grad():
        a, b = layer(x, ei), layer(x, ei)
    assert torch.equal(a, b) and not a.requires_grad
    layer.train()
    assert not torch.equal(layer(x, ei), layer(x, ei))  # dropout is live in train()
    layer.double()
    assert layer(x.double(), ei).dtype == torch.float64


def test_stats_of_forward_and_backward():
    x, ei = graph()
    layer = GDEConv(GCNConv(16, 16))
    out = layer(x, ei)
    assert layer.stats.nfe > 0 and layer.stats.n_accepted > 0 and layer.stats.nfe_backward == 0
    out.sum().backward()
    assert layer.stats.nfe_backward > 0 and layer.stats.n_accepted_backward > 0


def test_channel_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"maps a state to itself, but GCNConv\(16, 8\) maps 16 channels to 8"):
        GDEConv(GCNConv(16, 8))
    with pytest.raises(ValueError, match=r"GCNConv\(16, 8\) outputs 8 channels but the next layer GCNConv\(16, 16\) takes 16"):
        GDEConv([GCNConv(16, 8), torch.nn.Tanh(), GCNConv(16, 16)])
    with pytest.raises(ValueError, match="must map 16 input channels to 16 output channels"):
        GDEConv([GCNConv(16, 8), torch.nn.Tanh(), GCNConv(8, 8)])
    x, ei = graph()
    with pytest.raises(ValueError, match="must map 12 input channels to 12 output channels"):
        GDEConv(GCNConv(16, 16))(x[:, :12], ei)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(t_span=(1.0, 1.0)), ValueError, "t_span must have two different times"),
    (dict(method="rk45"), ValueError, "unknown method 'rk45'"),
    (dict(gradient="reverse"), ValueError, "unknown gradient mode 'reverse'"),
    (dict(t_eval=[0.5, 2.0]), ValueError, "t_eval must be non-empty and lie within t_span"),
    (dict(augment=-1), ValueError, "augment must be a non-negative int"),
    (dict(control="multiply"), ValueError, "control must be None, 'concat' or 'add'"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GDEConv(GCNConv(16, 16), **kwargs)


def test_bad_inputs():
    x, ei = graph()
    layer = GDEConv(GCNConv(16, 16))
    with pytest.raises(ValueError, match=r"x must be node features of shape \(num_nodes, channels\)"):
        layer(x[None], ei)
    with pytest.raises(ValueError, match="edge_index must be a .2, E. integer tensor"):
        layer(x, ei.T)
    with pytest.raises(TypeError, match="edge_index must hold integer node indices"):
        layer(x, ei.float())


def test_controlled_augmented_second_order_time_dependent():
    x, ei = graph()
    controlled = GDEConv(GCNConv(32, 16), control="concat", method="rk4", step_size=0.25)
    assert controlled(x, ei).shape == (30, 16)
    source = GDEConv([GCNConv(16, 16), torch.nn.Tanh()], control="add", method="rk4", step_size=0.25)
    assert source(x, ei).shape == (30, 16)
    aug = GDEConv(GCNConv(20, 20), augment=4, method="rk4", step_size=0.25)
    assert aug(x, ei).shape == (30, 16)
    assert GDEConv(GCNConv(20, 20), augment=4, keep_augmented=True)(x, ei).shape == (30, 20)
    second = SecondOrderGDEConv([GCNConv(32, 16), torch.nn.Tanh()], method="rk4", step_size=0.25)
    out = second(x, ei)
    assert out.shape == (30, 16)
    out.sum().backward()
    assert all(p.grad is not None for p in second.parameters())
    timed = GDEConv(TimeConcat(GCNConv(17, 16)), method="rk4", step_size=0.25)
    assert timed(x, ei).shape == (30, 16)
    with pytest.raises(ValueError, match=r"TimeConcat needs a layer with one more input"):
        TimeConcat(GCNConv(16, 16))


def test_time_dependent_field_sees_time():
    seen = []

    class Timed(torch.nn.Module):
        in_channels = out_channels = 4

        def forward(self, x, edge_index, t):
            seen.append(float(t))
            return -x * t

    x, ei = graph(c=4, dtype=torch.float64)
    out = GDEConv(Timed(), rtol=1e-10, atol=1e-10)(x, ei)
    assert (out - x * torch.exp(torch.tensor(-0.5, dtype=torch.float64))).abs().max() < 1e-8
    assert min(seen) == 0.0 and max(seen) == 1.0


def test_learned_edge_weights_get_gradients():
    x, ei = graph()
    w = torch.rand(ei.size(1), requires_grad=True)
    layer = GDEConv(GCNConv(16, 16), method="rk4", step_size=0.25, gradient="autograd")
    layer(x, ei, w).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_networkx_graph_end_to_end():
    data = from_networkx(nx.karate_club_graph())
    x = torch.randn(data.num_nodes, 8)
    model = torch.nn.Sequential()
    layer = GDEConv([GCNConv(8, 8), torch.nn.Tanh()])
    y = layer(x, data.edge_index, data.weight.float())
    assert y.shape == (34, 8) and torch.isfinite(y).all()
    del model


def test_dropout_in_the_field():
    x, ei = graph(dtype=torch.float64)
    field = [torch.nn.Dropout(0.3), GCNConv(16, 16).double(), torch.nn.Tanh()]
    with pytest.raises(ValueError, match="draws random numbers .* gradient='checkpoint'"):
        GDEConv(field, method="rk4", step_size=0.25)(x, ei)
    # checkpointing replays the forward's dropout masks: its gradients equal autograd's
    grads = []
    for mode in ("autograd", "checkpoint"):
        layer = GDEConv(field, method="rk4", step_size=0.25, gradient=mode)
        torch.manual_seed(7)
        layer.zero_grad()
        layer(x, ei).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in layer.parameters()]))
    assert (grads[0] - grads[1]).abs().max() <= 1e-10
    # in eval mode the adjoint is fine
    GDEConv(field, method="rk4", step_size=0.25).eval()(x, ei)


def test_damped_diffusion_with_source_is_exact_and_tends_to_pagerank():
    """dX/dt = ((1 - a) A_hat - I) X + X0 has X(T) = e^{MT} X0 + M^{-1} (e^{MT} - I) X0."""
    x, ei = graph(dtype=torch.float64)
    n, alpha = x.size(0), 0.2
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    e, w = gcn_norm(ei, None, n, dtype=torch.float64)
    a_hat = torch.zeros(n, n, dtype=torch.float64).index_put_((e[1], e[0]), w, accumulate=True)
    m = (1 - alpha) * a_hat - torch.eye(n, dtype=torch.float64)
    for t_end in (3.0, 200.0):
        gde = GDEConv(LinearDiffusion(16, weight=False, alpha=alpha), t_span=(0.0, t_end),
                      control="add", rtol=1e-10, atol=1e-12, gradient="autograd")
        flow = torch.linalg.matrix_exp(m * t_end)
        exact = flow @ x + torch.linalg.solve(m, (flow - torch.eye(n, dtype=torch.float64)) @ x)
        assert (gde(x, ei) - exact).abs().max() < 1e-7 * exact.abs().max()
    ppr = torch.linalg.solve(-m, x)  # personalised PageRank, up to the factor 1 / alpha
    assert (gde(x, ei) - ppr).abs().max() < 1e-7 * ppr.abs().max()
    assert "alpha=0.2" in str(gde.field.layers[0])
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\)"):
        LinearDiffusion(4, alpha=1.0)


def test_diffusion_without_weights_takes_any_width():
    """``LinearDiffusion(-1, weight=False)`` acts channel by channel, so a state of any width
    flows, and stacking states side by side gives each its own flow."""
    x, ei = graph(dtype=torch.float64)
    gde = GDEConv(LinearDiffusion(-1, weight=False, alpha=0.1), t_span=(0.0, 2.0),
                  method="rk4", step_size=0.5, control="add", gradient="autograd")
    wide = gde(torch.cat([x, 2 * x], 1), ei)
    assert torch.allclose(wide, torch.cat([gde(x, ei), gde(2 * x, ei)], 1), atol=1e-12)
    assert gde(x[:, :3], ei).shape == (x.size(0), 3)
    with pytest.raises(ValueError, match="-1 \\(any\\) with weight=False"):
        LinearDiffusion(-1)
    with pytest.raises(ValueError, match="channels must be a positive number"):
        LinearDiffusion(0, weight=False)
