"""Choose a node classifier's settings on validation accuracy alone.

Runs ``node_classification.py --search`` (the test nodes are never evaluated; seeds from 100
on, apart from the reported 0, 1, ...) for every combination of the values given, and
writes each configuration's mean validation accuracy, and the best, to a JSON file:

    python examples/search_node_classification.py --dataset Texas --model graphcon \\
        --grid lr=0.01,0.005 dropout=0.2,0.5 --json examples/results/search/texas_graphcon.json

Flags after ``--`` go to every run unchanged (``-- --seeds 3`` on Planetoid). The chosen
configuration is then run once on the reported seeds or splits, without ``--search``.
"""
import argparse
import itertools
import json
import os
import sys

from node_classification import SEARCH_SEEDS
from node_classification import main as run_node_classification


def parse_grid(items):
    """``["lr=0.01,0.005", ...]`` -> ``{"lr": ["0.01", "0.005"], ...}``."""
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"--grid takes name=v1,v2,... items such as lr=0.01,0.005, "
                             f"not {item!r}")
        grid[name.replace("_", "-")] = values.split(",")
    return grid


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rest = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--grid", nargs="*", default=[],
                   help="name=v1,v2,... for each flag searched (the flag without its dashes)")
    p.add_argument("--json", required=True, help="write every configuration's result here")
    args = p.parse_args(argv)
    grid = parse_grid(args.grid)
    rows = []
    for values in itertools.product(*grid.values()):
        config = dict(zip(grid, values))
        flags = [f for name, value in config.items() for f in (f"--{name}", value)]
        try:
            summary = run_node_classification(
                ["--dataset", args.dataset, "--model", args.model, "--search", *flags, *rest])
        except SystemExit as err:  # a configuration that diverges is a result: it is not chosen
            if not str(err).startswith("stopped:"):
                raise
            rows.append(dict(config=config, val_acc_mean=None, failed=str(err)))
            print(f"[{len(rows)}] {config}: {err}", flush=True)
            continue
        rows.append(dict(config=config, val_acc_mean=summary["val_acc_mean"],
                         epochs=summary["epochs"], seconds_per_epoch=summary["seconds_per_epoch"]))
        print(f"[{len(rows)}] {config}: val {100 * summary['val_acc_mean']:.1f}", flush=True)
    done = [r for r in rows if r["val_acc_mean"] is not None]
    best = max(done, key=lambda r: r["val_acc_mean"]) if done else None
    record = dict(dataset=args.dataset, model=args.model, grid=grid, fixed=rest,
                  configurations=len(rows), first_seed=SEARCH_SEEDS,
                  runs_per_configuration=None if not done else summary["seeds"], best=best,
                  rows=rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=2)
    print(f"best of {len(rows)}: {best['config']} (val {100 * best['val_acc_mean']:.1f})"
          if best else f"all {len(rows)} configurations failed")
    return record


if __name__ == "__main__":
    main()
