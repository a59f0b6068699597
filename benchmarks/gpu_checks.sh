#!/usr/bin/env bash
# The GPU checks in one command, on one GPU, in under 8 minutes (each step has its own time limit; they add up to
# 470 s): the tiny self-training smoke run with jax on the GPU; sampling (next_jax Sampler vs transformers
# generate) and one training step (Trainer vs a PyTorch step), both sides on the GPU, float32 and bf16.
#
# Usage: bash benchmarks/gpu_checks.sh [PYTHON] [LOG_DIR]
#   PYTHON   default .venv/bin/python when present, else python3; needs jax with CUDA
#            (pip install -e '.[cuda,test]') and a CUDA build of torch for the transformers side.
#   LOG_DIR  default /tmp/gpu_checks: one log per step (NAME.txt), the smoke run's directory under it.
#   DRY_RUN=1   print the steps and run nothing.
#   DEVICE=cpu  the same steps on the CPU at toy sizes (checks the plumbing on a machine without a GPU;
#               under 3 minutes on 2 cores: smoke run 74 s, each benchmark 12-31 s).
# Exit status: 0 when every step exited 0 (and the smoke run wrote summary.json), else 1. Targets printed by
# the benchmarks (PASS/FAIL) are figures to read, not failures of this script.
set -u
cd "$(dirname "$0")/.."
PY=${1:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
LOG=${2:-/tmp/gpu_checks}
DEVICE=${DEVICE:-gpu}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log in full, show the tail
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s): $*"
  [ -n "${DRY_RUN:-}" ] && return 0
  local start=$SECONDS rc
  timeout "$limit" "$@" >"$LOG/$name.txt" 2>&1
  rc=$?
  grep -v -i -E "warn|shards|^\s*$" "$LOG/$name.txt" | tail -n 8
  echo "--- $name: exit $rc$([ $rc -eq 124 ] && echo ' (time limit)'), $((SECONDS - start)) s"
  [ $rc -eq 0 ] || status=1
}

if [ "$DEVICE" = gpu ]; then
  JAX_PLATFORM=cuda
  SAMPLING_SIZE=()                                      # the benchmark's defaults: small preset, 8x8 and 64x1 rows
  TRAIN_SIZE=(--steps 5)
else
  JAX_PLATFORM=cpu
  SAMPLING_SIZE=(--preset tiny --prompts 2 --samples 2 --prompt_len 16 --new_tokens 8 --repeats 1)
  TRAIN_SIZE=(--preset tiny --batch 2 --seq_len 64 --steps 2)
fi

# Fail fast when jax does not see the device (a CPU-only jaxlib would otherwise run everything on the CPU).
step versions 60 env JAX_PLATFORMS=$JAX_PLATFORM "$PY" -c "
import jax, torch, transformers
print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      '| transformers', transformers.__version__)
assert jax.devices()[0].platform == '$([ "$DEVICE" = gpu ] && echo gpu || echo cpu)'"
if [ $status -ne 0 ]; then
  echo "jax does not see a $DEVICE device: stopping"
  exit 1
fi

RUN_DIR="$LOG/smoke_run"
rm -rf "$RUN_DIR"
step smoke_self_train 120 env JAX_PLATFORMS=$JAX_PLATFORM "$PY" launch/self_train.py \
  --gin_file=gin/experiments/tiny_cpu_smoke.gin --run_dir="$RUN_DIR"
if [ -z "${DRY_RUN:-}" ] && [ ! -f "$RUN_DIR/summary.json" ]; then
  echo "smoke run wrote no summary.json"
  status=1
fi

step sampling_f32 75 "$PY" benchmarks/sampling_vs_hf.py --device "$DEVICE" --dtype float32 "${SAMPLING_SIZE[@]}"
step sampling_bf16 75 "$PY" benchmarks/sampling_vs_hf.py --device "$DEVICE" --dtype bfloat16 "${SAMPLING_SIZE[@]}"
step train_step_f32 70 "$PY" benchmarks/train_step_vs_hf.py --device "$DEVICE" "${TRAIN_SIZE[@]}"
step train_step_bf16 70 "$PY" benchmarks/train_step_vs_hf.py --device "$DEVICE" --bf16 "${TRAIN_SIZE[@]}"

if [ -n "${DRY_RUN:-}" ]; then
  echo "=== dry run: nothing was run"
else
  echo "=== done: $([ $status -eq 0 ] && echo 'every step passed' || echo 'a step failed'); logs in $LOG"
fi
exit $status
