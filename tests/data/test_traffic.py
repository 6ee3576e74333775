"""Spatio-temporal readers on tiny files in each format, windows, scaler, splits and masks."""
import json
import pickle
import stat

import numpy as np
import pytest
import torch

from graphode.data import (
    SeriesFormatError,
    StandardScaler,
    candidate_roots,
    chronological_split,
    drop_observations,
    drop_readings,
    drop_steps,
    dtw_distances,
    load_series,
    read_dcrnn,
    read_pems,
    read_pyg_temporal,
    read_tgcn_csv,
    semantic_graph,
    sliding_windows,
    window_masks,
)

SPEED = np.array([[60.0, 55.0, 0.0], [61.0, 54.0, 40.0], [62.5, 53.0, 41.0], [63.0, 52.0, 42.0]])
ADJ = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 1.0], [0.0, 1.0, 1.0]])


def write_tgcn(folder, speed=SPEED, adj=ADJ, ids=("101", "102", "103")):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(ids)] + [",".join(f"{v:g}" for v in r) for r in speed]
    (folder / "los_speed.csv").write_text("\n".join(rows) + "\n")
    (folder / "los_adj.csv").write_text("\n".join(",".join(f"{v:g}" for v in r) for r in adj))
    return folder / "los_speed.csv", folder / "los_adj.csv"


def test_tgcn_csv(tmp_path):
    s = read_tgcn_csv(*write_tgcn(tmp_path), name="tiny")
    assert s.signal.shape == (4, 3) and s.signal.dtype == torch.float32
    assert s.missing == 0.0  # traffic speeds: zero marks a missing reading
    assert torch.equal(s.signal, torch.tensor(SPEED, dtype=torch.float32))
    assert s.node_ids == ["101", "102", "103"] and s.interval == 5.0
    # Self loops dropped, both directions kept, weights from the matrix.
    edges = {(int(a), int(b)): float(w) for (a, b), w in zip(s.edge_index.T, s.edge_weight)}
    assert edges == {(0, 1): 0.5, (1, 0): 0.5, (1, 2): 1.0, (2, 1): 1.0}
    assert "3 nodes" in repr(s)


@pytest.mark.parametrize("speed, adj, message", [
    ("a,b\n1,2\n3\n", "1,0\n0,1", "line 3 has 1 cells"),
    ("a,b\n1,x\n", "1,0\n0,1", "non-numeric cell 'x'"),
    ("a,b\n1,nan\n", "1,0\n0,1", "NaN/inf"),
    ("a,b\n1,2\n", "1,0,0\n0,1,0\n0,0,1", "adjacency has 3 nodes but the series has 2"),
    ("a,b\n1,2\n", "1,0\n0,1,1", "line 2 has 3 cells"),
    ("a,a\n1,2\n", "1,0\n0,1", "repeats sensor ids"),
    ("a,b\n", "1,0\n0,1", "no data rows"),
    ("a,b\n1,2\n", "1,-1\n-1,1", "negative"),
])
def test_tgcn_csv_errors(tmp_path, speed, adj, message):
    (tmp_path / "s.csv").write_text(speed)
    (tmp_path / "a.csv").write_text(adj)
    with pytest.raises(SeriesFormatError, match=message):
        read_tgcn_csv(tmp_path / "s.csv", tmp_path / "a.csv")


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "s.csv").write_text("")
    (tmp_path / "a.csv").write_text("1")
    with pytest.raises(SeriesFormatError, match=r"s\.csv: the file is empty"):
        read_tgcn_csv(tmp_path / "s.csv", tmp_path / "a.csv")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_tgcn_csv(tmp_path / "nope.csv", tmp_path / "a.csv")


