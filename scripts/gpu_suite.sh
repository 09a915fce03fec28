#!/usr/bin/env bash
# The GPU suite, one part per module of benchmarks/gpu/, one command per part, each done within 7 minutes on one H100/H200:
#   scripts/gpu_suite.sh PART OUT_DIR [--smoke]        PART: bench, sweep, lm (benchmarks/gpu/)
# runs `python -m benchmarks.gpu.PART OUT_DIR [--smoke]`, which writes at most 8 flat files
# (< 16 MiB each) into OUT_DIR as it measures, so a killed run leaves what it had.
# Offline machine: set WHEELHOUSE=DIR (made by scripts/wheelhouse.sh) and the wheels are
# installed once with `pip install --no-index --no-deps --target $SUITE_SITE` and put on
# PYTHONPATH (default SUITE_SITE: ${TMPDIR:-/tmp}/momentum-suite-site). A ./wheelhouse folder is
# used when WHEELHOUSE is unset. `--smoke` runs the part on a tiny CPU model in seconds (CI).
set -euo pipefail
part=${1:?usage: scripts/gpu_suite.sh PART OUT_DIR [--smoke]}
out=${2:?usage: scripts/gpu_suite.sh PART OUT_DIR [--smoke]}
shift 2
cd "$(dirname "$0")/.."
if [[ ! "$part" =~ ^[a-z][a-z0-9_]*$ || ! -f "benchmarks/gpu/$part.py" ]]; then
  parts=$(ls benchmarks/gpu/*.py | xargs -n1 basename | sed 's/\.py$//' | grep -v -x __init__ | tr '\n' ' ')
  echo "unknown part '$part': one of $parts" >&2
  exit 2
fi
wheelhouse=${WHEELHOUSE:-}
if [[ -z "$wheelhouse" && -d wheelhouse ]]; then wheelhouse=$PWD/wheelhouse; fi
site=""
if [[ -n "$wheelhouse" ]]; then
  site=${SUITE_SITE:-${TMPDIR:-/tmp}/momentum-suite-site}
  if [[ ! -f "$site/.installed" ]]; then
    ${PYTHON:-python3} -m pip install --quiet --no-index --no-deps --target "$site" "$wheelhouse"/*.whl
    touch "$site/.installed"
  fi
fi
export PYTHONPATH="$PWD${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
exec ${PYTHON:-python3} -m "benchmarks.gpu.$part" "$out" "$@"
