"""Per-graph step control on a batch of 64 small graphs of mixed stiffness.

Each graph diffuses features on its own random undirected graph at its own rate,
``dX/dt = -rate (I - A_hat) X`` (rates from 0.1 to 100, so spectral radii from about 0.2 to
200), float64, dopri5 at rtol 1e-6. For every graph the benchmark compares its
answer inside the batch with its answer solved alone (batch drift), and with a tight reference
(error), for the solvers of the same batched ODE: graphode with per-graph steps, graphode with one
shared step, torchdiffeq (one shared step) and, where installed, torchode (per-sample steps:
the graphs padded to a dense batch, with an error norm over each graph's real nodes only, so
that it controls the same error as graphode). Time: forward + backward, alternating with
torchdiffeq, then with torchode, in one run.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.per_graph
"""
from __future__ import annotations

import torch
import torchdiffeq
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_undirected

import graphode
from benchmarks.common import CallCounter, bench_args, paired, write_results
from graphode.nn import GraphVectorField, LinearDiffusion


def mixed_graphs(count: int, channels: int = 8, seed: int = 0, decades=(-1.0, 2.0),
                 directed: bool = False):
    """Random undirected graphs (``directed``: the random edges as drawn), each with its
    diffusion rate (``Data.rate``, one per node) drawn log-uniformly between
    ``10 ** decades[0]`` and ``10 ** decades[1]``."""
    g = torch.Generator().manual_seed(seed)
    low, high = decades
    graphs = []
    for _ in range(count):
        n = int(torch.randint(10, 40, (1,), generator=g))
        e = int(torch.randint(2 * n, 5 * n, (1,), generator=g))
        rate = 10 ** float(torch.rand(1, generator=g) * (high - low) + low)
        edges = torch.randint(0, n, (2, e), generator=g)
        graphs.append(Data(x=torch.randn(n, channels, generator=g, dtype=torch.float64),
                           edge_index=edges if directed else to_undirected(edges, num_nodes=n),
                           rate=torch.full((n, 1), rate, dtype=torch.float64)))
    return graphs


class RatedDiffusion(torch.nn.Module):
    """``dX/dt = -rate (I - A_hat) X`` with each node's graph's own rate. (The rate cannot
    ride on the edge weights: the GCN normalisation divides it out.)"""

    def __init__(self, field: GraphVectorField, rate: torch.Tensor):
        super().__init__()
        self.field, self.rate = field, rate

    def forward(self, t, x):
        return self.rate * self.field(t, x)


def field_for(data: Data) -> CallCounter:
    field = GraphVectorField(LinearDiffusion(data.x.size(1), weight=False)).double()
    field.bind(data.edge_index, None, data.num_nodes, torch.float64, torch.device("cpu"))
    return CallCounter(RatedDiffusion(field, data.rate))


def torchode_per_graph(tol):
    """``solve(field, x, batch) -> y(1)``: torchode's dopri5 with one step size per graph."""
    import torchode
    from torch_geometric.utils import to_dense_batch

    def solve(field, x, batch):
        dense, mask = to_dense_batch(x, batch)
        shape = dense.shape
        real = mask.unsqueeze(-1).expand(shape).reshape(shape[0], -1).to(x.dtype)
        count = real.sum(1)

        def f(s, y):
            out = torch.zeros(shape, dtype=y.dtype, device=y.device)
            out[mask] = field(s[0], y.view(shape)[mask])
            return out.view(shape[0], -1)

        term = torchode.ODETerm(f)
        norm = lambda e: (e.pow(2).mul(real).sum(1) / count).sqrt()  # noqa: E731
        controller = torchode.IntegralController(term=term, norm=norm, **tol)
        solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), controller)
        t_eval = torch.tensor([[0.0, 1.0]], dtype=x.dtype).expand(shape[0], 2)
        sol = solver.solve(torchode.InitialValueProblem(y0=dense.reshape(shape[0], -1),
                                                        t_eval=t_eval))
        return sol.ys[:, -1].view(shape)[mask]
    return solve


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
    try:
        solvers["torchode per-graph"] = torchode_per_graph(tol)
    except ImportError:
        print("torchode is not installed (pip install -c constraints.txt torchode): its row is "
              "left out")
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

    # Each baseline row holds its time against graphode's per-graph solve, alternating:
    # ratio = graphode per-graph / that row's solver.
    rows[2].update(paired(per_graph, baseline, reps=args.reps))
    if "torchode per-graph" in solvers:
        def torchode():
            solvers["torchode per-graph"](field, x.requires_grad_(), batch.batch).sum().backward()
        rows[3].update(paired(per_graph, torchode, reps=args.reps))
    write_results("per_graph", rows, ["solver", "nfe", "drift_vs_alone", "max_error", "ratio",
                                      "ms_graphode", "ms_baseline"])
    return rows


if __name__ == "__main__":
    main()
