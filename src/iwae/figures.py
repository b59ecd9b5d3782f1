"""The figures, one file per figure in PDF (vector) and PNG, sized for a page (7 in) or a column (3.4 in).

Ours are lines (with error bars: the standard error over the test images, or the sd over seeds where
there are several), the paper's are markers of the same colour; K is on a log axis labelled with the
Ks of the run. Every figure carries its budget and data status in a footnote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwae.report import OBJ_LABEL, base_runs, budget_note, label, paper_reference

PAGE, COLUMN = 7.0, 3.4
PALETTE = {"VAE": "#1f77b4", "IWAE": "#d62728"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", font_scale=0.95)
    return plt, sns


def save(fig, stem: Path, footnote: str = "") -> None:
    """stem.pdf and stem.png, with a footnote (budget, data status) under the axes."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if footnote:
        fig.text(0.01, 0.005, footnote, fontsize=6, color="0.35", ha="left", va="bottom", wrap=True)
    top = 1 - 0.035 * getattr(fig, "legend_rows", 0) * 7 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0.04 if footnote else 0, 1, top))
    fig.savefig(stem.with_suffix(".pdf"))
    fig.savefig(stem.with_suffix(".png"), dpi=200)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _k_axis(ax, ks, labels=None) -> None:
    """A log axis with a tick at each K of the run, labelled 1, 5, 50 (or ``labels``)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(ks)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(labels or [str(k) for k in sorted(ks)])
    ax.set_xlabel("K (samples in training)")


def _panels(df: pd.DataFrame, plt, height: float = 2.2):
    keys = sorted({(d, l) for d, l in zip(df.dataset, df.n_layers)})
    cols = min(2, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE if cols > 1 else COLUMN, height * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    return fig, list(zip(keys, axes.flat))


def _title(ax, dataset: str, layers: int, verified: bool) -> None:
    ax.set_title(f"{dataset.upper()}{'' if verified else ' (stand-in data)'}, {layers} stochastic "
                 f"layer{'s' if layers > 1 else ''}", fontsize=8)


def _errors(g: pd.DataFrame, column: str, sem_column: str | None) -> tuple[float, float]:
    """(mean, error bar) of a column over seeds: the sd over seeds, or the images' standard error for one seed."""
    mean = float(g[column].mean())
    if len(g) > 1:
        return mean, float(g[column].std())
    return mean, float(g[sem_column].iloc[0]) if sem_column else 0.0


