#!/usr/bin/env bash
# Undirected edges (each stored edge in both directions, as most papers on the heterophily
# graphs use them) against the stored directed ones, at each model's chosen settings:
# validation accuracy alone (seeds 100-109 on the 10 standard splits; the test nodes are
# never evaluated). The directed runs are the searches' own winners. Usage, from the
# repository root:  bash examples/searches/edges.sh Texas mlp graphcon
set -euo pipefail
dataset=$1; shift
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/search
for model in "$@"; do
  python examples/search_node_classification.py --dataset "$dataset" --model "$model" \
    --grid edges=undirected --json "examples/results/search/${lower}_${model}-edges.json"
done
