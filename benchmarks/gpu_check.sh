#!/usr/bin/env bash
# The one prepared check for a lent GPU, run from the repository root:
#   1. every kernel test in tests/cuda on the hardware (no simulator), plus the tests
#      marked `cuda` elsewhere (torch_impl and the bridge on CUDA tensors);
#   2. the benchmarks on CUDA, figures to $OUT/bench-gpu.json (or ./).
# Exits non-zero when any step fails, after running them all.
set -u -o pipefail
OUT="${OUT:-.}"
unset NUMBA_ENABLE_CUDASIM
status=0
python -m pytest tests/cuda -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.log" || status=1
python -m pytest tests -m cuda --ignore=tests/cuda -q -p no:cacheprovider 2>&1 | tee -a "$OUT/gpu-tests.log" || status=1
python -m benchmarks --device cuda --json "$OUT/bench-gpu.json" || status=1
exit $status
