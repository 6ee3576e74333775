"""Mini-batches of large graphs through PyG's own loaders.

:func:`neighbor_loader` returns a PyG :class:`~torch_geometric.loader.NeighborLoader`. PyG
samples neighbours with ``pyg-lib`` or ``torch-sparse``; where neither is installed (``pyg-lib``
has no wheel for every platform, ``torch-sparse`` builds from source) the loader is given
:class:`TorchNeighborSampler`, the same uniform sampling written in plain torch, so the same
training code runs everywhere. Batches have PyG's layout either way: the ``batch_size`` seed
nodes come first, ``n_id`` maps local to global node ids and ``e_id`` local to global edges.
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput
from torch_geometric.sampler.base import SubgraphType

__all__ = ["TorchNeighborSampler", "neighbor_loader", "native_sampling", "seed_accuracy"]


def native_sampling() -> bool:
    """Whether PyG can sample neighbours itself (``pyg-lib`` or ``torch-sparse`` present)."""
    return bool(torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE)


class TorchNeighborSampler(NeighborSampler):
    """PyG's :class:`~torch_geometric.sampler.NeighborSampler` with its sampling step in plain
    torch: uniform sampling without replacement, ``num_neighbors[k]`` incoming neighbours per
    node at hop ``k`` (``-1`` for all of them), directional subgraphs (only the sampled edges).

    Homogeneous graphs only; temporal, weighted, disjoint and induced-subgraph sampling need
    ``pyg-lib`` and raise :class:`NotImplementedError` saying so.
    """

    def __init__(self, data, num_neighbors, **kwargs):
        unsupported = [k for k in ("replace", "disjoint", "time_attr", "weight_attr")
                       if kwargs.get(k)]
        if kwargs.get("subgraph_type", "directional") not in ("directional",
                                                              SubgraphType.directional):
            unsupported.append("subgraph_type")
        if unsupported:
            raise NotImplementedError(
                f"TorchNeighborSampler does not support {', '.join(unsupported)}; install pyg-lib "
                f"(or torch-sparse) and use torch_geometric.loader.NeighborLoader directly")
        with warnings.catch_warnings():  # PyG warns that sampling without pyg-lib is deprecated
            warnings.simplefilter("ignore")
            super().__init__(data, num_neighbors, **kwargs)

    def _sample(self, seed, seed_time=None, **kwargs) -> SamplerOutput:
        if isinstance(seed, dict) or seed_time is not None:
            raise NotImplementedError("TorchNeighborSampler samples homogeneous graphs without "
                                      "time; install pyg-lib for heterogeneous or temporal graphs")
        fanouts = self.num_neighbors.get_mapped_values()
        return sample_neighbors(self.colptr, self.row, seed, fanouts)


def sample_neighbors(colptr: Tensor, row: Tensor, seed: Tensor, fanouts: List[int],
                     generator: Optional[torch.Generator] = None) -> SamplerOutput:
    """Uniform neighbour sampling on a CSC graph (``row[colptr[v]:colptr[v + 1]]`` are the
    sources of the edges into ``v``). Returns local ``row`` (source) and ``col`` (target) ids
    into ``node``, which starts with ``seed``, and ``edge``: the CSC positions of the edges."""
    node = seed
    frontier, frontier_local = seed, torch.arange(seed.numel())
    rows, cols, edges = [], [], []
    nodes_per_hop, edges_per_hop = [seed.numel()], []
    for fanout in fanouts:
        start = colptr[frontier]
        degree = colptr[frontier + 1] - start
        segment = torch.repeat_interleave(torch.arange(frontier.numel()), degree)
        offset = torch.arange(segment.numel()) - torch.repeat_interleave(
            degree.cumsum(0) - degree, degree)
        position = start[segment] + offset
        if fanout >= 0:
            # Shuffle within each node's edges, then keep the first `fanout` of each.
            key = torch.rand(segment.numel(), generator=generator, dtype=torch.float64)
            position = position[torch.argsort(segment.double() + key)]
            keep = offset < fanout
            position, segment = position[keep], segment[keep]
        source = row[position]
        known, order = node.sort()
        at = torch.searchsorted(known, source).clamp(max=known.numel() - 1)
        new = torch.unique(source[known[at] != source])
        node = torch.cat([node, new])
        known, order = node.sort()
        rows.append(order[torch.searchsorted(known, source)])
        cols.append(frontier_local[segment])
        edges.append(position)
        nodes_per_hop.append(new.numel())
        edges_per_hop.append(position.numel())
        frontier = new
        frontier_local = torch.arange(node.numel() - new.numel(), node.numel())
    return SamplerOutput(node=node, row=torch.cat(rows), col=torch.cat(cols),
                         edge=torch.cat(edges), batch=None, num_sampled_nodes=nodes_per_hop,
                         num_sampled_edges=edges_per_hop)


def neighbor_loader(data, num_neighbors: List[int], batch_size: int, input_nodes=None,
                    shuffle: bool = False, **kwargs) -> NeighborLoader:
    """A PyG :class:`~torch_geometric.loader.NeighborLoader` over ``data``, with PyG's sampler
    when ``pyg-lib`` or ``torch-sparse`` is installed and :class:`TorchNeighborSampler`
    otherwise. Arguments are NeighborLoader's."""
    if not native_sampling() and "neighbor_sampler" not in kwargs:
        sampler_keys = ("replace", "subgraph_type", "disjoint", "time_attr", "weight_attr",
                        "is_sorted")
        options = {k: kwargs[k] for k in sampler_keys if k in kwargs}
        kwargs["neighbor_sampler"] = TorchNeighborSampler(data, num_neighbors, **options)
    return NeighborLoader(data, num_neighbors, input_nodes=input_nodes, batch_size=batch_size,
                          shuffle=shuffle, **kwargs)


@torch.no_grad()
def seed_accuracy(model: torch.nn.Module, loader: NeighborLoader) -> float:
    """Node-classification accuracy of ``model`` over the seed nodes of ``loader``'s batches
    (the first ``batch_size`` nodes of each sampled neighbourhood), on the model's device.
    ``model(x, edge_index)`` returns per-node logits."""
    device = next(model.parameters()).device
    correct = total = 0
    for batch in loader:
        seeds = slice(0, batch.batch_size)
        pred = model(batch.x.to(device), batch.edge_index.to(device))[seeds].argmax(-1)
        correct += int((pred == batch.y[seeds].to(device)).sum())
        total += batch.batch_size
    return correct / max(total, 1)
