"""GraphCON's second-order flow on Cora's graph: symplectic Euler with kinematic drifts against
the generic partitioned step, and against the paper's own loop.

The field is GraphCON's coupling `relu(GCNConv(64, 64)(X)) - X - X'` on a second-order
system `[X, V]`, solved by symplectic Euler with steps of 1 to T = 4 and 16, forward and
backward (autograd). `SecondOrderGDEConv` tells the method that the positions' rate is the
velocity (`Symplectic(kinematic=True)`), so each step evaluates the coupling once. The
baselines: the same solve with `Symplectic("symplectic_euler", kinematic=False)`, which
reads the positions' rate from a second evaluation of the field per step (and evaluated one
more past the last step before this was changed), and the loop of the GraphCON paper's code
written out in PyTorch with the same GCNConv. All three give the same output (checked).

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.symplectic
"""
from __future__ import annotations

import torch
from torch_geometric.nn import GCNConv

from benchmarks.common import bench_args, cora_graph, paired, write_results
from graphode import solve
from graphode.nn import GraphCONCoupling, SecondOrderGDEConv
from graphode.nn.augment import _SecondOrderField
from graphode.nn.field import GraphVectorField
from graphode.solvers import Symplectic


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{"--t-ends": dict(type=float, nargs="*",
                                                         default=[4.0, 16.0])})
    device = args.device
    edge_index, graph = cora_graph()
    edge_index = edge_index.to(device)
    n, c = int(edge_index.max()) + 1, 64
    conv = GCNConv(c, c).to(device)
    coupling = GraphCONCoupling(conv, gamma=1.0, alpha=1.0)
    x0 = torch.randn(n, c, device=device, requires_grad=True)
    rows = []
    for t_end in args.t_ends:
        layer = SecondOrderGDEConv(coupling, t_span=(0.0, t_end), method="symplectic_euler",
                                   step_size=1.0, gradient="autograd")

        def kinematic():
            out = layer(x0, edge_index, velocity=x0)
            out.square().sum().backward()
            return out

        def generic():
            field = GraphVectorField(coupling)
            system = _SecondOrderField(field.bind(edge_index, None, n, x0.dtype, device), c)
            sol = solve(system, torch.cat([x0, x0], -1), [0.0, t_end],
                        method=Symplectic("symplectic_euler"), step_size=1.0,
                        gradient="autograd")
            out = sol.ys[-1][..., :c]
            out.square().sum().backward()
            return out, sol.stats.nfe

        def paper():  # the loop of the GraphCON paper's code, dt = 1
            x, y = x0, x0
            for _ in range(int(t_end)):
                y = y + (torch.relu(conv(x, edge_index)) - x - y)
                x = x + y
            x.square().sum().backward()
            return x

        out_k = kinematic()
        nfe_k = layer.stats.nfe
        out_g, nfe_g = generic()
        out_p = paper()
        same = max(float((out_k - out_g).detach().abs().max()),
                   float((out_k - out_p).detach().abs().max()))
        for label, baseline, nfe_b in (("generic partitioned step", lambda: generic(), nfe_g),
                                       ("the paper's loop (PyG GCNConv)", paper, int(t_end))):
            timing = paired(kinematic, baseline, reps=args.reps, device=device)
            rows.append({"T": t_end, "baseline": label, **timing, "nfe_graphode": nfe_k,
                         "nfe_baseline": nfe_b, "max_abs_diff": same, "graph": graph})
    write_results(f"symplectic_{device.type}", rows,
                  ["T", "baseline", "ratio", "ratio_min", "ratio_max", "ms_graphode",
                   "ms_baseline", "nfe_graphode", "nfe_baseline", "max_abs_diff"])
    return rows


if __name__ == "__main__":
    main()
