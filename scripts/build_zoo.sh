#!/usr/bin/env bash
# Rebuild every bundled zoo checkpoint from configs/zoo/ (about 2 CPU-minutes per model).
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
