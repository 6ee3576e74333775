#!/usr/bin/env bash
# The Los-loop runs behind the "Missing data" tables of examples/README.md: every model at its
# defaults on 3 seeds (SEEDS=n for another number), regular, with 70% of the snapshots dropped and with 50% of the readings
# missing (one mask for the series, the same for every model). Usage, from the repository root:
#   [SEEDS=3] [SETTINGS="regular drop07 missing05"] bash examples/runs/traffic.sh [model ...]
set -euo pipefail
models=${*:-ha last gru gru-d gcgru gde-gru stg-ncde}
seeds=${SEEDS:-3}
settings=${SETTINGS:-regular drop07 missing05}
out=examples/results/traffic
mkdir -p "$out"
for model in $models; do
  for setting in $settings; do
    case $setting in
      regular)   flags="" ;;
      drop07)    flags="--drop-prob 0.7" ;;
      missing05) flags="--missing-prob 0.5" ;;
    esac
    # shellcheck disable=SC2086
    python examples/traffic_forecasting.py --model "$model" --seeds "$seeds" $flags \
      --json "$out/${model}_${setting}.json"
  done
done
