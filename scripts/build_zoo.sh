#!/usr/bin/env bash
# Rebuild every bundled zoo checkpoint from configs/zoo/ (about 4 CPU-minutes per model).
# Variants searched for the best one-layer momentum model go to runs/variants/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for config in configs/zoo/*.toml; do
  name=$(basename "$config" .toml)
  momentum-interp train --config "$config" --out "assets/$name" --quiet
done
for config in configs/zoo/variants/*.toml; do
  name=$(basename "$config" .toml)
  momentum-interp train --config "$config" --out "runs/variants/$name" --quiet
done
# The best variant is retrained under its zoo name from configs/zoo/induction-1l-momentum-best.toml
# (a copy of the winning variant's config). Record every variant's final evaluation in
# results/zoo/variants.json, re-measure the zoo into results/zoo/zoo.json, then re-render the
# README's result blocks and every card.md from those records.
python -m momentum_interp.results record-variants \
  $(for run in runs/variants/*/; do name=$(basename "$run"); echo "$name=runs/variants/$name"; done)
momentum-interp demo --results results/zoo
python -m momentum_interp.results render
