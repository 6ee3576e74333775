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
                           "--folds", "3", "--hidden", "8", "--json", str(out)] + extra,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert FIELDS <= set(summary) and summary["folds"] == 3
    assert 0.0 <= summary["acc_mean"] <= 1.0
    assert (summary["nfe_forward"] > 0) == (summary["model"] != "gin")
    assert "PTC_MR" in proc.stdout and "accuracy" in proc.stdout
