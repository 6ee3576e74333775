"""The depth example: Dirichlet energy of the flows against the end time."""
import sys
from pathlib import Path

import pytest
import torch

from graphode.metrics import dirichlet_energy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import depth  # noqa: E402


def test_dirichlet_energy_by_hand():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # the path 0 - 1 - 2, both ways
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert float(dirichlet_energy(x, edge_index)) == pytest.approx((1 + 1 + 4 + 4) / 3)
    assert float(dirichlet_energy(torch.ones(3, 4), edge_index)) == 0.0


def test_a_diffusion_oversmooths_and_the_energy_is_recorded(tmp_path):
    result = depth.main(["--energy", "--dataset", "synthetic", "--models", "grand-l",
                         "graphcon --alpha 0", "--hidden", "8", "--json",
                         str(tmp_path / "out.json")])
    energy = result["energy"]
    assert energy["times"][0] == 0.5 and energy["times"][-1] == 64
    grand = energy["relative_energy"]["grand-l"]
    assert all(b < a for a, b in zip(grand, grand[1:])) and grand[-1] < 1e-3
    assert len(energy["relative_energy"]["graphcon --alpha 0"]) == len(energy["times"])
    assert (tmp_path / "out.json").exists()


def test_bad_arguments_are_refused_before_any_work(capsys):
    import pytest
    with pytest.raises(SystemExit):
        depth.main(["--energy", "--models", "no-such-model"])
    with pytest.raises(SystemExit):
        depth.main(["--dataset", "synthetic"])  # neither --energy nor --accuracy
    assert "choose --energy" in capsys.readouterr().err


def test_the_accuracy_search_reads_validation_only():
    result = depth.main(["--accuracy", "--search", "--dataset", "synthetic", "--models",
                         "graphcon --activation identity --epochs 2 --hidden 8 --num-nodes 200",
                         "--t-ends", "1", "2", "--seeds", "1"])
    rows = result["accuracy"]["rows"]["graphcon --activation identity --epochs 2 --hidden 8 "
                                      "--num-nodes 200"]
    assert result["accuracy"]["search"] and [r["t_end"] for r in rows] == [1, 2]
    assert all(r["test"] is None and 0.0 <= r["val"] <= 1.0 for r in rows)
    assert [r["nfe_forward"] for r in rows] == [1, 2]  # one coupling evaluation per step
    with pytest.raises(SystemExit):
        depth.main(["--energy", "--search"])


def test_a_diverged_training_run_is_recorded_and_the_sweep_goes_on():
    result = depth.main(["--accuracy", "--search", "--dataset", "synthetic", "--models",
                         "mlp --epochs 2 --hidden 8 --num-nodes 200 --lr 1e12",
                         "mlp --epochs 2 --hidden 8 --num-nodes 200", "--t-ends", "1",
                         "--seeds", "1"])
    rows = result["accuracy"]["rows"]
    assert "exploded" in rows["mlp --epochs 2 --hidden 8 --num-nodes 200 --lr 1e12"][0]["diverged"]
    assert 0.0 <= rows["mlp --epochs 2 --hidden 8 --num-nodes 200"][0]["val"] <= 1.0
