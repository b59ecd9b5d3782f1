"""Shared helpers of the benchmark scripts: timing, data, CSV output."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(fns: dict, device, rounds=30, number=10, warmup=5) -> dict:
    """Mean seconds per call of each function in ``fns``, once per round: {name: [seconds, ...]}.

    The functions take turns within each round, so that a slow spell of a shared machine does
    not fall on one of them only; compare them with ``summarise``.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / number)
    return times


def summarise(plain: list[float], fast: list[float]) -> tuple[float, float, float]:
    """(plain seconds, fast seconds, speedup) from the best round of each: on a shared machine the
    minimum is the stable estimate (slow spells only ever add time); interleaving the rounds
    gives both the same chances of a quiet moment."""
    return min(plain), min(fast), min(plain) / min(fast)


def test_images(n, device, seed=0, binary=True):
    """Real MNIST test images (binarised, or the grey levels) when the data are available (the cache, or
    fetched from $IWAE_DATA_MIRROR / upstream), else a fixed random batch."""
    from iwae.data import binarize, fetch, load

    data_dir = os.environ.get("IWAE_DATA_DIR", str(REPO / "data"))
    gen = torch.Generator().manual_seed(seed)
    try:
        fetch("mnist", data_dir)  # verified; a cached copy is only checked
        splits, _ = load("mnist", data_dir)
        x, source = splits.test[:n], f"MNIST test images from {data_dir}"
    except Exception as e:  # no fetched data: the timing does not depend on pixel values
        x, source = torch.rand(n, 784, generator=gen) * 0.4, f"random images ({type(e).__name__})"
    return (binarize(x, gen) if binary else x).to(device), source


def write_csv(rows: list[dict], name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def parse_and_setup(ap):
    """Add the shared options (--device, --threads, --default-malloc) to ``ap``, parse, and set up.

    Returns (args, device). float32 without TF32 on CUDA, as `iwae evaluate` runs.
    """
    from iwae.runtime import resolve_device, tune_allocator

    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for both paths (default: torch's)")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's allocator settings alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        tune_allocator()  # as `iwae train/evaluate` do; process-wide, so both paths get it
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    return args, device