def _legend(fig, axes_pairs) -> None:
    handles = {}
    for _, ax in axes_pairs:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in ("objective", "trained", "model", "arch"):  # seaborn's group titles
                handles.setdefault(lab, h)
        if ax.get_legend():
            ax.get_legend().remove()
    rank = {name: i for i, name in enumerate(PALETTE)}
    order = sorted(handles, key=lambda s: ("paper" in s, rank.get(s.split(" ")[0].rstrip(","), 9), s))
    fig.legend([handles[k] for k in order], order, loc="upper center", ncol=min(4, len(order)), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.legend_rows = -(-len(order) // 4)


def nll_vs_k(df: pd.DataFrame, stem: Path, mode: str = "auto") -> str:
    """Test NLL against K per (dataset, layers); mode 'difference' shows ours minus the paper's."""
    plt, _ = _plt()
    base = base_runs(df)
    ref = paper_reference("table1")
    gap = float(np.nanmax(np.abs(base.merge(ref, on=["dataset", "n_layers", "k", "objective"], suffixes=("", "_p"))
                                 .pipe(lambda t: t.nll - t.nll_p)))) if len(base) else 0.0
    if mode == "auto":
        mode = "difference" if gap > 3 else "absolute"
    fig, panels = _panels(base, plt)
    for (dataset, layers), ax in panels:
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        for obj in ("vae", "iwae"):
            pts = []
            for k, g in sub[sub.objective == obj].groupby("k"):
                mean, err = _errors(g, "nll", "nll_sem")
                p = ref[(ref.dataset == dataset) & (ref.n_layers == layers) & (ref.k == k) & (ref.objective == obj)]
                paper = float(p.nll.iloc[0]) if len(p) else np.nan
                pts.append((k, mean - paper if mode == "difference" else mean, err, paper))
            if not pts:
                continue
            k, y, e, paper = map(np.array, zip(*pts))
            ax.errorbar(k, y, yerr=1.96 * e, marker="o", ms=3, lw=1.2, capsize=2, color=PALETTE[OBJ_LABEL[obj]],
                        label=f"{OBJ_LABEL[obj]} (ours)")
            if mode == "absolute":
                ax.plot(k, paper, "x", ms=5, color=PALETTE[OBJ_LABEL[obj]], label=f"{OBJ_LABEL[obj]} (paper)")
        if mode == "difference" and ax.get_ylim()[0] < 3:  # the paper's level, where it is in view
            ax.axhline(0, color="0.5", lw=0.6, ls=":")
        _k_axis(ax, sub.k.unique())
        ax.set_ylabel("test NLL: ours - paper (nats)" if mode == "difference" else "test NLL (nats)")
        _title(ax, dataset, layers, bool(sub.data_verified.all()))
    _legend(fig, panels)
    save(fig, stem, f"Error bars: 95% intervals (standard error over the test images, or sd over seeds). "
                    f"{budget_note(df)}.")
    return mode


def active_units(df: pd.DataFrame, stem: Path) -> None:
    """Active units per stochastic layer against K (the paper's counts as markers)."""
    from matplotlib.lines import Line2D

    plt, _ = _plt()
    base = base_runs(df)
    ref = paper_reference("table1")
    fig, panels = _panels(base, plt)
    styles = ["-", "--"]
    for (dataset, layers), ax in panels:
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        for obj in ("vae", "iwae"):
            s = sub[sub.objective == obj]
            r = ref[(ref.dataset == dataset) & (ref.n_layers == layers) & (ref.objective == obj) & ref.k.isin(s.k)]
            for layer in range(layers):
                per_k = s.groupby("k").active.apply(lambda a: np.mean([v[layer] for v in a]))
                ax.plot(per_k.index, per_k.values, styles[layer], marker="o", ms=3, lw=1.2, color=PALETTE[OBJ_LABEL[obj]])
                ax.plot(r.k, [int(a.split("+")[layer]) for a in r.active_units], "x", ms=5, color=PALETTE[OBJ_LABEL[obj]])
        _k_axis(ax, sub.k.unique())
        ax.set_ylabel("active units")
        _title(ax, dataset, layers, bool(sub.data_verified.all()))
    handles = [Line2D([], [], color=c, lw=1.2, marker="o", ms=3, label=f"{n} (ours)") for n, c in PALETTE.items()]
    if base.n_layers.max() > 1:
        handles += [Line2D([], [], color="0.4", ls=ls, lw=1.2, label=f"layer {i + 1}") for i, ls in enumerate(styles)]
    handles += [Line2D([], [], color="0.4", ls="", marker="x", ms=5, label="the paper's")]
    ncol = len(handles) if len(panels) > 1 else 3  # one panel is a column wide
    fig.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=7, frameon=False)
    fig.legend_rows = -(-len(handles) // ncol)
    save(fig, stem, f"A unit is active if Var_x E_q[u|x] >= 0.01 (500 training images). {budget_note(df)}.")


def activity_hist(df: pd.DataFrame, stem: Path) -> None:
    """The paper's histogram of log A_u, VAE against IWAE, at the largest K of each architecture."""
    plt, sns = _plt()
    base = base_runs(df)
    fig, panels = _panels(base, plt)
    for (dataset, layers), ax in panels:
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        k = sub.k.max()
        rows = [dict(model=f"{OBJ_LABEL.get(r.objective, r.objective)}", log_a=np.log10(max(a, 1e-12)))
                for r in sub[sub.k == k].itertuples() for layer in r.activity for a in layer]
        sns.histplot(pd.DataFrame(rows), x="log_a", hue="model", palette=PALETTE, element="step", fill=False,
                     bins=np.linspace(-8, 1, 28), ax=ax, hue_order=[h for h in PALETTE if h in {r["model"] for r in rows}])
        ax.axvline(-2, color="0.3", ls="--", lw=0.8)
        ax.set_xlabel(r"$\log_{10} A_u$ (active if $\geq -2$)")
        ax.set_ylabel("units")
        _title(ax, dataset, layers, bool(sub.data_verified.all()))
        ax.set_title(ax.get_title() + f", K={k}", fontsize=8)
    save(fig, stem, f"All units of all layers, seed {int(base.seed.min())}. {budget_note(df)}.")


def _model_lines(df: pd.DataFrame, long: pd.DataFrame, x: str, y: str, ylabel: str, stem: Path, footnote: str,
                 axis) -> None:
    """One panel per (dataset, layers), a line per model of ``long`` (colour: objective, style: training K);
    ``axis(ax, panel_rows)`` styles the x axis."""
    plt, sns = _plt()
    base = base_runs(df)
    fig, panels = _panels(base, plt)
    for (dataset, layers), ax in panels:
        sub = long[(long.dataset == dataset) & (long.n_layers == layers)]
        sns.lineplot(sub, x=x, y=y, hue="objective", style="trained", palette=PALETTE, ax=ax, lw=1, errorbar=None,
                     marker="o" if sub[x].nunique() < 30 else None, ms=3)
        axis(ax, sub)
        ax.set_ylabel(ylabel)
        _title(ax, dataset, layers, bool(base[base.dataset == dataset].data_verified.all()))
    _legend(fig, panels)
    save(fig, stem, f"{footnote} {budget_note(df)}.")


def _per_model(df: pd.DataFrame, rows) -> pd.DataFrame:
    return pd.DataFrame([dict(dataset=r.dataset, n_layers=r.n_layers, objective=OBJ_LABEL.get(r.objective, r.objective),
                              trained=f"K={r.k}", **item) for r in base_runs(df).itertuples() for item in rows(r)])


def bounds(df: pd.DataFrame, stem: Path) -> None:
    """Test bounds L_1, L_5, L_50, ..., L_5000 of every model: they rise with the evaluation K."""
    def axis(ax, sub):
        _k_axis(ax, sub.eval_k.unique(), labels=[f"$L_{{{k}}}$" for k in sorted(sub.eval_k.unique())])
        ax.set_xlabel("test bound")

    long = _per_model(df, lambda r: [dict(eval_k=int(b[1:]), bound=v) for b, v in r.bounds.items()])
    _model_lines(df, long, "eval_k", "bound", "nats per image", stem,
                 "Mean over the test images of L_K = log (1/K) sum_k w_k for each model.", axis)


def training_curves(df: pd.DataFrame, stem: Path) -> None:
    """The training objective per epoch (stages marked where the learning rate changes)."""
    def axis(ax, sub):
        many = sub.epoch.max() >= 30
        for s in sub.groupby("stage").agg(epoch=("epoch", "min"), lr=("lr", "first")).itertuples():
            ax.axvline(s.epoch if many else s.epoch - 0.5, color="0.6", lw=0.6, ls=":")
            ax.text(s.epoch, 1.0, f"lr {s.lr:.1e}", transform=ax.get_xaxis_transform(), fontsize=5, color="0.4",
                    ha="left", va="top")
        if many:
            ax.set_xscale("log")

    long = _per_model(df, lambda r: [dict(epoch=h["epoch"] + 1, loss=-h["train_objective"], stage=h["stage"],
                                          lr=h["lr"]) for h in r.history])
    _model_lines(df, long, "epoch", "loss", "train loss (-objective, nats)", stem,
                 "Mean training objective per epoch; dotted lines: stage starts (learning rate).", axis)


def wallclock(df: pd.DataFrame, stem: Path) -> None:
    plt, sns = _plt()
    base = base_runs(df).assign(model=lambda d: d.objective.map(lambda o: OBJ_LABEL.get(o, o)),
                                arch=lambda d: d.dataset.str.upper() + " L" + d.n_layers.astype(str))
    fig, ax = plt.subplots(figsize=(COLUMN, 2.6))
    sns.lineplot(base, x="k", y="ms_per_update", hue="arch", style="model", marker="o", ms=3, ax=ax, errorbar=None)
    _k_axis(ax, base.k.unique())
    ax.set_yscale("log")
    ax.set_ylabel("ms per update and model")
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if lab not in ("arch", "model")]
    ax.legend(*zip(*keep), fontsize=6, frameon=False)
    save(fig, stem, f"{', '.join(sorted(base.train_device.unique()))}; stacks' time shared out. {budget_note(df)}.")


def learning_curve(curve: pd.DataFrame, stem: Path) -> None:
    """Test NLL after each stage, and the IWAE - VAE difference with its paired 95% interval."""
    from iwae.report import curve as curve_table

    plt, _ = _plt()
    t = curve_table(curve)
    fig, (a, b) = plt.subplots(1, 2, figsize=(PAGE, 2.6))
    for obj in ("vae", "iwae"):
        if f"nll_{obj}" in t:
            a.errorbar(t.epochs, t[f"nll_{obj}"], yerr=1.96 * t[f"sem_{obj}"], marker="o", ms=3, capsize=2,
                       color=PALETTE[OBJ_LABEL[obj]], label=OBJ_LABEL[obj])
    a.set_xscale("log")
    a.set_xlabel("epochs")
    a.set_ylabel("test NLL (nats)")
    a.legend(frameon=False, fontsize=7)
    if "iwae_minus_vae" in t:
        b.plot(t.epochs, t.iwae_minus_vae, "o-", color="k", ms=3, lw=1)
        b.fill_between(t.epochs, t.low, t.high, color="0.8", label="95% CI (paired)")
        b.axhline(0, color="0.4", ls=":", lw=0.8)
        b.set_xscale("log")
        b.set_xlabel("epochs")
        b.set_ylabel("IWAE - VAE test NLL (nats)")
        b.legend(frameon=False, fontsize=7)
    keys = ", ".join(f"{d.upper()} L{l} K={k}" for d, l, k in t[["dataset", "n_layers", "k"]].drop_duplicates().values)
    a.set_title(keys, fontsize=8)
    save(fig, stem, f"Negative: IWAE better. {budget_note(curve)}.")


def write_figures(df: pd.DataFrame, out: Path, curve: pd.DataFrame | None = None, nll_mode: str = "auto") -> None:
    mode = nll_vs_k(df, out / "nll_vs_k", nll_mode)
    print(f"nll_vs_k: {mode}")
    active_units(df, out / "active_units")
    activity_hist(df, out / "activity_hist")
    bounds(df, out / "bounds")
    training_curves(df, out / "training_curves")
    wallclock(df, out / "wallclock")
    if curve is not None:
        learning_curve(curve, out / "curve")


def samples(model_paths: list[str], stem: Path, side: int = 5, seed: int = 0) -> None:
    """One labelled matrix per data set and architecture: rows the objectives, columns K; each cell
    side x side Bernoulli means of p(x|h) for h from the generative model (the same prior draws)."""
    import torch

    from iwae.train import load_model

    plt, _ = _plt()
    models = []
    for path in model_paths:
        model = load_model(path)
        c = model.metadata["train_config"]
        if c["init_from"]:
            continue  # Table 2's continued models are not in the matrix
        models.append((c["dataset"], model.config.n_layers, c["objective"], c["k"], model))
    groups = sorted({(d, l) for d, l, *_ in models})
    cols = min(2, len(groups))
    rows = -(-len(groups) // cols)
    narrow = cols == 1  # a column wide: the footnote takes two lines
    fig = plt.figure(figsize=(PAGE if cols > 1 else COLUMN, 2.7 * rows + (0.7 if narrow else 0.3)), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.09 if narrow else 0.03, 1, 0.94 if narrow else 0.97))  # room for the footnote
    subfigs = np.atleast_1d(fig.subfigures(rows, cols, wspace=0.04)).ravel()
    for sf in subfigs[len(groups):]:
        sf.set_visible(False)
    for sf, (dataset, layers) in zip(subfigs, groups):
        cells = [(o, k, m) for d, l, o, k, m in models if (d, l) == (dataset, layers)]
        objs = sorted({o for o, _, _ in cells}, key=lambda o: (o != "vae", o != "iwae", o))
        ks = sorted({k for _, k, _ in cells})
        axes = sf.subplots(len(objs), len(ks), squeeze=False, gridspec_kw=dict(wspace=0.03, hspace=0.03))
        sf.suptitle(f"{dataset.upper()}, {layers} stochastic layer{'s' if layers > 1 else ''}", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        for o, k, m in cells:
            ax = axes[objs.index(o), ks.index(k)]
            means = m.sample_x_means(side * side, generator=torch.Generator().manual_seed(seed)).numpy()
            ax.imshow(means.reshape(side, side, 28, 28).transpose(0, 2, 1, 3).reshape(side * 28, side * 28),
                      cmap="gray_r", vmin=0, vmax=1)
        for j, k in enumerate(ks):
            axes[0, j].set_title(f"K = {k}", fontsize=7)
        for i, o in enumerate(objs):
            axes[i, 0].set_ylabel(label(o), fontsize=7)
    fig.text(0.01, 0.005, "Bernoulli means of p(x|h), h drawn from each model's generative model (the same draws "
             "for all).", fontsize=6, color="0.35", va="bottom", wrap=True)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight", pad_inches=0.05)  # subfigure titles included
    fig.savefig(stem.with_suffix(".png"), dpi=200, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def snr_figure(rows: pd.DataFrame, fitted: pd.DataFrame, stem: Path) -> None:
    """SNR of each estimator's gradient against K on log-log axes, with the fitted slopes in the legend."""
    plt, sns = _plt()
    checkpoints = list(dict.fromkeys(rows.checkpoint))
    fig, axes = plt.subplots(len(checkpoints), 2, figsize=(PAGE, 2.4 * len(checkpoints) + 0.3), squeeze=False)
    slope = {(r.checkpoint, r.estimator, r.network): r.slope for r in fitted.itertuples()}
    for i, ckpt in enumerate(checkpoints):
        for j, net in enumerate(("recognition", "generative")):
            ax = axes[i, j]
            sub = rows[(rows.checkpoint == ckpt) & (rows.network == net)]
            for est, g in sub.groupby("estimator", sort=False):
                s = slope.get((ckpt, est, net))
                ax.plot(g.k, g.snr_mean, "o-", ms=3, lw=1, label=f"{label(est)}" + (f" (slope {s:+.2f})" if s else ""))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("K")
            ax.set_ylabel("mean SNR |E g| / sd g")
            ax.set_title(f"{net} network, {ckpt} parameters", fontsize=8)
            ax.legend(fontsize=6, frameon=False)
    save(fig, stem, f"Per-parameter SNR over {int(rows.draws.iloc[0])} draws on {int(rows.images.iloc[0])} training "
                    "images, averaged over the parameters; lines: least-squares fits of log SNR on log K.")
