"""The node classification example: a short run on the built-in synthetic graph."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import node_classification as nc  # noqa: E402

FIELDS = {"dataset", "model", "seeds", "test_acc_mean", "test_acc_std", "val_acc_mean", "epochs",
          "nfe_forward", "nfe_backward", "seconds_per_epoch", "world_size", "batch_size",
          "num_nodes", "peak_rss_mb"}


@pytest.mark.parametrize("model", ["gcn", "gcde", "cgnn"])
def test_loss_falls_in_five_epochs(model):
    args = nc.parse_args(["--dataset", "synthetic", "--model", model, "--epochs", "5"])
    data, name = nc.load(args)
    result = nc.run(args, data, int(data.y.max()) + 1, seed=0)
    assert name == "synthetic" and result["epochs"] == 5
    assert result["curves"]["loss"][-1] < result["curves"]["loss"][0]
    if model != "gcn":
        assert result["nfe_forward"] > 0


def test_script_writes_every_json_field(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "node_classification.py"),
                           "--dataset", "synthetic", "--model", "gcde", "--epochs", "5",
                           "--seeds", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert set(summary) == FIELDS
    assert summary["dataset"] == "synthetic" and summary["seeds"] == 2
    assert 0.0 <= summary["test_acc_mean"] <= 1.0 and summary["nfe_forward"] == 4  # one rk4 step
    assert "synthetic gcde: test accuracy" in proc.stdout


def test_method_flag_makes_the_solve_adaptive():
    args = nc.parse_args(["--model", "gcde", "--method", "dopri5"])
    assert args.step_size is None and args.method == "dopri5"
    assert nc.parse_args(["--model", "gcde"]).step_size == 1.0


def test_minibatches_of_sampled_neighbourhoods():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "4",
                          "--batch-size", "16", "--num-neighbors", "5,5"])
    data, _ = nc.load(args)
    result = nc.run(args, data, int(data.y.max()) + 1, seed=0)
    assert result["curves"]["loss"][-1] < result["curves"]["loss"][0]
    assert result["test"] > 0.5  # four classes: well above chance


def test_bad_flags_name_the_fix():
    with pytest.raises(SystemExit):
        nc.parse_args(["--num-neighbors", "ten"])
    with pytest.raises(SystemExit, match="torchrun"):
        nc.main(["--distributed", "--dataset", "synthetic"])


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(ROOT / "examples" / "node_classification.py"),
                           "--distributed", "--dataset", "synthetic", "--model", "gcde",
                           "--epochs", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 3
    assert proc.stdout.count("synthetic gcde: test accuracy") == 1  # rank 0 alone reports


def test_the_same_seed_gives_the_same_run():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "4",
                          "--batch-size", "64"])
    data, _ = nc.load(args)
    first, second = (nc.run(args, data, int(data.y.max()) + 1, seed=3) for _ in range(2))
    assert first["curves"] == second["curves"]
    for name, value in first["parameters"].items():
        assert torch.equal(value, second["parameters"][name]), name
    other = nc.run(args, data, int(data.y.max()) + 1, seed=4)
    assert other["curves"]["loss"] != first["curves"]["loss"]
