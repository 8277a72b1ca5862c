#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build lightdl's CUDA extension, run the CUDA tests and the
# GPU benchmarks, and put everything into one folder.
#
#   scripts/gpu_check.sh OUT_DIR [STAGE ...]
#
# STAGE, in the order they run (default: all of them):
#   build   the CUDA extension in place (+ OUT_DIR/info.txt, nvidia-smi.txt)
#   tests   python -m pytest -m cuda (OUT_DIR/tests_cuda.log, junit.xml)
#   rnn     benchmarks/bench_rnn.py --device cuda: FusedLSTM/GRU, the one-launch loop
#           ("fused-loop", LIGHTDL_RNN_CUDA_LOOP=persistent), cuDNN, the cell loops
#   conv1d  benchmarks/bench_conv1d.py --device cuda
#   ops     benchmarks/run_all.py --device cuda --no-train (ops_*.json/png, summary.md)
#   train   benchmarks/run_all.py --device cuda --no-ops (train_*.json, summary.md)
# Stages can be split over several calls into the same OUT_DIR (a machine lent for minutes at a
# time: build, tests and rnn first, as they matter most); a stage other than build builds first
# when the extension in place has no CUDA kernels. Benchmark results go to OUT_DIR/results/,
# each stage's output to OUT_DIR/<stage>.log. With GPU_CHECK_ARCHIVE=FILE.tar.gz the folder is
# also packed into that one file at the end (for tools that bring back only a few files).
#
# Needs a CUDA build of torch in the active environment, nvcc and a C++ compiler.
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR [build|tests|rnn|conv1d|ops|train ...]}
shift
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build tests rnn conv1d ops train)
cd "$(dirname "$0")/.."
mkdir -p "$OUT/results"
export PYTHONUNBUFFERED=1
status=0

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'" \
  || { echo "torch sees no CUDA device" | tee "$OUT/error.txt"; exit 1; }

build() {
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
  local arch
  arch=$(python -c 'import torch; c=torch.cuda.get_device_capability(); print(f"{c[0]}.{c[1]}")')
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch} MAX_JOBS=${MAX_JOBS:-8} \
    python setup.py build_ext --inplace > "$OUT/build.log" 2>&1 \
    || { echo "build failed, see $OUT/build.log"; tail -20 "$OUT/build.log"; exit 1; }
  python -m lightdl.cli info | tee "$OUT/info.txt"
}

built_with_cuda() {
  python -c "from lightdl import _C; assert _C.with_cuda" > /dev/null 2>&1
}

for stage in "${STAGES[@]}"; do
  echo "== $stage ($(date -u +%H:%M:%S))"
  if [ "$stage" != build ] && ! built_with_cuda; then build; fi
  case "$stage" in
    build) build ;;
    tests)
      python -m pytest -m cuda -q -p no:cacheprovider --junitxml="$OUT/junit.xml" \
        > "$OUT/tests_cuda.log" 2>&1 || status=1
      tail -3 "$OUT/tests_cuda.log" ;;
    rnn)
      python benchmarks/bench_rnn.py --device cuda --repeats 15 --out "$OUT/results" \
        > "$OUT/rnn.log" 2>&1 || status=1
      tail -12 "$OUT/rnn.log" ;;
    conv1d)
      python benchmarks/bench_conv1d.py --device cuda --out "$OUT/results" \
        > "$OUT/conv1d.log" 2>&1 || status=1
      tail -8 "$OUT/conv1d.log" ;;
    ops)
      python benchmarks/run_all.py --device cuda --no-train --repeats 30 --out "$OUT/results" \
        > "$OUT/ops.log" 2>&1 || status=1
      tail -3 "$OUT/ops.log" ;;
    train)
      python benchmarks/run_all.py --device cuda --no-ops --out "$OUT/results" \
        > "$OUT/train.log" 2>&1 || status=1
      tail -3 "$OUT/train.log" ;;
    *) echo "unknown stage $stage (build, tests, rnn, conv1d, ops, train)"; status=1 ;;
  esac
done

if [ -n "${GPU_CHECK_ARCHIVE:-}" ]; then
  tar czf "$GPU_CHECK_ARCHIVE" -C "$(dirname "$OUT")" "$(basename "$OUT")" \
    && echo "packed $OUT into $GPU_CHECK_ARCHIVE"
fi
exit $status
