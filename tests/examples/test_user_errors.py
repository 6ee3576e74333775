"""A user's mistakes end an example at once, before any training, with one clear line and
exit code 2: no traceback, no results lost after a long run, no empty folders left behind,
and no code run from a crafted checkpoint."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {name: str(ROOT / "examples" / f"{name}.py")
           for name in ("node_classification", "traffic_forecasting", "graph_classification")}
FAST = {"node_classification": ["--dataset", "synthetic", "--model", "gcn"],
        "traffic_forecasting": ["--dataset", "Los-loop"],
        "graph_classification": ["--dataset", "MUTAG"]}


def run(script, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, SCRIPTS[script], *FAST[script], *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})), cwd=cwd)


def refused(result, *words):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # progress bars share stderr: the error is the one line that says so
    lines = [part for line in result.stderr.splitlines() for part in line.split("\r")]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    last = errors[0]
    for word in words:
        assert word in last, last
    return last


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("flag, value, words", [
    ("--epochs", "0", ["--epochs must be at least 1, got 0"]),
    ("--seeds", "0", ["--seeds must be at least 1"]),
    ("--hidden", "0", ["--hidden must be at least 1"]),
    ("--json", "{tmp}/missing/out.json", ["--json", "does not exist"]),
    ("--plot", "{tmp}/missing/out.png", ["--plot", "does not exist"]),
    ("--json", "{tmp}", ["is a folder"]),
])
def test_bad_arguments_are_refused_before_training(script, flag, value, words, tmp_path):
    refused(run(script, flag, value.format(tmp=tmp_path)), *words)


def test_a_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    # root writes anywhere, so the folder's permission is what os.access reports
    sys.path.insert(0, str(ROOT / "examples"))
    import node_classification as nc

    import _common
    monkeypatch.setattr(_common.os, "access", lambda path, mode: False)
    with pytest.raises(SystemExit) as exit_:
        nc.parse_args(["--json", str(tmp_path / "out.json")])
    assert exit_.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_cuda_without_cuda_is_refused(script):
    refused(run(script, "--device", "cuda"), "--device cuda", "no CUDA device")


def test_plot_without_matplotlib_is_refused_before_training(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    import importlib.util

    import node_classification as nc
    real = importlib.util.find_spec
    try:
        importlib.util.find_spec = lambda name, *a: None if name == "matplotlib" else real(name, *a)
        with pytest.raises(SystemExit) as exit_:
            nc.parse_args(["--plot", str(tmp_path / "curves.png")])
    finally:
        importlib.util.find_spec = real
    assert exit_.value.code == 2


@pytest.mark.parametrize("script, dataset", [("node_classification", "CiteSeer"),
                                             ("graph_classification", "MUTAG"),
                                             ("traffic_forecasting", "Los-loop")])
def test_missing_data_is_one_line_and_leaves_no_folders(script, dataset, tmp_path):
    """Offline and without data: one line naming the places searched and the fix."""
    empty = tmp_path / "empty"
    empty.mkdir()
    before = sorted(p for p in (ROOT / "datasets").rglob("*"))
    args = ["--dataset", dataset, "--root", str(empty)]
    result = subprocess.run([sys.executable, SCRIPTS[script], *args], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path,
                            env=dict(os.environ, GRAPHODE_DATA=str(empty),
                                     http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
                                     HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9"))
    refused(result, "not found", "GRAPHODE_DATA")
    assert sorted(p for p in (ROOT / "datasets").rglob("*")) == before


def test_the_fallback_to_the_synthetic_graph_keeps_the_hint(tmp_path, monkeypatch, capsys):
    """With no dataset asked for and no Cora, the run goes on on a synthetic graph, and says
    how to point it at the data (a relative GRAPHODE_DATA is shown resolved, not ignored)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import node_classification as nc

    from graphode.data import load_planetoid
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(nc, "load_planetoid",
                        lambda *a, **k: load_planetoid(*a, download=False, **k))
    monkeypatch.setenv("GRAPHODE_DATA", "relative/nowhere")
    _, name = nc.load(nc.parse_args(["--root", str(empty)]))
    said = capsys.readouterr().out
    assert name == "synthetic"
    assert "set GRAPHODE_DATA=DIR" in said
    assert "GRAPHODE_DATA=relative/nowhere is not a folder" in said


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("kind", ["crafted", "truncated", "not a dict"])
def test_checkpoints_load_safely_and_name_the_file(kind, tmp_path):
    path = tmp_path / "ckpt.pt"
    if kind == "crafted":
        torch.save({"config": {}, "payload": _Exploit()}, path)
    elif kind == "truncated":
        torch.save({"config": {}, "model": {"w": torch.randn(100, 100)}}, path)
        path.write_bytes(path.read_bytes()[:500])
    else:
        torch.save([1, 2, 3], path)
    result = run("node_classification", "--checkpoint", str(path), "--resume", cwd=tmp_path)
    last = refused(result, str(path))
    assert not (tmp_path / "pwned.txt").exists()
    assert "checkpoint" in last
