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
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))  # rows of several kinds
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


# ----------------------------------------------------------------------------- the arithmetic rate
def _products(layers: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """The model's matrix products as (in, out): those of q's first layer (once per image), those of q's upper
    layers (once per sample), those of p (once per sample). From the architecture (iwae.model)."""
    from iwae.model import ModelConfig

    sizes = ModelConfig(layers).layer_sizes  # (hidden, stochastic) per layer, bottom first
    def gaussian(n_in, hid, out):
        return [(n_in, hid), (hid, hid), (hid, 2 * out)]
    q_first = gaussian(784, *sizes[0])
    q_upper = [p for (_, below), (hid, out) in zip(sizes, sizes[1:]) for p in gaussian(below, hid, out)]
    p_upper = [p for (hid, below), (_, above) in zip(sizes, sizes[1:]) for p in gaussian(above, hid, below)]
    p_x = [(sizes[0][1], sizes[0][0]), (sizes[0][0], sizes[0][0]), (sizes[0][0], 784)]
    return q_first, q_upper, p_upper + p_x


def forward_flops(layers: int, k: int, images: int) -> int:
    """Multiply-adds x 2 of the matrix products of one forward pass of ``images`` images with ``k`` samples each
    (q's first layer once per image, the rest once per sample). Elementwise work (tanh, exp, the densities,
    logsumexp) is not counted: the products dominate the count from K = 5 up."""
    q_first, q_upper, p = _products(layers)
    per_image = sum(a * b for a, b in q_first)
    per_sample = sum(a * b for a, b in q_upper + p)
    return 2 * images * (per_image + k * per_sample)


def step_flops(layers: int, k: int, batch: int = 20, members: int = 1) -> int:
    """One training step: the forward products and the backward's two per product (gradients of the input and of
    the weights), but for the gradient of the data x, which is not computed: 3x the forward count less one product
    of q's first layer, for each member. Adam's update (a few flops per parameter) is not counted."""
    (n_in, n_out), *_ = _products(layers)[0]
    return members * (3 * forward_flops(layers, k, batch) - 2 * batch * n_in * n_out)


def matmul_rate(device, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large float32 matrix product (n x n by n x n) on ``device`` with torch's current threads: the
    machine's practical limit for the products above. The best of ``repeat``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def start(ap, images: int = 2000):
    """Parse and set up (``parse_and_setup``), then what every step benchmark needs: -> (args, device, its name, the
    first ``images`` MNIST images as grey levels (each step binarises its minibatch), where they came from, and the
    large matrix product's rate on this device and these threads)."""
    from iwae.runtime import device_name

    args, device = parse_and_setup(ap)
    grey, source = test_images(images, device, binary=False)
    return args, device, device_name(device), grey, source, matmul_rate(device)
