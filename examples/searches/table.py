"""Print a markdown table of node-classification runs: one row per model, one column per
dataset (test accuracy mean ± std over seeds or splits, and the mean validation accuracy in
brackets, from the JSON summaries that ``node_classification.py --json`` writes), with NFE and
ms per epoch on the first dataset.

    python examples/searches/table.py examples/results/zoo/*.json
"""
import json
import sys
from collections import defaultdict


def main(paths):
    cells, cost, datasets = defaultdict(dict), {}, []
    for path in paths:
        with open(path) as f:
            s = json.load(f)
        if s.get("search"):
            continue
        if s["dataset"] not in datasets:
            datasets.append(s["dataset"])
        cells[s["model"]][s["dataset"]] = (f"{100 * s['test_acc_mean']:.1f} ± "
                                           f"{100 * s['test_acc_std']:.1f} "
                                           f"({100 * s['val_acc_mean']:.1f})")
        cost.setdefault(s["model"], (s["dataset"], s["nfe_forward"], s["seconds_per_epoch"]))
    print("| model | " + " | ".join(datasets) + " | NFE per forward, ms per epoch |")
    print("|---" * (len(datasets) + 2) + "|")
    order = ["mlp", "gcn", "gcde", "cgnn", "gde-cr", "grand-l", "grand-nl", "grand++",
             "graphcon", "a-dgn", "hamgnn", "gread"]
    for model in sorted(cells, key=lambda m: order.index(m) if m in order else len(order)):
        row = cells[model]
        where, nfe, seconds = cost[model]
        print(f"| {model} | " + " | ".join(row.get(d, "") for d in datasets) +
              f" | {nfe:.0f}, {1e3 * seconds:.0f} ({where}) |")


if __name__ == "__main__":
    main(sys.argv[1:])
