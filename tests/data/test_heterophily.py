"""The Geom-GCN heterophily graphs: read through PyG from a writable copy, 10 splits each."""
import stat

import numpy as np
import pytest
import torch

import graphode.data.heterophily as het
from graphode.data import DataNotFoundError, candidate_roots, load_heterophily


def write_texas_format(folder, prefix="texas"):
    """Six nodes, three features, two classes, in Geom-GCN's text format with 10 splits."""
    folder.mkdir(parents=True)
    rows = ["node_id\tfeature\tlabel"] + [
        f"{i}\t{','.join(str((i + j) % 2) for j in range(3))}\t{i % 2}" for i in range(6)]
    (folder / "out1_node_feature_label.txt").write_text("\n".join(rows) + "\n")
    edges = ["node_id\tnode_id"] + [f"{i}\t{(i + 1) % 6}" for i in range(6)]
    (folder / "out1_graph_edges.txt").write_text("\n".join(edges) + "\n")
    for k in range(10):
        order = np.roll(np.arange(6), k)
        masks = {name: np.isin(np.arange(6), order[part]) for name, part in
                 (("train_mask", slice(0, 4)), ("val_mask", slice(4, 5)),
                  ("test_mask", slice(5, 6)))}
        np.savez(folder / f"{prefix}_split_0.6_0.2_{k}.npz", **masks)


def test_reads_a_read_only_root_through_a_writable_copy(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write_texas_format(root / "heterophily" / "texas" / "raw")
    for p in sorted(root.rglob("*"), reverse=True) + [root]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setattr(het, "default_root", lambda: tmp_path / "cache")
    before = sorted(str(p) for p in root.rglob("*"))
    try:
        data = load_heterophily("TEXAS", root=str(root), download=False)
    finally:
        for p in [root] + list(root.rglob("*")):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert sorted(str(p) for p in root.rglob("*")) == before  # nothing beside the originals
    assert (tmp_path / "cache" / "heterophily" / "texas" / "processed").is_dir()
    assert data.x.shape == (6, 3) and data.y.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.train_mask.shape == data.val_mask.shape == data.test_mask.shape == (6, 10)
    assert data.train_mask.sum(0).tolist() == [4] * 10
    assert not (data.train_mask & data.test_mask).any()
    # the k-th column is the k-th split file
    assert data.test_mask[:, 3].nonzero().view(-1).tolist() == [np.roll(np.arange(6), 3)[5]]
    # a second load reuses the copy
    again = load_heterophily("texas", root=str(root), download=False)
    assert torch.equal(again.x, data.x)


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="choose from Texas, Wisconsin, Cornell, chameleon"):
        load_heterophily("squirrel")
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "env"))
    import graphode.data.root
    for module in (het, graphode.data.root):  # no root holds the files, not even the cache
        monkeypatch.setattr(module, "default_root", lambda: tmp_path / "cache")
    with pytest.raises(DataNotFoundError, match="Wisconsin not found. Searched: .*heterophily"):
        load_heterophily("wisconsin", root=str(tmp_path / "nowhere"), download=False)


def shared_root():
    """A root that holds all five sets (a cache that holds some of them does not count)."""
    raws = ("texas/raw", "wisconsin/raw", "cornell/raw", "chameleon/geom_gcn/raw", "Actor/raw")
    for base in candidate_roots():
        if all((base / "heterophily" / raw / "out1_graph_edges.txt").is_file() for raw in raws):
            return base
    return None


@pytest.mark.skipif(shared_root() is None, reason="no data root holds heterophily/ (set "
                    "GRAPHODE_DATA to the shared datasets folder)")
@pytest.mark.parametrize("name, nodes, features", [
    ("Texas", 183, 1703), ("Wisconsin", 251, 1703), ("Cornell", 183, 1703),
    ("chameleon", 2277, 2325), ("Actor", 7600, 932)])
def test_the_shared_sets(tmp_path, monkeypatch, name, nodes, features):
    monkeypatch.setattr(het, "default_root", lambda: tmp_path / "cache")
    data = load_heterophily(name, root=str(shared_root()))
    assert (data.num_nodes, data.num_features, int(data.y.max()) + 1) == (nodes, features, 5)
    assert data.train_mask.shape == (nodes, 10)
    # 60 / 20 / 20 splits that do not overlap
    assert not (data.train_mask & data.val_mask).any() and not (data.val_mask & data.test_mask).any()
    if name == "Cornell":  # the released files carry Texas's features and labels
        texas = load_heterophily("Texas", root=str(shared_root()))
        assert torch.equal(data.x, texas.x) and torch.equal(data.y, texas.y)
