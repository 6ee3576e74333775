"""The Markdown table of examples/README.md's section on PyTorch Geometric Temporal's
datasets, from the JSON summaries that examples/runs/pyg_temporal.sh writes. Usage, from the
repository root:

    python examples/runs/pyg_temporal_table.py [examples/results/pyg_temporal]
"""
import json
import sys
from pathlib import Path

DATASETS = ("pedalme", "england-covid", "montevideo-bus")
MODELS = ("ha", "last", "gru", "gru-d", "gcgru", "gde-gru", "gde-gru-dynamic", "stg-ncde",
          "stgode", "latent-gde")
#: the runs with flags beyond the model's name
LABELS = {"gde-gru-dynamic": "gde-gru, daily graphs (`--dynamic-graph`)"}


def main(folder="examples/results/pyg_temporal"):
    print("| dataset | model | seeds | MAE | RMSE | MSE, PyTorch Geometric Temporal's scale "
          "| epochs | s / epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in DATASETS:
        for model in MODELS:
            path = Path(folder) / f"{dataset}_{model}.json"
            if not path.is_file():
                continue
            run = json.loads(path.read_text())
            m, std = run["metrics"]["step1"], run["metrics_std"]["step1"]
            mse = run["mse_pyg_temporal"]["step1"]
            spread = run["seeds"] > 1
            pm = (lambda v, s: f"{v:.3f} ± {s:.3f}") if spread else (lambda v, s: f"{v:.3f}")
            seconds = f"{run['seconds_per_epoch']:.2f}" if run["seconds_per_epoch"] else "-"
            epochs = f"{run['epochs']:.0f}" if run["epochs"] else "-"
            print(f"| {dataset} | {LABELS.get(model, model)} | {run['seeds']} | {pm(m['mae'], std['mae'])} "
                  f"| {pm(m['rmse'], std['rmse'])} | {pm(mse['mean'], mse['std'])} "
                  f"| {epochs} | {seconds} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
