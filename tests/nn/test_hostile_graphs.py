"""Hostile graphs: random invalid ``edge_index`` / ``edge_weight`` / ``x`` / ``batch``
combinations for every layer with a fast plan. Each layer's cases run in a child process, so
a crash (a segmentation fault in a sparse kernel, a heap abort) fails the test instead of
killing the run; every case must raise an exception whose message names the argument.

docs/reliability.md counts these cases:
``python -m pytest tests/nn/test_hostile_graphs.py -q``."""
import json
import subprocess
import sys
import textwrap

import pytest

LAYERS = {
    "gcn": "GCNConv(C, C)",
    "gcn-unnormalised": "GCNConv(C, C, normalize=False)",
    "sage": "SAGEConv(C, C)",
    "graph": "GraphConv(C, C)",
    "gin": "GINConv(torch.nn.Linear(C, C))",
    "cheb": "ChebConv(C, C, K=2)",
    "diffusion": "LinearDiffusion(C)",
    "gat (no plan)": "GATConv(C, C)",
}
CASES_PER_LAYER = 60

CHILD = textwrap.dedent("""
    import json, sys
    import torch
    from torch_geometric.nn import ChebConv, GATConv, GCNConv, GINConv, GraphConv, SAGEConv
    from graphode.nn import GDEConv, LinearDiffusion

    C, layer_code, count = 4, sys.argv[1], int(sys.argv[2])
    rng = torch.Generator().manual_seed(len(layer_code))
    kinds = ["negative", "too large", "huge", "float edge_index", "edge_index shape",
             "edge_weight length", "edge_weight 2-D", "edge_weight integer", "edge_weight dtype",
             "x dtype", "x integer", "edge_index device", "edge_weight device", "batch length"]
    for case in range(count):
        n = int(torch.randint(1, 40, (1,), generator=rng))
        e = int(torch.randint(1, 120, (1,), generator=rng))
        x = torch.randn(n, C)
        ei = torch.randint(0, n, (2, e), generator=rng)
        ew, batch = None, None
        kind = kinds[case % len(kinds)]
        col, row = int(torch.randint(0, e, (1,), generator=rng)), case % 2
        k = int(torch.randint(1, 5, (1,), generator=rng))
        if kind == "negative":
            ei[row, col] = -k
            name = "edge_index"
        elif kind == "too large":
            ei[row, col] = n - 1 + k
            name = "edge_index"
        elif kind == "huge":
            ei[row, col] = 10 ** int(torch.randint(6, 15, (1,), generator=rng))
            name = "edge_index"
        elif kind == "float edge_index":
            ei = ei.float()
            name = "edge_index"
        elif kind == "edge_index shape":
            ei = [torch.randint(0, n, (3, e)), torch.randint(0, n, (e,)),
                  torch.randint(0, n, (e, 2)) if e != 2 else torch.randint(0, n, (1, 2))][case % 3]
            name = "edge_index"
        elif kind == "edge_weight length":
            ew = torch.rand(e + (k if case % 2 else -min(k, e)))
            name = "edge_weight"
        elif kind == "edge_weight 2-D":
            ew = torch.rand(e, 2)
            name = "edge_weight"
        elif kind == "edge_weight integer":
            ew = torch.randint(0, 3, (e,))
            name = "edge_weight"
        elif kind == "edge_weight dtype":
            ew = torch.rand(e, dtype=torch.float64)
            name = "edge_weight"
        elif kind == "x dtype":
            x = x.double()
            name = "x"
        elif kind == "x integer":
            x = torch.randint(0, 3, (n, C))
            name = "x"
        elif kind == "edge_index device":
            ei = ei.to("meta")
            name = "edge_index"
        elif kind == "edge_weight device":
            ew = torch.rand(e, device="meta")
            name = "edge_weight"
        else:
            batch = torch.zeros(n + k, dtype=torch.long)
            name = "batch"
        layer = GDEConv(eval(layer_code), method="rk4", step_size=0.5)
        print(json.dumps({"case": case, "kind": kind}), flush=True)
        try:
            layer(x, ei, ew, batch)
            result = {"raised": False}
        except Exception as err:
            result = {"raised": True, "type": type(err).__name__, "named": name in str(err),
                      "message": str(err)[:200]}
        print(json.dumps(dict(result, case=case, kind=kind, name=name)), flush=True)
""")


@pytest.mark.parametrize("layer", list(LAYERS))
def test_invalid_graphs_raise_naming_the_argument(layer):
    run = subprocess.run([sys.executable, "-c", CHILD, LAYERS[layer], str(CASES_PER_LAYER)],
                         capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    results = [r for r in lines if "raised" in r]
    last = lines[-1] if lines else None
    assert run.returncode == 0, f"{layer}: the child died (exit {run.returncode}) at {last}: " \
                                f"{run.stderr[-500:]}"
    assert len(results) == CASES_PER_LAYER
    silent = [r for r in results if not r["raised"]]
    assert not silent, f"{layer}: no error for {[r['kind'] for r in silent]}"
    unnamed = [r for r in results if not r["named"]]
    assert not unnamed, f"{layer}: errors that do not name the argument: {unnamed[:3]}"
