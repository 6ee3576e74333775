"""Hostile data: every reader, given a malformed file, raises one DataFormatError that names
the file, the problem and what was expected; nothing half-loaded comes back.

Each case writes a valid tiny dataset, spoils one thing, and checks the message. The table
in docs/reliability.md counts these cases: ``python -m pytest tests/data/test_hostile.py -q``.
"""
import json
import pickle

import numpy as np
import pytest
import torch

from graphode.data import (
    DataFormatError,
    load_planetoid,
    load_tu,
    read_dcrnn,
    read_pems,
    read_pyg_temporal,
    read_tgcn_csv,
)

# ---------------------------------------------------------------- valid tiny datasets
SPEED = np.array([[60.0, 55.0, 30.0], [61.0, 54.0, 40.0], [62.5, 53.0, 41.0]])
ADJ = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 1.0], [0.0, 1.0, 1.0]])


def tgcn(tmp, speed=None, adj=None):
    (tmp / "s.csv").write_text(speed if speed is not None else
                               "a,b,c\n" + "\n".join(",".join(map(str, r)) for r in SPEED))
    (tmp / "a.csv").write_text(adj if adj is not None else
                               "\n".join(",".join(map(str, r)) for r in ADJ))
    return lambda: read_tgcn_csv(tmp / "s.csv", tmp / "a.csv")


def dcrnn(tmp, frame=None, adj=None, raw_h5=None, raw_pkl=None):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    if raw_h5 is None:
        df = frame if frame is not None else pd.DataFrame(
            SPEED, columns=["1", "2", "3"], index=pd.date_range("2012-03-01", periods=3, freq="5min"))
        df.to_hdf(tmp / "d.h5", key="df")
    else:
        (tmp / "d.h5").write_bytes(raw_h5)
    if raw_pkl is None:
        with open(tmp / "adj.pkl", "wb") as f:
            pickle.dump(adj if adj is not None else (["1", "2", "3"], {}, ADJ), f)
    else:
        (tmp / "adj.pkl").write_bytes(raw_pkl)
    return lambda: read_dcrnn(tmp / "d.h5", tmp / "adj.pkl")


def pems(tmp, data=None, distance=None, raw_npz=None, channel=0, **arrays):
    if raw_npz is not None:
        (tmp / "p.npz").write_bytes(raw_npz)
    else:
        np.savez(tmp / "p.npz", **(arrays or {"data": SPEED[..., None] if data is None else data}))
    (tmp / "d.csv").write_text(distance if distance is not None else "from,to,cost\n0,1,10\n1,2,20\n")
    return lambda: read_pems(tmp / "p.npz", tmp / "d.csv", channel=channel)


def temporal(tmp, doc=None, text=None):
    doc = doc if doc is not None else {"edges": [[0, 1], [1, 2]], "weights": [1.0, 2.0],
                                       "FX": SPEED.tolist()}
    (tmp / "t.json").write_text(text if text is not None else json.dumps(doc))
    return lambda: read_pyg_temporal(tmp / "t.json")


def planetoid(tmp, **spoil):
    """A 600-node Planetoid set (2 labelled training nodes, 597 in allx, 3 test nodes; the
    public split needs 500 validation nodes after the training ones), written as PyG reads
    it; ``spoil`` replaces one file's object (or raw bytes via ``<part>_raw``)."""
    sp = pytest.importorskip("scipy.sparse")
    folder = tmp / "planetoid" / "Cora" / "raw"
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    feats = sp.csr_matrix(g.random((600, 4)).astype(np.float32))
    onehot = np.eye(3)[g.integers(0, 3, 600)]
    parts = {"x": feats[:2], "allx": feats[:597], "tx": feats[597:], "y": onehot[:2],
             "ally": onehot[:597], "ty": onehot[597:],
             "graph": {i: [(i + 1) % 600, (i + 599) % 600] for i in range(600)}}
    parts.update({k: v for k, v in spoil.items() if not k.endswith("_raw") and k != "test_index"})
    for part, value in parts.items():
        with open(folder / f"ind.cora.{part}", "wb") as f:
            pickle.dump(value, f)
    (folder / "ind.cora.test.index").write_text(spoil.get("test_index", "599\n597\n598\n"))
    for key, raw in spoil.items():
        if key.endswith("_raw"):
            (folder / f"ind.cora.{key[:-4]}").write_bytes(raw)
    return lambda: load_planetoid("Cora", root=str(tmp), download=False)


