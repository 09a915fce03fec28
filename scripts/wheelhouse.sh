#!/usr/bin/env bash
# Download, on a machine with network, the wheels the GPU suite installs on a machine without it:
#   scripts/wheelhouse.sh DIR          (PYTHON_VERSION=3.12 by default; x86_64 manylinux)
# The GPU image is assumed to hold torch (CUDA), numpy, scipy, pandas, einops, safetensors,
# tokenizers, transformers (with huggingface_hub, requests, pyyaml, ...), tqdm, jaxtyping and
# pyarrow; these wheels are the rest of what `import momentum_interp` and transformer_lens need.
# Every wheel is fetched with --no-deps: the list below is the complete closure (proved as in
# scripts/README.md, "GPU suite"). Then `scripts/gpu_suite.sh` installs them with
# `pip install --no-index --no-deps --target`.
set -euo pipefail
dir=${1:?usage: scripts/wheelhouse.sh DIR}
py=${PYTHON_VERSION:-3.12}
mkdir -p "$dir"
wheels=(
  transformer-lens==4.3.0 beartype==0.23.1 typeguard==4.6.1 fancy-einsum==0.0.3
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.9.0
  rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0
  circuitsvis==1.43.3 importlib-metadata==10.2.0 zipp==4.1.2
  plotly==7.1.0 narwhals==2.29.0
)
pip download --quiet --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$dir" "${wheels[@]}"
ls "$dir"/*.whl | wc -l | xargs echo "wheels in $dir:"
du -sh "$dir"