def test_dcrnn(tmp_path):
    pd = pytest.importorskip("pandas", reason="the DCRNN reader needs pandas")
    pytest.importorskip("tables", reason="pandas HDF5 needs PyTables")
    index = pd.date_range("2012-03-01", periods=4, freq="5min")
    # Columns in another order than the adjacency: the reader reorders them.
    df = pd.DataFrame(SPEED[:, [2, 0, 1]], index=index, columns=[773, 771, 772])
    df.to_hdf(tmp_path / "metr-la.h5", key="df")
    ids = ["771", "772", "773"]
    with open(tmp_path / "adj_mx.pkl", "wb") as f:
        pickle.dump((ids, {k: i for i, k in enumerate(ids)}, ADJ.astype(np.float32)), f, protocol=2)
    s = read_dcrnn(tmp_path / "metr-la.h5", tmp_path / "adj_mx.pkl")
    assert torch.equal(s.signal, torch.tensor(SPEED, dtype=torch.float32))
    assert s.node_ids == ids and s.interval == pytest.approx(5.0)
    assert s.edge_index.size(1) == 4
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump((["1", "2", "9"], {}, ADJ), f)
    with pytest.raises(SeriesFormatError, match="do not match the 3 sensors"):
        read_dcrnn(tmp_path / "metr-la.h5", tmp_path / "bad.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SeriesFormatError, match="not a readable pickle"):
        read_dcrnn(tmp_path / "metr-la.h5", tmp_path / "junk.pkl")


def test_pems(tmp_path):
    data = np.stack([SPEED, SPEED * 2], -1)  # (T, N, F)
    np.savez(tmp_path / "pems04.npz", data=data)
    (tmp_path / "distance.csv").write_text("from,to,cost\n0,1,100.0\n1,2,300.0\n")
    s = read_pems(tmp_path / "pems04.npz", tmp_path / "distance.csv", channel=1)
    assert torch.equal(s.signal, torch.tensor(SPEED * 2, dtype=torch.float32))
    assert s.edge_index.size(1) == 4  # undirected
    sigma = np.std([100.0, 300.0])
    w = {(int(a), int(b)): float(x) for (a, b), x in zip(s.edge_index.T, s.edge_weight)}
    assert w[(1, 0)] == pytest.approx(np.exp(-(100 / sigma) ** 2), rel=1e-6)
    (tmp_path / "d2.csv").write_text("from,to,cost\n0,7,1.0\n")
    with pytest.raises(SeriesFormatError, match="integer node ids in 0..2"):
        read_pems(tmp_path / "pems04.npz", tmp_path / "d2.csv")
    np.savez(tmp_path / "wrong.npz", flow=data)
    with pytest.raises(SeriesFormatError, match="an array named 'data'"):
        read_pems(tmp_path / "wrong.npz", tmp_path / "distance.csv")


def test_pyg_temporal_formats(tmp_path):
    static = {"edges": [[0, 1], [1, 2], [2, 2]], "weights": [1.0, 0.5, 1.0],
              "FX": SPEED.tolist()}
    (tmp_path / "static.json").write_text(json.dumps(static))
    s = read_pyg_temporal(tmp_path / "static.json")
    assert s.signal.shape == (4, 3) and s.edge_index.tolist() == [[0, 1], [1, 2]]
    assert s.edge_weight.tolist() == [1.0, 0.5]
    assert s.missing is None  # counts and scores: zero is a reading
    dynamic = {"time_periods": 4, "y": SPEED.tolist(),
               "edge_mapping": {"edge_index": {"0": [[0, 1]], "1": [[0, 1], [1, 2]],
                                               "2": [[2, 2], [1, 2]], "3": []},
                                "edge_weight": {"0": [2.0], "1": [4.0, 1.0], "2": [5.0, 1.0],
                                                "3": []}}}
    (tmp_path / "dynamic.json").write_text(json.dumps(dynamic))
    s = read_pyg_temporal(tmp_path / "dynamic.json")
    assert s.edge_index.tolist() == [[0, 1], [1, 2]]
    assert s.edge_weight.tolist() == [1.5, 0.5]  # the mean over the four snapshots
    # and each day's own graph, self loops dropped
    assert [ei.tolist() for ei, _ in s.snapshots] == [[[0], [1]], [[0, 1], [1, 2]], [[1], [2]],
                                                     [[], []]]
    assert s.snapshots[0][1].tolist() == [2.0] and s.snapshots[2][1] is None
    dynamic["time_periods"], dynamic["y"] = 5, SPEED.tolist() + SPEED.tolist()[:1]
    (tmp_path / "short.json").write_text(json.dumps(dynamic))
    with pytest.raises(SeriesFormatError, match="4 graph snapshots for a series of 5 steps"):
        read_pyg_temporal(tmp_path / "short.json")
    node_link = {"directed": True, "nodes": [{"id": 10, "y": [1, 2]}, {"id": 20, "y": [3, 4]}],
                 "links": [{"source": 10, "target": 20, "weight": 2.0}]}
    (tmp_path / "nl.json").write_text(json.dumps(node_link))
    s = read_pyg_temporal(tmp_path / "nl.json")
    assert s.signal.tolist() == [[1, 3], [2, 4]] and s.edge_index.tolist() == [[0], [1]]
    (tmp_path / "bad.json").write_text('{"edges": [[0, 5]], "X": [[1, 2]]}')
    with pytest.raises(SeriesFormatError, match="outside 0..1"):
        read_pyg_temporal(tmp_path / "bad.json")
    (tmp_path / "trunc.json").write_text('{"edges": [[0, 1]], "X": [[1, 2')
    with pytest.raises(SeriesFormatError, match="not valid JSON"):
        read_pyg_temporal(tmp_path / "trunc.json")


def test_load_series_from_read_only_root_and_errors(tmp_path):
    write_tgcn(tmp_path / "traffic" / "Los-loop")
    for p in sorted(tmp_path.rglob("*"), reverse=True):
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        s = load_series("los-loop", root=str(tmp_path))
        assert s.name == "Los-loop" and s.signal.shape == (4, 3)
    finally:
        for p in tmp_path.rglob("*"):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_series("nope")


def test_missing_dataset_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHODE_DATA", str(tmp_path / "env"))
    monkeypatch.setattr("graphode.data.traffic._download", lambda *a, **k: False)
    with pytest.raises(FileNotFoundError, match="METR-LA .*Searched: .*env.*--root DIR"):
        load_series("METR-LA", root=str(tmp_path / "cli"))


SHARED_LOS = next((b for b in candidate_roots() if (b / "traffic/Los-loop/los_speed.csv").is_file()),
                  None)


@pytest.mark.skipif(SHARED_LOS is None, reason="no data root holds traffic/Los-loop (set "
                    "GRAPHODE_DATA to the shared datasets folder)")
def test_los_loop_real():
    s = load_series("Los-loop")
    assert s.signal.shape == (2016, 207) and s.edge_index.size(1) == 2833 - 207
    assert float(s.signal.min()) >= 0 and abs(float(s.signal.mean()) - 58.89) < 0.01


# --------------------------------------------------------------------------- series tools
def test_windows_shapes_and_content():
    signal = torch.arange(20.0).view(10, 2)
    x, y = sliding_windows(signal, history=3, horizon=2)
    assert x.shape == (6, 3, 2) and y.shape == (6, 2, 2)
    assert torch.equal(x[1], signal[1:4]) and torch.equal(y[1], signal[4:6])
    x, y = sliding_windows(signal.unsqueeze(-1), 3, 2)
    assert x.shape == (6, 3, 2, 1)
    with pytest.raises(ValueError, match="too short"):
        sliding_windows(signal, 8, 3)


def test_scaler_uses_training_part_only():
    signal = torch.rand(100, 4) + 1
    train, val, test = chronological_split(100, (0.6, 0.2, 0.2))
    assert (train, val, test) == (slice(0, 60), slice(60, 80), slice(80, 100))
    a = StandardScaler().fit(signal[train])
    changed = signal.clone()
    changed[test] = 1000.0
    b = StandardScaler().fit(changed[train])
    assert (a.mean, a.std) == (b.mean, b.std)
    x = signal[:5]
    assert torch.allclose(a.inverse_transform(a.transform(x)), x)
    # Missing values (zeros) do not enter the statistics.
    with_zeros = torch.cat([signal[train], torch.zeros(10, 4)])
    c = StandardScaler().fit(with_zeros)
    assert c.mean == pytest.approx(a.mean)
    with pytest.raises(RuntimeError, match="not fitted"):
        StandardScaler().transform(x)
    with pytest.raises(ValueError, match="sum to 1"):
        chronological_split(10, (0.5, 0.2, 0.2))


def test_drop_observations():
    g = torch.Generator().manual_seed(0)
    keep = drop_observations(2000, 12, 0.7, g)
    assert keep.shape == (2000, 12) and keep.any(1).all()
    assert abs(keep.float().mean().item() - 0.3) < 0.02
    assert drop_observations(3, 4, 0.0).all()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_observations(3, 4, 1.0)


def test_masks_per_series_step_are_shared_by_overlapping_windows():
    g = torch.Generator().manual_seed(0)
    steps = drop_steps(500, 0.7, history=6, generator=g)
    assert steps.shape == (500,) and abs(steps.float().mean().item() - 0.3) < 0.06
    windows = window_masks(steps, 6, 3)
    assert windows.shape == (500 - 6 - 3 + 1, 6)
    assert windows.any(1).all()  # every window sees something
    # window k's step j is window k+1's step j-1: one draw per series step
    assert torch.equal(windows[1:, :-1], windows[:-1, 1:])
    assert torch.equal(windows[:, 0], steps[:len(windows)])
    readings = drop_readings(400, 7, 0.5, g)
    assert readings.shape == (400, 7) and abs(readings.float().mean().item() - 0.5) < 0.04
    per_node = window_masks(readings, 4, 2)
    assert per_node.shape == (400 - 5, 4, 7)
    assert torch.equal(per_node[1:, :-1], per_node[:-1, 1:])
    assert drop_steps(20, 0.0).all() and drop_readings(5, 3, 0.0).all()
    with pytest.raises(ValueError, match=r"missing probability must lie in \[0, 1\)"):
        drop_readings(3, 2, 1.0)
    with pytest.raises(ValueError, match=r"drop probability must lie in \[0, 1\)"):
        drop_steps(3, -0.1)


def test_drop_steps_restores_the_last_step_of_a_run_that_lost_them_all():
    # p close to 1: nearly every step dropped; each run of 4 still keeps one, its last
    steps = drop_steps(40, 0.999, history=4, generator=torch.Generator().manual_seed(1))
    assert steps.nonzero().flatten().tolist() == [3, 7, 11, 15, 19, 23, 27, 31, 35, 39]


def _dtw(a, b):
    """Dynamic time warping by its textbook double loop."""
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            acc[i, j] = abs(a[i - 1] - b[j - 1]) + min(acc[i - 1, j], acc[i, j - 1],
                                                       acc[i - 1, j - 1])
    return acc[-1, -1]


def test_dtw_distances_and_the_semantic_graph():
    torch.manual_seed(0)
    series = torch.randn(5, 7)
    dist = dtw_distances(series, chunk=3)  # pairs in chunks of 3
    expected = [[_dtw(series[i].numpy(), series[j].numpy()) for j in range(5)] for i in range(5)]
    assert np.allclose(dist.numpy(), expected)
    # a shifted copy is at distance 0 under warping, not under the plain L1 distance
    wave = torch.tensor([0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0])
    assert dtw_distances(torch.stack([wave, wave.roll(1)]))[0, 1] == 0
    # two families of daily profiles (a morning and an evening peak), 4 days of 6 steps
    day = torch.arange(6.0)
    morning, evening = (-(day - 1) ** 2).exp(), (-(day - 4) ** 2).exp()
    profiles = torch.stack([morning, morning * 1.1, morning * 0.9, evening, evening * 1.2,
                            evening * 0.8], 1)  # (6 steps, 6 nodes)
    signal = profiles.repeat(4, 1) + 1.0
    signal[3, 0] = 0.0  # a missing reading is left out of the means
    edge_index, weight = semantic_graph(signal, period=6, k=2)
    pairs = {tuple(e) for e in edge_index.T.tolist()}
    assert pairs == {(a, b) for group in ((0, 1, 2), (3, 4, 5)) for a in group for b in group
                     if a != b}
    assert torch.equal(weight, torch.ones(len(pairs)))
    with pytest.raises(ValueError, match="k must lie in 1..5"):
        semantic_graph(signal, period=6, k=6)
    with pytest.raises(ValueError, match="period must lie in"):
        semantic_graph(signal, period=100)


def test_chronological_split_rounds_down_as_pyg_temporal_does():
    from graphode.data import chronological_split
    # temporal_signal_split keeps int(0.8 * 31) = 24 windows for training, 7 for testing
    train, val, test = chronological_split(31, (0.7, 0.1, 0.2), floor=True)
    assert (train.stop, val.stop, test.stop) == (21, 24, 31)
    train, val, test = chronological_split(31, (0.7, 0.1, 0.2))
    assert (train.stop, val.stop, test.stop) == (22, 25, 31)
    # 0.7 + 0.1 is 0.7999999999999999: the tolerance keeps int(0.8 * 10) = 8
    assert chronological_split(10, (0.7, 0.1, 0.2), floor=True)[1].stop == 8
