"""The same configuration trained in two runs, set side by side on the same test images.

The CPU paper-budget run (docs/paper-cpu) evaluates a snapshot after every stage; earlier runs committed under docs/
(the quick run, the noise floor, the long run) trained some of the same configurations to some of the same epochs:
the same data set, layers, objective, K, training seed, updates, optimiser, initial weights, data order and
learning rate at every epoch. For each such pair this writes both test NLLs on the test images both were
evaluated on (the first N of the same binarisation seed: the same binary images) and their difference paired over
those images with its 95% interval (one model each: the interval is the images' sampling noise and the K=5000
estimate's own noise, no verdict about training), and how each was trained (alone or in a stack of how many
members: a stack and a model trained alone drift apart in float rounding, docs/family/stack_vs_alone); and beside
them, what a change of training seed gives in the same configuration where an earlier run trained several seeds
(the noise floor): <out>_seeds.csv.

Usage: python experiments/like_with_like.py --ours docs/paper-cpu/state/results \\
           --earlier docs/quick-run/records docs/noise-floor/records docs/long-run/records \\
           --out docs/paper-cpu/like_with_like
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
from iwae.render import intervals  # noqa: E402
from iwae.stats import paired_difference  # noqa: E402

SAME_TRAINING = ("optimizer", "init", "data_order", "batch_size", "train_subset", "epoch_scale")


def read(path: Path) -> dict | None:
    """One metrics file: what makes its training the same as another's, and its per-image test NLL; None for a
    model continued from another (Table 2's), which no other run repeats."""
    blob = json.loads(Path(path).read_text())
    run, tr, ev = blob["run"], blob["train"], blob["eval"]
    if run.get("continued_from"):
        return None
    tc = tr["train_config"]
    key = (run["dataset"], run["n_layers"], run["objective"], run["k"], run["seed"], tr["epochs"], tr["updates"],
           tuple(tc.get(f) for f in SAME_TRAINING), tuple(h["lr"] for h in tr["history"]),
           ev["eval_config"]["seed"], ev["eval_k"])
    return dict(key=key, config=key[:4] + key[5:], seed=run["seed"], path=Path(path), budget=run["budget"],
                stack=tr.get("stack_size", 1),
                model=model_name(run["dataset"], run["n_layers"], run["objective"], run["k"]), epochs=tr["epochs"],
                active="+".join(map(str, ev["active_units"])), nll=-np.asarray(ev["test_ll_per_image"], dtype=float))


def load(paths: list[Path]) -> list[dict]:
    """``read`` of each metrics file, the continued models left out."""
    return [m for m in map(read, paths) if m is not None]


def pairs(ours: list[dict], earlier: list[dict]) -> pd.DataFrame:
    """Every model of ``ours`` beside every model of ``earlier`` (``load``'s) trained the same way (``read``'s key),
    on the first N test images both have: their NLLs and ours minus theirs, paired over those images."""
    theirs = {}
    for m in earlier:
        theirs.setdefault(m["key"], []).append(m)
    rows = []
    for a in ours:
        for b in theirs.get(a["key"], []):
            n = min(len(a["nll"]), len(b["nll"]))
            d = paired_difference([a["nll"][:n]], [b["nll"][:n]])
            rows.append(dict(model=a["model"], epochs=a["epochs"], images=n, ours=float(a["nll"][:n].mean()),
                             ours_active=a["active"], ours_file=str(a["path"]), theirs=float(b["nll"][:n].mean()),
                             theirs_active=b["active"], theirs_budget=b["budget"], theirs_stack=b["stack"],
                             ours_budget=a["budget"], ours_stack=a["stack"], theirs_file=str(b["path"]),
                             ours_minus_theirs=d["diff"], low=d["low"], high=d["high"]))
    return pd.DataFrame(rows)


def other_seeds(ours: list[dict], earlier: list[dict]) -> pd.DataFrame:
    """The yardstick of a change of training seed: in the earlier runs, each model of a configuration of ``ours``
    (the same training but the seed) with another seed than ours, minus the one with our seed, paired over the
    test images both have (each run of a stack of seeds: the same binary images and batch)."""
    configs = {m["config"]: m["seed"] for m in ours}
    models = [m for m in earlier if m["config"] in configs]
    rows = []
    for base in models:
        if base["seed"] != configs[base["config"]]:
            continue
        for other in models:
            same_run = other["budget"] == base["budget"]
            if other["config"] == base["config"] and other["seed"] != base["seed"] and same_run:
                n = min(len(base["nll"]), len(other["nll"]))
                d = paired_difference([other["nll"][:n]], [base["nll"][:n]])
                rows.append(dict(model=base["model"], epochs=base["epochs"], images=n, budget=base["budget"],
                                 seed=other["seed"], base_seed=base["seed"], other_minus_base=d["diff"],
                                 low=d["low"], high=d["high"], file=str(other["path"])))
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame, seeds: pd.DataFrame | None = None) -> str:
    def trained(budget, stack):
        return f"budget {budget}, " + ("alone" if stack == 1 else f"in a stack of {stack}")

    shown = pd.DataFrame({
        "model": t.model, "epochs": t.epochs.map(lambda e: f"{e:,}"), "test images": t.images.map(
            lambda n: f"the first {n:,}"),
        "ours (AU)": [f"{v:.2f} ({a})" for v, a in zip(t.ours, t.ours_active)],
        "ours trained": [trained(b, s) for b, s in zip(t.ours_budget, t.ours_stack)],
        "earlier run (AU)": [f"{v:.2f} ({a})" for v, a in zip(t.theirs, t.theirs_active)],
        "earlier trained": [trained(b, s) for b, s in zip(t.theirs_budget, t.theirs_stack)],
        "ours - earlier [95% CI]": intervals(t, "ours_minus_theirs")})
    return ("The same configuration trained in two runs (the same data set, layers, objective, K, training seed, "
            "updates, optimiser, initial weights, data order and learning rate at every epoch; "
            "`experiments/like_with_like.py`): test NLL (K=5000; active units) of each on the test images both were "
            "evaluated on (the same binarisation seed: the same binary images), and ours minus the earlier run's, "
            "paired over those images (one model each: the interval is the images' and the K=5000 estimate's noise, "
            "no verdict about training). A stack and a model trained alone are not bit-identical: they drift apart "
            "in float rounding (docs/family/stack_vs_alone).\n\n"
            + shown.to_markdown(index=False, disable_numparse=True) + "\n"
            + ("" if seeds is None or seeds.empty else
               "\nBeside it, what a change of training seed gives in the same configuration (the earlier runs' "
               "other seeds minus the seed above, paired over the test images both have; the seeds share the "
               "authors' initial weights and data order):\n\n" + pd.DataFrame({
                   "model": seeds.model, "epochs": seeds.epochs.map(lambda e: f"{e:,}"),
                   "test images": seeds.images.map(lambda n: f"the first {n:,}"),
                   "run": seeds.budget.map(lambda b: f"budget {b}"),
                   "seed minus seed": [f"{a} - {b}" for a, b in zip(seeds.seed, seeds.base_seed)],
                   "difference [95% CI]": intervals(seeds, "other_minus_base")}).to_markdown(
                   index=False, disable_numparse=True) + "\n"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True, help="a run's results folder (metrics.json and stages/*.metrics.json)")
    ap.add_argument("--earlier", nargs="+", required=True, help="earlier runs' records folders")
    ap.add_argument("--out", required=True, help="output stem (.md and .csv)")
    args = ap.parse_args(argv)
    ours = load(sorted(Path(args.ours).rglob("*metrics.json")))
    earlier = load(sorted(p for folder in args.earlier for p in Path(folder).rglob("*metrics.json")))
    t = pairs(ours, earlier)
    if t.empty:
        sys.exit(f"no model in {args.ours} was trained the same way as one in {', '.join(args.earlier)}")
    t = t.sort_values(["model", "epochs", "theirs_budget"]).reset_index(drop=True)
    seeds = other_seeds(ours, earlier)
    if not seeds.empty:
        seeds = seeds.sort_values(["model", "epochs", "budget", "seed"]).reset_index(drop=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(out.with_suffix(".csv"), index=False)
    seeds.to_csv(out.parent / f"{out.name}_seeds.csv", index=False)
    out.with_suffix(".md").write_text(markdown(t, seeds))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
