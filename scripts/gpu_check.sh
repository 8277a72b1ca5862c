#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build lightdl's CUDA extension, run the CUDA tests and every
# benchmark on the GPU, and put everything into one folder.
#
#   scripts/gpu_check.sh OUT_DIR
#
# Needs a CUDA build of torch in the active environment (or installs the default torch wheel,
# which has CUDA on Linux), nvcc, and a C++ compiler. OUT_DIR receives: build.log, info.txt,
# nvidia-smi.txt, tests_cuda.log (+ junit.xml), and results/ from benchmarks/run_all.py
# (ops_*.json/png, train_*.json, summary.md).
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
status=0

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'" \
  || { echo "torch sees no CUDA device" | tee "$OUT/error.txt"; exit 1; }

echo "== build (CUDA extension)"
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"$(python -c 'import torch; c=torch.cuda.get_device_capability(); print(f"{c[0]}.{c[1]}")')"} \
  MAX_JOBS=${MAX_JOBS:-8} python setup.py build_ext --inplace > "$OUT/build.log" 2>&1 \
  || { echo "build failed, see $OUT/build.log"; exit 1; }
python -m lightdl.cli info | tee "$OUT/info.txt"

echo "== CUDA tests"
python -m pytest -m cuda -q -p no:cacheprovider --junitxml="$OUT/junit.xml" > "$OUT/tests_cuda.log" 2>&1 \
  || status=1
tail -3 "$OUT/tests_cuda.log"

echo "== benchmarks (GPU)"
python benchmarks/run_all.py --device cuda --out "$OUT/results" --repeats 30 \
  > "$OUT/bench.log" 2>&1 || status=1
tail -3 "$OUT/bench.log"
exit $status
