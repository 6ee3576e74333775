"""Scaling: time per function evaluation against edge count, graphode against torchdiffeq.

Contextual-SBM graphs of 10^4 to 10^6 nodes with mean degree 10 (up to 10M directed edges);
the field is ``tanh(GCNConv(16, 16))``; rk4 with 4 fixed steps over [0, 1] (16 evaluations),
forward only. graphode's ``GDEConv`` normalises the adjacency once per solve; torchdiffeq's
``odeint`` calls the same layer with ``cached=True``, as its best users do. Both compute the
same thing: the table gives their largest difference. Writes ``results/scaling_<device>.*``
and a log-log plot ``results/scaling_<device>.png`` (with matplotlib installed).

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python -m benchmarks.scaling
"""
from __future__ import annotations

import copy

import torch
import torchdiffeq
from torch_geometric.nn import GCNConv

from benchmarks.common import (
    RESULTS,
    CallCounter,
    bench_args,
    paired,
    pyplot,
    results_name,
    write_results,
)
from graphode.data import large_contextual_sbm
from graphode.nn import GDEConv

CHANNELS, STEP = 16, 0.25


class TanhGCN(torch.nn.Module):
    def __init__(self, conv: GCNConv, edge_index: torch.Tensor):
        super().__init__()
        self.conv, self.edge_index = conv, edge_index

    def forward(self, t, h):
        return torch.tanh(self.conv(h, self.edge_index))


def measure(num_nodes: int, reps: int, device: torch.device) -> dict:
    data = large_contextual_sbm(num_nodes, num_features=CHANNELS, avg_degree=10.0)
    edge_index, x = data.edge_index.to(device), data.x.to(device)
    conv = GCNConv(CHANNELS, CHANNELS).to(device)
    ours = GDEConv([conv, torch.nn.Tanh()], t_span=(0.0, 1.0), method="rk4", step_size=STEP,
                   gradient="autograd").to(device)
    cached = copy.deepcopy(conv)
    cached.cached = True
    theirs = CallCounter(TanhGCN(cached, edge_index)).to(device)
    t = torch.tensor([0.0, 1.0], device=device)

    def graphode_solve():
        return ours(x, edge_index)

    def torchdiffeq_solve():
        return torchdiffeq.odeint(theirs, x, t, method="rk4", options=dict(step_size=STEP))[-1]

    with torch.no_grad():
        a, b = graphode_solve(), torchdiffeq_solve()
        nfe_ours, nfe_theirs = ours.stats.nfe, theirs.count(torchdiffeq_solve)
        timing = paired(graphode_solve, torchdiffeq_solve, reps=reps, warmup=1, device=device)
    edges = edge_index.size(1)
    return {"nodes": num_nodes, "edges": edges, "nfe_graphode": nfe_ours,
            "nfe_torchdiffeq": nfe_theirs,
            "ms_per_fe_graphode": timing["ms_graphode"] / nfe_ours,
            "ms_per_fe_torchdiffeq": timing["ms_baseline"] / nfe_theirs,
            "ns_per_fe_per_edge": timing["ms_graphode"] / nfe_ours / edges * 1e6,
            "ratio": timing["ratio"], "ratio_min": timing["ratio_min"],
            "ratio_max": timing["ratio_max"], "max_difference": float((a - b).abs().max())}


def plot(rows, path) -> None:
    plt = pyplot()
    if plt is None:
        return
    edges = [r["edges"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(edges, [r["ms_per_fe_graphode"] for r in rows], "o-", label="graphode")
    ax.loglog(edges, [r["ms_per_fe_torchdiffeq"] for r in rows], "s--", label="torchdiffeq")
    scale = rows[0]["ms_per_fe_graphode"] / edges[0]
    ax.loglog(edges, [scale * e for e in edges], ":", color="gray", label="linear in edges")
    ax.set(xlabel="edges", ylabel="ms per function evaluation",
           title=f"tanh(GCNConv({CHANNELS}, {CHANNELS})), rk4")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{"--nodes": dict(
        type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
        help="graph sizes (mean degree 10)")})
    rows = []
    for n in args.nodes:
        rows.append(measure(n, max(2, args.reps // (1 if n < 500_000 else 5)), args.device))
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()})
    name = f"scaling_{args.device.type}"
    write_results(name, rows, ["nodes", "edges", "nfe_graphode", "nfe_torchdiffeq",
                               "ms_per_fe_graphode", "ms_per_fe_torchdiffeq",
                               "ns_per_fe_per_edge", "ratio", "ratio_min", "ratio_max",
                               "max_difference"])
    plot(rows, RESULTS / f"{results_name(name)}.png")
    return rows


if __name__ == "__main__":
    main()
