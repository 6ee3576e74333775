"""SwitchingGDEConv: a graph neural ODE on a piecewise-constant graph."""
import pytest
import torch
from torch_geometric.nn import GCNConv

from graphode.nn import GDEConv, SwitchingGDEConv

RING = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 0], [1, 0, 2, 1, 3, 2, 4, 3, 0, 4]])
STAR = torch.tensor([[0, 1, 0, 2, 0, 3, 0, 4], [1, 0, 2, 0, 3, 0, 4, 0]])
PATH = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def conv():
    torch.manual_seed(0)
    return GCNConv(3, 3).double()


def block(cls, t_span, **kw):
    kw = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12, **kw}
    return cls([conv(), torch.nn.Tanh()], t_span=t_span, **kw)


def test_a_piecewise_constant_graph_solve_is_separate_solves_glued_at_the_switches():
    x = torch.randn(5, 3, dtype=torch.float64)
    weights = torch.rand(STAR.size(1), dtype=torch.float64)
    graphs = [RING, (STAR, weights), PATH]
    switching = block(SwitchingGDEConv, (0.0, 2.0), t_eval=[0.5, 0.7, 1.2, 2.0])
    out = switching(x, graphs, [0.7, 1.5])
    # by hand: three blocks, each on its own graph and span, the state handed on
    layers = switching.field.layers
    h = x
    glued = {}
    for (a, b, evals), graph in zip([(0.0, 0.7, [0.5, 0.7]), (0.7, 1.5, [1.2]),
                                     (1.5, 2.0, [2.0])], graphs):
        part = GDEConv(list(layers), t_span=(a, b), t_eval=[*evals, b] if evals[-1] != b
                       else evals, method="dopri5", rtol=1e-10, atol=1e-12)
        ei, ew = graph if isinstance(graph, tuple) else (graph, None)
        ys = part(h, ei, ew)
        glued.update(zip(evals, ys))
        h = ys[-1]
    expected = torch.stack([glued[t] for t in (0.5, 0.7, 1.2, 2.0)])
    assert out.shape == (4, 5, 3)
    assert torch.allclose(out, expected, atol=1e-12)
    # the final state alone, without t_eval; a single graph is a GDEConv
    last = block(SwitchingGDEConv, (0.0, 2.0))(x, graphs, [0.7, 1.5])
    assert torch.allclose(last, expected[-1], atol=1e-12)
    assert torch.allclose(block(SwitchingGDEConv, (0.0, 2.0))(x, [RING], []),
                          block(GDEConv, (0.0, 2.0))(x, RING), atol=1e-12)
    # the switch matters: the ring all the way gives another answer
    assert (block(SwitchingGDEConv, (0.0, 2.0))(x, [RING, RING, RING], [0.7, 1.5])
            - last).abs().max() > 1e-3


@pytest.mark.parametrize("gradient", ["adjoint", "checkpoint"])
def test_switching_gradients_equal_autograd(gradient):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(STAR.size(1), dtype=torch.float64, requires_grad=True)
    grads = {}
    for mode in ("autograd", gradient):
        kw = dict(method="rk4", step_size=0.1) if gradient == "checkpoint" else {}
        model = block(SwitchingGDEConv, (0.0, 1.0), gradient=mode, **kw)
        out = model(x, [RING, (STAR, weights)], [0.4])
        grads[mode] = torch.autograd.grad(out.square().sum(),
                                          [x, weights, *model.parameters()])
        assert model.stats.nfe > 0
    for a, b in zip(grads["autograd"], grads[gradient]):
        assert torch.allclose(a, b, atol=1e-7)


def test_switching_input_checks():
    model = block(SwitchingGDEConv, (0.0, 1.0))
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="one time fewer than graphs"):
        model(x, [RING, STAR], [])
    with pytest.raises(ValueError, match="strictly inside t_span"):
        model(x, [RING, STAR], [1.0])
    with pytest.raises(ValueError, match="strictly inside t_span"):
        model(x, [RING, STAR, PATH], [0.6, 0.3])
    with pytest.raises(ValueError, match="at least one graph"):
        model(x, [], [])
    bad = torch.tensor([[0, 7], [7, 0]])  # node 7 of 5: refused before any solve
    with pytest.raises(ValueError, match="edge_index"):
        model(x, [RING, bad], [0.5])
