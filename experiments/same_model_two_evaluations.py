"""The K=5000 estimate's own noise: one model evaluated twice, with different random draws, on the same images.

Two evaluations of the same trained weights (each a metrics.json of `iwae evaluate`, or a stage snapshot's
stage<i>.metrics.json) on test sets where one holds the first n images of the other: the binary test images are
the same (the first n of N binarised from the same seed), but the K=5000 samples are drawn after a different
amount of binarisation noise, so each image's estimate gets other draws. Their paired NLL difference over the
common images, with its 95% interval over the images, is what the estimator's Monte Carlo noise alone moves a
mean by; the per-image sd of the difference is sqrt(2) times one estimate's noise on an image.
With --models A.pt B.pt it first checks that the two evaluated models hold the same parameters, bit for bit.

Used in docs/long-run: the long run's 4-epoch snapshots against the quick run's 4-epoch models, 0.04-0.05 nats
apart on the same 1,000 images.
Usage: python experiments/same_model_two_evaluations.py A.metrics.json B.metrics.json [--models A.pt B.pt]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae.stats import paired_difference  # noqa: E402


def per_image_ll(path: str) -> np.ndarray:
    blob = json.loads(Path(path).read_text())
    return np.asarray(blob.get("eval", blob)["test_ll_per_image"], dtype=float)


def same_parameters(a: str, b: str) -> bool:
    import torch

    from iwae.checkpoint import load_model

    pa, pb = load_model(a).state_dict(), load_model(b).state_dict()
    return pa.keys() == pb.keys() and all(torch.equal(pa[n], pb[n]) for n in pa)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics", nargs=2, help="two metrics files of evaluations of the same model")
    p.add_argument("--models", nargs=2, default=None, help="the two evaluated model files, to check they are equal")
    args = p.parse_args()
    if args.models and not same_parameters(*args.models):
        raise SystemExit(f"{args.models[0]} and {args.models[1]} hold different parameters: not one model")
    a, b = (per_image_ll(m) for m in args.metrics)
    n = min(len(a), len(b))
    d = paired_difference([-a[:n]], [-b[:n]])  # in NLL: -log p(x)
    sd = float(np.std(-a[:n] + b[:n], ddof=1))
    print(f"NLL on the first {n:,} images: {-a[:n].mean():.3f} and {-b[:n].mean():.3f}; A - B = {d['diff']:+.3f} nats "
          f"[95% CI {d['low']:+.3f}, {d['high']:+.3f}] over the images; per-image sd of A - B {sd:.2f} nats"
          + ("; the two models' parameters are equal" if args.models else ""))


if __name__ == "__main__":
    main()
