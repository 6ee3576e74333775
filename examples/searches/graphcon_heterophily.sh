#!/usr/bin/env bash
# GraphCON in the setting of its paper's code on the heterophilous graphs (no restoring force
# or damping, a learned linear map of each node's own features in the coupling): 16
# configurations on validation accuracy alone (seeds 100-109 on the 10 standard splits).
# Usage, from the repository root:  bash examples/searches/graphcon_heterophily.sh Texas
set -euo pipefail
dataset=$1
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/search
python examples/search_node_classification.py --dataset "$dataset" --model graphcon \
  --grid t_end=1,2 hidden=64,256 weight_decay=0.0005,0.005 dropout=0.2,0.5 \
  --json "examples/results/search/${lower}_graphcon-residual.json" \
  -- --alpha 0 --gamma 0 --residual 1
