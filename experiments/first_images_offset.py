"""How far a number on the first 2,000 MNIST test images is from the same model's number on all 10,000.

The learning curve of the CPU paper-budget run (docs/paper-cpu) evaluates every stage snapshot on the first 2,000
test images, the paper reports all 10,000. Given models evaluated on all 10,000 (metrics.json of `iwae evaluate`
without --test-subset), this prints and writes, per model, the test NLL on all 10,000, on the first 2,000, on the
first and the last 5,000 (the MNIST page, yann.lecun.com/exdb/mnist, says the first 5,000 come from NIST's
training set, Census employees, and are cleaner and easier than the last 5,000, from its test set), and the
first 2,000's offset from all 10,000 beside what a random 2,000 of them would give (95%: 1.96 x the standard error
of a 2,000-image mean drawn without replacement from these 10,000): a yardstick for a 2,000-image number set
beside a 10,000-image one, whatever the offset's cause. For a VAE and an IWAE of the same cell, IWAE -
VAE paired over all 10,000 images and over the first 2,000.

The offset of one model is a fact about these images, not a sampling error: the K=5000 estimator's own noise on a
2,000-image mean is about 0.02-0.05 nats (experiments/same_model_two_evaluations.py).

Usage: python experiments/first_images_offset.py VAE.json IWAE.json [...] --first 2000 --out docs/paper-cpu/first_images
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae.records import model_name  # noqa: E402
from iwae.stats import paired_difference  # noqa: E402


def read(path: str) -> dict:
    blob = json.loads(Path(path).read_text())
    run, ev = blob["run"], blob["eval"]
    return dict(dataset=run["dataset"], n_layers=run["n_layers"], objective=run["objective"], k=run["k"],
                seed=run["seed"], epochs=blob["train"]["epochs"], ll=np.asarray(ev["test_ll_per_image"], dtype=float),
                eval_k=ev["eval_k"], path=path)


def random_subset_halfwidth(nll: np.ndarray, n: int) -> float:
    """95% half-width of the mean of n images drawn at random without replacement from these, about their mean."""
    N = len(nll)
    return 1.96 * float(np.std(nll, ddof=1)) * np.sqrt((1 - n / N) / n)


def offsets(models: list[dict], first: int) -> pd.DataFrame:
    rows = []
    for m in models:
        nll = -m["ll"]
        half = len(nll) // 2
        rows.append(dict(model=model_name(m["dataset"], m["n_layers"], m["objective"], m["k"]),
                         epochs=m["epochs"], images=len(nll), nll_all=nll.mean(), nll_first=nll[:first].mean(),
                         nll_first_half=nll[:half].mean(), nll_last_half=nll[half:].mean(),
                         first_minus_all=nll[:first].mean() - nll.mean(),
                         random_subset_95=random_subset_halfwidth(nll, first)))
    return pd.DataFrame(rows)


def differences(models: list[dict], first: int) -> list[str]:
    by = {(m["dataset"], m["n_layers"], m["k"], m["epochs"], m["objective"]): m for m in models}
    lines = []
    for (dataset, layers, k, epochs, obj), iwae in by.items():
        vae = by.get((dataset, layers, k, epochs, "vae"))
        if obj != "iwae" or vae is None:
            continue
        for label, n in ((f"all {len(iwae['ll']):,}", None), (f"the first {first:,}", first)):
            d = paired_difference([-iwae["ll"][:n]], [-vae["ll"][:n]])
            lines.append(f"{dataset.upper()} {layers}L K={k}, {epochs:,} epochs, IWAE - VAE over {label} test images: "
                         f"{d['diff']:+.2f} [95% CI {d['low']:+.2f}, {d['high']:+.2f}] (one training seed: the "
                         f"images' sampling noise)")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="metrics.json of models evaluated on all the test images")
    ap.add_argument("--first", type=int, default=2000, help="the first N test images the curve is evaluated on")
    ap.add_argument("--out", default=None, help="write OUT.csv and OUT.md")
    args = ap.parse_args(argv)
    models = [read(p) for p in args.metrics]
    if any(len(m["ll"]) <= args.first for m in models):
        sys.exit(f"first_images_offset: every model must be evaluated on more than the first {args.first} images "
                 f"(run `iwae evaluate` without --test-subset)")
    t = offsets(models, args.first)
    shown = pd.DataFrame({
        "model": t.model, "epochs": t.epochs.map(lambda v: f"{v:,}"), "all": t.nll_all.map(lambda v: f"{v:.2f}"),
        f"first {args.first:,}": t.nll_first.map(lambda v: f"{v:.2f}"),
        "first half": t.nll_first_half.map(lambda v: f"{v:.2f}"),
        "last half": t.nll_last_half.map(lambda v: f"{v:.2f}"),
        f"first {args.first:,} - all": t.first_minus_all.map(lambda v: f"{v:+.2f}"),
        f"a random {args.first:,}: 95% within": t.random_subset_95.map(lambda v: f"±{v:.2f}")})
    text = (f"Test NLL (nats, K={models[0]['eval_k']}) of each model on all its test images, on the first "
            f"{args.first:,} (the learning curve's images), on the first and the last half; 'a random "
            f"{args.first:,}: 95% within': how far the mean of {args.first:,} images drawn at random from these "
            f"would fall from all of them (95%), the yardstick for the offset beside it.\n\n"
            + shown.to_markdown(index=False, disable_numparse=True) + "\n\n"
            + "\n".join(differences(models, args.first)) + "\n")
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        t.to_csv(out.with_suffix(".csv"), index=False)
        out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
