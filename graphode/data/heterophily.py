"""The Geom-GCN heterophily node-classification graphs (Pei et al., 2020), with their 10 splits.

Texas, Wisconsin and Cornell (WebKB), chameleon (Wikipedia, Geom-GCN's preprocessing) and Actor
(``film`` upstream), read by PyG's own ``WebKB``, ``WikipediaNetwork`` and ``Actor`` so that
features, labels and splits are exactly what PyG users get. PyG writes processed files beside
the raw ones, so a read-only data root is first copied into the writable root
(:func:`~graphode.data.default_root`); nothing is ever written beside the files found.

Two caveats travel with the data (see the datasets README): Cornell carries Texas's features
and labels in the released files, and chameleon has duplicate nodes that leak between the
training and test parts (Platonov et al., 2023).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

from torch_geometric.data import Data

from .root import DataNotFoundError, cleanup_on_failure, default_root, find_data, not_found

__all__ = ["HETEROPHILY", "load_heterophily"]

# lower-case name -> (proper name, PyG class, raw folder under the dataset's root, split prefix)
HETEROPHILY: Dict[str, Tuple[str, str, str, str]] = {
    "texas": ("Texas", "WebKB", "texas/raw", "texas"),
    "wisconsin": ("Wisconsin", "WebKB", "wisconsin/raw", "wisconsin"),
    "cornell": ("Cornell", "WebKB", "cornell/raw", "cornell"),
    "chameleon": ("chameleon", "WikipediaNetwork", "chameleon/geom_gcn/raw", "chameleon"),
    "actor": ("Actor", "Actor", "Actor/raw", "film"),
}


def _dataset(kind: str, root: Path, proper: str):
    from torch_geometric import datasets
    if kind == "Actor":
        return datasets.Actor(str(root / "Actor"))
    return getattr(datasets, kind)(str(root), proper)


def _same(source: Path, target: Path) -> bool:
    return target.is_file() and target.stat().st_size == source.stat().st_size


def load_heterophily(name: str, root: Optional[str] = None, download: bool = True) -> Data:
    """Load a Geom-GCN heterophily graph with its 10 standard splits.

    Args:
        name: ``"Texas"``, ``"Wisconsin"``, ``"Cornell"``, ``"chameleon"`` or ``"Actor"`` (any
            case).
        root: a data root searched before ``$GRAPHODE_DATA`` and the writable root; the raw
            files are in ``<root>/heterophily/<name>/raw`` (chameleon:
            ``<root>/heterophily/chameleon/geom_gcn/raw``), as PyG lays them out.
        download: when no root holds the files, let PyG download them into the writable root.

    Returns:
        PyG ``Data`` whose ``train_mask``, ``val_mask`` and ``test_mask`` have shape
        ``(num_nodes, 10)``, one column per split (about 48 / 32 / 20 % of the nodes,
        although the files are named ``0.6_0.2``). The edges are kept directed, as PyG reads
        them.

    Raises:
        ValueError: an unknown name.
        DataNotFoundError: no root holds the files and downloading failed or was disabled.
    """
    key = name.lower()
    if key not in HETEROPHILY:
        raise ValueError(f"unknown heterophily dataset {name!r}; choose from "
                         f"{', '.join(v[0] for v in HETEROPHILY.values())}")
    proper, kind, raw, prefix = HETEROPHILY[key]
    files = ["out1_node_feature_label.txt", "out1_graph_edges.txt"] + [
        f"{prefix}_split_0.6_0.2_{i}.npz" for i in range(10)]
    relative = [f"heterophily/{raw}", raw]
    writable = default_root() / "heterophily"
    folder = find_data(relative, files, root)
    if folder is not None:
        target = writable / raw
        if folder.resolve() != target.resolve():
            # PyG writes processed/ beside raw/: read from a copy, never beside the originals
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                if not _same(folder / f, target / f):
                    shutil.copyfile(folder / f, target / f)
        return _dataset(kind, writable, proper)[0]
    if download:
        try:
            with cleanup_on_failure(writable / raw.split("/")[0]):
                return _dataset(kind, writable, proper)[0]
        except Exception as err:  # offline, or the source is unreachable
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    raise DataNotFoundError(not_found(proper, relative, root))
