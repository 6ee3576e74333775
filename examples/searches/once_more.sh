#!/usr/bin/env bash
# Each model's chosen settings once more with one flag changed, on validation accuracy alone
# (seeds 100-109 on the 10 standard splits; the test nodes are never evaluated). The record
# goes to examples/results/search/<dataset>_<model>-<flag>.json, beside the searches' own.
# Usage, from the repository root:
#   bash examples/searches/once_more.sh features=raw Texas mlp graphcon      (0/1 features)
#   bash examples/searches/once_more.sh edges=undirected Texas mlp graphcon  (both directions)
set -euo pipefail
change=$1; dataset=$2; shift 2
flag=${change%%=*}
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/search
for model in "$@"; do
  python examples/search_node_classification.py --dataset "$dataset" --model "$model" \
    --grid "$change" --json "examples/results/search/${lower}_${model}-${flag}.json"
done
