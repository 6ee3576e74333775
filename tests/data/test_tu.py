"""TU datasets from a read-only root, degree features, and stratified folds."""
import stat

import pytest
import torch

from graphode.data import DataNotFoundError, candidate_roots, load_tu, stratified_folds


def write_tu(root, name="PTC_MR", graphs=20, node_labels=True):
    """Tiny TU-format files: cycles (label 2) and paths (label 5), 1-based ids, each
    undirected edge listed twice and one edge duplicated (as IMDB does)."""
    folder = root / "tu" / name / "raw"
    folder.mkdir(parents=True)
    edges, indicator, labels, node_lab = [], [], [], []
    start = 1
    for g in range(graphs):
        n = 4 + g % 3
        cycle = g % 2 == 0
        for i in range(n):
            indicator.append(g + 1)
            node_lab.append(i % 2)
        pairs = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if cycle else [])
        for a, b in pairs:
            edges += [(start + a, start + b), (start + b, start + a)]
        edges.append(edges[-1])  # a duplicate
        labels.append(2 if cycle else 5)
        start += n
    lines = lambda rows: "".join(f"{r}\n" for r in rows)  # noqa: E731  (TU files end in \n)
    (folder / f"{name}_A.txt").write_text(lines(f"{a}, {b}" for a, b in edges))
    (folder / f"{name}_graph_indicator.txt").write_text(lines(indicator))
    (folder / f"{name}_graph_labels.txt").write_text(lines(labels))
    if node_labels:
        (folder / f"{name}_node_labels.txt").write_text(lines(node_lab))
    return root


def read_only(root):
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_reads_tiny_files_in_place(tmp_path):
    root = write_tu(tmp_path)
    read_only(root)
    before = sorted(p.name for p in root.rglob("*"))
    try:
        ds = load_tu("ptc_mr", root=str(root), download=False)
    finally:
        for p in root.rglob("*"):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing written beside the files
    assert len(ds) == 20 and ds.num_classes == 2 and ds.num_features == 2
    assert set(ds._data.y.tolist()) == {0, 1}  # labels 2 / 5 renumbered
    g = ds[0]  # a 4-cycle: 8 directed edges after merging the duplicate
    assert g.num_nodes == 4 and g.edge_index.size(1) == 8


def test_degree_features_without_node_labels(tmp_path):
    root = write_tu(tmp_path, name="IMDB-BINARY", node_labels=False)
    ds = load_tu("IMDB-BINARY", root=str(root), download=False)
    assert ds.num_features == 3  # degrees 0..2, one-hot
    assert torch.equal(ds[1].x.argmax(-1), torch.tensor([1, 2, 2, 2, 1]))  # a 5-path


def test_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError, match="MUTAG not found. Searched: .*env"):
        load_tu("MUTAG", root=str(tmp_path), download=False)
    with pytest.raises(ValueError, match="unknown TU dataset 'DD'"):
        load_tu("DD")


def test_folds_are_stratified_disjoint_and_cover():
    labels = torch.tensor([0] * 70 + [1] * 30)
    folds = stratified_folds(labels, 10, seed=3)
    tests = torch.cat([te for _, te in folds])
    assert torch.equal(tests.sort().values, torch.arange(100))  # each graph tested once
    for tr, te in folds:
        assert not set(tr.tolist()) & set(te.tolist()) and len(tr) + len(te) == 100
        assert (labels[te] == 1).sum() == 3  # class proportions kept
    assert not torch.equal(folds[0][1], stratified_folds(labels, 10, seed=4)[0][1])
    with pytest.raises(ValueError, match="folds must lie in 2..100"):
        stratified_folds(labels, 1)


SHARED = next((b for b in candidate_roots() if (b / "tu/MUTAG/raw/MUTAG_A.txt").is_file()), None)


@pytest.mark.skipif(SHARED is None, reason="no data root holds tu/MUTAG (set GRAPHODE_DATA to "
                    "the shared datasets folder)")
@pytest.mark.parametrize("name, graphs, features, classes", [
    ("MUTAG", 188, 7, 2), ("PROTEINS", 1113, 3, 2), ("ENZYMES", 600, 3, 6),
    ("IMDB-BINARY", 1000, 136, 2)])
def test_shared_datasets(name, graphs, features, classes):
    ds = load_tu(name, download=False)
    assert len(ds) == graphs and ds.num_classes == classes
    assert ds.num_features == features  # one-hot node labels (or degrees) only, as TUDataset
    assert ds._data.x.min() == 0 and ds._data.x.max() == 1


@pytest.mark.skipif(SHARED is None, reason="no data root holds tu/ (set GRAPHODE_DATA to the "
                    "shared datasets folder)")
@pytest.mark.parametrize("name, attributes", [("PROTEINS", 1), ("ENZYMES", 18)])
def test_continuous_node_attributes_on_request(name, attributes):
    plain = load_tu(name, download=False)
    full = load_tu(name, download=False, use_node_attr=True)
    assert full.num_features == plain.num_features + attributes
    assert torch.equal(full._data.x[:, attributes:], plain._data.x)  # attributes come first
