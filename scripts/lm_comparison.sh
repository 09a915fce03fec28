#!/usr/bin/env bash
# The language-model comparison: baseline, momentum and smeared key at size S, baseline at 3×S,
# same corpus (the Python stdlib), tokenizer, token budget and schedule; then the table.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for name in lm-baseline-S lm-momentum-S lm-smeared-key-S lm-baseline-3S; do
  momentum-interp train --config "configs/lm/$name.toml" --out "runs/lm/$name" --quiet
done
momentum-interp lm-compare runs/lm/lm-baseline-S runs/lm/lm-momentum-S runs/lm/lm-smeared-key-S \
  runs/lm/lm-baseline-3S --reference lm-baseline-3S --out results/lm
