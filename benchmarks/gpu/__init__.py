"""The GPU suite: every module here is one part, run as `python -m benchmarks.gpu.<part> OUT_DIR
[--smoke]` (see `scripts/gpu_suite.sh`); what the parts share is in `benchmarks.gpu_part`."""
