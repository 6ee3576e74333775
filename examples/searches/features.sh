#!/usr/bin/env bash
# Raw (0/1) node features against the row-normalised ones, at each model's chosen settings:
# validation accuracy alone (seeds 100-109 on the 10 standard splits; the test nodes are
# never evaluated). The row-normalised runs are the searches' own winners. Usage, from the
# repository root:  bash examples/searches/features.sh Texas mlp graphcon
set -euo pipefail
dataset=$1; shift
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/search
for model in "$@"; do
  python examples/search_node_classification.py --dataset "$dataset" --model "$model" \
    --grid features=raw --json "examples/results/search/${lower}_${model}-features.json"
done
