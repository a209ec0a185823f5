#!/usr/bin/env bash
# One-shot GPU check: the kernel tests and the kernel benchmarks (benchmarks/gpu_check.py), one
# results schema. Needs the repository's environment (scripts/install.sh); PYTHON overrides it.
# Results: a table on stdout (last) and a CSV appended under $OUT (or benchmarks/results).
#   bash benchmarks/gpu_check.sh               # on a CUDA machine, a few minutes
#   bash benchmarks/gpu_check.sh --dry-run     # CPU, Triton interpreter, small shapes
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
RESULTS="${OUT:-benchmarks/results}"
mkdir -p "$RESULTS"
timeout 470 "$PYTHON" benchmarks/gpu_check.py --csv "$RESULTS/gpu_check.csv" "$@" 2>&1 | tee "$RESULTS/gpu_check.log"
