#!/usr/bin/env bash
# One-command GPU check, offline, about 4-5 minutes on one GPU (benchmarks/gpu_check.py): the CUDA tests, the
# step eager, captured and fused, several stacks in one process, a K=5000 evaluation of the 10,000 MNIST test
# images, the paper budget projected on this GPU, and an end-to-end `iwae train`. Needs only Python with
# PyTorch, NumPy and pytest, this checkout, and the MNIST files in $IWAE_DATA_MIRROR/mnist (default: .gpu/data
# where `make gpu-prepare` put them, else ../shared/data). Writes gpu_*.csv and gpu_check.json to --out
# (default results/benchmarks).
#   bash benchmarks/gpu_check.sh [--out DIR]      (or: make gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
if [ -d .gpu/data/mnist ]; then DEFAULT_MIRROR="$PWD/.gpu/data"; else DEFAULT_MIRROR="$(cd .. && pwd)/shared/data"; fi
MIRROR="${IWAE_DATA_MIRROR:-$DEFAULT_MIRROR}"
DATA="${IWAE_DATA_DIR:-$PWD/data}"
"$PY" -m iwae fetch mnist --data-dir "$DATA" --mirror "$MIRROR"
"$PY" benchmarks/gpu_check.py --data-dir "$DATA" "$@"
