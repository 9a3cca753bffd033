#!/usr/bin/env bash
# One prepared check for a lent GPU: the real-device tests, then the benchmarks
# on CUDA.  Run from the repository root; results land in $OUT (or ./).
set -u
OUT="${OUT:-.}"
status=0
python -m pytest -m cuda -q -p no:cacheprovider || status=1
python -m benchmarks --device cuda --json "$OUT/bench-gpu.json" || status=1
exit $status
