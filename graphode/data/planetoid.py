"""Planetoid citation graphs (Cora, CiteSeer, PubMed), loaded without writing beside the data.

The raw ``ind.<name>.*`` files are read in place (a read-only folder is fine); only when no data
root holds them does PyG download them into the repository's git-ignored ``datasets/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch_geometric.data import Data

from .root import (
    DataNotFoundError,
    cleanup_on_failure,
    default_root,
    find_data,
    format_error,
    not_found,
)

__all__ = ["PLANETOID", "load_planetoid"]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def load_planetoid(name: str, root: Optional[str] = None, download: bool = True,
                   missing_features: str = "error") -> Data:
    """Load a Planetoid dataset with the public split (140/500/1000 nodes for Cora).

    Args:
        name: ``"Cora"``, ``"CiteSeer"`` or ``"PubMed"`` (any case).
        root: a data root searched before ``$GRAPHODE_DATA`` and ``datasets/``.
        download: when no root holds the files, let PyG download them into ``datasets/``.
        missing_features: when a root holds every file but ``ind.<name>.allx`` (the features of
            the non-test nodes, as in PubMed's offline copy): ``"error"`` raises, ``"random"``
            keeps the real graph, labels, split and the features that are there (training and
            test nodes) and gives the other nodes random features, for measuring scale.

    Raises:
        ValueError: an unknown name.
        DataNotFoundError: no root holds the files and downloading failed or was disabled.
    """
    key = name.lower()
    if key not in PLANETOID:
        raise ValueError(f"unknown Planetoid dataset {name!r}; choose from "
                         f"{', '.join(PLANETOID.values())}")
    proper = PLANETOID[key]
    files = [f"ind.{key}.{s}" for s in _SUFFIXES]
    relative = [f"planetoid/{proper}/raw", f"{proper}/raw"]
    folder = find_data(relative, files, root)
    if folder is not None:
        from torch_geometric.io import read_planetoid_data
        _validate(folder, key)
        return read_planetoid_data(str(folder), key)
    # PubMed's offline copy lacks one file: say exactly which, rather than "not found".
    partial = find_data(relative, [f for f in files if f != f"ind.{key}.allx"], root)
    if missing_features not in ("error", "random"):
        raise ValueError(f"missing_features must be 'error' or 'random', not {missing_features!r}")
    if partial is not None and missing_features == "random" and key != "citeseer":
        return _random_allx(str(partial), key)
    if partial is not None:
        missing = [f for f in files if not (partial / f).is_file()]
        raise DataNotFoundError(
            f"{proper} in {partial} is incomplete: {', '.join(missing)} is missing (the features "
            f"of the non-test nodes). Put the file there (PyG's Planetoid downloads it from the "
            f"kimiyoung/planetoid repository), pass missing_features='random' to keep the graph "
            f"with random features in their place, or use another dataset.")
    if download:
        try:
            from torch_geometric.datasets import Planetoid
            with cleanup_on_failure(default_root() / "planetoid" / proper):
                return Planetoid(str(default_root() / "planetoid"), proper)[0]
        except Exception as err:  # offline, or the source is unreachable
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    raise DataNotFoundError(not_found(proper, relative, root))


def _random_allx(folder: str, key: str) -> Data:
    """The Planetoid graph of ``folder`` without ``ind.<key>.allx``: its first rows are the
    training features ``ind.<key>.x``; the rest (validation and unlabelled nodes) are uniform
    random numbers with the test features' row sum, seeded so every call agrees."""
    from torch_geometric.io.planetoid import edge_index_from_dict
    from torch_geometric.utils import index_to_mask

    x, tx, y, ty, ally, graph, test_index = _validate(Path(folder), key, with_allx=False)
    fill = torch.rand(ally.size(0), tx.size(1), generator=torch.Generator().manual_seed(0))
    allx = fill * (tx.sum(1).mean() / fill.sum(1, keepdim=True))
    allx[:x.size(0)] = x
    order = test_index.sort()[0]
    features = torch.cat([allx, tx])
    features[test_index] = features[order]
    labels = torch.cat([ally, ty]).argmax(1)
    labels[test_index] = labels[order]
    n = labels.numel()
    return Data(x=features, edge_index=edge_index_from_dict(graph, num_nodes=n), y=labels,
                train_mask=index_to_mask(torch.arange(y.size(0)), n),
                val_mask=index_to_mask(torch.arange(y.size(0), y.size(0) + 500), n),
                test_mask=index_to_mask(test_index, n))


def _read(folder: Path, key: str, part: str):
    """One raw Planetoid file, with any failure turned into an error naming it."""
    from torch_geometric.io.planetoid import read_file

    path = folder / f"ind.{key}.{part}"
    if path.stat().st_size == 0:
        raise format_error(path, "the file is empty", "Planetoid's pickled data")
    try:
        value = read_file(str(folder), key, part)
    except Exception as err:
        what = "one node index per line" if part == "test.index" else \
            "a pickled scipy matrix, numpy array or (for graph) dict"
        raise format_error(path, f"not readable ({type(err).__name__}: {err})", what) from None
    if part == "graph":
        if not isinstance(value, dict) or not all(isinstance(v, (list, tuple, set)) or
                                                   hasattr(v, "__iter__") for v in value.values()):
            raise format_error(path, f"holds a {type(value).__name__}",
                               "a dict from node index to the list of its neighbours")
        return value
    if value.dim() not in (1, 2) or value.numel() == 0:
        raise format_error(path, f"holds an array of shape {tuple(value.shape)}",
                           "a non-empty matrix" if part != "test.index" else "node indices")
    if not torch.isfinite(value.float()).all():
        raise format_error(path, "holds NaN or inf values", "finite numbers")
    return value


def _validate(folder: Path, key: str, with_allx: bool = True):
    """Read every raw file of a Planetoid dataset and check that they agree with each other,
    so that malformed data fails with a message naming the file instead of deep in PyG."""
    parts = ["x", "tx", "y", "ty", "ally", "graph", "test.index"] + (["allx"] if with_allx else [])
    x, tx, y, ty, ally, graph, test_index, *allx = (_read(folder, key, p) for p in parts)

    def name(part):
        return folder / f"ind.{key}.{part}"

    for a, b, pa, pb in ((x, y, "x", "y"), (tx, ty, "tx", "ty")) + \
            (((allx[0], ally, "allx", "ally"),) if allx else ()):
        if a.dim() != 2 or a.size(0) != b.size(0):
            raise format_error(name(pa), f"has {a.size(0)} rows but {name(pb).name} has "
                                         f"{b.size(0)}", "one row per labelled node in both")
    for a, pa in ((tx, "tx"),) + (((allx[0], "allx"),) if allx else ()):
        if a.size(1) != x.size(1):
            raise format_error(name(pa), f"has {a.size(1)} feature columns but "
                                         f"{name('x').name} has {x.size(1)}",
                               "the same features in x, tx and allx")
    for a, pa in ((ty, "ty"), (ally, "ally")):
        if a.dim() != 2 or a.size(1) != y.size(1):
            raise format_error(name(pa), f"has {a.size(-1)} label columns but "
                                         f"{name('y').name} has {y.size(1)}",
                               "one-hot labels with the same classes in y, ty and ally")
    if ally.size(0) < y.size(0) + 500:
        raise format_error(name("ally"), f"has {ally.size(0)} rows, fewer than the {y.size(0)} "
                                         f"training nodes plus 500", "Planetoid's public split: "
                                         "500 validation nodes after the training nodes")
    num_nodes = max(ally.size(0) + ty.size(0), len(graph))
    if key != "citeseer" and test_index.numel() != tx.size(0):
        raise format_error(name("test.index"), f"lists {test_index.numel()} nodes but "
                                               f"{name('tx').name} has {tx.size(0)} rows",
                           "one test node index per row of tx")
    if test_index.dtype.is_floating_point or test_index.min() < 0 or \
            test_index.max() >= max(num_nodes, ally.size(0) + int(test_index.numel())):
        raise format_error(name("test.index"), f"holds indices from {int(test_index.min())} to "
                                               f"{int(test_index.max())}",
                           f"node indices in 0..{num_nodes - 1}")
    unique, counts = test_index.unique(return_counts=True)
    if unique.numel() != test_index.numel():
        repeated = int(unique[counts > 1][0])
        line = int((test_index == repeated).nonzero()[1]) + 1
        raise format_error(name("test.index"), f"lists node {repeated} twice (again on line "
                                               f"{line})", "each test node once")
    bad = [(k, v) for k, vs in graph.items() for v in vs
           if not (isinstance(k, int) and isinstance(v, int) and 0 <= k < num_nodes
                   and 0 <= v < num_nodes)]
    if bad:
        raise format_error(name("graph"), f"links {bad[0][0]!r} to {bad[0][1]!r}, outside the "
                                          f"{num_nodes} nodes",
                           f"integer node indices in 0..{num_nodes - 1}")
    return x, tx, y, ty, ally, graph, test_index
