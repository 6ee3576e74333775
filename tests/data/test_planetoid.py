"""Planetoid loading from read-only roots, root resolution and the missing-file errors."""
import shutil
import stat
from pathlib import Path

import pytest
import torch

from graphode.data import DataNotFoundError, candidate_roots, contextual_sbm, load_planetoid
from graphode.data.root import default_root


def shared_planetoid():
    for base in candidate_roots():
        if (base / "planetoid" / "Cora" / "raw" / "ind.cora.x").is_file():
            return base / "planetoid"
    return None


SHARED = shared_planetoid()
needs_data = pytest.mark.skipif(SHARED is None, reason="no data root holds planetoid/Cora/raw "
                                "(set GRAPHODE_DATA to the shared datasets folder)")


def read_only_copy(tmp_path, name):
    root = tmp_path / "root"
    shutil.copytree(SHARED / name, root / "planetoid" / name)
    for p in sorted(root.rglob("*"), reverse=True) + [root]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return root


@needs_data
@pytest.mark.parametrize("name, nodes, edges, features, classes, train", [
    ("Cora", 2708, 10556, 1433, 7, 140), ("CiteSeer", 3327, 9104, 3703, 6, 120)])
def test_loads_from_a_read_only_copy(tmp_path, name, nodes, edges, features, classes, train):
    root = read_only_copy(tmp_path, name)
    before = sorted(p.name for p in root.rglob("*"))
    try:
        data = load_planetoid(name.lower(), root=str(root), download=False)
    finally:
        for p in [root] + list(root.rglob("*")):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing written beside the files
    assert (data.num_nodes, data.num_edges, data.num_features) == (nodes, edges, features)
    assert int(data.y.max()) + 1 == classes
    sizes = [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    assert sizes == [train, 500, 1000]
    assert not (data.train_mask & data.test_mask).any() and not (data.val_mask & data.test_mask).any()


@needs_data
def test_pubmed_names_the_missing_file():
    if (SHARED / "PubMed" / "raw" / "ind.pubmed.allx").is_file():
        pytest.skip("this data root has the complete PubMed")
    with pytest.raises(DataNotFoundError, match=r"PubMed in .* is incomplete: ind\.pubmed\.allx is missing"):
        load_planetoid("PubMed", root=str(SHARED.parent), download=False)


def test_nothing_found_lists_the_places_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as info:
        load_planetoid("Cora", root=str(tmp_path / "arg"), download=False)
    message = str(info.value)
    assert "Cora not found. Searched: " in message and "--root DIR" in message
    order = [str(tmp_path / "arg"), str(tmp_path / "env"), str(default_root())]
    positions = [message.index(p) for p in order]
    assert positions == sorted(positions)


def test_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "env"))
    assert candidate_roots(str(tmp_path / "arg")) == [tmp_path / "arg", tmp_path / "env", default_root()]
    monkeypatch.delenv("GRAPHODE_DATA")
    assert candidate_roots() == [default_root()]


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown Planetoid dataset 'Coraa'; choose from Cora, CiteSeer, PubMed"):
        load_planetoid("Coraa")


def test_contextual_sbm():
    data = contextual_sbm(num_nodes=400, num_classes=4, homophily=0.9, seed=3)
    assert data.num_nodes == 400 and data.x.shape == (400, 32)
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [80, 200, 120]
    src, dst = data.edge_index
    assert (data.y[src] == data.y[dst]).float().mean() > 0.8
    assert contextual_sbm(seed=3).x.equal(contextual_sbm(seed=3).x)


@needs_data
def test_random_features_keep_everything_else(tmp_path, monkeypatch):
    # Cora without its allx file, next to the complete Cora: only the features of the nodes
    # that allx (less x) held may differ.
    root = tmp_path / "root"
    shutil.copytree(SHARED / "Cora", root / "planetoid" / "Cora")
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.allx").unlink()
    full = load_planetoid("Cora", root=str(SHARED.parent), download=False)
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "elsewhere"))  # only the partial copy
    with pytest.raises(DataNotFoundError, match="missing_features='random'"):
        load_planetoid("Cora", root=str(root), download=False)
    data = load_planetoid("Cora", root=str(root), download=False, missing_features="random")
    assert torch.equal(data.edge_index, full.edge_index) and torch.equal(data.y, full.y)
    for mask in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(data[mask], full[mask])
    known = data.train_mask | data.test_mask
    assert torch.equal(data.x[known], full.x[known])
    assert not torch.equal(data.x[data.val_mask], full.x[data.val_mask])
    again = load_planetoid("Cora", root=str(root), download=False, missing_features="random")
    assert torch.equal(again.x, data.x)
    with pytest.raises(ValueError, match="missing_features"):
        load_planetoid("Cora", root=str(root), download=False, missing_features="zeros")


def test_an_installed_graphode_downloads_into_the_user_cache(tmp_path, monkeypatch):
    """Outside a source checkout (a wheel in site-packages), the last root is the user cache
    directory, never a folder beside the installed package."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "graphode").mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root(site / "graphode") == tmp_path / "cache" / "graphode"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_root(site / "graphode") == Path.home() / ".cache" / "graphode"
    # a source checkout keeps its git-ignored datasets/ folder
    checkout = tmp_path / "checkout"
    (checkout / "graphode").mkdir(parents=True)
    (checkout / "datasets").mkdir()
    (checkout / "pyproject.toml").write_text("")
    assert default_root(checkout / "graphode") == checkout / "datasets"
