"""A block used on two graphs before one backward pass: the adjoint and checkpoint modes
evaluate the field again in the backward pass, and must see each forward's own graph (a
field rebound to the second graph gave silently wrong gradients for the first)."""
import pytest
import torch
from torch_geometric.nn import GCNConv

from graphode.nn import (
    GDEGRU,
    GDEConv,
    GraphNCDE,
    GraphSDE,
    ReactionDiffusionConv,
    SecondOrderGDEConv,
)

RING = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 0], [1, 0, 2, 1, 3, 2, 4, 3, 0, 4]])
STAR = torch.tensor([[0, 1, 0, 2, 0, 3, 0, 4], [1, 0, 2, 0, 3, 0, 4, 0]])
FIXED = dict(method="rk4", step_size=0.1)
TIGHT = dict(method="dopri5", rtol=1e-10, atol=1e-12)


def gcn(cin=3, cout=3):
    return [GCNConv(cin, cout).double(), torch.nn.Tanh()]


BLOCKS = {
    "GDEConv": lambda mode, kw: GDEConv(gcn(), gradient=mode, **kw),
    "SecondOrderGDEConv": lambda mode, kw: SecondOrderGDEConv(gcn(6, 3), gradient=mode, **kw),
    "ReactionDiffusionConv": lambda mode, kw: ReactionDiffusionConv(3, gradient=mode,
                                                                    **kw).double(),
}


def twice(block, x):
    """The block on the ring, then on the star, one loss over both."""
    return block(x, RING).sum() + block(2 * x, STAR).square().sum()


@pytest.mark.parametrize("name", list(BLOCKS))
@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_blocks_on_two_graphs_before_one_backward(name, mode):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    grads = {}
    for gradient in ("autograd", mode):
        torch.manual_seed(0)
        block = BLOCKS[name](gradient, TIGHT if mode == "adjoint" else FIXED)
        grads[gradient] = torch.autograd.grad(twice(block, x), [x, *block.parameters()])
    for a, b in zip(grads["autograd"], grads[mode]):
        assert torch.allclose(a, b, atol=1e-6 if mode == "adjoint" else 1e-10)


@pytest.mark.parametrize("mode", ["adjoint", "checkpoint"])
def test_graph_sde_on_two_graphs_before_one_backward(mode):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    grads = {}
    for gradient in ("autograd", mode):
        torch.manual_seed(0)
        # reversible Heun: its adjoint is exact up to floating point
        sde = GraphSDE(gcn(), "constant", gradient=gradient, method="reversible_heun",
                       sde_type="stratonovich", dt=0.05).double()
        loss = sde(x, RING, entropy=1).sum() + sde(2 * x, STAR, entropy=2).square().sum()
        grads[gradient] = torch.autograd.grad(loss, [x, *sde.parameters()])
    for a, b in zip(grads["autograd"], grads[mode]):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("model", ["gde-gru", "stg-ncde"])
def test_forecasters_on_two_graphs_before_one_backward(model):
    x = torch.randn(2, 4, 5, 1, dtype=torch.float64)
    times, query = torch.arange(4.0), torch.tensor([4.0])
    grads = {}
    for gradient in ("autograd", "checkpoint"):
        torch.manual_seed(0)
        net = (GDEGRU(1, 4, 1, gradient=gradient, **FIXED) if model == "gde-gru"
               else GraphNCDE(1, 4, 1, gradient=gradient, **FIXED)).double()
        loss = net(x, RING, times, query).sum() + net(x, STAR, times, query).square().sum()
        grads[gradient] = torch.autograd.grad(loss, list(net.parameters()))
    for a, b in zip(grads["autograd"], grads["checkpoint"]):
        assert torch.allclose(a, b, atol=1e-10)
