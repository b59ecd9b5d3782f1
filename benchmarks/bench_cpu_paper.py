"""Which faithful way of training the CPU paper-budget cells is fastest on this machine (issue #25).

The cells: MNIST 1 layer K=5 VAE and IWAE, K=1, then MNIST 2 layers K=1. Every way below runs the same
step (the authors' procedure; eager and compiled agree within float rounding, tests/test_train.py), so
the choice is speed only. It measures the training step of one model alone ("one") and of a stack of two
("two": VAE + IWAE, or two K=1 replicates):
- eager or compiled (``iwae.stack.Stack.use``), with 1 or 2 threads, alone on the machine;
- with 1 thread while another one-thread job runs on the other core (what ``snakemake --cores 2`` runs).
Each measurement is its own process (threads and compilation are per process) and the best of ``--rounds``
rounds of ``--steps`` steps. From the rates it projects the training makespan of the plans (a model is
9,774,400 updates). Writes results/benchmarks/cpu_paper_<cpu>.csv.
Usage: python benchmarks/bench_cpu_paper.py [--steps 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
UPDATES = 9_774_400  # one model of the paper budget: 3,280 epochs of 2,980 minibatches of 20 (59,600 images)

# name: (layers, K, members of one job): "two" is a stack of VAE and IWAE (at K=1, two replicates of one objective)
CELLS = {
    "L1 K=5 one": (1, 5, 1),
    "L1 K=5 two": (1, 5, 2),
    "L1 K=1 one": (1, 1, 1),
    "L1 K=1 two": (1, 1, 2),
    "L2 K=1 one": (2, 1, 1),
}
# the jobs measured side by side, one thread each
PAIRS = [("L1 K=5 one", "L1 K=5 one"), ("L1 K=1 one", "L2 K=1 one"), ("L1 K=5 two", "L1 K=1 one"),
         ("L1 K=5 two", "L2 K=1 one")]


def measure(cell: str, mode: str, threads: int, steps: int, rounds: int) -> dict:
    """In a process of its own: the best ms per stack step of ``cell`` run ``mode`` with ``threads``."""
    import torch
    from common import make_stack, test_images

    from iwae.runtime import tune_allocator

    torch.set_num_threads(threads)
    tune_allocator()
    layers, k, members = CELLS[cell]
    grey, _ = test_images(2000, torch.device("cpu"), binary=False)
    st = make_stack(grey, layers, k, members, mode=mode)
    for _ in range(30):  # warm-up (the compilation of the compiled step)
        st.step()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            st.step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return dict(cell=cell, mode=mode, threads=threads, ms_per_step=1e3 * best)


def spawn(cell, mode, threads, steps, rounds):
    return subprocess.Popen([sys.executable, __file__, "--one", json.dumps([cell, mode, threads, steps, rounds])],
                            stdout=subprocess.PIPE, text=True, cwd=HERE)


def collect(p) -> dict:
    out, _ = p.communicate()
    if p.returncode:
        raise RuntimeError(f"a measurement failed (exit {p.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def hours(ms_per_step: float) -> float:
    return ms_per_step * UPDATES / 3.6e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return
    sys.path.insert(0, str(HERE))
    from common import write_csv

    from iwae.runtime import device_name

    import torch

    cpu = device_name(torch.device("cpu"))
    print(f"CPU: {cpu}, {os.cpu_count()} cores; {args.rounds} rounds of {args.steps} steps, best round")
    rows = []
    for cell in CELLS:  # alone on the machine
        for mode in ("eager", "compiled"):
            for threads in (1, 2):
                r = collect(spawn(cell, mode, threads, args.steps, args.rounds))
                rows.append(dict(r, setting="alone"))
                print(f"{cell:18s} {mode:8s} {threads} thread(s) alone: {r['ms_per_step']:.3f} ms/step", flush=True)
    alone = {(r["cell"], r["mode"], r["threads"]): r["ms_per_step"] for r in rows}
    # two one-thread jobs side by side (what `snakemake --cores 2` runs), each in its faster one-thread mode
    fastest = {c: min(("eager", "compiled"), key=lambda m: alone[(c, m, 1)]) for c in CELLS}
    side = {}
    for a, b in PAIRS:
        pair = [spawn(c, fastest[c], 1, args.steps, args.rounds) for c in (a, b)]
        for r, other in zip(map(collect, pair), (b, a)):
            side[(r["cell"], other)] = r["ms_per_step"]
            rows.append(dict(r, setting=f"beside {other}"))
            print(f"{r['cell']:18s} {r['mode']:8s} 1 thread beside {other}: {r['ms_per_step']:.3f} ms/step "
                  f"({r['ms_per_step'] / alone[(r['cell'], r['mode'], 1)]:.2f}x alone)", flush=True)
    best2 = {c: min(alone[(c, m, 2)] for m in ("eager", "compiled")) for c in CELLS}
    h = {key: hours(ms) for key, ms in side.items()}
    plans = {
        "one model per job, two one-thread jobs side by side (K=5 VAE | K=5 IWAE, then K=1 | L2 K=1)":
            max(h[("L1 K=5 one", "L1 K=5 one")] + h[("L1 K=1 one", "L2 K=1 one")],
                h[("L1 K=5 one", "L1 K=5 one")] + h[("L2 K=1 one", "L1 K=1 one")]),
        "the K=5 pair as a stack beside K=1 then L2 K=1 (one thread each)":
            max(h[("L1 K=5 two", "L1 K=1 one")],
                h[("L1 K=1 one", "L1 K=5 two")] + h[("L2 K=1 one", "L1 K=5 two")]),
        "one two-thread job after another (the K=5 pair as a stack, K=1, L2 K=1)":
            hours(best2["L1 K=5 two"] + best2["L1 K=1 one"] + best2["L2 K=1 one"]),
        "one two-thread job after another (every model alone)":
            hours(2 * best2["L1 K=5 one"] + best2["L1 K=1 one"] + best2["L2 K=1 one"]),
    }
    print("\nprojected training makespan of the four models (evaluations not counted):")
    for plan, hrs in sorted(plans.items(), key=lambda kv: kv[1]):
        print(f"  {hrs:5.1f} h  {plan}")
    print(f"a K=1 replicate in the same job (a stack of two) costs "
          f"{min(alone[('L1 K=1 two', m, 1)] for m in ('eager', 'compiled')) / alone[('L1 K=1 one', fastest['L1 K=1 one'], 1)]:.2f}x "
          f"one K=1 model on one thread")
    for r in rows:
        r.update(cpu=cpu, hours_per_paper_budget=round(hours(r["ms_per_step"]), 2),
                 ms_per_step=round(r["ms_per_step"], 4))
    print(f"wrote {write_csv(rows, 'cpu_paper_' + cpu.replace(' ', '_').replace(',', '').replace('(', '').replace(')', '') + '.csv')}")


if __name__ == "__main__":
    main()
