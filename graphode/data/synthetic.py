"""Generated graphs for demos and tests, so examples run on a fresh machine: an exact SBM drawn
by networkx for small graphs, and a sampled one in torch for graphs of millions of nodes."""
from __future__ import annotations

import networkx as nx
import torch
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx, to_undirected

__all__ = ["contextual_sbm", "large_contextual_sbm"]


def contextual_sbm(num_nodes: int = 1000, num_classes: int = 4, num_features: int = 32,
                   avg_degree: float = 6.0, homophily: float = 0.8, feature_snr: float = 0.6,
                   train_per_class: int = 20, num_val: int = 200, num_test: int = 400,
                   seed: int = 0) -> Data:
    """A contextual stochastic block model (Deshpande et al., 2018) with a Planetoid-style split.

    Nodes fall into ``num_classes`` equal blocks; an edge joins two nodes of the same block with
    probability ``p_in`` and of different blocks with ``p_out``, chosen so that the mean degree
    is ``avg_degree`` and a fraction ``homophily`` of edges stays inside blocks. Features are a
    class mean (scaled by ``feature_snr``) plus standard Gaussian noise.
    """
    g = torch.Generator().manual_seed(seed)
    sizes = [num_nodes // num_classes + (i < num_nodes % num_classes) for i in range(num_classes)]
    block = num_nodes / num_classes
    p_in = avg_degree * homophily / max(block - 1, 1)
    p_out = avg_degree * (1 - homophily) / max(num_nodes - block, 1)
    probs = [[p_in if i == j else p_out for j in range(num_classes)] for i in range(num_classes)]
    graph = nx.stochastic_block_model(sizes, probs, seed=seed)
    data = from_networkx(nx.Graph(graph))
    y = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    return _with_features(data.edge_index, y, num_classes, num_features, feature_snr,
                          train_per_class, num_val, num_test, g)


def large_contextual_sbm(num_nodes: int = 1_000_000, num_classes: int = 4, num_features: int = 32,
                         avg_degree: float = 10.0, homophily: float = 0.8,
                         feature_snr: float = 0.6, train_per_class: int = 20, num_val: int = 200,
                         num_test: int = 400, seed: int = 0) -> Data:
    """The contextual SBM of :func:`contextual_sbm`, sampled rather than enumerated, in
    O(edges) time and memory: each of ``num_nodes * avg_degree / 2`` edges joins a uniform
    node to a uniform node of its own block with probability ``homophily``, else to one of
    another block. Duplicates and self loops are dropped, so the mean degree comes out a
    little under ``avg_degree``. A million nodes take a few seconds."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) * num_classes // num_nodes
    start = torch.searchsorted(y, torch.arange(num_classes + 1))
    size = start[1:] - start[:-1]
    m = int(num_nodes * avg_degree / 2)
    src = torch.randint(num_nodes, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    block = torch.where(same, y[src],
                        (y[src] + torch.randint(1, max(num_classes, 2), (m,), generator=g))
                        % num_classes)
    dst = start[block] + (torch.rand(m, generator=g) * size[block]).long()
    keep = src != dst
    edge_index = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=num_nodes)
    return _with_features(edge_index, y, num_classes, num_features, feature_snr,
                          train_per_class, num_val, num_test, g)


def _with_features(edge_index, y, num_classes, num_features, feature_snr, train_per_class,
                   num_val, num_test, g) -> Data:
    """Class-mean-plus-noise features and a Planetoid-style split for labels ``y``."""
    num_nodes = y.numel()
    means = torch.randn(num_classes, num_features, generator=g)
    x = feature_snr * means[y] + torch.randn(num_nodes, num_features, generator=g)
    perm = torch.randperm(num_nodes, generator=g)
    train = torch.cat([perm[y[perm] == c][:train_per_class] for c in range(num_classes)])
    rest = perm[~torch.isin(perm, train)]
    masks = {}
    for name, idx in (("train", train), ("val", rest[:num_val]),
                      ("test", rest[num_val:num_val + num_test])):
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[idx] = True
        masks[f"{name}_mask"] = mask
    return Data(x=x, edge_index=edge_index, y=y, **masks)
