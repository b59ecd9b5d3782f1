#!/usr/bin/env bash
# One-command GPU check, offline, about 8 minutes on one GPU: the CUDA tests, per-model step times (eager,
# captured, stacks of M models), a K=5000 evaluation of the 10,000 MNIST test images, and the paper budget
# projected on this GPU. Needs only Python with PyTorch, NumPy and pytest, this checkout, and the MNIST files
# in $IWAE_DATA_MIRROR/mnist (default: ../shared/data). Writes results/benchmarks/gpu_*.csv and gpu_check.json.
#   bash benchmarks/gpu_check.sh            (or: make gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
MIRROR="${IWAE_DATA_MIRROR:-$(cd .. && pwd)/shared/data}"
DATA="${IWAE_DATA_DIR:-$PWD/data}"
"$PY" -m iwae fetch mnist --data-dir "$DATA" --mirror "$MIRROR"
"$PY" benchmarks/gpu_check.py --data-dir "$DATA" "$@"
