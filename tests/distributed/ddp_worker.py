"""Run by torchrun from test_ddp.py (and imported by it for the one-process reference): a few
SGD steps of a small GDE model, each rank on its share of the training nodes."""
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCNConv

from graphode import distributed
from graphode.data import contextual_sbm
from graphode.nn import GDEConv

MODES = ("autograd", "adjoint", "checkpoint")


class Model(nn.Module):
    def __init__(self, gradient):
        super().__init__()
        self.encoder = nn.Linear(8, 16)
        self.gde = GDEConv([GCNConv(16, 16), nn.Tanh()], t_span=(0.0, 1.0), method="rk4",
                           step_size=0.25, gradient=gradient)
        self.decoder = nn.Linear(16, 4)

    def forward(self, x, edge_index):
        return self.decoder(self.gde(torch.relu(self.encoder(x)), edge_index))


def train(ctx, gradient, steps=3):
    """The parameters after ``steps`` SGD steps on the mean loss over the training nodes."""
    torch.manual_seed(0)
    data = contextual_sbm(num_nodes=120, num_features=8, train_per_class=10)
    data.x = data.x.double()
    model = ctx.wrap(Model(gradient).double())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train_index = data.train_mask.nonzero().view(-1)
    mine = ctx.shard(train_index)
    for _ in range(steps):
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        loss = F.cross_entropy(out[mine], data.y[mine], reduction="sum")
        (ctx.loss_scale(train_index.numel()) * loss).backward()
        opt.step()
    module = model.module if ctx.distributed else model
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


if __name__ == "__main__":
    out = sys.argv[1]
    ctx = distributed.setup("cpu")
    states = {mode: train(ctx, mode) for mode in MODES}
    torch.save(dict(world_size=ctx.world_size, states=states), f"{out}/rank{ctx.rank}.pt")
    distributed.teardown()
