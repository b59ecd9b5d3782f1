#!/usr/bin/env bash
# The reproduction on a GPU node, through the real pipeline (issue #17): the `gpu` budget (MNIST, 1 and 2
# stochastic layers, VAE and IWAE at K = 1, 5, 50, five seeds per cell, the first 13 epochs of the paper's
# schedule, each data set's groups trained in one process on one CUDA stream each, the final models evaluated
# with K=5000 on all 10,000 test images and the learning curve on the first 2,000), then the report.
#
# For an offline node with only Python and PyTorch (and numpy, pandas, scipy, seaborn, tqdm, PyYAML, pytest):
# Snakemake and what it needs come as wheels prepared beforehand on a machine with a package index
# (`make gpu-prepare`: .gpu/wheels, and the MNIST files in .gpu/data/mnist). Then, on the node:
#     bash benchmarks/gpu_run.sh                   # or with more config: ... seeds=[0,1,2]
# Everything a user gets (tables, figures, report.html, metrics, logs, the rules' benchmark TSVs, this
# script's log and phase times) goes into one folder, $OUT or results/gpu-run, packed as gpu-run.tar.gz.
# Rehearsal on a CPU (minutes): GPU_RUN_CONFIG="budget=gpu_tiny device=cpu" bash benchmarks/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
PY="${PYTHON:-python3}"
DEST="${OUT:-$PWD/results/gpu-run}"
CONFIG="${GPU_RUN_CONFIG:-budget=gpu device=cuda}"
JOBS="${GPU_JOBS:-4}"  # jobs sharing the GPU at once (the training job, then the groups' evaluations)
mkdir -p "$DEST"
exec > >(tee "$DEST/gpu_run.log") 2>&1
phase() { echo "$(( $(date +%s) - T0 )) s: $*" | tee -a "$DEST/phases.txt"; }

phase "start; commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
} | tee "$DEST/device.txt"

# 1. Snakemake, offline: from the wheels, into the Python that holds PyTorch (pip keeps what is there)
if ! "$PY" -c "import snakemake" 2>/dev/null; then
  WHEELS="${GPU_WHEELS:-$PWD/.gpu/wheels}"
  [ -d "$WHEELS" ] || { echo "gpu_run: no $WHEELS; run 'make gpu-prepare' on a machine with a package index and carry .gpu"; exit 2; }
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" snakemake==9.27.1 tabulate pooch
fi
phase "snakemake $("$PY" -m snakemake --version) installed"
# the rules call `python`: make it this Python (a wrapper, not a link: a virtual environment's Python knows
# itself by the path it is started from)
mkdir -p .gpu/bin && printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PY")" > .gpu/bin/python
chmod +x .gpu/bin/python && export PATH="$PWD/.gpu/bin:$PATH"

# 2. the data: the MNIST files carried in .gpu/data/mnist (checksummed by the fetch rule)
export IWAE_DATA_MIRROR="${IWAE_DATA_MIRROR:-$PWD/.gpu/data}"
[ -f "$IWAE_DATA_MIRROR/mnist/train-images-idx3-ubyte.gz" ] || { echo "gpu_run: no MNIST files in $IWAE_DATA_MIRROR/mnist"; exit 2; }

# 3. the pipeline (a job left unfinished keeps its checkpoint: the same command resumes it)
# shellcheck disable=SC2086
set +e
"$PY" -m snakemake --cores all --resources gpu="$JOBS" --keep-incomplete --config $CONFIG evaluate_by_group=true "$@"
status=$?
set -e
phase "pipeline finished (exit $status)"
# shellcheck disable=SC2086
"$PY" -m snakemake --cores 1 --report results/report.html --config $CONFIG evaluate_by_group=true "$@" \
  || echo "gpu_run: the HTML report could not be written"
phase "report written"

# 4. one folder: everything a user gets, packed (the device returns a few files only)
find results -name "*.json" -not -path "results/gpu-run/*" > "$DEST/.files"
tar czf "$DEST/gpu-run.tar.gz" -T "$DEST/.files" results/tables results/figures results/report.html logs \
  benchmarks/rules "$DEST/phases.txt" "$DEST/device.txt" 2>/dev/null || true
rm -f "$DEST/.files"
phase "packed $DEST/gpu-run.tar.gz ($(du -h "$DEST/gpu-run.tar.gz" | cut -f1))"
exit $status
