"""Planetoid citation graphs (Cora, CiteSeer, PubMed), loaded without writing beside the data.

The raw ``ind.<name>.*`` files are read in place (a read-only folder is fine); only when no data
root holds them does PyG download them into the repository's git-ignored ``datasets/``.
"""
from __future__ import annotations

from typing import Optional

from torch_geometric.data import Data

from .root import DataNotFoundError, default_root, find_data, not_found

__all__ = ["PLANETOID", "load_planetoid"]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def load_planetoid(name: str, root: Optional[str] = None, download: bool = True) -> Data:
    """Load a Planetoid dataset with the public split (140/500/1000 nodes for Cora).

    Args:
        name: ``"Cora"``, ``"CiteSeer"`` or ``"PubMed"`` (any case).
        root: a data root searched before ``$GRAPHODE_DATA`` and ``datasets/``.
        download: when no root holds the files, let PyG download them into ``datasets/``.

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
    if partial is not None:
        missing = [f for f in files if not (partial / f).is_file()]
        raise DataNotFoundError(
            f"{proper} in {partial} is incomplete: {', '.join(missing)} is missing (the features "
            f"of the non-test nodes). Put the file there (PyG's Planetoid downloads it from the "
            f"kimiyoung/planetoid repository), or use another dataset.")
    if download:
        try:
            from torch_geometric.datasets import Planetoid
            return Planetoid(str(default_root() / "planetoid"), proper)[0]
        except Exception as err:  # offline, or the source is unreachable
            raise DataNotFoundError(not_found(proper, relative, root, "or go online so that "
                                              f"PyG can download it ({err})")) from err
    raise DataNotFoundError(not_found(proper, relative, root))
