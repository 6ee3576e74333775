"""TU graph-classification datasets (MUTAG, PROTEINS, ENZYMES, NCI1, PTC_MR, IMDB-BINARY,
IMDB-MULTI), read in place from a read-only root with PyG's ``TUDataset`` conventions, and
stratified folds for cross-validation."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import InMemoryDataset

from .root import (
    DataNotFoundError,
    cleanup_on_failure,
    default_root,
    find_data,
    format_error,
    not_found,
)

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
            with cleanup_on_failure(default_root() / "tu" / proper):
                TUDataset(str(default_root() / "tu"), proper)
            folder = default_root() / "tu" / proper / "raw"
        except Exception as err:  # offline
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    if folder is None:
        raise DataNotFoundError(not_found(proper, relative, root))
    _validate(Path(folder), proper)
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


def _rows(path: Path, kind: type, columns: Optional[int] = None) -> List[List]:
    """The rows of a comma-separated TU file as numbers; a bad line names the file and line."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise format_error(path, f"is not UTF-8 text ({err.reason} at byte {err.start})",
                           "plain text, one row per line") from None
    expected = f"{columns if columns else 'one or more'} comma-separated " \
               f"{'integers' if kind is int else 'numbers'} per line"
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise format_error(path, f"line {number} is empty", expected)
        try:
            row = [kind(v) for v in line.split(",")]
        except ValueError:
            raise format_error(path, f"line {number} reads {line.strip()[:40]!r}", expected) from None
        if columns is not None and len(row) != columns:
            raise format_error(path, f"line {number} has {len(row)} values", expected)
        rows.append(row)
    if not rows:
        raise format_error(path, "is empty", expected)
    return rows


def _validate(folder: Path, name: str) -> None:
    """Check the TU files' counts and ranges against each other before anything is built
    (PyG's reader would mislabel graphs or fail with a bare IndexError)."""
    file = lambda part: folder / f"{name}_{part}.txt"  # noqa: E731
    indicator = [r[0] for r in _rows(file("graph_indicator"), int, 1)]
    nodes, graphs = len(indicator), max(indicator)
    for line, (a, b) in enumerate(zip(indicator, indicator[1:]), start=2):
        if b < a or b > a + 1:
            raise format_error(file("graph_indicator"), f"line {line} jumps from graph {a} to {b}",
                               "graph ids that start at 1 and rise by at most 1 per line")
    if indicator[0] != 1:
        raise format_error(file("graph_indicator"), f"line 1 is graph {indicator[0]}",
                           "graph ids that start at 1")
    labels = _rows(file("graph_labels"), int)
    if len(labels) != graphs:
        raise format_error(file("graph_labels"), f"has {len(labels)} lines, but "
                           f"{file('graph_indicator').name} lists {graphs} graphs",
                           "one label per graph")
    edges = _rows(file("A"), int, 2)
    for line, (a, b) in enumerate(edges, start=1):
        if not (1 <= a <= nodes and 1 <= b <= nodes):
            raise format_error(file("A"), f"line {line} joins nodes {a} and {b}",
                               f"node ids in 1..{nodes} (the lines of "
                               f"{file('graph_indicator').name})")
        if indicator[a - 1] != indicator[b - 1]:
            raise format_error(file("A"), f"line {line} joins node {a} of graph "
                               f"{indicator[a - 1]} to node {b} of graph {indicator[b - 1]}",
                               "edges within one graph")
    for part, kind, count, what in (("node_labels", int, nodes, "node"),
                                    ("node_attributes", float, nodes, "node"),
                                    ("edge_labels", int, len(edges), "edge"),
                                    ("edge_attributes", float, len(edges), "edge")):
        if file(part).exists():
            rows = _rows(file(part), kind)
            if len(rows) != count:
                raise format_error(file(part), f"has {len(rows)} lines for {count} {what}s",
                                   f"one line per {what}")
            widths = {len(r) for r in rows}
            if len(widths) > 1:
                raise format_error(file(part), f"mixes rows of {sorted(widths)} values",
                                   "the same number of values on every line")


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
