#!/usr/bin/env bash
# The settings search behind the heterophily rows of examples/README.md: for each model, 8
# configurations on validation accuracy alone (seeds 100-109 on the 10 standard splits; the
# test nodes are never evaluated). Usage, from the repository root:
#   bash examples/searches/heterophily.sh Texas [model ...]
set -euo pipefail
dataset=$1; shift
models=${*:-mlp gcn grand-l grand-nl grand++ graphcon a-dgn hamgnn gread}
out=examples/results/search
mkdir -p "$out"
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
for model in $models; do
  case $model in
    mlp|gcn)            extra="lr=0.01,0.005" ;;
    grand-l|grand-nl|grand++) extra="t_end=1,4" ;;
    graphcon)           extra="t_end=2,4" ;;
    a-dgn)              extra="t_end=1,3" ;;
    hamgnn|gread)       extra="t_end=1,2" ;;
    *) echo "no grid for $model" >&2; exit 2 ;;
  esac
  python examples/search_node_classification.py --dataset "$dataset" --model "$model" \
    --grid weight_decay=0.0005,0.005 dropout=0.2,0.5 "$extra" \
    --json "$out/${lower}_${model}.json"
done
