"""Planetoid citation graphs (Cora, CiteSeer, PubMed), loaded without writing beside the data.

The raw ``ind.<name>.*`` files are read in place (a read-only folder is fine); only when no data
root holds them does PyG download them into the repository's git-ignored ``datasets/``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch_geometric.data import Data

from .root import DataNotFoundError, default_root, find_data, not_found

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
            return Planetoid(str(default_root() / "planetoid"), proper)[0]
        except Exception as err:  # offline, or the source is unreachable
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    raise DataNotFoundError(not_found(proper, relative, root))


def _random_allx(folder: str, key: str) -> Data:
    """The Planetoid graph of ``folder`` without ``ind.<key>.allx``: its first rows are the
    training features ``ind.<key>.x``; the rest (validation and unlabelled nodes) are uniform
    random numbers with the test features' row sum, seeded so every call agrees."""
    from torch_geometric.io.planetoid import edge_index_from_dict, read_file
    from torch_geometric.utils import index_to_mask

    x, tx, y, ty, ally, graph, test_index = (read_file(folder, key, n) for n in
                                             ("x", "tx", "y", "ty", "ally", "graph", "test.index"))
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
