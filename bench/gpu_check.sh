#!/usr/bin/env bash
# The GPU rows of bench/README.md in one run (~9 minutes on one H200, at most 12): the model and
# convolution tests on the GPU backend; a training step at 128^3 and at the paper's crop (184x200x152
# padded to 192x208x160) with XLA's convolutions and with the CPU form (`fold`), float32 and bf16;
# 20-sample MC-dropout prediction at the crop with its peak GPU memory.
#
# For a machine where JAX with CUDA, flax, optax, orbax and tensorboard are installed and nothing can
# be downloaded: bring the project's other packages as wheels (a few MiB), fetched where PyPI is
# reachable, from the repository's root:
#
#   bash bench/gpu_check.sh --download .whl      # here: grain, clu, ml_collections, nibabel, ...
#   bash bench/gpu_check.sh .whl                 # there: installs them into /tmp/site, then runs
#
# Smoke test on a CPU (tiny shapes, minutes): GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_SHAPES=32,32,32 \
#   GPU_CHECK_CROP=32,32,32 bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# What the GPU image lacks, pinned to what CI tests (python 3.12 wheels, no dependencies pulled).
WHEELS=(grain==0.2.18 array_record==0.8.6 portpicker==1.6.0 clu==0.0.12 ml_collections==1.1.0
        nibabel==5.4.2 importlib_resources==7.1.0)
if [[ "${1:-}" == "--download" ]]; then
  dir=${2:?--download DIR}
  for w in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" "$w"
  done
  du -sh "$dir"
  exit 0
fi
if [[ -n "${1:-}" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$1"/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
SHAPES=${GPU_CHECK_SHAPES:-128,128,128 192,208,160}
CROP=${GPU_CHECK_CROP:-192,208,160}
if [[ -z "${GPU_CHECK_ALLOW_CPU:-}" ]]; then
  export JAX_PLATFORMS=cuda
fi
python3 - <<'PY'
import jax
print('devices:', jax.devices(), 'jax', jax.__version__)
for d in jax.devices():
  print(' ', d.device_kind, (d.memory_stats() or {}).get('bytes_limit', 0) / 2**30, 'GiB')
PY
date -u
echo "== model and convolution tests on the $(python3 -c 'import jax; print(jax.default_backend())') backend"
# Four pytest workers share the GPU (compiling is CPU-bound): each allocates as it goes. The tests
# compare float32 results to round-off, so float32 matmuls and convs run in full float32, not TF32
# (the GPU's default).
JAX_DEFAULT_MATMUL_PRECISION=highest XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 150 python3 -m pytest -q -n 4 -p no:cacheprovider \
  tests/test_conv.py tests/test_models.py || echo "tests: status $?"
echo "== training step: XLA's convs vs fold, float32 and bf16 (median of 2 after 1 warm-up)"
# One run per shape, each under its own timeout: compiling the four variants takes ~2 min at 128^3
# and ~3 at the crop (H200, 2026-11-27); each variant's row prints as soon as it is measured.
for shape in $SHAPES; do
  timeout 240 python3 bench/train_step.py --shapes "$shape" --steps 2 --warmup 1 \
    --variants 'jax xla' 'jax fold' 'jax xla bf16' 'jax fold bf16' || echo "train step $shape: status $?"
done
echo "== 20-sample MC-dropout prediction at $CROP (XLA's convs; chunks of 4 and all at once)"
timeout 120 python3 bench/mc_inference.py --shape "$CROP" --samples 20 --repeats 1 --conv-impl xla \
  --variants 'shared prefix, chunks of 4' 'shared prefix, vmap' || echo "MC: status $?"
date -u
