"""Data parallelism with torch.distributed, as launched by ``torchrun``.

graphode keeps no global state, so a GDE model goes into
:class:`~torch.nn.parallel.DistributedDataParallel` like any other module, in every gradient
mode: the adjoint and checkpointed solves take the parameters as inputs of their autograd
functions, so their gradients land in ``.grad`` through the usual hooks and DDP all-reduces
them. These helpers do the bookkeeping around that::

    ctx = graphode.distributed.setup("cpu")        # reads torchrun's environment
    model = ctx.wrap(model)                         # DDP (or the model itself on one process)
    mine = ctx.shard(train_index)                   # this rank's share of the training nodes
    loss = ctx.loss_scale(len(train_index)) * F.cross_entropy(out[mine], y[mine], reduction="sum")

With ``loss_scale`` the all-reduced gradient is that of the mean loss over all training
nodes, so the ranks together take exactly the steps one process would take on the combined
data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Context", "setup", "teardown", "launched"]


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher that sets
    ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class Context:
    """Where this process stands: its ``rank`` among ``world_size`` and its ``device``."""
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0, the one process that prints, writes files and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, index: Tensor, equal: bool = False) -> Tensor:
        """This rank's share of ``index`` (every ``world_size``-th entry from ``rank``).
        ``equal=True`` first drops the last ``len(index) % world_size`` entries so that every
        rank gets as many: mini-batch loops need the same number of steps on every rank."""
        if equal:
            index = index[:index.numel() - index.numel() % self.world_size]
        return index[self.rank::self.world_size]

    def loss_scale(self, total: int) -> float:
        """The factor that turns a loss summed over this rank's share into its part of the
        mean over all ``total`` items, under DDP's gradient averaging."""
        return self.world_size / total

    def wrap(self, model: nn.Module, **kwargs) -> nn.Module:
        """``model`` in DistributedDataParallel when there are several processes; on one
        process, the model itself."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, **kwargs)

    def all_mean(self, value: float) -> float:
        """The mean of a number over the ranks (on one process, the number)."""
        if not self.distributed:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t) / self.world_size

    def _comm_device(self):
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def setup(device="cpu", backend=None) -> Context:
    """Join the process group torchrun describes in the environment: gloo for CPU, NCCL for
    CUDA, one GPU per local rank. Without torchrun, a one-process context on ``device``."""
    device = torch.device(device)
    if not launched():
        return Context(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"))
    return Context(rank=rank, world_size=world, device=device)


def teardown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
