"""Training that loses nothing: a run killed mid-way and resumed from its checkpoint ends
exactly as an uninterrupted one; a diverging run stops, names the epoch and keeps the last
good checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "examples" / "node_classification.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")
ARGS = ["--dataset", "synthetic", "--model", "gcde", "--epochs", "40", "--patience", "100",
        "--seeds", "2"]


def launch(*extra):
    return subprocess.Popen([sys.executable, SCRIPT, *ARGS, *extra], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_epoch(path):
    try:
        state = torch.load(path, weights_only=False)
    except (FileNotFoundError, EOFError, RuntimeError):
        return -1
    current = state["current"]["state"]["epoch"] if state["current"] else 0
    return 40 * len(state["runs"]) + current


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, resumed = tmp_path / "whole.json", tmp_path / "resumed.json"
    ckpt_whole, ckpt = tmp_path / "whole.pt", tmp_path / "run.pt"
    reference = launch("--json", str(whole), "--checkpoint", str(ckpt_whole))
    victim = launch("--checkpoint", str(ckpt))
    deadline = time.monotonic() + 300
    # Kill during the first seed's training, hard, as a power cut or OOM killer would.
    while saved_epoch(ckpt) < 3 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = saved_epoch(ckpt)
    assert 3 <= killed_at < 80
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]
    proc = subprocess.run([sys.executable, SCRIPT, *ARGS, "--checkpoint", str(ckpt), "--resume",
                           "--json", str(resumed)], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = json.loads(whole.read_text()), json.loads(resumed.read_text())
    for key in ("test_acc_mean", "test_acc_std", "val_acc_mean", "epochs", "nfe_forward"):
        assert a[key] == b[key], key
    runs_a = torch.load(ckpt_whole, weights_only=False)["runs"]
    runs_b = torch.load(ckpt, weights_only=False)["runs"]
    for ra, rb in zip(runs_a, runs_b):
        assert ra["curves"] == rb["curves"]
        for name, value in ra["parameters"].items():
            assert torch.equal(value, rb["parameters"][name]), name


def test_resume_refuses_other_settings(tmp_path):
    ckpt = tmp_path / "run.pt"
    first = subprocess.run([sys.executable, SCRIPT, "--dataset", "synthetic", "--model", "gcn",
                            "--epochs", "2", "--checkpoint", str(ckpt)], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([sys.executable, SCRIPT, "--dataset", "synthetic", "--model", "gcn",
                            "--epochs", "2", "--lr", "0.5", "--checkpoint", str(ckpt),
                            "--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0
    assert "written with lr=0.01, but this run has lr=0.5" in again.stderr


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    # An absurd learning rate wrecks the parameters in the first step: epoch 2 has a NaN loss.
    proc = subprocess.run([sys.executable, SCRIPT, "--dataset", "synthetic", "--model", "gcn",
                           "--epochs", "5", "--lr", "1e30", "--checkpoint", str(ckpt)], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "the training loss is not finite (nan) at epoch 2" in proc.stderr
    assert "--lr" in proc.stderr and "--step-size" in proc.stderr
    state = torch.load(ckpt, weights_only=False)
    assert state["current"]["state"]["epoch"] == 1


def test_resume_needs_a_checkpoint():
    sys.path.insert(0, str(ROOT / "examples"))
    import node_classification as nc
    with pytest.raises(SystemExit):
        nc.parse_args(["--resume"])
