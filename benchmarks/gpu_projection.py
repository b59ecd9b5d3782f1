"""The paper budget (one seed) on one GPU when its training jobs run at the same time, projected from what
the GPU check measured: each group's captured step alone (gpu_train.csv: a stack of its VAE and IWAE,
M = 2; Table 2's one-model continuations as the smallest stack measured, ``iwae.projection.timed_as``) and the throughput gain of P jobs at once (gpu_concurrency.csv,
one row per P, e.g. under MPS). The arithmetic is ``iwae.projection.project`` (processor sharing, Table 2
after its parents); with gain 1.0 for every P (no MPS: the GPU time-slices between processes, measured
1.0x) it is the jobs' times alone added up, which is what gpu_check.py projects.

This is a projection from measured parts, not a measured paper run. Usage:
    python benchmarks/gpu_projection.py [--train docs/gpu/gpu_train_run1.csv]
        [--concurrency docs/gpu/gpu_concurrency.csv] [--label mps] [--mode captured]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae.projection import gain_curve, paper_jobs, project, timed_as  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(REPO / "docs" / "gpu" / "gpu_train_run1.csv"))
    ap.add_argument("--concurrency", default=str(REPO / "docs" / "gpu" / "gpu_concurrency.csv"))
    ap.add_argument("--label", default="mps", help="which rows of the concurrency file (its label column)")
    ap.add_argument("--mode", default="captured", help="which step times of the train file (its mode column)")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.train)))
    step_ms = {(int(r["layers"]), int(r["k"]), int(r["members"])): float(r["stack_ms"])
               for r in rows if r["mode"] == args.mode}
    conc = [r for r in csv.DictReader(open(args.concurrency))
            if r["label"] == args.label and r["setting"].startswith("processes")]
    if not conc:
        sys.exit(f"{args.concurrency}: no 'processes' rows labelled {args.label!r}")
    points = {int(r["groups"]): float(r["gain"]) for r in conc}
    jobs = paper_jobs(seeds=1)
    def job_ms(j):
        sizes = [m for (layers, k, m) in step_ms if (layers, k) == (j.layers, j.k)]
        return step_ms.get((j.layers, j.k, timed_as(sizes, j.members))) if sizes else None

    p = project(jobs, job_ms, gain=gain_curve(points))
    device = rows[0]["device"]
    print(f"{device}: the paper budget's training (one seed, 26 models as 12 stacks of 2 and Table 2's 2 "
          f"continuations), {args.mode} steps")
    print(f"  one job at a time (or side by side without MPS, gain 1.0x): {p['train_hours']:.2f} h")
    print(f"  all jobs at once, {args.label} gains {points}: {p['shared_hours']:.2f} h "
          f"(projected; {p['train_hours'] / p['shared_hours']:.2f}x)")
    longest = max((r for r in p["rows"] if r["hours"] is not None), key=lambda r: r["hours"])
    print(f"  the longest job alone: {longest['job']}, {longest['hours']:.2f} h")
    if p["missing"]:
        print(f"  not measured: {', '.join(p['missing'])}")


if __name__ == "__main__":
    main()