def tu(tmp, part, edit):
    """The tiny TU set of ``test_tu.py`` with one file's lines passed through ``edit``."""
    from tests.data.test_tu import write_tu
    write_tu(tmp)
    path = tmp / "tu" / "PTC_MR" / "raw" / f"PTC_MR_{part}.txt"
    path.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    return lambda: load_tu("PTC_MR", root=str(tmp), download=False)


def folder_for_file(tmp):
    load = planetoid(tmp)
    path = tmp / "planetoid" / "Cora" / "raw" / "ind.cora.ty"
    path.unlink()
    path.mkdir()
    return load


def binary_speed(tmp):
    call = tgcn(tmp)
    (tmp / "s.csv").write_bytes(b"a,b,c\n\xff\xfe\x00,1,2\n")
    return call


def truncated(make, name):
    """The file ``name`` that ``make`` writes into a fresh folder, cut in half."""
    def spoil(tmp):
        call = make(tmp)
        path = next(tmp.rglob(name))
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return call
    return spoil


def with_nan_allx(tmp):
    sp = pytest.importorskip("scipy.sparse")
    bad = np.ones((597, 4), dtype=np.float32)
    bad[3, 1] = np.nan
    return planetoid(tmp, allx=sp.csr_matrix(bad))


# ---------------------------------------------------------------- the cases
CASES = {
    # Planetoid raw files
    "planetoid: truncated x": (truncated(planetoid, "ind.cora.x"), r"ind\.cora\.x: not readable"),
    "planetoid: empty graph": (lambda t: planetoid(t, graph_raw=b""), r"ind\.cora\.graph: the file is empty"),
    "planetoid: garbage bytes": (lambda t: planetoid(t, ty_raw=b"\x00\xffjunk"), r"ind\.cora\.ty: not readable"),
    "planetoid: graph is a list": (lambda t: planetoid(t, graph=[1, 2]), r"ind\.cora\.graph: holds a list; expected a dict"),
    "planetoid: graph links outside": (lambda t: planetoid(t, graph={0: [999]}), r"ind\.cora\.graph: links 0 to 999, outside"),
    "planetoid: x and y rows differ": (lambda t: planetoid(t, y=np.eye(3)[[0, 1, 2]]), r"ind\.cora\.x: has 2 rows but ind\.cora\.y has 3"),
    "planetoid: tx features differ": (lambda t: planetoid(t, tx=np.ones((3, 5))), r"ind\.cora\.tx: has 5 feature columns but ind\.cora\.x has 4"),
    "planetoid: ty classes differ": (lambda t: planetoid(t, ty=np.eye(4)[:3]), r"ind\.cora\.ty: has 4 label columns"),
    "planetoid: test.index not numbers": (lambda t: planetoid(t, test_index="599\nseven\n598\n"), r"ind\.cora\.test\.index: not readable"),
    "planetoid: test.index count": (lambda t: planetoid(t, test_index="599\n597\n"), r"test\.index: lists 2 nodes but ind\.cora\.tx has 3 rows"),
    "planetoid: test.index negative": (lambda t: planetoid(t, test_index="599\n-7\n598\n"), r"test\.index: holds indices from -7"),
    "planetoid: too few nodes to validate": (lambda t: planetoid(t, allx=np.ones((7, 4)), ally=np.eye(3)[[0] * 7]), r"ind\.cora\.ally: has 7 rows, fewer than the 2 training nodes plus 500"),
    "planetoid: NaN features": (with_nan_allx, r"ind\.cora\.allx: holds NaN or inf"),
    "planetoid: duplicated test.index line": (lambda t: planetoid(t, test_index="599\n597\n597\n"), r"ind\.cora\.test\.index: lists node 597 twice \(again on line 3\)"),
    "planetoid: folder in place of a file": (folder_for_file, r"ind\.cora\.ty: is not a regular file"),
    # TU graph classification
    "tu: a graph label deleted": (lambda t: tu(t, "graph_labels", lambda ls: ls[:9] + ls[10:]), r"PTC_MR_graph_labels\.txt: has 19 lines, but PTC_MR_graph_indicator\.txt lists 20 graphs"),
    "tu: an extra graph label": (lambda t: tu(t, "graph_labels", lambda ls: ls + ["2\n"]), r"graph_labels\.txt: has 21 lines"),
    "tu: a node's graph deleted": (lambda t: tu(t, "graph_indicator", lambda ls: ls[:-1]), r"PTC_MR_A\.txt: line \d+ joins nodes \d+ and \d+; expected node ids in 1\.\.\d+"),
    "tu: graph ids jump": (lambda t: tu(t, "graph_indicator", lambda ls: ls[:4] + ["3\n"] * (len(ls) - 4)), r"graph_indicator\.txt: line 5 jumps from graph 1 to 3"),
    "tu: edge across graphs": (lambda t: tu(t, "A", lambda ls: ["1, 5\n"] + ls), r"PTC_MR_A\.txt: line 1 joins node 1 of graph 1 to node 5 of graph 2"),
    "tu: edge line truncated": (lambda t: tu(t, "A", lambda ls: ls[:3] + ["7\n"] + ls[4:]), r"PTC_MR_A\.txt: line 4 has 1 values; expected 2 comma-separated integers"),
    "tu: label not a number": (lambda t: tu(t, "graph_labels", lambda ls: ["two\n"] + ls[1:]), r"graph_labels\.txt: line 1 reads 'two'"),
    "tu: node labels short": (lambda t: tu(t, "node_labels", lambda ls: ls[:-2]), r"PTC_MR_node_labels\.txt: has \d+ lines for \d+ nodes; expected one line per node"),
    "tu: empty line": (lambda t: tu(t, "graph_labels", lambda ls: ls[:3] + ["\n"] + ls[3:]), r"graph_labels\.txt: line 4 is empty"),
    # T-GCN CSV
    "tgcn: ragged row": (lambda t: tgcn(t, speed="a,b\n1,2\n3\n", adj="1,0\n0,1"), r"s\.csv: line 3 has 1 cells; expected 2"),
    "tgcn: non-numeric cell": (lambda t: tgcn(t, speed="a,b\n1,x\n", adj="1,0\n0,1"), r"s\.csv: line 2 holds the non-numeric cell 'x'"),
    "tgcn: NaN cell": (lambda t: tgcn(t, speed="a,b\n1,nan\n", adj="1,0\n0,1"), r"s\.csv: the speed table holds 1 NaN/inf value\(s\), the first at time step 0, node 1"),
    "tgcn: inf cell": (lambda t: tgcn(t, speed="a,b\ninf,1\n", adj="1,0\n0,1"), r"NaN/inf value\(s\), the first at time step 0, node 0"),
    "tgcn: adjacency size": (lambda t: tgcn(t, adj="1,0\n0,1"), r"a\.csv: the adjacency has 2 nodes but the series has 3"),
    "tgcn: adjacency not square": (lambda t: tgcn(t, adj="1,0,0\n0,1,0"), r"a\.csv: the adjacency has shape \(2, 3\); expected a square"),
    "tgcn: adjacency NaN": (lambda t: tgcn(t, adj="1,0,nan\n0,1,0\n0,0,1"), r"a\.csv: the adjacency holds NaN/inf or negative"),
    "tgcn: repeated ids": (lambda t: tgcn(t, speed="a,a\n1,2\n", adj="1,0\n0,1"), r"s\.csv: the header repeats sensor ids"),
    "tgcn: header only": (lambda t: tgcn(t, speed="a,b\n", adj="1,0\n0,1"), r"s\.csv: a header but no data rows"),
    "tgcn: empty file": (lambda t: tgcn(t, speed=""), r"s\.csv: the file is empty"),
    "tgcn: binary file": (lambda t: binary_speed(t), r"s\.csv: not UTF-8 text"),
    # DCRNN
    "dcrnn: h5 is not HDF5": (lambda t: dcrnn(t, raw_h5=b"not hdf5 at all"), r"d\.h5: not a readable pandas HDF5 table"),
    "dcrnn: truncated h5": (truncated(dcrnn, "d.h5"), r"d\.h5: not a readable pandas HDF5 table"),
    "dcrnn: pickle garbage": (lambda t: dcrnn(t, raw_pkl=b"junk"), r"adj\.pkl: not a readable pickle"),
    "dcrnn: truncated pickle": (truncated(dcrnn, "adj.pkl"), r"adj\.pkl: not a readable pickle"),
    "dcrnn: pickle holds a dict": (lambda t: dcrnn(t, adj={"adj": ADJ}), r"adj\.pkl: holds a dict; expected the tuple"),
    "dcrnn: sensors differ": (lambda t: dcrnn(t, adj=(["1", "2", "9"], {}, ADJ)), r"d\.h5: its 3 sensor columns do not match the 3 sensors of adj\.pkl \(e\.g\. missing \['9'\]\)"),
    "dcrnn: text speeds": (lambda t: dcrnn(t, frame=__import__("pandas").DataFrame({"1": ["a", "b"], "2": ["c", "d"], "3": ["e", "f"]})), r"d\.h5: holds non-numeric values"),
    "dcrnn: NaN speeds": (lambda t: dcrnn(t, frame=__import__("pandas").DataFrame(np.where(SPEED > 61, np.nan, SPEED), columns=["1", "2", "3"])), r"d\.h5: the speed table holds \d+ NaN/inf"),
    "dcrnn: adjacency not square": (lambda t: dcrnn(t, adj=(["1", "2", "3"], {}, ADJ[:2])), r"adj\.pkl: the adjacency has shape \(2, 3\)"),
    # PeMS
    "pems: no 'data' array": (lambda t: pems(t, flow=SPEED), r"p\.npz: the arrays are \['flow'\]; expected an array named 'data'"),
    "pems: npz garbage": (lambda t: pems(t, raw_npz=b"garbage"), r"p\.npz: not a readable \.npz"),
    "pems: truncated npz": (truncated(pems, "p.npz"), r"p\.npz: not a readable \.npz"),
    "pems: 1-D data": (lambda t: pems(t, data=np.ones(5)), r"p\.npz: 'data' has shape \(5,\)"),
    "pems: channel out of range": (lambda t: pems(t, channel=3), r"channel 3 was asked for"),
    "pems: node id out of range": (lambda t: pems(t, distance="from,to,cost\n0,7,1\n"), r"d\.csv: row 1 names node 0 or 7; expected integer node ids in 0\.\.2"),
    "pems: non-numeric distance": (lambda t: pems(t, distance="from,to,cost\n0,1,far\n"), r"d\.csv: row 1 is \['0', '1', 'far'\]"),
    "pems: negative distance": (lambda t: pems(t, distance="from,to,cost\n0,1,-3\n"), r"d\.csv: row 1 has distance -3"),
    "pems: no edges": (lambda t: pems(t, distance="from,to,cost\n"), r"d\.csv: no edges"),
    "pems: NaN data": (lambda t: pems(t, data=np.full((3, 3, 1), np.nan)), r"p\.npz: the 'data' array holds 9 NaN/inf"),
    # PyG-Temporal JSON
    "json: truncated": (lambda t: temporal(t, text='{"edges": [[0, 1]], "FX": [[1, 2'), r"t\.json: not valid JSON"),
    "json: top level list": (lambda t: temporal(t, doc=[1, 2]), r"t\.json: the top level is a list; expected a JSON object"),
    "json: no series": (lambda t: temporal(t, doc={"edges": [[0, 1]]}), r"t\.json: no series among the keys \['edges'\]"),
    "json: no graph": (lambda t: temporal(t, doc={"FX": [[1, 2]]}), r"t\.json: no graph among the keys"),
    "json: edge outside": (lambda t: temporal(t, doc={"edges": [[0, 5]], "FX": [[1, 2]]}), r"t\.json: edges name nodes outside 0\.\.1"),
    "json: ragged series": (lambda t: temporal(t, doc={"edges": [[0, 1]], "FX": [[1, 2], [3]]}), r"t\.json: 'FX' is ragged or holds non-numeric"),
    "json: weights count": (lambda t: temporal(t, doc={"edges": [[0, 1]], "weights": [1, 2], "FX": [[1, 2]]}), r"t\.json: edges of shape \(1, 2\) with \(2,\) weights"),
    "json: NaN series": (lambda t: temporal(t, text='{"edges": [[0, 1]], "FX": [[1, NaN]]}'), r"t\.json: the 'FX' series holds 1 NaN/inf"),
    "json: bad edge_mapping": (lambda t: temporal(t, doc={"y": [[1, 2]], "edge_mapping": {"edge_index": 3}}), r"t\.json: 'edge_mapping' is malformed"),
    "json: node-link unknown node": (lambda t: temporal(t, doc={"nodes": [{"id": 1, "y": [1, 2]}], "links": [{"source": 1, "target": 9}]}), r"t\.json: a node or link is malformed \(KeyError: 9\)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input(tmp_path, case):
    make, message = CASES[case]
    load = make(tmp_path)
    with pytest.raises(DataFormatError, match=message) as info:
        load()
    # the message names the problem and then what was expected
    assert "; expected " in str(info.value)


def test_enough_distinct_hostile_inputs():
    assert len(CASES) >= 30
    assert len({message for _, message in CASES.values()}) >= 30


def test_the_valid_versions_load(tmp_path):
    for i, make in enumerate((tgcn, dcrnn, pems, temporal, planetoid)):
        folder = tmp_path / str(i)
        folder.mkdir()
        loaded = make(folder)()
        assert loaded is not None
    assert torch.equal(read_tgcn_csv(tmp_path / "0" / "s.csv", tmp_path / "0" / "a.csv").signal,
                       torch.tensor(SPEED, dtype=torch.float32))
