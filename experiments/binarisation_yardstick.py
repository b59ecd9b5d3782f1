"""How far another binarisation of the test images moves a model's test NLL: the yardstick for a gap to the paper.

MNIST's test images are grey; every evaluation binarises them (each pixel on with its grey level's probability) and
draws its K=5000 samples, from its seed (`iwae evaluate --seed`). The paper's number comes from its own draw, ours
from another, so a gap between the two holds the difference of two binarisations even for the same model. Given
one model evaluated twice on all the test images with two seeds (the same grey images, other binary images and
samples), this prints and writes: both means, their difference, and from the per-image differences the sd of one
evaluation's mean about the mean over binarisations (sd of an image's difference / sqrt(2), over sqrt(N) images)
with its 95% half-width, and the 95% half-width of a difference between two such evaluations (the gap between two
binarisations of one model: sqrt(2) times the sd): a gap to the paper inside it is what the binarisations alone
would give.

Usage: python experiments/binarisation_yardstick.py A_seed1.json A_seed2.json [B_seed1.json B_seed2.json ...]
       --out docs/paper-cpu/binarisation/yardstick
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

from iwae.records import model_name, pair_name  # noqa: E402
from iwae.report import write_table  # noqa: E402
from iwae.stats import evaluation_noise  # noqa: E402


def read(path: str) -> dict:
    blob = json.loads(Path(path).read_text())
    run, ev, tr = blob["run"], blob["eval"], blob["train"]
    step = (tr.get("in_training") or {}).get("step", 0)  # a model peeked inside an epoch: its minibatches there
    return dict(model=model_name(run["dataset"], run["n_layers"], run["objective"], run["k"]),
                cell=(run["dataset"], run["n_layers"], run["k"]), objective=run["objective"],
                epochs=f"{tr['epochs']:,}" + (f" + {step:,} minibatches" if step else ""), updates=tr["updates"],
                seed=ev["eval_config"]["seed"],
                nll=-np.asarray(ev["test_ll_per_image"], dtype=float))


def yardstick(a: dict, b: dict) -> dict:
    if (a["model"], a["updates"]) != (b["model"], b["updates"]) or len(a["nll"]) != len(b["nll"]):
        raise ValueError(f"{a['model']} ({a['updates']} updates) and {b['model']} ({b['updates']} updates): give the "
                         f"same model evaluated twice on the same number of test images")
    if a["seed"] == b["seed"]:
        raise ValueError(f"{a['model']}: both evaluations used --seed {a['seed']}; the second needs another seed")
    noise = evaluation_noise(a["nll"], b["nll"])
    return dict(model=a["model"], epochs=a["epochs"], images=len(a["nll"]), seeds=f"{a['seed']}, {b['seed']}",
                nll_a=a["nll"].mean(), nll_b=b["nll"].mean(), b_minus_a=noise["diff"], sd_of_one_mean=noise["sd_one"],
                one_mean_95=noise["one"], gap_of_two_95=noise["two"])


def paired_rows(pairs: list[tuple[dict, dict]]) -> list[dict]:
    """IWAE - VAE of a cell whose VAE and IWAE were both evaluated with the same two seeds: the difference is paired
    over the images within each evaluation, so its draws' noise is that of the per-image difference of differences.
    Each IWAE pair goes with the cell's VAE pair of the same seeds nearest to it in updates (models measured at
    several points: each point's own pair)."""
    rows = []
    for ia, ib in pairs:
        if ia["objective"] != "iwae":
            continue
        vaes = [(va, vb) for va, vb in pairs if va["objective"] == "vae" and va["cell"] == ia["cell"]
                and (va["seed"], vb["seed"]) == (ia["seed"], ib["seed"])]
        if not vaes:
            continue
        va, vb = min(vaes, key=lambda p: abs(p[0]["updates"] - ia["updates"]))
        first, second = ia["nll"] - va["nll"], ib["nll"] - vb["nll"]
        noise = evaluation_noise(first, second)
        rows.append(dict(model=pair_name(*ia["cell"]),
                         epochs=f"{ia['epochs']} / {va['epochs']}", images=len(first),
                         seeds=f"{ia['seed']}, {ib['seed']}",
                         nll_a=first.mean(), nll_b=second.mean(), b_minus_a=noise["diff"],
                         sd_of_one_mean=noise["sd_one"], one_mean_95=noise["one"], gap_of_two_95=noise["two"]))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="pairs: a model's metrics.json with one seed, then with another")
    ap.add_argument("--out", default=None, help="write OUT.csv, OUT.md and OUT.tex")
    args = ap.parse_args(argv)
    if len(args.metrics) % 2:
        sys.exit("binarisation_yardstick: give the metrics files in pairs (one model, two --seed)")
    pairs = [(read(a), read(b)) for a, b in zip(args.metrics[::2], args.metrics[1::2])]
    t = pd.DataFrame([yardstick(a, b) for a, b in pairs] + paired_rows(pairs))
    shown = pd.DataFrame({
        "model": t.model, "epochs": t.epochs, "images": t.images.map(lambda v: f"{v:,}"),
        "seeds": t.seeds, "NLL, first seed": t.nll_a.map(lambda v: f"{v:.2f}"),
        "NLL, second seed": t.nll_b.map(lambda v: f"{v:.2f}"),
        "second - first": t.b_minus_a.map(lambda v: f"{v:+.3f}"),
        "one evaluation's mean: sd (95%)": [f"{s:.3f} (±{h:.2f})" for s, h in zip(t.sd_of_one_mean, t.one_mean_95)],
        "two evaluations' gap: 95%": t.gap_of_two_95.map(lambda v: f"±{v:.2f}")})
    caption = ("Test NLL (nats, K=5000) of one model evaluated twice on the same grey test images with two seeds "
               "(other binary images and samples): the gap a second binarisation makes, and from the per-image "
               "differences the sd of one evaluation's mean about the mean over binarisations, and the 95% "
               "half-width of a gap between two evaluations (as between ours and the paper's, each from its own "
               "binarisation). IWAE - VAE (paired): the difference paired over the images within each evaluation, "
               "its epochs IWAE / VAE.")
    print(caption + "\n\n" + shown.to_markdown(index=False, disable_numparse=True))
    if args.out:
        write_table(t, shown, Path(args.out), caption)  # OUT.csv, .md and .tex

if __name__ == "__main__":
    main()
