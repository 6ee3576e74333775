#!/usr/bin/env bash
# GraphCON in its paper's heterophily setting (no restoring force or damping, a learned map of
# each node's own features in the coupling, end time 2, hidden 256) with what the paper's code
# adds and graphcon_heterophily.sh did not search: dropout inside the flow (on the positions
# the coupling reads, at every step), a lower learning rate and longer training (up to 1,000
# epochs, patience 200). 12 configurations on validation accuracy alone (seeds 100-109 on the
# 10 standard splits; the test nodes are never evaluated). Usage, from the repository root:
#   bash examples/searches/graphcon_dropout.sh Texas
set -euo pipefail
dataset=$1
lower=$(echo "$dataset" | tr '[:upper:]' '[:lower:]')
mkdir -p examples/results/search
python examples/search_node_classification.py --dataset "$dataset" --model graphcon \
  --grid lr=0.01,0.002 field_dropout=0,0.3,0.6 dropout=0.2,0.5 \
  --json "examples/results/search/${lower}_graphcon-dropout.json" \
  -- --alpha 0 --gamma 0 --residual 1 --t-end 2 --hidden 256 --weight-decay 5e-4 \
  --epochs 1000 --patience 200
