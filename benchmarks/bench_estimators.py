"""What each gradient estimator costs per update, alone, against IWAE in the same run.

The estimator comparison trains its estimators as one stack, which shares every update's wall-clock; this
times each one as a stack of one (the trainer's step: binarisation, noise, forward, the backward pass or
passes its surrogates need, the published Adam) on MNIST, 1 stochastic layer, K in {5, 50}. The estimators take
turns within each round; each is summarised by its best round. Writes results/benchmarks/estimators_<device>.csv.
Usage: python benchmarks/bench_estimators.py [--device cuda] [--threads N] [--rounds N]
"""

from __future__ import annotations

import argparse

from common import make_stack, start, step_flops, time_rounds, write_csv

ESTIMATORS = ("iwae", "vae", "iwae_stl", "iwae_dreg", "rws", "rws_dreg")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    args, device, name, grey, source, peak = start(ap)
    print(f"device: {name}; data: {source}; minibatch 20, one model per stack; a 2048 x 2048 float32 matrix product: "
          f"{peak / 1e9:.1f} GFLOP/s. The rate of each step counts IWAE's products (one forward, one backward): the "
          f"estimators with a second backward pass (DReG, RWS) do more than it counts")
    rows = []
    for k in (5, 50):
        stacks = {e: make_stack(grey, 1, k, 1, objective=e) for e in ESTIMATORS}
        number = 2 if device.type == "cpu" and k == 50 else 10
        best = {e: 1e3 * min(t) for e, t in time_rounds({e: st.step for e, st in stacks.items()}, device,
                                                        rounds=args.rounds, number=number).items()}
        for e in ESTIMATORS:
            rows.append(dict(device=name, layers=1, k=k, estimator=e, ms_per_update=round(best[e], 3),
                             vs_iwae=round(best[e] / best["iwae"], 2),
                             gflops_iwae_count=round(step_flops(1, k) / best[e] / 1e6, 2),
                             of_matmul=round(step_flops(1, k) / best[e] * 1e3 / peak, 3)))
        print(f"K={k:>2}: " + ", ".join(f"{e} {best[e]:.2f} ms ({best[e] / best['iwae']:.2f}x, "
                                       f"{100 * step_flops(1, k) / best[e] * 1e3 / peak:.0f}% of the product's rate)"
                                       for e in ESTIMATORS), flush=True)
    tag = "cuda" if device.type == "cuda" else "cpu"
    print(f"wrote {write_csv(rows, f'estimators_{tag}.csv')}")


if __name__ == "__main__":
    main()
