"""Shared helpers of the benchmark scripts: the stack they time, timing, data, CSV output."""

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


def make_stack(train_x, layers: int, k: int, members: int, mode: str = "eager", objective: str | None = None,
               **protocol):
    """A stack of ``members`` models at their initial weights, built as the trainer builds it (``iwae.stack.build``):
    VAE and IWAE alternating (or all ``objective``), seeds 0..M-1, the authors' protocol unless ``protocol`` says
    otherwise; its steps run ``mode`` (``iwae.stack.STEP_MODES``), the first epoch started."""
    from iwae.config import TrainConfig
    from iwae.stack import build

    cfgs = [TrainConfig(n_layers=layers, k=k, objective=objective or ("vae", "iwae")[s % 2], seed=s, **protocol)
            for s in range(members)]
    st = build(cfgs, train_x, lr=1e-4)
    st.use(mode)
    st.start_epoch(1e-4, 0)
    return st


def time_rounds(fns: dict, device, rounds=30, number=10, warmup=5) -> dict:
    """Mean seconds per call of each function in ``fns``, once per round: {name: [seconds, ...]}.

    The functions take turns within each round, so that a slow spell of a shared machine does
    not fall on one of them only. Compare the best round of each: on a shared machine the minimum
    is the stable estimate (slow spells only ever add time).
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


def write_csv(rows: list[dict], name: str, folder: Path = OUT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def parse_and_setup(ap):
    """Add the shared options (--device, --threads, --default-malloc) to ``ap``, parse, and set up.

    Returns (args, device): float32 without TF32 on CUDA (``resolve_device``), as `iwae` runs.
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
    return args, resolve_device(args.device)
