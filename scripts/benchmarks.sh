#!/usr/bin/env bash
# The CPU benchmark suite as committed in benchmarks/results/: `scripts/benchmarks.sh cpu` on 2
# cores (about 25 min, one torch thread: the ratios are paired per round, so keep other work off
# the cores). Each invocation merges into the day's throughput_cpu_<date>.json/.md. On a GPU, run
# scripts/gpu_suite.sh instead (see scripts/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:?usage: scripts/benchmarks.sh cpu}
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
  *) echo "unknown device '$device': cpu (on a GPU: scripts/gpu_suite.sh)" >&2; exit 2 ;;
esac
