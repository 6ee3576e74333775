"""The Markdown tables of examples/README.md's missing-data section, from the JSON summaries
that examples/runs/traffic.sh writes. Usage, from the repository root:

    python examples/runs/traffic_table.py [examples/results/traffic]
"""
import json
import sys
from pathlib import Path

MODELS = ("ha", "last", "gru", "gru-d", "gcgru", "gde-gru", "gde-gru-mse-tod", "stg-ncde", "stgode",
          "latent-gde")
# Runs with flags beyond the model's defaults, named in the tables by their flags.
LABELS = {"gde-gru-mse-tod": "gde-gru `--loss mse --time-of-day --epochs 30 --patience 6`"}
HORIZONS = ("15min", "30min", "45min", "60min")
SETTINGS = {"regular": "regular", "drop07": "70% of snapshots dropped",
            "missing05": "50% of readings missing"}


def load(folder):
    out = {}
    for model in MODELS:
        for setting in SETTINGS:
            path = Path(folder) / f"{model}_{setting}.json"
            if path.is_file():
                out[model, setting] = json.loads(path.read_text())
    return out


def cell(m, std=None):
    """MAE / RMSE, with the RMSE's spread over seeds when there are several."""
    spread = f" ± {std['rmse']:.2f}" if std is not None else ""
    return f"{m['mae']:.2f} / {m['rmse']:.2f}{spread}"


def main(folder="examples/results/traffic"):
    runs = load(folder)
    print("| setting | model | seeds | 15 min MAE / RMSE | 30 min | 45 min | 60 min "
          "| 15 min pooled | s / epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for setting, label in SETTINGS.items():
        for model in MODELS:
            run = runs.get((model, setting))
            if run is None:
                continue
            std = run.get("metrics_std") if run["seeds"] > 1 else None
            steps = " | ".join(cell(run["metrics"][h], std and std[h]) for h in HORIZONS)
            seconds = f"{run['seconds_per_epoch']:.0f}" if run["seconds_per_epoch"] else "-"
            print(f"| {label} | {LABELS.get(model, model)} | {run['seeds']} | {steps} | "
                  f"{cell(run['metrics_pooled']['15min'])} | {seconds} |")
    print()
    print("Loss of accuracy against regular sampling (15-minute RMSE, per step):")
    print()
    print("| model | 70% of snapshots dropped | 50% of readings missing |")
    print("|---|---|---|")
    for model in MODELS:
        base = runs.get((model, "regular"))
        if base is None:
            continue
        row = []
        for setting in ("drop07", "missing05"):
            run = runs.get((model, setting))
            row.append("-" if run is None else
                       f"+{run['metrics']['15min']['rmse'] - base['metrics']['15min']['rmse']:.2f}")
        print(f"| {LABELS.get(model, model)} | {' | '.join(row)} |")
    print()
    print("RMSE below persistence's, per step (regular sampling):")
    print()
    print("| model | " + " | ".join(h.replace("min", " min") for h in HORIZONS) + " |")
    print("|---|" + "---|" * len(HORIZONS))
    last = runs.get(("last", "regular"))
    for model in MODELS:
        run = runs.get((model, "regular"))
        if run is None or last is None or model in ("ha", "last"):
            continue
        gains = (1 - run["metrics"][h]["rmse"] / last["metrics"][h]["rmse"] for h in HORIZONS)
        print(f"| {LABELS.get(model, model)} | " + " | ".join(f"{100 * g:.1f}%" for g in gains)
              + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
