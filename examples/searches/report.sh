#!/usr/bin/env bash
# The reported runs: each model once at its chosen settings (examples/_node_models.py,
# SETTINGS_ON) on the reported seeds or splits, a JSON summary each in examples/results/zoo.
# Usage, from the repository root:  bash examples/searches/report.sh Texas mlp gcn graphcon ...
# (Planetoid graphs: add SEEDS=10 to run seeds 0-9.)
set -euo pipefail
dataset=$1; shift
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/zoo
for model in "$@"; do
  python examples/node_classification.py --dataset "$dataset" --model "$model" \
    --seeds "${SEEDS:-1}" --json "examples/results/zoo/${lower}_${model}.json"
done
