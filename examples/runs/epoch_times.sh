#!/usr/bin/env bash
# Seconds for one training epoch (with its validation pass) of every model on Los-loop at the
# script's defaults, on all the machine's cores. Usage, from the repository root, with
# nothing else running:
#   bash examples/runs/epoch_times.sh [model ...]
set -euo pipefail
models=${*:-gru gru-d gcgru gde-gru gde-sde stg-ncde stgode latent-gde}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| model | s / epoch |"
echo "|---|---|"
for model in $models; do
  python examples/traffic_forecasting.py --model "$model" --epochs 1 --json "$out/$model.json" \
    > /dev/null 2>&1
  python -c "import json, sys; print(f\"| $model | {json.load(open(sys.argv[1]))['seconds_per_epoch']:.0f} |\")" \
    "$out/$model.json"
done
