#!/usr/bin/env bash
# The one prepared check for a lent GPU, run from the repository root; about 9 minutes at
# most (BUDGET seconds, default 540: each step gets what is left, up to its own limit):
#
#   OUT=results bash benchmarks/gpu_check.sh
#
#   1. tests/cuda on the hardware: every kernel test (formula 2 bit for bit, with NaN,
#      subnormal, -0 and inf cells; the reverse pass stopping where grad_out is 0;
#      gradients the same bits twice; arguments as declared to the compile-time check)
#      and test_torch_cuda.py: the bridge's forward and backward against the oracle at
#      m = n = 32 with 1e5 pairs in float64 while torch holds half the memory (aligned
#      pairs, query x gallery, 2-D and 3-D formula 2), VJPs run twice and compared bit
#      for bit, a side stream behind torch.cuda._sleep, non-contiguous inputs, results in
#      torch's allocator. The registers and local memory of every kernel the run loaded
#      go to kernel-figures.json.
#   2. python -m benchmarks --quick --device cuda: training step, large batch, and the
#      full Market-1501 query x gallery matrix (goal: numba_impl under 0.2 s on an H200),
#      peak memory read from the device.
#   3. the tests marked cuda outside tests/cuda (torch_impl on CUDA tensors).
#   4. compute-sanitizer memcheck and racecheck on the kernel tests, where installed.
#
# Writes $OUT/gpu-summary.md (the one to read: steps, times, figures, output tails), and
# beside it the raw gpu-check.log, bench-gpu.json and kernel-figures.json. Exits
# non-zero when a step failed.
#
# Dry run without a GPU: NUMBA_ENABLE_CUDASIM=1 bash benchmarks/gpu_check.sh runs what the
# simulator can and says, step by step, what skips and why.
set -u -o pipefail
OUT="${OUT:-gpu-check}"
PY="${PYTHON:-python3}"
BUDGET="${BUDGET:-540}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$OUT/gpu-summary.md"
LOG="$OUT/gpu-check.log"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
DRY="${NUMBA_ENABLE_CUDASIM:-0}"
[ "$DRY" = 1 ] || unset NUMBA_ENABLE_CUDASIM
status=0
: >"$LOG"
: >"$TMP/rows"
: >"$TMP/tails"

note() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT COMMAND...: run with the time left (at most LIMIT s), record the result
step() {
  local name=$1 limit=$2 left=$((BUDGET - SECONDS)) start=$SECONDS rc
  shift 2
  if [ "$left" -lt 20 ]; then
    echo "| $name | skipped: no time left | 0 |" >>"$TMP/rows"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  note "== $name (at most ${limit} s)"
  timeout "$limit" "$@" >"$TMP/step" 2>&1
  rc=$?
  cat "$TMP/step" >>"$LOG"
  local result="passed"
  if [ "$rc" -eq 124 ]; then result="FAILED: over ${limit} s"; status=1
  elif [ "$rc" -ne 0 ]; then result="FAILED (exit $rc)"; status=1; fi
  echo "| $name | $result | $((SECONDS - start)) |" >>"$TMP/rows"
  { echo; echo "### $name"; echo '```'; tail -n 25 "$TMP/step"; echo '```'; } >>"$TMP/tails"
}

skip() { echo "| $1 | skipped: $2 |  |" >>"$TMP/rows"; note "== $1: skipped: $2"; }

gpu_visible() { "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }

{
  echo "# gpu_check.sh $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- mode: $([ "$DRY" = 1 ] && echo 'dry run on the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)' || echo hardware)"
  echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'none visible (no nvidia-smi)')"
  echo "- $("$PY" - <<'EOF' 2>&1
import platform
from importlib import metadata
names = ("numpy", "numba", "numba-cuda", "torch", "cupy-cuda13x")
found = []
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        found.append(f"{name} missing")
print(f"python {platform.python_version()}; " + ", ".join(found))
EOF
)"
} >"$TMP/head"

# 1. the kernel tests and the torch CUDA tests, on the hardware (or the simulator)
step "tests/cuda$([ "$DRY" = 1 ] && echo ' (simulator: the tests marked cuda skip)')" 270 \
  env ALIGNEDREID_KERNEL_FIGURES="$OUT/kernel-figures.json" \
  "$PY" -m pytest tests/cuda -q -p no:cacheprovider -rs

# 2. the benchmarks on CUDA
if gpu_visible; then
  step "benchmarks --quick --device cuda" 200 \
    "$PY" -m benchmarks --quick --device cuda --json "$OUT/bench-gpu.json"
else
  skip "benchmarks --quick --device cuda" "torch.cuda.is_available() is False"
  [ "$DRY" = 1 ] || status=1
fi

# 3. the tests marked cuda elsewhere (they skip, saying so, where torch sees no GPU)
step "tests -m cuda (outside tests/cuda)" 60 \
  "$PY" -m pytest tests -m cuda --ignore=tests/cuda -q -p no:cacheprovider -rs

# 4. compute-sanitizer on the kernel tests (one block size: every kernel, fewer launches)
if [ "$DRY" = 1 ]; then
  skip "compute-sanitizer memcheck, racecheck" "the simulator runs no device code"
elif ! command -v compute-sanitizer >/dev/null; then
  skip "compute-sanitizer memcheck, racecheck" "compute-sanitizer is not installed"
else
  for tool in memcheck racecheck; do
    step "compute-sanitizer --tool $tool" 90 \
      compute-sanitizer --tool "$tool" --error-exitcode 3 \
      "$PY" -m pytest tests/cuda/test_numba_kernels.py -q -x -p no:cacheprovider -k "block32"
  done
fi

{
  cat "$TMP/head"
  echo
  echo "| step | result | seconds |"
  echo "| --- | --- | --- |"
  cat "$TMP/rows"
  echo
  "$PY" - "$OUT/kernel-figures.json" "$OUT/bench-gpu.json" <<'EOF' 2>&1
import json, sys


def markdown(rows, columns):
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c)) for c in columns) + " |")
    print()


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return None


figures, bench = load(sys.argv[1]), load(sys.argv[2])
print("## Kernels loaded by step 1 (per thread, as the driver reports them)\n")
if figures is None:
    print("none written (the simulator loads no kernels, or step 1 did not finish)\n")
else:
    markdown(figures, ("kernel", "signature", "registers", "local_bytes", "max_threads_per_block"))
print("## Benchmarks (bench-gpu.json)\n")
if bench is None:
    print("none written\n")
else:
    markdown(bench["rows"], ("workload", "row", "seconds", "peak_mb", "note"))
    markdown(bench["goals"], ("workload", "row", "goal", "measured", "met"))
EOF
  echo "## Output of each step (last lines; all of it in gpu-check.log)"
  cat "$TMP/tails"
  echo
  echo "total: $SECONDS s, exit status $status"
} >"$SUMMARY"
note "summary: $SUMMARY (exit status $status)"
exit $status
