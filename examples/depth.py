"""Depth without collapse: how the continuous GNNs behave as the integration time grows.

Two pictures, after the GraphCON and A-DGN papers:

- ``--energy``: the Dirichlet energy of the node features against the end time T, for each
  model's flow at its initialisation, started from random features on the graph. A flow that
  oversmooths drives the energy towards zero (a diffusion does, exponentially); an oscillator
  or a conservative flow keeps it.
- ``--accuracy``: test accuracy (at the epoch of best validation accuracy), NFE and seconds per
  epoch of models trained with end times T, each otherwise at its default settings.

    python examples/depth.py --energy --plot examples/results/depth_energy.png
    python examples/depth.py --accuracy --models graphcon grand-l --t-ends 1 4 16 64 --seeds 3
"""
import argparse
import json

import torch
from node_classification import load
from node_classification import main as node_classification
from node_classification import parse_args as node_args

from graphode.metrics import dirichlet_energy

from _common import check_args, figure
from _node_models import MODELS, build_model

ENERGY_MODELS = ["grand-l", "grand-nl", "grand++", "graphcon", "a-dgn", "hamgnn", "gread"]


def blocks(model):
    """The model's continuous blocks: every submodule with an integration interval."""
    return [m for m in model.modules() if hasattr(m, "t_span") and m is not model]


def energies(spec, data, times, hidden, seed=0):
    """The Dirichlet energy of a model's flow (untrained) from random features, at each end
    time in ``times``, relative to the start. ``spec`` is a model name, optionally followed by
    its flags (``"graphcon --alpha 0"``)."""
    name, *flags = spec.split()
    args = node_args(["--model", name, "--dataset", "Cora", *flags])
    solver = dict(t_span=(0.0, 1.0), method=args.method, rtol=args.rtol, atol=args.atol,
                  step_size=args.step_size, gradient=args.gradient)
    args.hidden = hidden
    torch.manual_seed(seed)
    model = build_model(args, data.num_features, int(data.y.max()) + 1, solver).eval()
    if hasattr(model, "use_labelled"):
        model.use_labelled(data.train_mask)
    h0 = torch.randn(data.num_nodes, hidden)
    start = float(dirichlet_energy(h0, data.edge_index))
    out = []
    with torch.no_grad():
        for t in times:
            for block in blocks(model):
                block.t_span = (0.0, float(t))
            out.append(float(dirichlet_energy(model.evolve(h0, data.edge_index),
                                              data.edge_index)) / start)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--energy", action="store_true", help="the Dirichlet energy picture")
    p.add_argument("--accuracy", action="store_true", help="train at each end time")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--models", nargs="*", help=f"models, each optionally with its flags in one "
                   f"quoted argument ('graphcon --alpha 0') (default for --energy: "
                   f"{' '.join(ENERGY_MODELS)}; for --accuracy: graphcon grand-l)")
    p.add_argument("--t-ends", nargs="*", type=float, default=[1, 4, 16, 64])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--plot", help="write the figure (PNG) here")
    p.add_argument("--json", help="write the numbers here")
    p.add_argument("--root", help="data root")
    p.add_argument("--search", action="store_true",
                   help="with --accuracy: for choosing settings, validation accuracy only (seeds "
                        "from 100 on; the test nodes are never evaluated)")
    args = p.parse_args(argv)
    check_args(p, args)
    if not (args.energy or args.accuracy):
        p.error("choose --energy, --accuracy or both")
    if args.search and (args.plot or not args.accuracy):
        p.error("--search reports validation accuracy only: use it with --accuracy and "
                "without --plot")
    unknown = [m for m in args.models or [] if m.split()[0] not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    result = {}
    if args.energy:
        data, _ = load(node_args(["--dataset", args.dataset] +
                                 (["--root", args.root] if args.root else [])))
        times = [0.5 * 2 ** k for k in range(8)]  # 0.5 ... 64
        rows = {m: energies(m, data, times, args.hidden) for m in args.models or ENERGY_MODELS}
        result["energy"] = dict(times=times, relative_energy=rows)
        for m, e in rows.items():
            print(f"{m:10s} " + " ".join(f"{v:9.2e}" for v in e))
    if args.accuracy:
        rows = {}
        for m in args.models or ["graphcon", "grand-l"]:
            name, *flags = m.split()
            for t in args.t_ends:
                try:
                    s = node_classification(
                        ["--dataset", args.dataset, "--model", name, *flags, "--t-end", str(t),
                         "--seeds", str(args.seeds)] +
                        (["--root", args.root] if args.root else []) +
                        (["--search"] if args.search else []))
                except SystemExit as err:  # a diverged training run is a result, not the end
                    if not str(err).startswith("stopped:"):
                        raise
                    print(f"{m} at T={t:g}: {err}")
                    rows.setdefault(m, []).append(dict(t_end=t, diverged=str(err)))
                    continue
                rows.setdefault(m, []).append(dict(
                    t_end=t, test=s["test_acc_mean"], test_std=s["test_acc_std"],
                    val=s["val_acc_mean"], nfe_forward=s["nfe_forward"],
                    seconds_per_epoch=s["seconds_per_epoch"]))
        result["accuracy"] = dict(dataset=args.dataset, seeds=args.seeds, search=args.search,
                                  rows=rows)
        shown = "val" if args.search else "test"
        for m, r in rows.items():
            done = [x for x in r if "diverged" not in x]
            print(f"{m} ({shown}): " + ", ".join(
                f"T={x['t_end']:g} " + ("diverged" if "diverged" in x else
                                        f"{100 * x[shown]:.1f}") for x in r) +
                  (f"; largest T within {100 * (max(x[shown] for x in done) - r[-1][shown]):.1f}"
                   f" of the best" if done and "diverged" not in r[-1] else ""))
    if args.plot:
        panels = [k for k in ("energy", "accuracy") if k in result]
        with figure(args.plot, 1, len(panels), figsize=(5 * len(panels), 4),
                    squeeze=False) as axes:
            for ax, panel in zip(axes[0], panels):
                if panel == "energy":
                    for m, e in result["energy"]["relative_energy"].items():
                        ax.loglog(result["energy"]["times"], [max(v, 1e-30) for v in e],
                                  marker="o", label=m)
                    ax.set(xlabel="end time T", ylabel="Dirichlet energy / energy at t = 0",
                           title=f"untrained flows on {args.dataset}")
                else:
                    for m, r in result["accuracy"]["rows"].items():
                        r = [x for x in r if "diverged" not in x]
                        ax.errorbar([x["t_end"] for x in r], [100 * x["test"] for x in r],
                                    [100 * x["test_std"] for x in r], marker="o", label=m,
                                    capsize=3)
                    ax.set(xscale="log", xlabel="end time T", ylabel="test accuracy (%)",
                           title=f"{args.dataset}, {args.seeds} seeds")
                ax.legend(fontsize="small")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
