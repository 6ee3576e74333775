"""Input dropout that draws only for the nonzero entries of bag-of-words features."""
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from graphode.models._input import input_dropout, nonzeros


def bag_of_words(n=300, f=400, density=0.03, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < density)
    return x / x.sum(-1, keepdim=True).clamp(min=1e-12)


def test_only_nonzeros_are_dropped_and_the_rest_scaled_as_in_dropout():
    x = bag_of_words()
    index = nonzeros(x)
    assert index is not None and index.size(1) == int((x != 0).sum())
    torch.manual_seed(0)
    out = input_dropout(x, 0.8, True, index)
    assert out.is_sparse
    dense = out.to_dense()
    assert bool((dense[x == 0] == 0).all())
    kept = dense[x != 0] != 0
    assert torch.allclose(dense[x != 0][kept], x[x != 0][kept] / 0.2)
    # each nonzero is kept with probability 0.2: over ~3,600 entries, within 4 standard errors
    frac, se = float(kept.float().mean()), (0.2 * 0.8 / kept.numel()) ** 0.5
    assert abs(frac - 0.2) < 4 * se


def test_dense_features_eval_and_no_dropout_take_the_dense_path():
    dense_x = torch.randn(50, 20)
    assert nonzeros(dense_x) is None
    x = bag_of_words()
    index = nonzeros(x)
    assert input_dropout(x, 0.5, False, index) is x
    assert input_dropout(x, 0.0, True, index) is x
    torch.manual_seed(3)
    a = input_dropout(dense_x, 0.5, True, None)
    torch.manual_seed(3)
    assert torch.equal(a, F.dropout(dense_x, 0.5, True))


def test_gcnconv_on_the_sparse_result_equals_it_on_the_dense_one():
    x = bag_of_words()
    edge_index = torch.randint(0, 300, (2, 1200), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    sparse = input_dropout(x, 0.5, True, nonzeros(x))
    conv = GCNConv(400, 16)
    out = conv(sparse, edge_index)
    out.square().sum().backward()
    grad = conv.lin.weight.grad.clone()
    conv.zero_grad()
    ref = conv(sparse.to_dense(), edge_index)
    ref.square().sum().backward()
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(grad, conv.lin.weight.grad, atol=1e-5)


def test_the_features_gradient_flows_through_the_sparse_result():
    x = bag_of_words().requires_grad_(True)
    torch.manual_seed(0)
    sparse = input_dropout(x, 0.5, True, nonzeros(x.detach()))
    weight = torch.randn(400, 8)
    torch.sparse.mm(sparse, weight).square().sum().backward()
    grad = x.grad.clone()
    x.grad = None
    mask = (sparse.detach().to_dense() != 0).float() / 0.5
    ((x * mask) @ weight).square().sum().backward()
    assert torch.allclose(grad, x.grad, atol=1e-5)
