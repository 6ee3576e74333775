"""Per-graph step control on a batch of 64 small graphs of mixed stiffness.

Each graph diffuses features on its own random graph at its own rate (rates spread over three
orders of magnitude), float64, dopri5 at rtol 1e-6. For every graph the benchmark compares its
answer inside the batch with its answer solved alone (batch drift), and with a tight reference
(error), for three solvers of the same batched ODE: graphode with per-graph steps, graphode
with one shared step, and torchdiffeq (one shared step). Time: forward + backward, alternating
with torchdiffeq in one run.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.per_graph
"""
from __future__ import annotations

import torch
import torchdiffeq
from torch_geometric.data import Batch, Data

import graphode
from benchmarks.common import CallCounter, bench_args, paired, write_results
from graphode.nn import GraphVectorField, LinearDiffusion


def mixed_graphs(count: int, channels: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(count):
        n = int(torch.randint(10, 40, (1,), generator=g))
        e = int(torch.randint(2 * n, 5 * n, (1,), generator=g))
        rate = 10 ** float(torch.rand(1, generator=g) * 3 - 1)
        graphs.append(Data(x=torch.randn(n, channels, generator=g, dtype=torch.float64),
                           edge_index=torch.randint(0, n, (2, e), generator=g),
                           edge_weight=torch.full((e,), rate, dtype=torch.float64)))
    return graphs


def field_for(data: Data) -> CallCounter:
    field = GraphVectorField(LinearDiffusion(data.x.size(1), weight=False)).double()
    field.bind(data.edge_index, data.edge_weight, data.num_nodes, torch.float64,
               torch.device("cpu"))
    return CallCounter(field)


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{"--graphs": dict(type=int, default=64)})
    graphs = mixed_graphs(args.graphs)
    batch = Batch.from_data_list(graphs)
    field = field_for(batch)
    x, t, tol = batch.x, torch.tensor([0.0, 1.0], dtype=torch.float64), dict(rtol=1e-6, atol=1e-8)
    solvers = {
        "graphode per-graph": lambda f, y, b: graphode.solve(f, y, t, per_graph=b, **tol).ys[-1],
        "graphode shared": lambda f, y, b: graphode.solve(f, y, t, **tol).ys[-1],
        "torchdiffeq shared": lambda f, y, b: torchdiffeq.odeint(f, y, t, **tol)[-1],
    }
    with torch.no_grad():
        reference = graphode.solve(field, x, t, rtol=1e-12, atol=1e-14).ys[-1]
        alone = {name: [] for name in solvers}
        for data in graphs:
            f = field_for(data)
            zero = torch.zeros(data.num_nodes, dtype=torch.long)
            for name, solver in solvers.items():
                alone[name].append(solver(f, data.x, zero))
    rows = []
    for name, solver in solvers.items():
        with torch.no_grad():
            nfe = field.count(lambda: solver(field, x, batch.batch))
            out = solver(field, x, batch.batch)
        drift = max(float((out[batch.ptr[i]:batch.ptr[i + 1]] - a).abs().max())
                    for i, a in enumerate(alone[name]))
        rows.append({"solver": name, "nfe": nfe, "drift_vs_alone": drift,
                     "max_error": float((out - reference).abs().max())})

    def per_graph():
        graphode.solve(field, x.requires_grad_(), t, per_graph=batch.batch, **tol).ys[-1].sum().backward()

    def baseline():
        torchdiffeq.odeint(field, x.requires_grad_(), t, **tol)[-1].sum().backward()

    timing = paired(per_graph, baseline, reps=args.reps)
    rows[0].update(timing)
    write_results("per_graph", rows, ["solver", "nfe", "drift_vs_alone", "max_error", "ratio",
                                      "ms_graphode", "ms_baseline"])
    return rows


if __name__ == "__main__":
    main()
