#!/usr/bin/env bash
# The benchmark suite as committed in benchmarks/results/: `scripts/benchmarks.sh cpu` on 2 cores
# (about 25 min, one torch thread: the ratios are paired per round, so keep other work off the
# cores), `scripts/benchmarks.sh cuda` on one GPU (the issue's 124M targets; about 15 min with
# compilation). Each invocation merges into the day's throughput_<device>_<date>.json/.md.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:?usage: scripts/benchmarks.sh cpu|cuda}
bench() { python -m benchmarks throughput --device "$device" "$@"; }
case "$device" in
  cpu)
    export OMP_NUM_THREADS=1
    bench --preset tiny,small --seq-lens 128,256                       # model size, eager
    bench --preset tiny --seq-lens 512,1024,2048,4096                  # sequence length, eager
    bench --preset tiny --seq-lens 128,512 --compile --steps 12        # inductor
    bench --preset gpt2-small --seq-lens 256 --batch 1 --warmup 2      # the 124M shape runs
    python -m benchmarks overheads
    python -m benchmarks demo_timing --threads 1,2 --repeats 3
    ;;
  cuda)
    bench --preset gpt2-small --seq-lens 1024 --compile                # the issue's targets
    bench --preset gpt2-small --seq-lens 256,512,2048,4096 --compile   # sequence length
    bench --preset tiny,small --seq-lens 1024 --compile                # model size
    bench --preset gpt2-small --seq-lens 1024                          # eager, for comparison
    ;;
  *) echo "unknown device '$device': cpu or cuda" >&2; exit 2 ;;
esac
