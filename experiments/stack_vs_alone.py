"""Chaos, not a bug: the same model trained alone and as a member of a stack drifts apart by float rounding.

MNIST, 1 stochastic layer, IWAE K=5, seed 0, the quick budget's schedule (stages 0-1: 11,920 updates) and the
authors' protocol, trained three ways in lockstep:
- alone (a stack of one);
- as the first member of the estimator comparison's stack of four (IWAE, IWAE-STL, IWAE-DReG, RWS-DReG, all seed
  0): mathematically the same trajectory (each member's loss depends on its own parameters and its own
  generator only), but the batched kernels round differently;
- alone with seed 1: the run-to-run noise a different training seed brings.
At 1, 2, 5, ..., 11,920 updates it records the IWAE member's largest parameter difference to the alone run and
the test -L_1 (the negated ELBO, in the NLL's sign: lower is better; on the first 1,000 MNIST test images
binarised with seed 1234, the same noise for every model) of each. Writes docs/family/stack_vs_alone.csv (or --out) and its figure beside it (.png, .pdf).
About 3-10 minutes on 2 CPU cores.
Usage: python experiments/stack_vs_alone.py [--data-dir data] [--out docs/family/stack_vs_alone.csv]
       python experiments/stack_vs_alone.py --draw-only [--out ...]     (the figure from the CSV)
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae import data as data_mod  # noqa: E402
from iwae.checkpoint import member_state_dict  # noqa: E402
from iwae.config import TrainConfig  # noqa: E402
from iwae.evaluate import log_likelihood  # noqa: E402
from iwae.model import IWAEModel, ModelConfig  # noqa: E402
from iwae.schedule import epoch_plan, schedule  # noqa: E402
from iwae.stack import build  # noqa: E402

POINTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 11_920)
STACK_OF_FOUR = ("iwae", "iwae_stl", "iwae_dreg", "rws_dreg")


def draw(csv_path: Path) -> None:
    """The trace's figure: the largest parameter difference to the alone run, and the differences of -L_1."""
    import pandas as pd

    from iwae.plotting import COLUMN, save, setup

    t = pd.read_csv(csv_path)
    plt, _ = setup()
    fig = plt.figure(figsize=(2 * COLUMN, 2.4), layout="constrained")
    a, b = fig.subplots(1, 2)
    t1 = t[t.updates > 1]
    for col, name, color in (("stacked", "in the stack of four (seed 0)", "C3"), ("seed1", "alone, seed 1", "0.4")):
        a.plot(t1.updates, t1[f"max_param_diff_{col}"], "o-", ms=3, lw=1, color=color, label=name)
        diff = "stacked_minus_alone" if col == "stacked" else "seed1_minus_alone"
        b.plot(t.updates, t[diff], "o-", ms=3, lw=1, color=color, label=name)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("updates")
    a.set_ylabel("largest parameter difference")
    a.set_title("IWAE K=5, seed 0 alone against ...")
    a.legend(frameon=False)
    b.set_xscale("log")
    b.axhline(0, color="0.5", lw=0.7, ls=":")
    b.set_xlabel("updates")
    b.set_ylabel("-L_1 difference (nats)")
    b.set_title("... its test -L_1 minus the alone run's")
    save(fig, csv_path.with_suffix(""), "MNIST, 1 layer, IWAE K=5, the quick budget's schedule and the authors' "
         "protocol; -L_1 (the negated ELBO, an upper bound on the NLL) on the first 1,000 test images with the same "
         "noise for every model and point; a difference is X - alone, negative when X is better.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(REPO / "data"), help="a data cache with MNIST (`iwae fetch mnist`)")
    ap.add_argument("--out", default=str(REPO / "docs" / "family" / "stack_vs_alone.csv"))
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--draw-only", action="store_true", help="only the figure, from the CSV at --out")
    args = ap.parse_args()
    if args.draw_only:
        return draw(Path(args.out))
    torch.set_num_threads(2)
    splits, _ = data_mod.load("mnist", args.data_dir)
    test = data_mod.binarize(splits.test[: args.test_images], torch.Generator().manual_seed(1234))
    protocol = dict(dataset="mnist", n_layers=1, k=5, stages=[0, 1], budget="quick")
    runs = {
        "alone": build([TrainConfig(objective="iwae", seed=0, **protocol)], splits.train),
        "stacked": build([TrainConfig(objective=o, seed=0, **protocol) for o in STACK_OF_FOUR], splits.train),
        "seed 1": build([TrainConfig(objective="iwae", seed=1, **protocol)], splits.train),
    }
    plan = epoch_plan(schedule([0, 1]))

    def member0(st) -> IWAEModel:
        model = IWAEModel(ModelConfig(1))
        model.load_state_dict(member_state_dict(st.model, 0))
        return model.eval()

    def test_l1(model) -> float:  # the same noise for every model and point: differences are the parameters'
        return float(log_likelihood(model, test, 1, generator=torch.Generator().manual_seed(7)).mean())

    rows, update, t0 = [], 0, time.perf_counter()
    n = runs["alone"].n_batches
    for epoch, (_, lr) in enumerate(plan):
        for st in runs.values():
            st.start_epoch(lr, 0)
        for _ in range(n):
            for st in runs.values():
                st.step()
            update += 1
            if update in POINTS:
                models = {name: member0(st) for name, st in runs.items()}
                ref = models["alone"].state_dict()

                def largest(name):
                    return max(float((models[name].state_dict()[p] - ref[p]).abs().max()) for p in ref)

                bound = {name: -test_l1(m) for name, m in models.items()}  # -L_1, in the NLL's sign
                rows.append(dict(updates=update, max_param_diff_stacked=largest("stacked"),
                                 max_param_diff_seed1=largest("seed 1"), neg_l1_alone=bound["alone"],
                                 neg_l1_stacked=bound["stacked"], neg_l1_seed1=bound["seed 1"],
                                 stacked_minus_alone=bound["stacked"] - bound["alone"],
                                 seed1_minus_alone=bound["seed 1"] - bound["alone"]))
                r = rows[-1]
                print(f"{update:>6} updates ({time.perf_counter() - t0:5.0f} s): largest parameter difference "
                      f"stacked {r['max_param_diff_stacked']:.2e}, seed 1 {r['max_param_diff_seed1']:.2e}; test -L_1 "
                      f"alone {r['neg_l1_alone']:.3f}, stacked - alone {r['stacked_minus_alone']:+.4f}, "
                      f"seed 1 - alone {r['seed1_minus_alone']:+.4f}", flush=True)
        for st in runs.values():
            st.partial.zero_()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    draw(out)
    print(f"wrote {out} and its figure")


if __name__ == "__main__":
    main()
