"""DistributedDataParallel over GDE models: two gloo processes on loopback, launched by
torchrun, end with the parameters one process reaches on the combined data."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from graphode import distributed

from .ddp_worker import MODES, train

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

ROOT = Path(__file__).resolve().parents[2]


def torchrun(args, tmp_path, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_two_ranks_match_one_process(tmp_path):
    run = torchrun([str(ROOT / "tests/distributed/ddp_worker.py"), str(tmp_path)], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    reference = {mode: train(distributed.Context(), mode) for mode in MODES}
    start = train(distributed.Context(), "autograd", steps=0)
    for mode in MODES:
        for name, value in reference[mode].items():
            a, b = ranks[0]["states"][mode][name], ranks[1]["states"][mode][name]
            assert torch.equal(a, b), f"{mode}: ranks disagree on {name}"
            torch.testing.assert_close(a, value, rtol=0, atol=1e-6, msg=f"{mode}: {name}")
            assert not torch.equal(value, start[name]), f"{mode}: {name} never moved"


def test_context_shards_cover_the_index():
    index = torch.arange(11)
    parts = [distributed.Context(rank=r, world_size=3).shard(index) for r in range(3)]
    assert torch.equal(torch.cat(parts).sort().values, index)
    equal = [distributed.Context(rank=r, world_size=3).shard(index, equal=True) for r in range(3)]
    assert {p.numel() for p in equal} == {3}
    assert distributed.Context(world_size=2).loss_scale(10) == pytest.approx(0.2)


def test_one_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup("cpu")
    model = torch.nn.Linear(2, 2)
    assert ctx.main and not ctx.distributed and ctx.wrap(model) is model
    assert ctx.all_mean(3.0) == 3.0
