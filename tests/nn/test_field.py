"""The public extension point for fast plans: a registered plan is used once per solve and
gives what the layer gives."""
import doctest

import pytest
import torch
from torch_geometric.nn import SimpleConv

import graphode.nn.field
from graphode.nn import GDEConv, SparseOperator, register_plan


@pytest.fixture
def clean_registry():
    saved = dict(graphode.nn.field._REGISTERED)
    yield
    graphode.nn.field._REGISTERED.clear()
    graphode.nn.field._REGISTERED.update(saved)


def test_a_registered_plan_is_built_once_per_solve_and_matches_the_layer(clean_registry):
    built = []

    def plan(conv, edge_index, edge_weight, n, dtype, device):
        built.append(n)
        w = torch.ones(edge_index.size(1), dtype=dtype, device=device)
        return SparseOperator(edge_index, w, n, dtype, device).mm

    g = torch.Generator().manual_seed(0)
    x, ei = torch.randn(20, 3, generator=g, dtype=torch.float64), torch.randint(0, 20, (2, 50), generator=g)
    kw = dict(method="dopri5", rtol=1e-9, atol=1e-11)
    generic = GDEConv([SimpleConv(), torch.nn.Tanh()], **kw)(x, ei)
    register_plan(SimpleConv, plan)
    layer = GDEConv([SimpleConv(), torch.nn.Tanh()], **kw)
    fast = layer(x, ei)
    assert built == [20] and layer.stats.nfe > 10  # built once, evaluated many times
    assert (fast - generic).abs().max() <= 1e-12


def test_a_plan_may_decline(clean_registry):
    register_plan(SimpleConv, lambda *args: None)
    x, ei = torch.randn(5, 2), torch.tensor([[0, 1], [1, 2]])
    assert GDEConv(SimpleConv(), method="rk4", step_size=0.5)(x, ei).shape == (5, 2)


def test_register_plan_checks_its_arguments():
    with pytest.raises(TypeError, match="a layer class and a callable"):
        register_plan(SimpleConv(), lambda *a: None)


def test_docstring_example(clean_registry):
    assert doctest.testmod(graphode.nn.field).failed == 0
