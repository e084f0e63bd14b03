#!/usr/bin/env bash
# The train-step benchmark (benchmarks/train_step.py) on one CUDA GPU, in bf16 compute
# (params and optimizer state f32, as in training): BERT-base at sequence 128 and
# BERT-large at sequence 512, prelm_jax next to HF FlaxBertForPreTraining and PyTorch
# BertForPreTraining, MFU against the GPU's published dense bf16 peak (benchmarks/peak.py:
# H100/H200 989 TFLOP/s, A100 312).
#
#   bash benchmarks/gpu.sh            # from the repository root; needs pip access to PyPI
#   BASE_BATCH=256 LARGE_BATCH=64 STEPS=20 ROUNDS=5 PEERS=hf_flax,torch bash benchmarks/gpu.sh
#
# Makes two venvs of its own (nothing else is touched):
#   benchmarks/.venv-gpu          prelm_jax (constraints.txt) + jax[cuda12], the same jax
#                                 version; torch (CUDA build) + transformers 5.24 for the
#                                 torch peer
#   benchmarks/.venv-hf-flax-gpu  transformers 4.57.x + jax[cuda12] at the same versions
#                                 (made by train_step.py on first use)
# Writes benchmarks/results/gpu_bert_base_s128.json and gpu_bert_large_s512.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=benchmarks/.venv-gpu
BASE_BATCH=${BASE_BATCH:-256}
LARGE_BATCH=${LARGE_BATCH:-64}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-5}
PEERS=${PEERS:-hf_flax,torch}

JAX_VERSION=$(sed -n 's/^jax==//p' constraints.txt)
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # constraints.txt pins torch's CPU build: the torch peer's packages go in after, unpinned
  # by it (a plain torch==2.13.0 from PyPI is the CUDA build on Linux).
  "$VENV/bin/python" -m pip install --quiet -e . -c constraints.txt
  "$VENV/bin/python" -m pip install --quiet "jax[cuda12]==$JAX_VERSION"
  if [[ "$PEERS" == *torch* ]]; then
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" "transformers>=5.24,<5.25"
  fi
fi

"$VENV/bin/python" - <<'PY'
import jax
d = jax.devices()[0]
assert d.platform == "gpu", f"jax sees no GPU ({jax.devices()}): is the CUDA driver there?"
print(f"jax {jax.__version__} on {d.device_kind}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# Three processes share the GPU: no process may take 75% of its memory up front (jax's
# default), or the second jax process would fail to allocate.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

run() {  # CONFIG SEQ BATCH
  "$VENV/bin/python" benchmarks/train_step.py --configs "$1" --seq "$2" --batch "$3" \
    --dtype bfloat16 --steps "$STEPS" --rounds "$ROUNDS" --peers "$PEERS" \
    --hf-venv benchmarks/.venv-hf-flax-gpu \
    --out "benchmarks/results/gpu_$1_s$2.json"
}
run bert_base 128 "$BASE_BATCH"
run bert_large 512 "$LARGE_BATCH"
# Each run prints one line per config: tokens/s of the three systems, prelm's ratios to
# them, and "MFU x% of 989.00 TFLOP/s" on an H100/H200.
