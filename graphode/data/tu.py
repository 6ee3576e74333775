"""TU graph-classification datasets (MUTAG, PROTEINS, ENZYMES, NCI1, PTC_MR, IMDB-BINARY,
IMDB-MULTI), read in place from a read-only root with PyG's ``TUDataset`` conventions, and
stratified folds for cross-validation."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import InMemoryDataset

from .root import DataNotFoundError, default_root, find_data, not_found

__all__ = ["load_tu", "stratified_folds", "TU"]

TU = ("MUTAG", "PROTEINS", "ENZYMES", "NCI1", "PTC_MR", "IMDB-BINARY", "IMDB-MULTI")


class _Graphs(InMemoryDataset):
    """The collated graphs of one TU dataset, held in memory (nothing written to disk)."""

    def __init__(self, data, slices, name: str):
        super().__init__(None)
        self.data, self.slices, self.name = data, slices, name

    def __repr__(self) -> str:
        return f"{self.name}({len(self)})"


def load_tu(name: str, root: Optional[str] = None, download: bool = True,
            use_node_attr: bool = False, use_edge_attr: bool = False) -> InMemoryDataset:
    """Load a TU dataset as PyG's ``TUDataset`` would (node labels one-hot, graph labels
    renumbered from 0, duplicated edges merged, self loops removed), reading the raw files in
    place. Datasets without node features (IMDB) get one-hot degree features, as in the GIN
    paper. When no root holds the files, PyG downloads them into ``datasets/tu``.

    As in ``TUDataset``, continuous node and edge attributes (PROTEINS, ENZYMES) are left out
    unless ``use_node_attr`` / ``use_edge_attr``; they are unscaled (PROTEINS' reach 798)."""
    proper = next((n for n in TU if n.lower() == name.lower()), None)
    if proper is None:
        raise ValueError(f"unknown TU dataset {name!r}; choose from {', '.join(TU)}")
    required = [f"{proper}_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")]
    relative = [f"tu/{proper}/raw", f"{proper}/raw"]
    folder = find_data(relative, required, root)
    if folder is None and download:
        try:
            from torch_geometric.datasets import TUDataset
            TUDataset(str(default_root() / "tu"), proper)
            folder = default_root() / "tu" / proper / "raw"
        except Exception as err:  # offline
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    if folder is None:
        raise DataNotFoundError(not_found(proper, relative, root))
    from torch_geometric.io import read_tu_data
    data, slices, sizes = read_tu_data(str(folder), proper)
    if data.x is not None and not use_node_attr:
        data.x = data.x[:, sizes["num_node_attributes"]:]
    if data.edge_attr is not None and not use_edge_attr:
        data.edge_attr = data.edge_attr[:, sizes["num_edge_attributes"]:]
    dataset = _Graphs(data, slices, proper)
    if dataset._data.x is None or dataset._data.x.size(-1) == 0:
        dataset = _with_degree_features(dataset)
    return dataset


def _with_degree_features(dataset: InMemoryDataset) -> InMemoryDataset:
    from torch_geometric.utils import degree
    graphs = [dataset[i] for i in range(len(dataset))]
    degs = [degree(g.edge_index[0], g.num_nodes, dtype=torch.long) for g in graphs]
    top = int(max(int(d.max()) if d.numel() else 0 for d in degs))
    for g, d in zip(graphs, degs):
        g.x = torch.nn.functional.one_hot(d, top + 1).float()
    data, slices = InMemoryDataset.collate(graphs)
    return _Graphs(data, slices, dataset.name)


def stratified_folds(labels: Tensor, folds: int = 10, seed: int = 0) -> List[Tuple[Tensor, Tensor]]:
    """``folds`` pairs ``(train_index, test_index)``: disjoint test folds that cover every
    graph once, each with the class proportions of the whole (as scikit-learn's
    ``StratifiedKFold`` with shuffling)."""
    labels = labels.view(-1)
    if folds < 2 or folds > labels.numel():
        raise ValueError(f"folds must lie in 2..{labels.numel()} (the number of graphs), got {folds}")
    g = torch.Generator().manual_seed(seed)
    assignment = torch.empty_like(labels)
    offset = 0
    for c in labels.unique():
        members = (labels == c).nonzero().view(-1)
        members = members[torch.randperm(members.numel(), generator=g)]
        # Deal each class round-robin, continuing where the previous class stopped.
        assignment[members] = (torch.arange(members.numel()) + offset) % folds
        offset += members.numel()
    everything = torch.arange(labels.numel())
    return [(everything[assignment != k], everything[assignment == k]) for k in range(folds)]
