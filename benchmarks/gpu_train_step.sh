#!/usr/bin/env bash
# train_step_vs_hf on one GPU, both sides on it: float32 (full and TF32 matmuls) and bf16 autocast,
# each attention kernel; then a profile of the full-f32 step.
# Usage: bash benchmarks/gpu_train_step.sh [PYTHON] [LOG_DIR]   (PYTHON defaults to python3)
set -u
PY=${1:-python3}
LOG=${2:-/tmp}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
"$PY" -c "import jax, flax, transformers, torch; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)" || exit 1
run() { echo "=== $*"; timeout 150 "$PY" benchmarks/train_step_vs_hf.py --device gpu --steps 8 "$@" 2>&1 | grep -v -i -E "warn|shards" ; }
{
run --matmul_precision highest
run --matmul_precision highest --attention xla
run --matmul_precision tf32
run --bf16
run --bf16 --attention cudnn
} 2>&1 | tee "$LOG/gpu_train_step.txt"
timeout 120 "$PY" benchmarks/profile_train_step.py --matmul_precision highest --out /tmp/prof --top 25 2>&1 | grep -v -i warn | tee "$LOG/gpu_profile.txt"
