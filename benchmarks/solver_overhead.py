"""Solver overhead on a Cora-sized field: graphode's drop-in odeint against torchdiffeq.

Same field object, same weights, same tableau and tolerances on both sides; forward + backward,
alternating in one run. The field is ``tanh(GCNConv(64, 64, cached=True))`` on a random graph
of Cora's size (2,708 nodes, 10,556 edges), so only the solvers differ.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.solver_overhead
"""
from __future__ import annotations

import torch
import torchdiffeq
from torch_geometric.nn import GCNConv

import graphode
from benchmarks.common import CallCounter, bench_args, paired, random_graph, write_results


class TanhGCN(torch.nn.Module):
    def __init__(self, channels: int, edge_index: torch.Tensor):
        super().__init__()
        self.conv = GCNConv(channels, channels, cached=True)
        self.edge_index = edge_index

    def forward(self, t, h):
        return torch.tanh(self.conv(h, self.edge_index))


def main(argv=None) -> list:
    args = bench_args(__doc__, argv)
    device = args.device
    edge_index = random_graph(2708, 10556).to(device)
    field = CallCounter(TanhGCN(64, edge_index)).to(device)
    x = torch.randn(2708, 64, device=device)
    t = torch.tensor([0.0, 1.0], device=device)
    cases = [
        ("rk4, 10 steps, autograd", "odeint", dict(method="rk4", options=dict(step_size=0.1))),
        ("dopri5 rtol 1e-3, autograd", "odeint", dict(method="dopri5", rtol=1e-3, atol=1e-4)),
        ("dopri5 rtol 1e-3, adjoint", "odeint_adjoint", dict(method="dopri5", rtol=1e-3, atol=1e-4)),
    ]
    with torch.no_grad():
        reference = torchdiffeq.odeint(field, x, t, method="dopri5", rtol=1e-9, atol=1e-9)[-1]
    rows = []
    for name, api, kw in cases:
        ours_api, base_api = getattr(graphode, api), getattr(torchdiffeq, api)

        def ours():
            getattr(graphode, api)(field, x.requires_grad_(), t, **kw)[-1].sum().backward()

        def base():
            base_api(field, x.requires_grad_(), t, **kw)[-1].sum().backward()

        timing = paired(ours, base, reps=args.reps, device=device)
        with torch.no_grad():
            err_ours = (ours_api(field, x, t, **kw)[-1] - reference).abs().max().item()
            err_base = (base_api(field, x, t, **kw)[-1] - reference).abs().max().item()
        rows.append({"workload": name, **timing, "nfe_graphode": field.count(ours),
                     "nfe_baseline": field.count(base), "err_graphode": err_ours,
                     "err_baseline": err_base})
    write_results(f"solver_overhead_{device.type}", rows,
                  ["workload", "ratio", "ratio_min", "ratio_max", "ms_graphode", "ms_baseline",
                   "nfe_graphode", "nfe_baseline", "err_graphode", "err_baseline"])
    return rows


if __name__ == "__main__":
    main()
