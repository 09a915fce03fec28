"""The GPU suite: one module per part, each run as `python -m benchmarks.gpu.<part> OUT_DIR [--smoke]`
(see `scripts/gpu_suite.sh`)."""
