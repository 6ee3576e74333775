"""ETH/UCY trajectories: the reader, windows and the constant-velocity baseline on tiny files."""
import sys
from pathlib import Path

import pytest
import torch

from graphode.data import DataFormatError, leave_one_out, load_eth_ucy, read_eth_ucy, scene_windows

ROOT = Path(__file__).resolve().parents[2]


def write_scene(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(" ".join(f"{v:g}" for v in r) for r in rows))


def walkers(frames=25):
    """Agent 1 walks along x at 0.5 m per step from frame 0; agent 2 joins at frame 30 and
    walks along y at 0.2 m per step; agent 3 stands still for frames 0-50 only."""
    rows = []
    for k in range(frames):
        f = 10 * k
        rows.append((f, 1, 0.5 * k, 0.0))
        if k >= 3:
            rows.append((f, 2, 1.0, 0.2 * (k - 3)))
        if k <= 5:
            rows.append((f, 3, 2.0, 2.0))
    return rows


def test_windows_hold_the_agents_present_throughout(tmp_path):
    write_scene(tmp_path, "walk.txt", walkers())
    rows = read_eth_ucy(tmp_path / "walk.txt")
    windows = scene_windows(rows, obs=3, pred=2)
    assert len(windows) == 25 - 5 + 1
    # windows 0 and 1 (frames 0-40, 10-50): agents 1 and 3; window 3 on: agents 1 and 2
    assert [w.size(0) for w in windows[:4]] == [2, 2, 1, 2]
    assert torch.allclose(windows[0][0, :, 0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(windows[3][1, :, 1], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    (tmp_path / "bad.txt").write_text("0 1 2.0\n")
    with pytest.raises(DataFormatError, match="4 finite columns"):
        read_eth_ucy(tmp_path / "bad.txt")


def test_constant_velocity_is_exact_on_straight_walks(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    import trajectories as tr
    folder = tmp_path / "trajectories" / "eth_ucy"
    write_scene(folder, "biwi_hotel.txt", walkers())
    scene = load_eth_ucy("hotel", tmp_path, obs=3, pred=2)
    args = tr.parse_args(["--root", str(tmp_path), "--obs", "3", "--pred", "2"])
    result = tr.evaluate(args, scene)
    assert result["ade"] < 1e-6 and result["fde"] < 1e-6
    args.model = "last"  # standing still: agent 1 is 0.5 and 1.0 m behind, agent 2 0.2, 0.4
    result = tr.evaluate(args, scene)
    assert result["fde"] > 0.3
    results, mean = tr.main(["--root", str(tmp_path), "--scenes", "hotel", "--obs", "3",
                             "--pred", "2"])
    assert mean["ade"] == pytest.approx(results["hotel"]["ade"])
    assert leave_one_out("eth") == (["hotel", "univ", "zara1", "zara2"], "eth")
    with pytest.raises(ValueError, match="scene must be one of"):
        load_eth_ucy("mall", tmp_path)
