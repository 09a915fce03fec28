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
# The best variant is retrained under its zoo name from configs/zoo/induction-1l-momentum-best.toml
# (a copy of the winning variant's config); then every card.md is regenerated from the metrics.
python -c "from momentum_interp.zoo import write_cards; print(*write_cards('runs/variants'), sep='\n')"
