"""The traffic forecasting example: short runs on a small series written in the T-GCN format."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import traffic_forecasting as tf  # noqa: E402

HORIZONS = {"15min", "30min", "45min", "60min"}


@pytest.fixture
def root(tmp_path):
    """A 240-step, 5-sensor ring of daily-like speed waves, as Los-loop files."""
    folder = tmp_path / "traffic" / "Los-loop"
    folder.mkdir(parents=True)
    n, steps = 5, 240
    rows = [",".join(str(100 + i) for i in range(n))]
    for t in range(steps):
        rows.append(",".join(f"{50 + 10 * math.sin(2 * math.pi * (t - 3 * i) / 48):.3f}"
                             for i in range(n)))
    (folder / "los_speed.csv").write_text("\n".join(rows))
    adj = [[1 if abs(i - j) in (0, 1, n - 1) else 0 for j in range(n)] for i in range(n)]
    (folder / "los_adj.csv").write_text("\n".join(",".join(map(str, r)) for r in adj))
    return tmp_path


@pytest.mark.parametrize("model", ["gru", "gcgru", "gde-gru", "gru-d", "stg-ncde"])
def test_short_training_beats_the_average(root, model):
    args = tf.parse_args(["--root", str(root), "--model", model, "--epochs", "8", "--history", "6",
                          "--hidden", "16", "--batch-size", "8", "--lr", "0.01"])
    series, scaler, splits = tf.prepare(args)
    ha = tf.run(tf.parse_args(["--root", str(root), "--model", "ha", "--history", "6"]),
                series, scaler, splits, seed=0)
    result = tf.run(args, series, scaler, splits, seed=0)
    assert set(result["metrics"]) == HORIZONS and result["epochs"] == 8
    # Eight epochs beat the history's average on a smooth wave, 15 minutes ahead.
    assert result["metrics"]["15min"]["mae"] < ha["metrics"]["15min"]["mae"]


def test_latent_gde_fits_its_elbo_and_extrapolates(root):
    base = ["--root", str(root), "--model", "latent-gde", "--history", "6", "--hidden", "16",
            "--batch-size", "8", "--lr", "0.01"]
    args = tf.parse_args(base + ["--epochs", "1"])
    assert args.loss == "elbo"
    series, scaler, splits = tf.prepare(args)
    early = tf.run(args, series, scaler, splits, seed=0)
    late = tf.run(tf.parse_args(base + ["--epochs", "8"]), series, scaler, splits, seed=0)
    ha = tf.run(tf.parse_args(["--root", str(root), "--model", "ha", "--history", "6"]),
                series, scaler, splits, seed=0)
    # training raises the test part's bound on the log-likelihood (per z-scored reading)
    assert late["elbo"] > early["elbo"] and math.isfinite(late["elbo"])
    # and the extrapolated path beats the history's average 15 minutes ahead
    assert late["metrics"]["15min"]["mae"] < ha["metrics"]["15min"]["mae"]
    with pytest.raises(SystemExit):
        tf.parse_args(base + ["--loss", "mae"])
    with pytest.raises(SystemExit):
        tf.parse_args(["--model", "gru", "--loss", "elbo"])


@pytest.mark.parametrize("flag", ["--drop-prob", "--missing-prob"])
def test_one_mask_for_the_series_shared_by_overlapping_windows(root, flag):
    args = tf.parse_args(["--root", str(root), flag, "0.5", "--history", "6"])
    series, scaler, splits = tf.prepare(args)
    for part in splits.values():
        mask = part.mask
        assert mask.shape[:2] == part.x.shape[:2]
        assert mask.dim() == (2 if flag == "--drop-prob" else 3)
        assert torch.equal(mask[1:, :-1], mask[:-1, 1:])  # window k+1 is window k moved on
        # what was not observed is not shown: the scaled mean (0) in its place
        hidden = ~mask if mask.dim() == 3 else (~mask).unsqueeze(-1).expand(part.x.shape[:3])
        assert (part.x[..., 0][hidden] == 0).all() and (part.x[..., 0][~hidden] != 0).any()
        assert 0.3 < mask.float().mean() < 0.8
    # and the same draw on every call (every model and seed sees the same observations)
    _, _, again = tf.prepare(args)
    assert torch.equal(again["test"].mask, splits["test"].mask)
    with pytest.raises(SystemExit):
        tf.parse_args(["--root", str(root), flag, "1.0"])


@pytest.mark.parametrize("model", ["gru", "gru-d", "stg-ncde", "stgode", "gde-gru", "last",
                                   "latent-gde"])
def test_models_run_on_missing_readings(root, model):
    args = tf.parse_args(["--root", str(root), "--model", model, "--epochs", "1", "--history", "6",
                          "--hidden", "8", "--missing-prob", "0.5"])
    series, scaler, splits = tf.prepare(args)
    result = tf.run(args, series, scaler, splits, seed=0)
    assert all(math.isfinite(m["mae"]) for m in result["metrics"].values())


def test_persistence_scores_the_last_snapshot(root):
    from graphode.metrics import masked_mae
    results = {}
    for model in ("ha", "last"):
        args = tf.parse_args(["--root", str(root), "--model", model, "--history", "6"])
        series, scaler, splits = tf.prepare(args)
        results[model] = tf.run(args, series, scaler, splits, seed=0)["metrics"]["15min"]["mae"]
    test = splits["test"]
    last = scaler.inverse_transform(test.x[:, -1, :, 0])  # the last input snapshot, in mph
    assert results["last"] == pytest.approx(float(masked_mae(last, test.y[:, 2])), rel=1e-5)
    # on a smooth wave the last snapshot beats the window's mean 15 minutes ahead
    assert results["last"] < results["ha"]


def test_script_writes_every_json_field(root, tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "traffic_forecasting.py"),
                           "--root", str(root), "--model", "gde-gru", "--epochs", "2",
                           "--history", "6", "--hidden", "8", "--drop-prob", "0.7",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert {"dataset", "model", "split", "metrics", "seconds_per_epoch"} <= set(summary)
    assert set(summary["metrics"]) == set(summary["metrics_pooled"]) == HORIZONS
    # The 15-minute step alone is harder than the first three steps pooled.
    assert summary["metrics_pooled"]["15min"]["rmse"] < summary["metrics"]["15min"]["rmse"]
    assert all(set(m) == {"mae", "rmse", "mape"} for m in summary["metrics"].values())
    assert summary["dataset"] == "Los-loop" and summary["drop_prob"] == 0.7
    assert "Los-loop gde-gru" in proc.stdout and "15min MAE" in proc.stdout


def test_time_of_day_channels(root):
    args = tf.parse_args(["--root", str(root), "--history", "6", "--time-of-day"])
    series, _, splits = tf.prepare(args)
    x = splits["train"].x
    assert x.shape[-1] == 3
    # sine and cosine of the daily phase, the same at every sensor, 288 steps per day
    phase = torch.atan2(x[:, :, 0, 1], x[:, :, 0, 2])
    step = torch.remainder(phase[:, 1:] - phase[:, :-1], 2 * math.pi)
    torch.testing.assert_close(step, torch.full_like(step, 2 * math.pi / 288))
    assert torch.equal(x[..., 1:], x[:, :, :1, 1:].expand_as(x[..., 1:]))
    plain = tf.prepare(tf.parse_args(["--root", str(root), "--history", "6"]))[2]
    assert torch.equal(plain["train"].x[..., 0], x[..., 0])


def test_gde_sde_trains_on_crps_and_reports_its_intervals(root, tmp_path):
    out = tmp_path / "out.json"
    summary = tf.main(["--root", str(root), "--model", "gde-sde", "--epochs", "6",
                       "--history", "6", "--hidden", "16", "--batch-size", "8", "--lr", "0.01",
                       "--eval-samples", "32", "--json", str(out)])
    assert json.loads(out.read_text()) == summary
    prob = summary["probabilistic"]
    assert set(prob) == HORIZONS
    args = tf.parse_args(["--root", str(root), "--model", "ha", "--history", "6"])
    ha = tf.run(args, *tf.prepare(args), seed=0)
    for h, row in prob.items():
        assert set(row) == {"crps", "coverage50", "width50", "coverage90", "width90"}
        # nested intervals: the 90% one is wider and covers more
        assert row["width90"] > row["width50"] > 0 and row["coverage90"] >= row["coverage50"]
        # a point forecast's CRPS is its absolute error: the samples beat the history's
        # average taken as a point forecast, and so does their median
        assert 0 < row["crps"] < ha["metrics"][h]["mae"]
        assert summary["metrics"][h]["mae"] < ha["metrics"][h]["mae"]
    # the spread grows with the horizon: the noise accumulates along the path
    assert prob["60min"]["width90"] > prob["15min"]["width90"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "gde-sde", "--loss", "mae"], "--loss crps"),
    (["--model", "gde-gru", "--loss", "crps"], "--loss crps"),
    (["--model", "gde-sde", "--samples", "1"], "at least 2"),
    (["--model", "gde-sde", "--noise-scale", "0"], "--noise-scale"),
])
def test_gde_sde_flags_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit):
        tf.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_losses_and_time_of_day_train(root, loss):
    args = tf.parse_args(["--root", str(root), "--model", "gcgru", "--epochs", "3", "--history", "6",
                          "--hidden", "8", "--batch-size", "8", "--loss", loss, "--time-of-day"])
    series, scaler, splits = tf.prepare(args)
    result = tf.run(args, series, scaler, splits, seed=0)
    assert math.isfinite(result["metrics"]["15min"]["rmse"])


def test_torchrun_two_processes(root, tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(ROOT / "examples" / "traffic_forecasting.py"),
                           "--distributed", "--root", str(root), "--model", "gde-gru",
                           "--epochs", "2", "--history", "6", "--hidden", "8", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["world_size"] == 2
    assert proc.stdout.count("Los-loop gde-gru") == 1  # rank 0 alone reports


class Killed(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run(root, tmp_path, monkeypatch):
    import graphode.training

    base = ["--root", str(root), "--model", "gcgru", "--history", "6", "--hidden", "8",
            "--batch-size", "8", "--epochs", "4", "--patience", "50", "--seeds", "2"]
    whole = tf.main(base)
    ckpt = str(tmp_path / "run.pt")
    write = graphode.training.save_atomic

    def dies_after_epoch_2_of_seed_1(state, path):
        write(state, path)
        current = state["current"]
        if current and current["seed"] == 1 and current["state"]["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(graphode.training, "save_atomic", dies_after_epoch_2_of_seed_1)
    with pytest.raises(Killed):
        tf.main(base + ["--checkpoint", ckpt])
    monkeypatch.undo()
    torch.manual_seed(12345)  # whatever the process drew since, the checkpoint decides
    resumed = tf.main(base + ["--checkpoint", ckpt, "--resume"])
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["epochs"] == whole["epochs"] == 4


def test_divergence_stops_with_the_epoch(root, tmp_path):
    ckpt = tmp_path / "run.pt"
    # An absurd learning rate: the loss explodes after the first step, before any epoch ends.
    with pytest.raises(SystemExit, match=r"the training loss exploded past 1e\+08 \(.*\) at "
                                         r"epoch 1\. Lower --lr"):
        tf.main(["--root", str(root), "--model", "gcgru", "--history", "6", "--hidden", "8",
                 "--batch-size", "8", "--epochs", "3", "--lr", "1e30", "--checkpoint", str(ckpt)])
    assert not ckpt.exists()  # no epoch finished, so no checkpoint claims one did


# --------------------------------------------------------------- PyTorch Geometric Temporal's sets
PYGT_FILES = {"pedalme": "pedalme_london.json", "england-covid": "england_covid.json",
              "montevideo-bus": "montevideo_bus.json"}


@pytest.fixture
def temporal_root(tmp_path):
    """Tiny files in the three JSON forms of PyTorch Geometric Temporal: 40 steps of counts
    (zeros among them, which are readings) on a 4-node ring."""
    folder = tmp_path / "temporal"
    folder.mkdir()
    steps, n = 40, 4
    counts = [[(3 * t + 7 * i) % 5 for i in range(n)] for t in range(steps)]
    edges = [[i, (i + 1) % n] for i in range(n)] + [[(i + 1) % n, i] for i in range(n)]
    (folder / PYGT_FILES["pedalme"]).write_text(json.dumps(
        {"edges": edges, "weights": [1.0] * len(edges), "X": counts}))
    (folder / PYGT_FILES["england-covid"]).write_text(json.dumps(
        {"time_periods": steps, "y": counts,
         "edge_mapping": {"edge_index": {str(t): edges for t in range(steps)},
                          "edge_weight": {str(t): [1.0 + t % 3] * len(edges)
                                          for t in range(steps)}}}))
    (folder / PYGT_FILES["montevideo-bus"]).write_text(json.dumps(
        {"directed": True,
         "nodes": [{"id": 100 + i, "y": [row[i] for row in counts]} for i in range(n)],
         "links": [{"source": 100 + a, "target": 100 + b, "weight": 2.0} for a, b in edges]}))
    return tmp_path, torch.tensor(counts, dtype=torch.float32)


@pytest.mark.parametrize("dataset, lags", [("pedalme", 4), ("england-covid", 8),
                                           ("montevideo-bus", 4)])
def test_pyg_temporal_sets_are_read_and_split_as_its_loaders_do(temporal_root, dataset, lags):
    root, counts = temporal_root
    args = tf.parse_args(["--root", str(root), "--dataset", dataset, "--model", "last"])
    assert (args.history, args.horizon, args.split_on) == (lags, 1, "windows")
    series, scaler, splits = tf.prepare(args)
    assert series.missing is None  # zero counts are readings
    # temporal_signal_split(train_ratio=0.8) on the T - lags windows: the same test windows
    windows = counts.size(0) - lags
    first = int(0.8 * windows)
    assert len(splits["test"]) == windows - first
    assert len(splits["train"]) + len(splits["val"]) == first
    torch.testing.assert_close(splits["test"].y[:, 0], counts[lags + first:])
    # the scaler saw the steps of the training windows alone, zeros included
    train_steps = counts[:len(splits["train"]) + lags]
    assert scaler.mean == pytest.approx(float(train_steps.double().mean()), rel=1e-6)
    # persistence scored by hand on every reading, zeros included
    result = tf.run(args, series, scaler, splits, seed=0)
    last = counts[lags + first - 1:-1]
    assert result["metrics"]["step1"]["mae"] == pytest.approx(
        float((last - counts[lags + first:]).abs().mean()), rel=1e-5)
    # and on PyTorch Geometric Temporal's scale: z-scored per node over the whole series
    # for england-covid and montevideo-bus, as stored for pedalme
    scale = counts.std(0, unbiased=False) if dataset != "pedalme" else torch.ones(4)
    expected = float((((last - counts[lags + first:]) / scale) ** 2).mean())
    assert result["mse_pyg_temporal"]["step1"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("dataset", ["pedalme", "england-covid", "montevideo-bus"])
def test_models_train_on_pyg_temporal_sets(temporal_root, dataset, tmp_path):
    root, _ = temporal_root
    out = tmp_path / "out.json"
    summary = tf.main(["--root", str(root), "--dataset", dataset, "--model", "gde-gru",
                       "--epochs", "2", "--hidden", "8", "--json", str(out)])
    assert set(summary["metrics"]) == set(summary["mse_pyg_temporal"]) == {"step1"}
    assert math.isfinite(summary["metrics"]["step1"]["rmse"])
    assert json.loads(out.read_text())["split_on"] == "windows"


def test_a_part_without_a_window_is_refused(temporal_root):
    root, _ = temporal_root
    args = tf.parse_args(["--root", str(root), "--dataset", "pedalme", "--split-on", "series"])
    with pytest.raises(SystemExit, match="validation part .* holds no window"):
        tf.prepare(args)


def test_dynamic_graph_gives_each_step_its_own_day(temporal_root, tmp_path):
    root, _ = temporal_root
    args = tf.parse_args(["--root", str(root), "--dataset", "england-covid", "--model",
                          "gde-gru", "--dynamic-graph", "--epochs", "2", "--hidden", "8"])
    series, scaler, splits = tf.prepare(args)
    series.device_snapshots = series.snapshots
    test = splits["test"]
    graphs = tf.step_graphs(series, test.start[:2], args.history)
    assert len(graphs) == args.history == 8
    for k, (ei, ew) in enumerate(graphs):  # the file's day t has weights 1 + t % 3
        first, second = int(test.start[0]) + k, int(test.start[1]) + k
        assert ew.tolist() == [1.0 + first % 3] * 8 + [1.0 + second % 3] * 8
        assert int(ei[:, 8:].min()) >= 4  # the second window's nodes come second
    # the window of test.start[0] is the one whose targets follow its history
    assert torch.equal(test.y[0, 0], series.signal[int(test.start[0]) + args.history])
    result = tf.run(args, series, scaler, splits, seed=0)
    assert math.isfinite(result["metrics"]["step1"]["mae"])
    with pytest.raises(SystemExit):
        tf.parse_args(["--root", str(root), "--dataset", "england-covid", "--model", "gru",
                       "--dynamic-graph"])
    with pytest.raises(SystemExit, match="one fixed graph"):
        tf.prepare(tf.parse_args(["--root", str(root), "--dataset", "pedalme", "--model",
                                  "gde-gru", "--dynamic-graph"]))
