#!/usr/bin/env bash
# The language-model comparison: baseline, momentum (q/k, and keys-only) and smeared key at
# size S (3 seeds each), baseline at 3×S (seed 0); same corpus (the Python standard library),
# tokenizer, token budget and schedule. Then the table, with gaps relative to the 3×S baseline.
# On 2 CPU cores with one thread per run: about 4 min per S run and 9 min for the 3×S run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
runs=()
for seed in 0 1 2; do
  for name in lm-baseline-S lm-momentum-S lm-momentum-k-S lm-smeared-key-S; do
    momentum-interp train --config "configs/lm/$name.toml" --seed "$seed" \
      --out "runs/lm/$name-seed$seed" --quiet
    runs+=("runs/lm/$name-seed$seed")
  done
done
momentum-interp train --config configs/lm/lm-baseline-3S.toml --seed 0 \
  --out runs/lm/lm-baseline-3S-seed0 --quiet
momentum-interp lm-compare "${runs[@]}" runs/lm/lm-baseline-3S-seed0 \
  --reference lm-baseline-3S --out results/lm
