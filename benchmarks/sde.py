"""Graph SDE solves against torchsde: the same SDE object, method and step on both sides.

A Cora-sized graph SDE: 2,708 nodes and 64 channels, the drift ``tanh(GCNConv(64, 64))`` on
Cora's graph (a random graph of its size when the data are not found), and the diagonal
diffusion ``softplus(s) * tanh(y)``. t runs over [0, 1] with dt = 0.05, forward and backward
(the loss is the sum of the final state). Each library draws from its own Brownian motion, as a
user would call it: torchsde's ``BrownianInterval`` and graphode's ``BrownianMotion``.

The ``--layer-methods`` rows time the user-level path: graphode's ``GraphSDE`` layer (drift
``tanh(GCNConv)``, a constant diagonal diffusion ``softplus(s)``), which binds the graph
once per solve into a sparse operator, against torchsde solving the same drift and diffusion
with the same ``GCNConv`` module called by PyG (``cached=True``). With them comes one more row,
the floor for any solver calling PyG's ``GCNConv``: the same Euler-Maruyama solve as a plain
PyTorch loop (no solver library), against torchsde.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python -m benchmarks.sde
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchsde
from torch_geometric.nn import GCNConv

import graphode
from benchmarks.common import bench_args, cora_graph, paired, write_results
from graphode.nn import GraphSDE as GraphSDELayer


class GraphSDE(torch.nn.Module):
    noise_type = "diagonal"

    def __init__(self, edge_index, channels, sde_type):
        super().__init__()
        self.sde_type = sde_type
        self.conv = GCNConv(channels, channels, cached=True)
        self.edge_index = edge_index
        self.s = torch.nn.Parameter(torch.full((channels,), -2.0))

    def f(self, t, y):
        return torch.tanh(self.conv(y, self.edge_index))

    def g(self, t, y):
        return F.softplus(self.s) * torch.tanh(y)


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{
        "--methods": dict(nargs="+", default=["euler", "milstein", "srk", "midpoint",
                                              "reversible_heun", "adjoint", "backsolve"]),
        "--layer-methods": dict(nargs="*", default=["euler", "midpoint"])})
    device = args.device
    edge_index, graph = cora_graph()
    edge_index = edge_index.to(device)
    n, channels, dt = int(edge_index.max()) + 1, 64, 0.05
    x = torch.randn(n, channels, device=device)
    ts = torch.tensor([0.0, 1.0], device=device)
    rows = []
    for name in args.methods:
        # "adjoint": reversible Heun's exact adjoint; "backsolve": the midpoint backsolve
        # adjoint of a midpoint solve, on both sides
        method = {"adjoint": "reversible_heun", "backsolve": "midpoint"}.get(name, name)
        adjoint = {"adjoint": "adjoint_reversible_heun", "backsolve": "midpoint"}.get(name)
        sde_type = "ito" if method in ("euler", "milstein", "srk") else "stratonovich"
        sde = GraphSDE(edge_index, channels, sde_type).to(device)
        levy = "space-time" if method == "srk" else None

        def ours():
            y = x.clone().requires_grad_(True)
            if adjoint is not None:
                out = graphode.sdeint_adjoint(sde, y, ts, method=method, dt=dt,
                                              adjoint_method=adjoint)
            else:
                out = graphode.sdeint(sde, y, ts, method=method, dt=dt)
            out[-1].sum().backward()

        def base():
            y = x.clone().requires_grad_(True)
            bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, channels), device=device,
                                           levy_area_approximation=levy or "none")
            if adjoint is not None:
                out = torchsde.sdeint_adjoint(sde, y, ts, bm=bm, method=method, dt=dt,
                                              adjoint_method=adjoint)
            else:
                out = torchsde.sdeint(sde, y, ts, bm=bm, method=method, dt=dt)
            out[-1].sum().backward()

        timing = paired(ours, base, reps=args.reps, warmup=1, device=device)
        label = {"adjoint": "reversible_heun, adjoint",
                 "backsolve": "midpoint, backsolve adjoint"}.get(name, f"{method}, autograd")
        rows.append({"workload": f"{label}, {graph}", "graphode": "sdeint",
                     "baseline": f"torchsde {torchsde.__version__}", **timing})
    for method in args.layer_methods:
        rows.append(layer_row(method, edge_index, n, channels, dt, x, ts, graph, args))
    if args.layer_methods:
        rows.append(plain_loop_row(edge_index, n, channels, dt, x, ts, graph, args))
    write_results(f"sde_{device.type}", rows,
                  ["workload", "graphode", "baseline", "ratio", "ratio_min", "ratio_max",
                   "ms_graphode", "ms_baseline"])
    return rows


class LayerTerms(torch.nn.Module):
    """The GraphSDE layer's drift and diffusion, called the PyG way for torchsde."""
    noise_type = "diagonal"

    def __init__(self, layer, edge_index, sde_type):
        super().__init__()
        self.layer, self.edge_index, self.sde_type = layer, edge_index, sde_type

    def f(self, t, y):
        return torch.tanh(self.layer.field.layers[0](y, self.edge_index))

    def g(self, t, y):
        return F.softplus(self.layer.noise).expand_as(y)


