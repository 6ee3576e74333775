"""The graph classification example: 2-epoch runs on tiny TU-format files."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..data.test_tu import write_tu

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"dataset", "model", "folds", "acc_mean", "acc_std", "nfe_forward", "nfe_backward",
          "seconds_per_epoch"}


@pytest.mark.parametrize("extra", [["--model", "gin"], ["--model", "gde"],
                                   ["--model", "gde", "--per-graph-steps"], ["--model", "gde-gin"],
                                   ["--model", "gde-gin", "--per-graph-steps"]])
def test_two_epochs_write_every_field(tmp_path, extra):
    root = write_tu(tmp_path / "root", graphs=30)
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "graph_classification.py"),
                           "--root", str(root), "--dataset", "PTC_MR", "--epochs", "2",
                           "--folds", "3", "--hidden", "8", "--grid", "lr=0.01",
                           "--final-runs", "1", "--json", str(out)] + extra,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert FIELDS <= set(summary) and summary["folds"] == 3
    assert 0.0 <= summary["acc_mean"] <= 1.0
    assert (summary["nfe_forward"] > 0) == (summary["model"] != "gin")
    assert "PTC_MR" in proc.stdout and "accuracy" in proc.stdout


def test_gin_protocol_still_runs(tmp_path):
    root = write_tu(tmp_path / "root", graphs=30)
    sys.path.insert(0, str(ROOT / "examples"))
    import graph_classification as gc
    summary = gc.main(["--root", str(root), "--dataset", "PTC_MR", "--epochs", "3", "--folds",
                       "3", "--hidden", "8", "--model", "gin", "--protocol", "gin"])
    assert summary["protocol"] == "gin" and 1 <= summary["best_epoch"] <= 3


def test_errica_protocol_never_looks_at_the_test_folds(tmp_path, monkeypatch):
    root = write_tu(tmp_path / "root", graphs=30)
    sys.path.insert(0, str(ROOT / "examples"))
    import graph_classification as gc

    from graphode.data import load_tu, stratified_folds

    calls, scored = [], []
    train, accuracy = gc.train, gc.accuracy

    def recording_train(args, dataset, train_idx, watch_idx, seed):
        calls.append((args.lr, set(train_idx.tolist()), set(watch_idx.tolist())))
        return train(args, dataset, train_idx, watch_idx, seed)

    def recording_accuracy(model, loader, device):
        scored.append(frozenset(int(i) for i in loader.dataset.indices()))
        return accuracy(model, loader, device)

    monkeypatch.setattr(gc, "train", recording_train)
    monkeypatch.setattr(gc, "accuracy", recording_accuracy)
    summary = gc.main(["--root", str(root), "--dataset", "PTC_MR", "--epochs", "3", "--folds",
                       "3", "--hidden", "8", "--model", "gin", "--grid", "lr=0.01,0.001",
                       "--final-runs", "2"])
    dataset = load_tu("PTC_MR", str(root))
    folds = stratified_folds(dataset._data.y, 3, 0)
    assert len(calls) == 3 * (2 + 2)  # per fold: two configurations, two final runs
    for k, (tr, te) in enumerate(folds):
        test = set(te.tolist())
        for _, trained, watched in calls[4 * k:4 * k + 4]:
            # the model trains and is watched inside the training fold only
            assert not trained & test and not watched & test and watched <= set(tr.tolist())
            assert not trained & watched
        # the final runs use the configuration of best validation accuracy
        assert {calls[4 * k + 2][0], calls[4 * k + 3][0]} == {summary["chosen"][k]["lr"]}
    # in its fold, the test fold is scored once per final run and never otherwise: per fold
    # 2 configurations x 3 epochs of validation, then 2 final runs x (3 epochs + the test)
    assert len(scored) == 3 * 14
    for k, (_, te) in enumerate(folds):
        test, chunk = frozenset(te.tolist()), scored[14 * k:14 * k + 14]
        assert chunk.count(test) == 2 and chunk[9] == chunk[13] == test
        assert all(not (s & test) for s in chunk if s != test)
    assert summary["configurations"] == 2 and len(summary["fold_acc"]) == 3
    assert summary["acc_mean"] == pytest.approx(sum(summary["fold_acc"]) / 3)


@pytest.mark.parametrize("grid, message", [("lr=", "is not name=v1,v2"),
                                           ("layers=2,3", "is not name=v1,v2"),
                                           ("hidden=1.5", "not an integer")])
def test_bad_grids_are_refused(grid, message, capsys):
    sys.path.insert(0, str(ROOT / "examples"))
    import graph_classification as gc
    with pytest.raises(SystemExit):
        gc.parse_args(["--grid", grid])
    assert message in capsys.readouterr().err
