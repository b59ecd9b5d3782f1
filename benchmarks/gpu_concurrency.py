"""Several training stacks on one GPU at once: does the GPU run them side by side, or one after another?

A captured step of these small models keeps only a sliver of the GPU busy (a few hundred tiny kernels
one after another), so the paper budget on one GPU depends on running several (dataset, layers, K)
groups at the same time. This measures it for the paper's six MNIST groups (1 and 2 layers x K = 1, 5,
50; each a stack of its VAE and IWAE, captured step):

- alone: each group's ms per step with the GPU to itself (the plain reference);
- processes: P training processes at once (as `snakemake --resources gpu=P` on one GPU runs P jobs),
  each group once or twice; run it again under MPS (`nvidia-cuda-mps-control -d`) to see what MPS adds;
- streams: the six stacks in one process, each replayed on its own CUDA stream.

Printed ratio: the time the same steps take one group after another (sum of the alone times) over the
wall-clock time of running them together; 1.0 = no gain, 6.0 = six groups for the price of one.
Writes gpu_concurrency.csv (appending a row per setting) to --out. Random grey images stand in for MNIST
(a step's time does not depend on pixel values).
Usage: python benchmarks/gpu_concurrency.py [--steps N] [--label no-mps|mps] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import OUT, make_stack, time_rounds

GROUPS = [(layers, k) for layers in (1, 2) for k in (1, 5, 50)]


def captured_stack(layers: int, k: int):
    """A group's stack of its VAE and IWAE (captured step), warmed up: eager steps, the recording, replays."""
    grey = torch.rand(59_600, 784, generator=torch.Generator().manual_seed(0)).to("cuda") * 0.5
    st = make_stack(grey, layers, k, 2, mode="captured")
    for _ in range(20):
        st.step()
    torch.cuda.synchronize()
    return st


def worker(layers: int, k: int, steps: int) -> None:
    """One training process: build and warm up, say so, read the common start time, time `steps` steps."""
    from iwae.runtime import no_tf32

    no_tf32()
    st = captured_stack(layers, k)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    for _ in range(steps):
        st.step()
    torch.cuda.synchronize()
    t1 = time.time()
    if not torch.isfinite(st.partial).all():
        raise RuntimeError("non-finite loss")
    print(json.dumps(dict(layers=layers, k=k, start=t0, end=t1)), flush=True)


def alone_ms(steps: int) -> dict:
    out = {}
    for layers, k in GROUPS:
        st = captured_stack(layers, k)
        out[(layers, k)] = 1e3 * time_rounds({"alone": st.step}, torch.device("cuda"), 1, steps, 0)["alone"][0]
        print(f"alone L{layers} K={k:>2} (stack of 2, captured): {out[(layers, k)]:.3f} ms/step", flush=True)
        del st
    return out


def processes(groups: list, steps: int) -> float:
    """Wall-clock seconds of running `groups` as separate processes, all started together."""
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", f"{layers},{k}", "--steps", str(steps)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for layers, k in groups]
    for p in procs:  # every one built, captured and warmed up
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker failed before it was ready")
    start_at = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"a worker failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    late = max(r["start"] for r in results) - start_at
    if late > 0.05:
        print(f"  (a worker started {late:.2f} s late)", flush=True)
    return max(r["end"] for r in results) - min(r["start"] for r in results)


def streams(steps: int) -> float:
    """Wall-clock seconds of the six stacks taking turns in one process, each on its own stream (as
    ``iwae.train.train_together`` runs them: ``iwae.train.in_turn``)."""
    from iwae.train import in_turn

    stacks = [captured_stack(layers, k) for layers, k in GROUPS]
    return steps * time_rounds({"streams": in_turn(stacks)}, torch.device("cuda"), 1, steps, 0)["streams"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--label", default="no-mps", help="recorded with each row (e.g. mps when MPS is on)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--skip-streams", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        layers, k = map(int, args.worker.split(","))
        return worker(layers, k, args.steps)
    if not torch.cuda.is_available():
        sys.exit("gpu_concurrency: no CUDA GPU here")
    from iwae.runtime import no_tf32

    no_tf32()
    name = torch.cuda.get_device_name()
    alone = alone_ms(args.steps)
    settings = [(f"processes x{len(g)}", g) for g in (GROUPS[:3], GROUPS, GROUPS + GROUPS)]
    rows = []
    for what, groups in settings + ([("streams x6 (one process)", None)] if not args.skip_streams else []):
        wall = streams(args.steps) if groups is None else processes(groups, args.steps)
        groups = groups or GROUPS
        sequential = sum(alone[g] for g in groups) * args.steps / 1e3
        rows.append(dict(device=name, torch=torch.__version__, label=args.label, setting=what, groups=len(groups),
                         steps=args.steps, sequential_s=round(sequential, 3), together_s=round(wall, 3),
                         gain=round(sequential / wall, 2)))
        print(f"{args.label:>7} {what:<26}: {sequential:7.2f} s one after another, {wall:7.2f} s together: "
              f"{sequential / wall:.2f}x", flush=True)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "gpu_concurrency.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[-1]))
            if new:
                w.writeheader()
            w.writerow(rows[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