def gcn_layer(channels, dt, device, **kwargs):
    return GraphSDELayer([GCNConv(channels, channels, cached=True), torch.nn.Tanh()],
                         "constant", channels=channels, noise_scale=0.13, dt=dt,
                         **kwargs).to(device)


def torchsde_solve(terms, x, ts, n, channels, method, dt, device):
    """The baseline of the layer rows: torchsde's solve of the layer's terms, forward and
    backward, on a fresh Brownian interval."""
    def base():
        y = x.clone().requires_grad_(True)
        bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, channels), device=device)
        torchsde.sdeint(terms, y, ts, bm=bm, method=method, dt=dt)[-1].sum().backward()
    return base


LAYER_BASELINE = f"torchsde {torchsde.__version__} + PyG GCNConv(cached=True)"


def layer_row(method, edge_index, n, channels, dt, x, ts, graph, args):
    device = args.device
    sde_type = "ito" if method in ("euler", "milstein", "srk") else "stratonovich"
    layer = gcn_layer(channels, dt, device, method=method, sde_type=sde_type)
    terms = LayerTerms(layer, edge_index, sde_type)

    def ours():
        y = x.clone().requires_grad_(True)
        layer(y, edge_index).sum().backward()

    base = torchsde_solve(terms, x, ts, n, channels, method, dt, device)
    timing = paired(ours, base, reps=args.reps, warmup=1, device=device)
    return {"workload": f"GraphSDE layer, {method}, autograd, {graph}", "graphode": "GraphSDE",
            "baseline": LAYER_BASELINE, **timing}


def plain_loop_row(edge_index, n, channels, dt, x, ts, graph, args):
    """The floor for any solver that calls PyG's ``GCNConv``: the layer rows' Euler-Maruyama
    solve written as a plain PyTorch loop (the same field, the same number of normal draws,
    no solver library), against torchsde."""
    device = args.device
    terms = LayerTerms(gcn_layer(channels, dt, device), edge_index, "ito")
    steps = round(float(ts[-1] - ts[0]) / dt)

    def loop():
        y = x.clone().requires_grad_(True)
        h = y
        for _ in range(steps):
            h = h + dt * terms.f(None, h) + terms.g(None, h) * torch.randn_like(h) * dt ** 0.5
        h.sum().backward()

    base = torchsde_solve(terms, x, ts, n, channels, "euler", dt, device)
    timing = paired(loop, base, reps=args.reps, warmup=1, device=device)
    return {"workload": f"plain PyTorch loop (no solver), euler, autograd, {graph}",
            "graphode": "none: PyG GCNConv(cached=True) in a for loop",
            "baseline": LAYER_BASELINE, **timing}


if __name__ == "__main__":
    main()
