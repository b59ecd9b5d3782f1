"""Tables and figures from the runs' metrics JSON files, beside the paper's reference numbers.

Every number shown comes from a metrics file (see ``collect``); the paper's numbers come only from
``iwae/reference/*.csv`` and are always labelled "paper".
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

OBJ_LABEL = {"vae": "VAE", "iwae": "IWAE"}


# ----------------------------------------------------------------------------- data frames
def paper_reference(table: str = "table1") -> pd.DataFrame:
    """The paper's published numbers (reference data, not ours)."""
    path = resources.files("iwae") / "reference" / f"paper_{table}.csv"
    with path.open() as f:
        return pd.read_csv(f, comment="#", dtype={"active_units": str, "active_first": str, "active_second": str})


def collect(paths: list[str | Path]) -> pd.DataFrame:
    """One row per metrics file, with the numbers the tables and figures use."""
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        run, ev, tr = m["run"], m["eval"], m["train"]
        rows.append(dict(
            metrics=str(p), dataset=run["dataset"], n_layers=run["n_layers"], objective=run["objective"],
            k=run["k"], seed=run["seed"], budget=run["budget"], continued_from=run.get("continued_from"),
            nll=-ev["test_ll"], nll_sem=ev.get("test_ll_sem"), nll_active_only=-ev["test_ll_active_only"],
            train_nll=-ev["train_ll"], eval_k=ev["eval_k"], n_test=ev["n_test"],
            active_units="+".join(str(a) for a in ev["active_units"]), active_total=ev["active_units_total"],
            activity=ev["activity"], bounds=ev["test_bounds"],
            train_seconds=tr["train_seconds"], seconds_per_epoch=tr["seconds_per_epoch"], epochs=tr["epochs"],
            updates=tr["updates"], eval_seconds=ev["eval_seconds"], train_device=tr["device"],
            eval_device=ev["device"], train_path=tr.get("train_path", "?"), eval_path=ev.get("eval_path", "?"),
            optimizer=tr["train_config"]["optimizer"], history=tr["history"],
            data_verified=m["data"]["verified"],
        ))
    if not rows:
        raise ValueError("no metrics files given")
    return pd.DataFrame(rows)


