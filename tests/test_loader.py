"""Neighbour-sampled mini-batches: PyG's NeighborLoader, with graphode's plain-torch sampler
where PyG has no sampling backend."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv
from torch_geometric.utils import erdos_renyi_graph

from graphode.data import large_contextual_sbm
from graphode.loader import TorchNeighborSampler, neighbor_loader, sample_neighbors
from graphode.nn import GDEConv


def graph(n=600, p=0.02, seed=0):
    torch.manual_seed(seed)
    edge_index = erdos_renyi_graph(n, p, directed=True)
    return Data(x=torch.randn(n, 3), edge_index=edge_index,
                edge_attr=torch.arange(edge_index.size(1), dtype=torch.float), num_nodes=n)


def test_batches_hold_real_edges_with_seeds_first():
    data = graph()
    loader = neighbor_loader(data, [4, 3], batch_size=50, shuffle=True)
    seen = []
    for batch in loader:
        assert torch.equal(batch.n_id[:batch.batch_size], batch.input_id)
        assert batch.n_id.unique().numel() == batch.num_nodes
        # every local edge is a real edge, and its attributes travel with it
        assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])
        assert torch.equal(batch.edge_attr, batch.e_id.float())
        assert torch.equal(batch.x, data.x[batch.n_id])
        seen.append(batch.input_id)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(data.num_nodes))


def test_fanout_bounds_and_all_neighbours():
    data = graph()
    colptr_sampler = TorchNeighborSampler(data, [2])
    seed = torch.arange(0, 600, 7)
    out = sample_neighbors(colptr_sampler.colptr, colptr_sampler.row, seed, [2])
    in_degree = torch.bincount(data.edge_index[1], minlength=600)
    got = torch.bincount(out.col, minlength=seed.numel())
    assert torch.equal(got, in_degree[seed].clamp(max=2))
    every = sample_neighbors(colptr_sampler.colptr, colptr_sampler.row, seed, [-1])
    assert torch.equal(torch.bincount(every.col, minlength=seed.numel()), in_degree[seed])
    # all in-neighbours of each seed, exactly
    pairs = set(map(tuple, torch.stack([every.node[every.row], seed[every.col]]).T.tolist()))
    truth = set(map(tuple, data.edge_index.T.tolist()))
    assert pairs == {e for e in truth if e[1] in set(seed.tolist())}


def test_sampling_is_uniform():
    # one node with 10 in-neighbours, 2 drawn at a time: each is drawn 20% of the time
    edge_index = torch.stack([torch.arange(1, 11), torch.zeros(10, dtype=torch.long)])
    sampler = TorchNeighborSampler(Data(edge_index=edge_index, num_nodes=11), [2])
    torch.manual_seed(0)
    counts = torch.zeros(11)
    for _ in range(2000):
        out = sample_neighbors(sampler.colptr, sampler.row, torch.tensor([0]), [2])
        assert out.row.unique().numel() == 2  # without replacement
        counts[out.node[out.row]] += 1
    assert torch.allclose(counts[1:] / 2000, torch.full((10,), 0.2), atol=0.03)


def test_unsupported_options_say_what_to_install():
    with pytest.raises(NotImplementedError, match="pyg-lib"):
        TorchNeighborSampler(graph(), [2], replace=True)


class Net(nn.Module):
    def __init__(self, features, classes):
        super().__init__()
        self.encoder = nn.Linear(features, 16)
        self.gde = GDEConv([GCNConv(16, 16), nn.Tanh()], t_span=(0.0, 1.0), method="rk4",
                           step_size=0.5)
        self.decoder = nn.Linear(16, classes)

    def forward(self, x, edge_index):
        return self.decoder(self.gde(torch.relu(self.encoder(x)), edge_index))


def saved_bytes(step):
    """Bytes autograd keeps for the backward pass of ``step()``: activation memory, counted
    exactly rather than read off an allocator."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return total, loss.item()


def train_minibatches(data, steps=30, seed=0):
    torch.manual_seed(seed)
    model = Net(data.num_features, int(data.y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = neighbor_loader(data, [5, 5], batch_size=64, shuffle=True,
                             input_nodes=data.train_mask)
    memory, losses = [], []
    while len(losses) < steps:
        for batch in loader:
            opt.zero_grad()
            nbytes, loss = saved_bytes(lambda: F.cross_entropy(
                model(batch.x, batch.edge_index)[:batch.batch_size], batch.y[:batch.batch_size]))
            opt.step()
            memory.append(nbytes)
            losses.append(loss)
            if len(losses) == steps:
                break
    return max(memory), losses


def test_minibatch_memory_follows_the_batch_not_the_graph():
    small = large_contextual_sbm(20_000, avg_degree=8, train_per_class=100)
    large = large_contextual_sbm(200_000, avg_degree=8, train_per_class=100)
    small_peak, small_losses = train_minibatches(small)
    large_peak, large_losses = train_minibatches(large)
    # ten times the graph, about the same activation memory ...
    assert large_peak < 1.3 * small_peak
    # ... and a small fraction of what a full-graph step on the small graph keeps
    torch.manual_seed(0)
    model = Net(small.num_features, 4)
    full, _ = saved_bytes(lambda: F.cross_entropy(
        model(small.x, small.edge_index)[small.train_mask], small.y[small.train_mask]))
    assert small_peak < 0.25 * full
    for losses in (small_losses, large_losses):
        assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_seed_accuracy_counts_only_the_seed_nodes_of_each_batch():
    data = large_contextual_sbm(300, num_classes=3, num_features=8, train_per_class=10,
                                num_val=50, num_test=50, seed=0)

    class Oracle(nn.Module):  # right on every node it is shown
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x, edge_index):
            return F.one_hot(data.y[self.n_id], 3).float()

    from graphode.loader import seed_accuracy
    loader = neighbor_loader(data, [5], 16, input_nodes=data.test_mask)
    # A model that is right on every node scores 1; one that is right only off the seeds, 0.
    wrapped = _Tracking(Oracle(), loader)
    assert seed_accuracy(wrapped, wrapped) == 1.0
    wrapped.flip_seeds = True
    assert seed_accuracy(wrapped, wrapped) == 0.0


class _Tracking(nn.Module):
    """Iterates the loader and hands the inner model each batch's global node ids."""

    def __init__(self, model, loader):
        super().__init__()
        self.model, self.loader, self.flip_seeds = model, loader, False

    def __iter__(self):
        for batch in self.loader:
            self.model.n_id, self.batch_size = batch.n_id, batch.batch_size
            yield batch

    def forward(self, x, edge_index):
        out = self.model(x, edge_index)
        if self.flip_seeds:
            out[:self.batch_size] = out[:self.batch_size].roll(1, -1)
        return out
