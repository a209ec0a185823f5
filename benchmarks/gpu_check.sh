#!/usr/bin/env bash
# One-shot GPU check of the Triton kernels (correctness fp32/bf16, speed vs torch eager / compile,
# memory at B=65536 and B=262144). Needs python with torch + triton; the repository need not be
# installed. Results: a table on stdout (last) and a CSV appended under $OUT (or benchmarks/results).
#   bash benchmarks/gpu_check.sh               # on a CUDA machine, < 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run     # CPU, Triton interpreter, tiny shapes
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
RESULTS="${OUT:-benchmarks/results}"
mkdir -p "$RESULTS"
timeout 470 "$PYTHON" benchmarks/gpu_check.py --csv "$RESULTS/gpu_check.csv" "$@" 2>&1 | tee "$RESULTS/gpu_check.log"
