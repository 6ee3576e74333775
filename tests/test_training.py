"""The library's training utilities, used directly: atomic checkpoints that load safely,
random state that round-trips, divergence checks and seeds that resume."""
import math
import random

import pytest
import torch

from graphode.training import (
    CheckpointError,
    CheckpointMismatch,
    TrainingDiverged,
    check_loss,
    load_checkpoint,
    rng_state,
    run_seeds,
    save_atomic,
    set_rng_state,
)


def test_a_checkpoint_round_trips_and_checks_its_settings(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"
    save_atomic({"config": {"lr": 0.01}, "w": torch.arange(3.0)}, path)
    assert torch.equal(load_checkpoint(path, {"lr": 0.01})["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary file left
    with pytest.raises(CheckpointMismatch, match="written with lr=0.01, but this run has lr=0.1"):
        load_checkpoint(path, {"lr": 0.1})
    with pytest.raises(FileNotFoundError, match="nothing to resume from"):
        load_checkpoint(tmp_path / "none.pt")


def test_unreadable_checkpoints_name_the_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_atomic({"config": {}, "w": torch.randn(50, 50)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} cannot be read"):
        load_checkpoint(path)


def test_random_state_round_trips():
    state = rng_state()
    a = (torch.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


@pytest.mark.parametrize("loss, problem", [(math.nan, "is not finite"), (1e9, "exploded past 1e+08")])
def test_check_loss(loss, problem):
    check_loss(0.5, epoch=3)
    with pytest.raises(TrainingDiverged, match="at epoch 3. Lower the learning rate") as err:
        check_loss(loss, epoch=3)
    assert err.value.epoch == 3 and err.value.problem == problem


def test_run_seeds_resumes_from_the_interrupted_seed(tmp_path):
    path = tmp_path / "runs.pt"
    calls = []

    def one(seed, saved, save):
        calls.append((seed, saved))
        save({"epoch": 1})
        if seed == 1 and saved is None:
            raise KeyboardInterrupt  # killed mid-way through seed 1
        return {"seed": seed}

    with pytest.raises(KeyboardInterrupt):
        run_seeds(range(3), one, checkpoint=path, config={"a": 1})
    runs = run_seeds(range(3), one, checkpoint=path, resume=True, config={"a": 1})
    assert runs == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert calls[2] == (1, {"epoch": 1})  # seed 1 continued from its saved state


def test_training_state_round_trips_model_optimizer_random_streams_and_progress():
    from graphode.training import restore_training_state, training_state
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    saved = training_state(model, opt, epoch=3, best=dict(val=0.5))
    draw = torch.rand(2)
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    progress = restore_training_state(saved, fresh, fresh_opt)
    assert progress == dict(epoch=3, best=dict(val=0.5))
    assert torch.equal(torch.rand(2), draw)  # the random streams continue where they were
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    assert fresh_opt.state_dict()["state"][0]["step"] == 1
    with pytest.raises(ValueError, match="rename the progress entries"):
        training_state(model, opt, model=1)
