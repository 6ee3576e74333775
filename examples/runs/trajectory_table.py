"""The ETH/UCY table of examples/README.md from the JSON summaries of examples/trajectories.py
(``--json examples/results/trajectories/<model>.json``). Usage, from the repository root:

    python examples/runs/trajectory_table.py [examples/results/trajectories]
"""
import json
import sys
from pathlib import Path

MODELS = ("gde", "cv", "last")


def main(folder="examples/results/trajectories"):
    runs = {m: json.loads((Path(folder) / f"{m}.json").read_text()) for m in MODELS
            if (Path(folder) / f"{m}.json").is_file()}
    scenes = list(next(iter(runs.values()))["scenes"])
    print("| model | " + " | ".join(scenes) + " | mean |")
    print("|---" * (len(scenes) + 2) + "|")
    for model, run in runs.items():
        cells = [f"{run['scenes'][s]['ade']:.2f} / {run['scenes'][s]['fde']:.2f}" for s in scenes]
        mean = run["mean"]
        print(f"| {model} | " + " | ".join(cells) + f" | {mean['ade']:.2f} / {mean['fde']:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