def _mean_over_seeds(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    agg = df.groupby(keys, as_index=False).agg(
        nll=("nll", "mean"), nll_sd=("nll", "std"), seeds=("seed", "count"),
        active_units=("active_units", lambda s: "/".join(sorted(set(s)))),
        budget=("budget", "first"), eval_k=("eval_k", "first"), n_test=("n_test", "first"),
        data_verified=("data_verified", "all"), optimizer=("optimizer", "first"),
        device=("train_device", "first"),
    )
    return agg


def table1(df: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the paper's, one row per (dataset, layers, K, objective)."""
    ours = _mean_over_seeds(df[df.continued_from.isna()], ["dataset", "n_layers", "k", "objective"])
    ref = paper_reference("table1").rename(columns={"nll": "nll_paper", "active_units": "active_units_paper"})
    t = ours.merge(ref, on=["dataset", "n_layers", "k", "objective"], how="left")
    t["nll_diff"] = t.nll - t.nll_paper
    t["data"] = np.where(t.data_verified, "verified", "UNVERIFIED (stand-in)")
    cols = ["dataset", "n_layers", "k", "objective", "nll", "nll_paper", "nll_diff", "active_units",
            "active_units_paper", "seeds", "budget", "eval_k", "n_test", "optimizer", "device", "data"]
    return t[cols].sort_values(["dataset", "n_layers", "k", "objective"], ascending=[True, True, True, False])


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Continued-training runs: the first model's numbers and the continued model's."""
    cont = df[df.continued_from.notna()]
    run_dirs = df.metrics.map(lambda m: Path(m).resolve().parent)  # a run is its folder, however it was named
    rows = []
    for _, r in cont.iterrows():
        first = df[run_dirs == Path(r.continued_from).resolve().parent]
        base = first.iloc[0] if len(first) else None
        rows.append(dict(
            first_objective=base.objective if base is not None else "?", first_k=base.k if base is not None else -1,
            second_objective=r.objective, second_k=r.k, seed=r.seed,
            nll_first=base.nll if base is not None else np.nan,
            active_first=base.active_units if base is not None else "",
            nll_second=r.nll, active_second=r.active_units, budget=r.budget, device=r.train_device,
        ))
    ours = pd.DataFrame(rows, columns=["first_objective", "first_k", "second_objective", "second_k", "seed",
                                       "nll_first", "active_first", "nll_second", "active_second", "budget",
                                       "device"])
    ref = paper_reference("table2").rename(columns=lambda c: c + "_paper" if c.startswith(("nll", "active")) else c)
    t = ours.merge(ref, on=["first_objective", "first_k", "second_objective", "second_k"], how="left")
    t["nll_second_diff"] = t.nll_second - t.nll_second_paper
    return t


def wallclock(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["dataset", "n_layers", "objective", "k", "seed", "continued_from", "epochs", "updates",
            "seconds_per_epoch", "train_seconds", "eval_seconds", "eval_k", "n_test", "train_device",
            "eval_device", "train_path", "eval_path", "budget"]
    t = df[cols].copy()
    t["continued_from"] = t.continued_from.notna().map({True: "yes", False: ""})
    t["ms_per_update"] = 1000 * t.train_seconds / t.updates
    return t.sort_values(["dataset", "n_layers", "k", "objective", "seed"])


# ----------------------------------------------------------------------------- writers
def _fmt(t: pd.DataFrame) -> pd.DataFrame:
    out = t.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return out


def write_table(t: pd.DataFrame, stem: Path, caption: str) -> None:
    """stem.csv (full precision), stem.md and stem.tex (2 decimals)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(stem.with_suffix(".csv"), index=False)
    shown = _fmt(t)
    stem.with_suffix(".md").write_text(f"{caption}\n\n" + shown.to_markdown(index=False) + "\n")
    latex = shown.rename(columns=lambda c: c.replace("_", " ")).to_latex(index=False, escape=True)
    stem.with_suffix(".tex").write_text(f"% {caption}\n{latex}")


def write_tables(df: pd.DataFrame, out_dir: Path) -> None:
    budgets = ", ".join(sorted(df.budget.unique()))
    note = (f"Ours: budget {budgets}; test NLL in nats (K={int(df.eval_k.max())} estimate). "
            "'paper' columns: arXiv:1509.00519 v4, reference data.")
    write_table(table1(df), out_dir / "table1", "Table 1 reproduction. " + note)
    write_table(table2(df), out_dir / "table2", "Table 2 reproduction (continued training). " + note)
    write_table(wallclock(df), out_dir / "wallclock", f"Wall-clock cost per model (budget {budgets}).")
    df.drop(columns=["activity", "bounds", "history"]).to_csv(out_dir / "all_runs.csv", index=False)


# ----------------------------------------------------------------------------- figures
def _panel_title(dataset: str, n_layers: int, verified: bool) -> str:
    return f"{dataset}, {n_layers} layer{'s' if n_layers > 1 else ''}" + ("" if verified else " (unverified data)")


def _grid(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    keys = sorted({(d, l) for d, l in zip(df.dataset, df.n_layers)})
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False)
    return fig, list(zip(keys, axes[0]))


def write_figures(df: pd.DataFrame, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = df[df.continued_from.isna()]
    ref = paper_reference("table1")
    ref["active_total"] = ref.active_units.map(lambda s: sum(int(a) for a in s.split("+")))
    palette = {"VAE": "tab:blue", "IWAE": "tab:orange"}

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)

    def per_k(column: str, ref_column: str | None, ylabel: str, name: str, logy: bool = False):
        fig, panels = _grid(base)
        for (dataset, layers), ax in panels:
            sub = base[(base.dataset == dataset) & (base.n_layers == layers)].assign(
                model=lambda d: d.objective.map(OBJ_LABEL))
            sns.lineplot(sub, x="k", y=column, hue="model", marker="o", ax=ax, palette=palette, errorbar=None)
            if ref_column:
                r = ref[(ref.dataset == dataset) & (ref.n_layers == layers)]
                for obj, g in r.groupby("objective"):
                    ax.scatter(g.k, g[ref_column], marker="x", color=palette[OBJ_LABEL[obj]], s=40,
                               label=f"{OBJ_LABEL[obj]} (paper)", zorder=3)
            ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
            ax.set_title(_panel_title(dataset, layers, bool(sub.data_verified.all())))
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
        save(fig, name)

    per_k("nll", "nll", "test NLL (nats)", "nll_vs_k.png")
    per_k("active_total", "active_total", "active units", "active_units_vs_k.png")
    per_k("seconds_per_epoch", None, "train seconds / epoch", "wallclock_vs_k.png", logy=True)

    # histograms of log10 A_u, one panel per (dataset, layers), one line per model
    fig, panels = _grid(base)
    for (dataset, layers), ax in panels:
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        for _, r in sub.iterrows():
            vals = np.log10(np.maximum(np.concatenate([np.asarray(a) for a in r.activity]), 1e-12))
            sns.histplot(vals, ax=ax, element="step", fill=False, bins=np.linspace(-12, 1, 27),
                         label=f"{OBJ_LABEL[r.objective]} k={r.k}")
        ax.axvline(-2, color="k", ls="--", lw=0.8)
        ax.set_xlabel("log10 A_u (active if >= -2)")
        ax.set_title(_panel_title(dataset, layers, bool(sub.data_verified.all())))
        ax.legend(fontsize=6)
    save(fig, "activity_hist.png")

    def per_model(long: pd.DataFrame, x: str, y: str, ylabel: str, name: str, logx: bool):
        """One line per model, one panel per (dataset, layers), from a long data frame."""
        fig, panels = _grid(base)
        for (dataset, layers), ax in panels:
            sns.lineplot(long[(long.dataset == dataset) & (long.n_layers == layers)], x=x, y=y, hue="model",
                         marker="o" if logx else None, ax=ax, errorbar=None)
            if logx:
                ax.set_xscale("log")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{dataset}, {layers} layer(s)")
            ax.legend(fontsize=6)
        save(fig, name)

    def label(r) -> dict:
        return dict(dataset=r.dataset, n_layers=r.n_layers, model=f"{OBJ_LABEL[r.objective]} k={r.k}")

    # bounds L_1 <= L_5 <= L_50 <= L_5000 per model
    bounds = pd.DataFrame([dict(label(r), K=int(b[1:]), value=v) for _, r in base.iterrows() for b, v in r.bounds.items()])
    per_model(bounds, "K", "value", "test bound L_K (nats)", "bounds.png", logx=True)
    # training curves
    curves = pd.DataFrame([dict(label(r), epoch=h["epoch"] + 1, objective=h["train_objective"])
                           for _, r in base.iterrows() for h in r.history])
    per_model(curves, "epoch", "objective", "train objective (nats)", "training_curves.png", logx=False)


def write_samples(model_paths: list[str], out: Path, n: int = 64, seed: int = 0) -> None:
    """One panel per model: Bernoulli means of p(x | h) for h from the generative model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from iwae.train import load_model

    cols = min(6, len(model_paths))
    rows = -(-len(model_paths) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    side = int(np.sqrt(n))
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, sorted(model_paths)):
        model = load_model(path)
        means = model.sample_x_means(side * side, generator=torch.Generator().manual_seed(seed)).numpy()
        grid = means.reshape(side, side, 28, 28).transpose(0, 2, 1, 3).reshape(side * 28, side * 28)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        c = model.metadata["train_config"]
        ax.set_title(f"{c['dataset']} L{c['n_layers']} {OBJ_LABEL[c['objective']]} k={c['k']}"
                     + (" (cont.)" if c["init_from"] else ""), fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    p.add_argument("what", choices=["tables", "figures", "samples"],
                   help="tables: Table 1/2 + wall-clock (csv, md, tex); figures: PNG plots; samples: sample grids")
    p.add_argument("inputs", nargs="+", help="metrics JSON files (tables, figures) or model.pt files (samples)")
    p.add_argument("--out", required=True, help="output folder (tables, figures) or PNG file (samples)")


def main(args) -> None:
    if args.what == "samples":
        write_samples(args.inputs, Path(args.out))
        return
    df = collect(args.inputs)
    (write_tables if args.what == "tables" else write_figures)(df, Path(args.out))
