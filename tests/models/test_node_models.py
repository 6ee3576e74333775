"""The node classifiers of graphode.models: shapes, passes, the consistency loss, gradients."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from graphode.data import contextual_sbm
from graphode.models import (
    CGNN,
    GCDE,
    GCN,
    GDECR,
    GIN,
    GDEClassifier,
    GINGDEClassifier,
    consistency_loss,
)

SOLVER = dict(t_span=(0.0, 1.0), method="rk4", step_size=0.5)


@pytest.fixture(scope="module")
def data():
    return contextual_sbm(num_nodes=120, num_classes=3, num_features=8, num_val=20, num_test=20)


def test_consistency_loss_is_zero_for_agreeing_confident_passes_and_positive_otherwise():
    sure = torch.tensor([[[50.0, 0.0], [0.0, 50.0]]]).repeat(3, 1, 1)
    assert consistency_loss(sure, 0.5) < 1e-12
    mixed = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(0))
    loss = consistency_loss(mixed.requires_grad_(), 0.5)
    assert loss > 0
    loss.backward()
    assert mixed.grad.abs().sum() > 0


@pytest.mark.parametrize("encoder, decoder", [("gcn", "gcn"), ("linear", "linear")])
def test_gcde_shapes_passes_and_evaluation(data, encoder, decoder):
    model = GCDE(8, 16, 3, dropout=0.5, field_dropout=0.5, solver=dict(SOLVER, gradient="checkpoint"), encoder=encoder,
                 decoder=decoder, samples=2, consistency=0.7, temperature=0.3)
    out = model(data.x, data.edge_index)
    assert out.shape == (2, 120, 3) and not torch.allclose(out[0], out[1])
    assert model.consistency_loss(out) > 0
    model.eval()
    assert model(data.x, data.edge_index).shape == (120, 3)


def test_gcde_uniform_init_uses_the_papers_range():
    model = GCDE(100, 16, 3, encoder_init="uniform", solver=SOLVER)
    assert model.encoder.lin.weight.abs().max() <= 16 ** -0.5
    with pytest.raises(ValueError, match="encoder must be 'gcn' or 'linear'"):
        GCDE(8, 16, 3, encoder="mlp")
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        GCDE(8, 16, 3, samples=0)
    x, ei = torch.randn(5, 100), torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="draws random numbers .* gradient='checkpoint'"):
        GCDE(100, 16, 3, field_dropout=0.5, solver=SOLVER)(x, ei)  # the adjoint, training


@pytest.mark.parametrize("mode", ["autograd", "adjoint", "checkpoint"])
def test_cgnn_trains_in_every_gradient_mode_with_the_same_gradient(data, mode):
    grads = {}
    for m in ("autograd", mode):
        torch.manual_seed(0)
        model = CGNN(8, 16, 3, dropout=0.0, solver=dict(SOLVER, gradient=m)).double()
        model(data.x.double(), data.edge_index).square().sum().backward()
        grads[m] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads[mode], grads["autograd"], rtol=1e-6, atol=1e-9)
    groups = CGNN(8, 16, 3).param_groups(5e-4)
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0


def test_gde_cr_passes_share_one_solve(data):
    model = GDECR(8, 16, 3, samples=4, dropnode=0.5, solver=SOLVER)
    out = model(data.x, data.edge_index)
    assert out.shape == (4, 120, 3) and model.gde.stats.nfe == 8  # one solve for all four
    model.eval()
    assert model(data.x, data.edge_index).shape == (120, 3)
    with pytest.raises(ValueError, match="dropnode must lie in"):
        GDECR(8, 16, 3, dropnode=1.0)


@pytest.mark.parametrize("make", [lambda: GIN(5, 8, 2, layers=2),
                                  lambda: GDEClassifier(5, 8, 2, solver=SOLVER),
                                  lambda: GINGDEClassifier(5, 8, 2, solver=SOLVER, readouts=3)],
                         ids=["gin", "gde", "gde-gin"])
def test_graph_classifiers_give_one_score_row_per_graph(make):
    g = torch.Generator().manual_seed(0)
    graphs = [Data(x=torch.randn(n, 5, generator=g), edge_index=torch.randint(0, n, (2, 2 * n), generator=g))
              for n in (4, 6, 5)]
    batch = Batch.from_data_list(graphs)
    model = make()
    out = model(batch.x, batch.edge_index, batch.batch)
    assert out.shape == (3, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_gcn_is_the_two_layer_baseline_and_drops_out_only_in_training(data):
    torch.manual_seed(0)
    model = GCN(8, 16, 3, dropout=0.5)
    out = model(data.x, data.edge_index)
    assert out.shape == (120, 3)
    assert not torch.allclose(out, model(data.x, data.edge_index))  # dropout draws anew
    model.eval()
    a, b = model(data.x, data.edge_index), model(data.x, data.edge_index)
    assert torch.equal(a, b)
    hidden = torch.relu(model.conv1(data.x, data.edge_index))
    assert torch.allclose(a, model.conv2(hidden, data.edge_index))
