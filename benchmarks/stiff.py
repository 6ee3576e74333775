"""Stiff graph diffusion: ``method="auto"`` and the implicit methods against dopri5.

``dX/dt = -k (I - A_hat) X`` on Cora's graph (GCN normalisation with self-loops; a random
graph of Cora's size when the data are not found), 8 channels, t in [0, 1], rtol 1e-4,
atol 1e-6, forward solves. The eigenvalues reach about ``-2k``, so dopri5 is held at the
stability limit while the solution itself is smooth after a short transient. The error is
measured against the exact solution from the eigendecomposition of ``A_hat``.

Rows: ``auto`` and graphode's dopri5 against torchdiffeq's dopri5; the implicit methods
against graphode's dopri5 (``kvaerno5`` on the field as a plain module, its stage systems
solved by Newton-GMRES with finite-difference products; ``kvaerno5`` and ``trbdf2`` on the
same diffusion built from ``LinearDiffusion(rate=k)``, whose stages are one CG solve with
the sparse operator; ``expm``, the exact flow of that diffusion by a Chebyshev series of the
operator), and torchdiffeq's ``implicit_adams`` on a fixed step beside them. NFE counts every
field evaluation, every Jacobian-vector product and every operator product.

A second workload (``results/stiff_mixed_<device>``): the batch of 64 small graphs of
benchmarks/per_graph.py with diffusion rates from 10^0 to 10^4, float64, 8 channels, rtol 1e-4,
atol 1e-6, t in [0, 1], forward solves: per-graph ``auto`` (each graph switches to RKC on its
own) and ``rkc`` against per-graph dopri5, and the shared-step solves beside them; "drift vs
alone" is the largest change of a graph's answer between the batch and its solve alone,
"alone, nudged" the largest change of a graph's answer alone when its input is multiplied by
1 + 1e-15 (how far round-off alone moves it), and the error is against a tight solve.
``--directed`` draws random directed graphs instead, whose complex spectra RKC is not built
for (``results/stiff_mixed_directed_<device>``).

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.stiff [--workloads cora mixed]
"""
from __future__ import annotations

import torch
import torchdiffeq
from torch_geometric.data import Batch
from torch_geometric.utils import add_self_loops, degree

import graphode
from benchmarks.common import CallCounter, bench_args, cora_graph, paired, write_results
from benchmarks.per_graph import field_for, mixed_graphs
from graphode.nn import GraphVectorField, LinearDiffusion


class Heat(torch.nn.Module):
    def __init__(self, adjacency: torch.Tensor, rate: float):
        super().__init__()
        self.adjacency, self.rate = adjacency, rate

    def forward(self, t, x):
        return -self.rate * (x - torch.sparse.mm(self.adjacency, x))


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{
        "--rates": dict(type=float, nargs="+", default=[1e2, 1e3, 1e4]),
        "--adams-step": dict(type=float, default=0.01, help="torchdiffeq implicit_adams step"),
        "--workloads": dict(nargs="+", choices=["cora", "mixed"], default=["cora", "mixed"]),
        "--graphs": dict(type=int, default=64, help="graphs in the mixed batch"),
        "--directed": dict(action="store_true", help="mixed batch: random directed graphs "
                           "(complex spectra) instead of undirected ones")})
    rows = cora(args) if "cora" in args.workloads else []
    if "mixed" in args.workloads:
        rows += mixed(args)
    return rows


def mixed(args) -> list:
    """Per-graph ``auto`` and ``rkc`` on a batch of graphs of mixed stiffness."""
    device = args.device
    graphs = [g.to(device) for g in mixed_graphs(args.graphs, decades=(0.0, 4.0),
                                                 directed=args.directed)]
    batch = Batch.from_data_list(graphs)
    field = field_for(batch)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    kw = dict(rtol=1e-4, atol=1e-6, max_steps=10 ** 6)

    def run(method, per_graph, f=field, x=batch.x, b=batch.batch):
        return lambda: graphode.solve(f, x, t, method=method,
                                      per_graph=b if per_graph else None, **kw)
    with torch.no_grad():
        reference = graphode.solve(field, batch.x, t, method="dopri5", rtol=1e-10,
                                   atol=1e-12, max_steps=10 ** 7).ys[-1]
        baseline = run("dopri5", True)
        base_sol = baseline()
        rows = []
        for name, method, per_graph in (("per-graph auto", "auto", True),
                                        ("per-graph rkc", "rkc", True),
                                        ("per-graph dopri5", "dopri5", True),
                                        ("shared auto", "auto", False),
                                        ("shared dopri5", "dopri5", False)):
            sol = run(method, per_graph)()
            drift = sensitivity = 0.0
            for i, g in enumerate(graphs):
                one = torch.zeros(g.num_nodes, dtype=torch.long, device=device)
                alone = run(method, per_graph, field_for(g), g.x, one)().ys[-1]
                nudged = run(method, per_graph, field_for(g), g.x * (1 + 1e-15), one)().ys[-1]
                nodes = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
                drift = max(drift, float((sol.ys[-1][nodes] - alone).abs().max()))
                sensitivity = max(sensitivity, float((nudged - alone).abs().max()))
            timing = paired(lambda: run(method, per_graph)().ys, lambda: baseline().ys,
                            reps=args.reps, warmup=1, device=device)
            rows.append({"solver": name, "baseline": "per-graph dopri5", **timing,
                         "nfe_graphode": sol.stats.nfe, "nfe_baseline": base_sol.stats.nfe,
                         "switched": len({g for g, _, m in sol.stats.graph_switches
                                          if m == "rkc"}) if per_graph else "",
                         "drift_vs_alone": drift, "alone_nudged_1e-15": sensitivity,
                         "rel_err": float((sol.ys[-1] - reference).norm() / reference.norm())})
    write_results(f"stiff_mixed{'_directed' if args.directed else ''}_{device.type}", rows,
                  ["solver", "baseline", "ratio", "ratio_min", "ratio_max", "ms_graphode",
                   "ms_baseline", "nfe_graphode", "nfe_baseline", "switched", "drift_vs_alone",
                   "alone_nudged_1e-15", "rel_err"])
    return rows


