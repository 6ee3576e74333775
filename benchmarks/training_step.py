"""A GDE training step on a Cora-sized graph: GDEConv against torchdiffeq, as users write it.

Model: Linear(1433, 64) encoder, a GDE block with field tanh(GCNConv(64, 64)), Linear(64, 7)
decoder, cross-entropy on 140 labelled nodes; dopri5 at rtol 1e-3 / atol 1e-4 with the adjoint,
and rk4 with 10 fixed steps with autograd. Baselines: torchdiffeq over a plain GCNConv field
with PyG's defaults (normalisation recomputed at every evaluation) and with cached=True. The
same weights on every side; graphode also runs with precompute=False to isolate the gain of
building the graph operator once per solve. Gradient error: max |g - g_ref| / max |g_ref| over
all parameters, against torchdiffeq autograd at rtol = atol = 1e-9.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.training_step
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
import torchdiffeq
from torch_geometric.nn import GCNConv

from benchmarks.common import bench_args, paired, random_graph, write_results
from graphode.nn import GDEConv


class Field(torch.nn.Module):
    def __init__(self, conv, edge_index):
        super().__init__()
        self.conv, self.edge_index, self.calls = conv, edge_index, 0

    def forward(self, t, h):
        self.calls += 1
        return torch.tanh(self.conv(h, self.edge_index))


class TorchdiffeqModel(torch.nn.Module):
    def __init__(self, enc, conv, dec, edge_index, adjoint, solver):
        super().__init__()
        self.enc, self.dec, self.field = enc, dec, Field(conv, edge_index)
        self.odeint = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        self.solver = solver

    def forward(self, x):
        h = self.enc(x)
        t = torch.tensor([0.0, 1.0], device=x.device)
        return self.dec(self.odeint(self.field, h, t, **self.solver)[-1])


class GraphodeModel(torch.nn.Module):
    def __init__(self, enc, conv, dec, edge_index, gradient, solver, precompute=True):
        super().__init__()
        self.enc, self.dec, self.edge_index = enc, dec, edge_index
        self.gde = GDEConv([conv, torch.nn.Tanh()], gradient=gradient, precompute=precompute,
                           **solver)

    def forward(self, x):
        return self.dec(self.gde(self.enc(x), self.edge_index))


def step(model, x, y, mask):
    model.zero_grad()
    loss = F.cross_entropy(model(x)[mask], y[mask])
    loss.backward()
    return loss


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def main(argv=None) -> list:
    args = bench_args(__doc__, argv)
    device = args.device
    n, e = 2708, 10556
    edge_index = random_graph(n, e).to(device)
    x = torch.randn(n, 1433, device=device)
    y = torch.randint(0, 7, (n,), device=device)
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[:140] = True
    enc, dec = torch.nn.Linear(1433, 64).to(device), torch.nn.Linear(64, 7).to(device)
    conv = GCNConv(64, 64).to(device)

    def parts(cached=False):
        c = GCNConv(64, 64, cached=cached).to(device)
        c.load_state_dict(conv.state_dict())
        return copy.deepcopy(enc), c, copy.deepcopy(dec)

    reference = TorchdiffeqModel(*parts(), edge_index, False,
                                 dict(method="dopri5", rtol=1e-9, atol=1e-9))
    step(reference, x, y, mask)
    g_ref = grads(reference)

    cases = {
        "dopri5 rtol 1e-3, adjoint": ("adjoint", True, dict(method="dopri5", rtol=1e-3, atol=1e-4)),
        "rk4 10 steps, autograd": ("autograd", False, dict(method="rk4", options=dict(step_size=0.1))),
    }
    rows = []
    for name, (gradient, adjoint, solver) in cases.items():
        ours_solver = dict(method=solver["method"], rtol=solver.get("rtol", 1e-3),
                           atol=solver.get("atol", 1e-4),
                           step_size=solver.get("options", {}).get("step_size"))
        ours = GraphodeModel(*parts(), edge_index, gradient, ours_solver)
        ours_plain = GraphodeModel(*parts(), edge_index, gradient, ours_solver, precompute=False)
        for label, cached in (("PyG default", False), ("cached=True", True)):
            base = TorchdiffeqModel(*parts(cached), edge_index, adjoint, solver)
            timing = paired(lambda: step(ours, x, y, mask), lambda: step(base, x, y, mask),
                            reps=args.reps, device=device)
            step(ours, x, y, mask)
            err_ours = ((grads(ours) - g_ref).abs().max() / g_ref.abs().max()).item()
            nfe_f, nfe_b = ours.gde.stats.nfe, ours.gde.stats.nfe_backward
            base.field.calls = 0
            step(base, x, y, mask)
            err_base = ((grads(base) - g_ref).abs().max() / g_ref.abs().max()).item()
            rows.append({"workload": name, "baseline": f"torchdiffeq, GCNConv {label}", **timing,
                         "nfe_graphode": f"{nfe_f}+{nfe_b}", "nfe_baseline": base.field.calls,
                         "grad_err_graphode": err_ours, "grad_err_baseline": err_base})
        timing = paired(lambda: step(ours, x, y, mask), lambda: step(ours_plain, x, y, mask),
                        reps=args.reps, device=device)
        rows.append({"workload": name, "baseline": "graphode, precompute=False", **timing,
                     "nfe_graphode": f"{nfe_f}+{nfe_b}", "nfe_baseline": "same"})
    write_results(f"training_step_{device.type}", rows,
                  ["workload", "baseline", "ratio", "ratio_min", "ratio_max", "ms_graphode",
                   "ms_baseline", "nfe_graphode", "nfe_baseline", "grad_err_graphode",
                   "grad_err_baseline"])
    return rows


if __name__ == "__main__":
    main()
