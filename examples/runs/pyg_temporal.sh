#!/usr/bin/env bash
# The runs behind the "PyTorch Geometric Temporal's datasets" tables of examples/README.md:
# every model at the script's defaults for these datasets (the loader's lags, one step ahead,
# its test part, 100 epochs at most, patience 20). Usage, from the repository root:
#   [SEEDS=3] [DATASETS="pedalme england-covid"] [FLAGS="--epochs 30"] \
#     bash examples/runs/pyg_temporal.sh [model ...]
set -euo pipefail
models=${*:-ha last gru gru-d gcgru gde-gru stg-ncde stgode latent-gde}
seeds=${SEEDS:-3}
datasets=${DATASETS:-pedalme england-covid montevideo-bus}
out=examples/results/pyg_temporal
mkdir -p "$out"
for dataset in $datasets; do
  for model in $models; do
    # shellcheck disable=SC2086
    python examples/traffic_forecasting.py --dataset "$dataset" --model "$model" \
      --seeds "$seeds" ${FLAGS:-} --json "$out/${dataset}_${model}.json"
  done
done