def cora(args) -> list:
    """Stiff diffusion on Cora (the module's first workload)."""
    device = args.device
    edge_index, graph = cora_graph()
    n = int(edge_index.max()) + 1
    ei, _ = add_self_loops(edge_index, num_nodes=n)
    d = degree(ei[0], n, dtype=torch.float64)
    w = d[ei[0]].rsqrt() * d[ei[1]].rsqrt()
    dense = torch.zeros(n, n, dtype=torch.float64)
    dense.index_put_((ei[1], ei[0]), w, accumulate=True)
    adjacency = dense.to_sparse_csr().to(device)
    evals, evecs = torch.linalg.eigh(dense)  # exact solutions: A_hat is symmetric
    x0 = torch.randn(n, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    kw = dict(rtol=1e-4, atol=1e-6)
    rows = []
    for rate in args.rates:
        exact = evecs @ (torch.exp(-rate * (1.0 - evals))[:, None] * (evecs.T @ x0))
        field = CallCounter(Heat(adjacency, rate))
        x = x0.to(device)

        def auto():
            return graphode.odeint(field, x, t, method="auto", options={"max_num_steps": 10 ** 6},
                                   **kw)[-1]

        def ours_dopri5():
            return graphode.odeint(field, x, t, method="dopri5",
                                   options={"max_num_steps": 10 ** 6}, **kw)[-1]

        def base():
            return torchdiffeq.odeint(field, x, t, method="dopri5", **kw)[-1]
        diffusion = GraphVectorField(LinearDiffusion(-1, weight=False, rate=rate)).bind(
            edge_index, None, n, torch.float64, device)

        def implicit(name, module, **options):
            solver = graphode.solvers.SOLVERS[name]().configure(**options)
            return lambda: graphode.solve(module, x, t, method=solver, max_steps=10 ** 6, **kw)

        def adams():
            return torchdiffeq.odeint(field, x, t, method="implicit_adams",
                                      options={"step_size": args.adams_step})[-1]

        def rel_err(final):
            return ((final.cpu() - exact).norm() / exact.norm()).item()
        with torch.no_grad():
            errors = {name: rel_err(fn())
                      for name, fn in (("auto", auto), ("dopri5", ours_dopri5), ("base", base))}
            for name, ours in (("auto", auto), ("graphode dopri5", ours_dopri5)):
                timing = paired(ours, base, reps=args.reps, warmup=1, device=device)
                key = "auto" if name == "auto" else "dopri5"
                rows.append({"workload": f"k = {rate:g}, {graph}", "graphode": name,
                             "baseline": "torchdiffeq dopri5", **timing,
                             "nfe_graphode": field.count(ours), "nfe_baseline": field.count(base),
                             "rel_err_graphode": errors[key], "rel_err_baseline": errors["base"]})
            candidates = [
                ("kvaerno5, Newton-GMRES", implicit("kvaerno5", field)),
                ("kvaerno5, operator CG", implicit("kvaerno5", diffusion)),
                ("trbdf2, operator CG", implicit("trbdf2", diffusion)),
                ("expm, operator Chebyshev series", implicit("expm", diffusion)),
            ]
            for name, run in candidates:
                sol = run()
                timing = paired(lambda: run().ys, ours_dopri5, reps=args.reps, warmup=1,
                                device=device)
                rows.append({"workload": f"k = {rate:g}, {graph}", "graphode": name,
                             "baseline": "graphode dopri5", **timing, "nfe_graphode": sol.stats.nfe,
                             "nfe_baseline": field.count(ours_dopri5),
                             "rel_err_graphode": rel_err(sol.ys[-1]), "rel_err_baseline": errors["dopri5"]})
            timing = paired(adams, ours_dopri5, reps=args.reps, warmup=0, device=device)
            rows.append({"workload": f"k = {rate:g}, {graph}",
                         "graphode": f"torchdiffeq implicit_adams, step {args.adams_step:g}",
                         "baseline": "graphode dopri5", **timing, "nfe_graphode": field.count(adams),
                         "nfe_baseline": field.count(ours_dopri5),
                         "rel_err_graphode": rel_err(adams()),
                         "rel_err_baseline": errors["dopri5"]})
    write_results(f"stiff_{device.type}", rows,
                  ["workload", "graphode", "baseline", "ratio", "ratio_min", "ratio_max",
                   "ms_graphode", "ms_baseline", "nfe_graphode", "nfe_baseline",
                   "rel_err_graphode", "rel_err_baseline"])
    return rows


if __name__ == "__main__":
    main()
