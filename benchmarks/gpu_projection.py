"""The paper budget (one seed) on one GPU when its training jobs run at the same time, projected from what
the GPU check measured: each group's captured step alone (gpu_train.csv: a stack of its VAE and IWAE,
M = 2; Table 2's continuations M = 1) and the throughput gain of P groups at once (gpu_concurrency.csv,
one row per P, e.g. under MPS).

The jobs are the pipeline's: 12 Table 1 groups (dataset x layers x K) and Table 2's two continuations,
each starting when the model it continues is trained. While P jobs run, each advances at gain(P) / P of
its speed alone (gain interpolated between the measured P; beyond the largest measured P it stays at
that P's gain). With gain(P) = 1 for every P (no MPS: the GPU time-slices between processes, measured
1.0x) the result is the jobs' times alone added up, which is what gpu_check.py projects.

This is a projection from measured parts, not a measured paper run. Usage:
    python benchmarks/gpu_projection.py [--train docs/gpu/gpu_train_run1.csv]
        [--concurrency docs/gpu/gpu_concurrency.csv] [--label mps]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae.report import paper_updates  # noqa: E402


def gain_curve(points: dict[int, float]):
    ps = sorted(points)

    def gain(p: int) -> float:
        if p <= ps[0]:
            return points[ps[0]] if ps[0] == 1 else 1.0 + (points[ps[0]] - 1.0) * (p - 1) / (ps[0] - 1)
        for lo, hi in zip(ps, ps[1:]):
            if p <= hi:
                return points[lo] + (points[hi] - points[lo]) * (p - lo) / (hi - lo)
        return points[ps[-1]]

    return gain


def jobs(step_ms: dict) -> dict:
    """name -> (hours alone, the job it waits for or None)."""
    out = {}
    for dataset in ("mnist", "omniglot"):
        for layers in (1, 2):
            for k in (1, 5, 50):
                out[f"{dataset} L{layers} k{k}"] = (step_ms[(layers, k, 2)] * paper_updates(dataset) / 3.6e6, None)
    t2 = paper_updates("mnist", table2=True)
    out["table2 VAE k1 -> IWAE k50"] = (step_ms[(1, 50, 1)] * t2 / 3.6e6, "mnist L1 k1")
    out["table2 IWAE k50 -> VAE k1"] = (step_ms[(1, 1, 1)] * t2 / 3.6e6, "mnist L1 k50")
    return out


def simulate(work: dict, gain) -> tuple[float, dict]:
    """Wall-clock hours until every job is done, and when each finished (processor sharing)."""
    left = {name: hours for name, (hours, _) in work.items()}
    done: dict[str, float] = {}
    now = 0.0
    while left:
        active = [n for n in left if work[n][1] is None or work[n][1] in done]
        rate = gain(len(active)) / len(active)
        first = min(active, key=lambda n: left[n])
        dt = left[first] / rate
        now += dt
        for n in active:
            left[n] -= dt * rate
        for n in [n for n in active if left[n] <= 1e-12]:
            done[n] = now
            del left[n]
    return now, done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(REPO / "docs" / "gpu" / "gpu_train_run1.csv"))
    ap.add_argument("--concurrency", default=str(REPO / "docs" / "gpu" / "gpu_concurrency.csv"))
    ap.add_argument("--label", default="mps", help="which rows of the concurrency file (its label column)")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.train)))
    step_ms = {(int(r["layers"]), int(r["k"]), int(r["members"])): float(r["stack_ms"])
               for r in rows if r["mode"] == "captured"}
    conc = [r for r in csv.DictReader(open(args.concurrency))
            if r["label"] == args.label and r["setting"].startswith("processes")]
    if not conc:
        sys.exit(f"{args.concurrency}: no 'processes' rows labelled {args.label!r}")
    points = {int(r["groups"]): float(r["gain"]) for r in conc}
    work = jobs(step_ms)
    device = rows[0]["device"]
    alone, _ = simulate(work, lambda p: 1.0)
    together, finished = simulate(work, gain_curve(points))
    print(f"{device}: the paper budget's training (one seed, 26 models as 12 stacks of 2 and Table 2's 2 "
          f"continuations), captured steps")
    print(f"  one job at a time (or side by side without MPS, gain 1.0x): {alone:.2f} h")
    print(f"  all jobs at once, {args.label} gains {points}: {together:.2f} h "
          f"(projected; {alone / together:.2f}x)")
    longest = max(work, key=lambda n: work[n][0])
    print(f"  the longest job alone: {longest}, {work[longest][0]:.2f} h; the last to finish: "
          f"{max(finished, key=finished.get)}")


if __name__ == "__main__":
    main()
