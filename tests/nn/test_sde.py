"""GraphSDE: a GDE with noise; exact against GDEConv when the noise is zero."""
import pytest
import torch
from torch_geometric.nn import GCNConv

from graphode.nn import GDEConv, GraphSDE


def _graph(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, 4 * n), generator=g)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), edge_index


class Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_zero_noise_is_the_euler_gde():
    x, edge_index = _graph()
    conv = GCNConv(4, 4).double()
    sde = GraphSDE([conv, torch.nn.Tanh()], Zero(), dt=0.1)
    gde = GDEConv([conv, torch.nn.Tanh()], method="euler", step_size=0.1, gradient="autograd")
    torch.testing.assert_close(sde(x, edge_index, entropy=0), gde(x, edge_index),
                               rtol=1e-12, atol=1e-12)


def test_samples_shapes_seeds_and_spread():
    x, edge_index = _graph()
    sde = GraphSDE(GCNConv(4, 4).double(), "constant", noise_scale=0.3, num_samples=5,
                   dt=0.1).double()
    a = sde(x, edge_index, entropy=1)
    assert a.shape == (5, 12, 4)
    assert torch.equal(a, sde(x, edge_index, entropy=1))
    assert not torch.equal(a, sde(x, edge_index, entropy=2))
    assert a.std(0).min() > 0  # the samples differ
    sde_node = GraphSDE(GCNConv(4, 4).double(), "node", noise_scale=0.3, dt=0.1).double()
    assert sde_node(x, edge_index).shape == (12, 4)


@pytest.mark.parametrize("diffusion", ["constant", "node", "graph"])
@pytest.mark.parametrize("gradient", ["checkpoint", "adjoint"])
def test_gradients_equal_autograd(diffusion, gradient):
    x, edge_index = _graph()
    noise = GCNConv(4, 4).double() if diffusion == "graph" else diffusion
    block = GraphSDE([GCNConv(4, 4).double(), torch.nn.Tanh()], noise, channels=4,
                     method="reversible_heun", sde_type="stratonovich", dt=0.1,
                     num_samples=2).double()

    def grads(mode):
        block.gradient = mode
        block.zero_grad()
        y = x.clone().requires_grad_(True)
        block(y, edge_index, entropy=3).sin().sum().backward()
        return torch.cat([y.grad.flatten()] + [p.grad.flatten() for p in block.parameters()])

    torch.testing.assert_close(grads(gradient), grads("autograd"), rtol=1e-9, atol=1e-11)


def test_a_graph_samples_do_not_depend_on_its_batch_mates():
    (x0, e0), (x1, e1) = _graph(6, 0), _graph(9, 1)
    x = torch.cat([x0, x1])
    edge_index = torch.cat([e0, e1 + 6], 1)
    batch = torch.tensor([0] * 6 + [1] * 9)
    block = GraphSDE(GCNConv(4, 4).double(), "constant", noise_scale=0.3, dt=0.1,
                     num_samples=3).double()
    both = block(x, edge_index, batch=batch, entropy=[7, 8])
    alone = block(x1, e1, batch=torch.zeros(9, dtype=torch.long), entropy=[8])
    torch.testing.assert_close(both[:, 6:], alone, rtol=0, atol=1e-13)


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs the number of channels"):
        GraphSDE(torch.nn.Tanh(), "constant")
    with pytest.raises(ValueError, match="diffusion must be"):
        GraphSDE(GCNConv(4, 4), "sideways")
    with pytest.raises(ValueError, match="num_samples"):
        GraphSDE(GCNConv(4, 4), num_samples=0)
