"""Compiled fixed-step solves on a Cora-sized field: ``solve(..., compile=True)`` against
eager graphode, torchdiffeq, and torchode compiled with ``torch.compile`` (where installed).

The field is ``tanh(GCNConv(64, 64))`` bound to a random graph of Cora's size (2,708 nodes,
10,556 edges), the same object on every side. Forward + backward (gradients of the input and
the weights), alternating pairs in one run, after the compilation (its cost is reported
separately, once). torchode has no rk4, so its row uses dopri5 on the same fixed grid. With
``--device cuda`` graphode compiles with ``mode="reduce-overhead"`` (CUDA graphs).

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.compiled
"""
from __future__ import annotations

import time

import torch
import torchdiffeq
from torch_geometric.nn import GCNConv

import graphode
from benchmarks.common import (
    CallCounter,
    bench_args,
    paired,
    random_graph,
    synchronize,
    write_results,
)
from graphode.nn import GraphVectorField


def torchode_solver(field, x, t, step):
    """torchode's dopri5 on a fixed grid, compiled, with the state as one batch row; returns
    ``run(y0) -> (y(t1), nfe)``."""
    import torchode

    term = torchode.ODETerm(lambda s, y: field(s[0], y.view_as(x)).reshape(1, -1))
    method = torchode.Dopri5(term=term)
    # torch.compile of the module would compile only its forward; the solve is the method.
    solve = torch.compile(torchode.AutoDiffAdjoint(method, torchode.FixedStepController()).solve)
    dt0 = torch.full((1,), step, dtype=x.dtype, device=x.device)
    t_eval = t.to(x.dtype).unsqueeze(0)

    def run(y0):
        problem = torchode.InitialValueProblem(y0=y0.reshape(1, -1), t_eval=t_eval)
        sol = solve(problem, dt0=dt0)
        return sol.ys[0, -1].view_as(x), int(sol.stats["n_f_evals"].max())
    return run


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{"--methods": dict(nargs="+", default=["rk4", "dopri5"],
                                                          choices=["rk4", "dopri5"])})
    device = args.device
    edge_index = random_graph(2708, 10556).to(device)
    conv = GCNConv(64, 64).to(device)
    field = GraphVectorField([conv, torch.nn.Tanh()])
    field.bind(edge_index, None, 2708, torch.float32, device)
    counted = CallCounter(field)
    x = torch.randn(2708, 64, device=device)
    t = torch.tensor([0.0, 1.0], device=device)
    rk4 = dict(method="rk4", step_size=0.1, gradient="autograd")
    dopri5 = dict(method="dopri5", step_size=0.1, gradient="autograd")
    with torch.no_grad():
        reference = graphode.solve(field, x, t, rtol=1e-7, atol=1e-9).ys[-1]

    def step(run):
        def go():
            y0 = x.detach().requires_grad_()
            run(y0)[0].sum().backward()
        return go

    def graphode_side(**kw):
        def run(y0):
            sol = graphode.solve(field, y0, t, **kw)
            return sol.ys[-1], sol.stats.nfe
        return run

    def torchdiffeq_side(y0):
        counted.calls = 0
        out = torchdiffeq.odeint(counted, y0, t, method="rk4", options=dict(step_size=0.1))[-1]
        return out, counted.calls

    # The compiled sides call the field itself: a counter inside a compiled function would
    # change Python state at every call and so force a new trace each time.
    # On a GPU the compiled solve is recorded as a CUDA graph (one launch per replay).
    mode = "reduce-overhead" if device.type == "cuda" else True
    sides = {}
    if "rk4" in args.methods:
        sides["graphode compiled rk4"] = graphode_side(compile=mode, **rk4)
        sides["graphode eager rk4"] = graphode_side(**rk4)
        sides["torchdiffeq rk4"] = torchdiffeq_side
    if "dopri5" in args.methods:
        sides["graphode compiled dopri5"] = graphode_side(compile=mode, **dopri5)
        try:
            sides["torchode compiled dopri5"] = torchode_solver(field, x, t, 0.1)
        except ImportError:
            print("torchode is not installed (pip install -c constraints.txt torchode): its "
                  "row is left out")
    compile_seconds = {}
    for name, run in sides.items():
        synchronize(device)
        start = time.perf_counter()
        step(run)()  # the first call compiles
        synchronize(device)
        compile_seconds[name] = time.perf_counter() - start
    pairs = [("graphode compiled rk4", "torchdiffeq rk4"),
             ("graphode compiled rk4", "graphode eager rk4"),
             ("graphode compiled dopri5", "torchode compiled dopri5")]
    rows = []
    for ours, base in pairs:
        if ours not in sides or base not in sides:
            continue
        timing = paired(step(sides[ours]), step(sides[base]), reps=args.reps, device=device)
        with torch.no_grad():
            outs = [sides[n](x) for n in (ours, base)]
        nfe = [n for _, n in outs]
        err = [float((y - reference).abs().max()) for y, _ in outs]
        rows.append({"graphode": ours, "baseline": base, **timing,
                     "nfe_graphode": nfe[0], "nfe_baseline": nfe[1],
                     "err_graphode": err[0], "err_baseline": err[1],
                     "first_call_s_graphode": compile_seconds[ours],
                     "first_call_s_baseline": compile_seconds[base]})
    write_results(f"compiled_{device.type}", rows,
                  ["graphode", "baseline", "ratio", "ratio_min", "ratio_max", "ms_graphode",
                   "ms_baseline", "nfe_graphode", "nfe_baseline", "err_graphode",
                   "err_baseline", "first_call_s_graphode", "first_call_s_baseline"])
    return rows


if __name__ == "__main__":
    main()
