"""The figures, one file per figure in PDF (vector) and PNG, sized for the report's page (6.7 in) or a column
(3.3 in) and drawn at the body's scale (8 pt text, 7 pt ticks and legends, 6.5 pt footnotes).

Ours are lines with 95% intervals (over the training seeds where there are several, else over the test
images of one seed: the footnote says which); the paper's are markers of the same colour. Comparisons are
drawn the right way round: the paired IWAE - VAE difference with its interval, beside the absolute NLL.
Every figure's footnote says the budget, epochs, test images and seeds. A figure "against K" is drawn
only for a run with two or more K (``figures_for``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from iwae import captions
from iwae.checkpoint import load_model
from iwae.records import CEILING, OBJ_LABEL, base_runs, budget_note, compare, curve, label, paper_reference, sign
from iwae.render import interval_kind, ks_text
from iwae.plotting import (COLUMN, PAGE, PALETTE, cells_of, coincide_note, k_axis, legend, new_figure, panel_grid, save,
                           setup, short_lr, stand_in_note, title, verified)
from iwae.stats import mean_ci


AGAINST_K = ("nll_vs_k", "active_units", "wallclock")


def figure_names(several_k: bool, curve: bool) -> list[str]:
    """The figures a run gets (what the pipeline promises): those against K only with two or more K; the learning
    curve with stage snapshots."""
    names = ["nll_vs_k", "active_units", "activity_hist", "bounds", "training_curves", "wallclock"]
    return [n for n in names if several_k or n not in AGAINST_K] + (["curve"] if curve else [])


def figures_for(df: pd.DataFrame, curve_df: pd.DataFrame | None = None) -> list[str]:
    """The figures of ``figure_names`` for the runs of ``df`` (and a learning curve)."""
    return figure_names(base_runs(df).k.nunique() >= 2, curve_df is not None)


def _interval_kind(df: pd.DataFrame) -> str:
    return interval_kind(df.seed.nunique())


def _nll_interval(g: pd.DataFrame) -> tuple[float, float]:
    """(mean NLL, half-width of its 95% interval): over seeds, or 1.96 standard errors over the images."""
    if len(g) > 1:
        mean, low, _ = mean_ci(g.nll)
        return mean, mean - low
    return float(g.nll.iloc[0]), 1.96 * float(g.nll_sem.iloc[0])


def nll_vs_k(df: pd.DataFrame, stem: Path) -> None:
    """Per (dataset, layers): test NLL against K (ours and the paper's), and IWAE - VAE against K, paired."""
    from matplotlib.lines import Line2D

    plt, _ = setup()
    base, ref = base_runs(df), paper_reference("table1")
    cells = cells_of(base)
    fig = new_figure(plt, PAGE, 1.75 * len(cells) + 0.5)
    axes = fig.subplots(len(cells), 2, squeeze=False)
    for (dataset, layers), (a, b) in zip(cells, axes):
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        paper = ref[(ref.dataset == dataset) & (ref.n_layers == layers) & ref.k.isin(sub.k)]
        for obj in ("vae", "iwae"):
            pts = [(k, *_nll_interval(g)) for k, g in sub[sub.objective == obj].groupby("k")]
            if pts:
                k, y, e = map(np.array, zip(*pts))
                a.errorbar(k, y, yerr=e, marker="o", ms=3, lw=1.2, capsize=2, color=PALETTE[OBJ_LABEL[obj]])
            p = paper[paper.objective == obj]
            a.plot(p.k, p.nll, "x", ms=5, mew=1.2, color=PALETTE[OBJ_LABEL[obj]])
        a.set_ylabel("test NLL (nats)")
        a.set_title(title(dataset, layers, verified(base, dataset)))
        k_axis(a, sub.k.unique())
        diffs = [(k, compare(sub, dict(k=k, objective="iwae"), dict(k=k, objective="vae"))) for k in sorted(sub.k.unique())]
        diffs = [(k, d) for k, d in diffs if d]
        if diffs:
            k = np.array([k for k, _ in diffs])
            y = np.array([d["diff"] for _, d in diffs])
            lo, hi = np.array([d["low"] for _, d in diffs]), np.array([d["high"] for _, d in diffs])
            b.errorbar(k, y, yerr=np.nan_to_num(np.vstack([y - lo, hi - y])), marker="o", ms=3, lw=1.2, capsize=2,
                       color="k")
        pv = paper.pivot_table(index="k", columns="objective", values="nll")
        if {"vae", "iwae"} <= set(pv.columns):
            b.plot(pv.index, pv.iwae - pv.vae, "x", ms=5, mew=1.2, color="0.45")
        b.axhline(0, color="0.5", lw=0.7, ls=":")
        b.set_ylabel("IWAE - VAE (nats)")
        b.set_title("IWAE - VAE, paired (negative: IWAE better)")
        k_axis(b, sub.k.unique())
    legend(fig, {"VAE (ours)": Line2D([], [], color=PALETTE["VAE"], marker="o", ms=3),
                  "IWAE (ours)": Line2D([], [], color=PALETTE["IWAE"], marker="o", ms=3),
                  "IWAE - VAE (ours, paired)": Line2D([], [], color="k", marker="o", ms=3),
                  "the paper's VAE": Line2D([], [], color=PALETTE["VAE"], marker="x", ls="", ms=5),
                  "the paper's IWAE": Line2D([], [], color=PALETTE["IWAE"], marker="x", ls="", ms=5),
                  "the paper's IWAE - VAE": Line2D([], [], color="0.45", marker="x", ls="", ms=5)}, ncol=3)
    save(fig, stem, f"{captions.figure('nll_vs_k')} Left: each model with its own {_interval_kind(base)} (overlapping "
                    f"intervals of two models are not a test of their difference); right: IWAE - VAE paired, with its "
                    f"{_interval_kind(base)}; crosses after the paper's 3,280 epochs. {coincide_note(df)} Ours: {budget_note(base_runs(df))}.")


def active_units(df: pd.DataFrame, stem: Path) -> None:
    """Active units per stochastic layer against K (the paper's counts as markers, one per layer)."""
    from matplotlib.lines import Line2D

    plt, _ = setup()
    base, ref = base_runs(df), paper_reference("table1")
    cells = cells_of(base)
    fig, axes = panel_grid(plt, len(cells), 2, 1.6, 0.45)
    styles, marks = ["-", "--"], ["x", "+"]
    for (dataset, layers), ax in zip(cells, axes):
        sub = base[(base.dataset == dataset) & (base.n_layers == layers)]
        for obj in ("vae", "iwae"):
            s = sub[sub.objective == obj]
            r = ref[(ref.dataset == dataset) & (ref.n_layers == layers) & (ref.objective == obj) & ref.k.isin(s.k)]
            for layer in range(layers):
                per_k = s.groupby("k").active.apply(lambda a: np.mean([v[layer] for v in a]))
                ax.plot(per_k.index, per_k.values, styles[layer], marker="o", ms=3, lw=1.2,
                        color=PALETTE[OBJ_LABEL[obj]])
                ax.plot(r.k, [int(a.split("+")[layer]) for a in r.active_units], marks[layer], ms=6, mew=1.4,
                        color=PALETTE[OBJ_LABEL[obj]], zorder=5)  # on top of ours
        for layer, units in enumerate(CEILING[layers]):
            ax.axhline(units, color="0.6", lw=0.7, ls=":")
        ax.set_ylabel("active units")
        ax.set_ylim(0, max(CEILING[layers]) * 1.08)
        ax.set_title(title(dataset, layers, verified(base, dataset)))
        k_axis(ax, sub.k.unique())
    handles = {f"{n} (ours)": Line2D([], [], color=c, lw=1.2, marker="o", ms=3) for n, c in PALETTE.items()}
    if base.n_layers.max() > 1:
        for i in range(2):
            handles[f"layer {i + 1} (ours)"] = Line2D([], [], color="0.4", ls=styles[i], lw=1.2)
            handles[f"layer {i + 1} (the paper's, in the objective's colour)"] = Line2D([], [], color="0.4", ls="", marker=marks[i], ms=5)
    else:
        handles["the paper's"] = Line2D([], [], color="0.4", ls="", marker=marks[0], ms=5)
    handles["all units (ceiling)"] = Line2D([], [], color="0.6", ls=":", lw=0.7)
    legend(fig, handles)
    seeds = "mean over seeds" if base.seed.nunique() > 1 else f"training seed {int(base.seed.min())}"
    save(fig, stem, f"{captions.figure('active_units')} Activity over {activity_images(base)}; {seeds}. "
                    f"{coincide_note(df)} Ours: {budget_note(base_runs(df), test=False)}.")


def activity_images(df: pd.DataFrame) -> str:
    """The training images the activity statistic A_u was computed on, as the records say ("500 training images")."""
    n = sorted({int(v) for v in df.get("activity_images", pd.Series(dtype=float)).dropna()})
    return f"{'/'.join(f'{v:,}' for v in n)} training images" if n else "training images"


def activity_hist(df: pd.DataFrame, stem: Path) -> None:
    """A histogram in the style of the paper's, of log A_u, VAE against IWAE, at the largest K: one panel per stochastic layer."""
    from matplotlib.lines import Line2D

    plt, sns = setup()
    base = base_runs(df)
    panels = [(d, layers, layer) for d, layers in cells_of(base) for layer in range(layers)]
    fig, axes = panel_grid(plt, len(panels), 3, 1.55, 0.3)
    seed = int(base.seed.min())
    shown = base[base.seed == seed]
    # one range for every panel: from the lowest activity drawn (at most -8, the paper's axis; at least -3, so
    # that the threshold at -2 has room on its left) to 1, a third of a decade per bin: no empty stretch of axis
    lowest = min(np.log10(max(min(a), 1e-12)) for acts in shown.activity for a in acts)
    lo = float(np.clip(np.floor(lowest), -8, -3))
    for (dataset, layers, layer), ax in zip(panels, axes):
        sub = shown[(shown.dataset == dataset) & (shown.n_layers == layers)]
        k = int(sub.k.max())
        data = pd.DataFrame([dict(model=OBJ_LABEL.get(r.objective, r.objective),  # outliers into the edge bins
                                  log_a=float(np.clip(np.log10(max(a, 1e-12)), lo + 0.01, 0.99)))
                             for r in sub[sub.k == k].itertuples() for a in r.activity[layer]])
        sns.histplot(data, x="log_a", hue="model", palette=PALETTE, element="step", fill=False,
                     bins=np.linspace(lo, 1, int(round(3 * (1 - lo))) + 1), ax=ax,
                     hue_order=[h for h in PALETTE if h in set(data.model)], legend=False)
        ax.axvline(-2, color="k", ls="--", lw=0.9, zorder=5)  # above the bars' edges
        ax.set_xlabel(r"$\log_{10} A_u$ (active if $\geq -2$)")
        ax.set_ylabel("units")
        which = f"layer {layer + 1} of 2 ({CEILING[layers][layer]} units)" if layers > 1 else f"{CEILING[1][0]} units"
        ax.set_title(f"{dataset.upper()}{'' if verified(base, dataset) else '*'}, {layers} layer"
                     f"{'s' if layers > 1 else ''}, K={k}\n{which}")
    legend(fig, {name: Line2D([], [], color=c, lw=1.2) for name, c in PALETTE.items()})
    seeds = base.seed.nunique()
    which_seed = f"training seed {seed} of the {seeds}" if seeds > 1 else f"training seed {seed}"
    save(fig, stem, f"{captions.figure('activity_hist')} The models of {which_seed}; activity over "
                    f"{activity_images(base)}; values beyond the axis are counted in "
                    f"the edge bins{stand_in_note(df)}. Ours: {budget_note(base_runs(df), test=False)}.")


def _per_model_lines(df: pd.DataFrame, long: pd.DataFrame, x: str, y: str, ylabel: str, stem: Path, footnote: str,
                     axis, test: bool = True) -> None:
    """One panel per (dataset, layers), a line per model of ``long`` (colour: objective, style: training K);
    ``axis(ax, panel_rows)`` styles the x axis."""
    plt, sns = setup()
    base = base_runs(df)
    cells = cells_of(base)
    fig, axes = panel_grid(plt, len(cells), 2, 1.6, 0.5)
    for (dataset, layers), ax in zip(cells, axes):
        sub = long[(long.dataset == dataset) & (long.n_layers == layers)]
        sns.lineplot(sub, x=x, y=y, hue="objective", style="trained with", palette=PALETTE, ax=ax, lw=1,
                     errorbar=None, marker="o" if sub[x].nunique() < 30 else None, ms=3,
                     style_order=sorted(long["trained with"].unique(), key=lambda t: int(t.split("=")[1])))
        axis(ax, sub)
        ax.set_ylabel(ylabel)
        ax.set_title(title(dataset, layers, verified(base, dataset)))
    keep = {}
    for ax in axes[: len(cells)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in ("objective", "trained with"):
                keep.setdefault(lab, h)
        ax.get_legend().remove()
    order = [o for o in PALETTE if o in keep] + sorted((k for k in keep if k not in PALETTE),
                                                      key=lambda t: int(t.split("=")[1]))
    legend(fig, {k: keep[k] for k in order})
    save(fig, stem, f"{footnote} Ours: {budget_note(base_runs(df), test)}.")


def _per_model(df: pd.DataFrame, rows) -> pd.DataFrame:
    return pd.DataFrame([dict(dataset=r.dataset, n_layers=r.n_layers, objective=OBJ_LABEL.get(r.objective, r.objective),
                              **{"trained with": f"trained with K={r.k}"}, **item)
                         for r in base_runs(df).itertuples() for item in rows(r)])


def bounds(df: pd.DataFrame, stem: Path) -> None:
    """The NLL bounds -L_K of every model against the evaluation K: they fall towards the K=5000 estimate."""
    def axis(ax, sub):
        k_axis(ax, sub.eval_k.unique(), "K of the bound at evaluation")

    long = _per_model(df, lambda r: [dict(eval_k=int(b[1:]), bound=-v) for b, v in r.bounds.items()])
    _per_model_lines(df, long, "eval_k", "bound", r"NLL bound $-L_K$ (nats)", stem,
                     f"{captions.figure('bounds')} Each point is the mean over the test images"
                     f"{' (and over the seeds)' if df.seed.nunique() > 1 else ''} of -L_K = -log (1/K) sum_k w_k "
                     f"(an upper bound on the NLL). {coincide_note(df)}", axis)


def training_curves(df: pd.DataFrame, stem: Path) -> None:
    """The training loss per epoch; the stages (learning rates) on the top axis."""
    from matplotlib.ticker import MaxNLocator

    def axis(ax, sub):
        many = sub.epoch.max() >= 30
        starts = sub.groupby("stage").agg(epoch=("epoch", "min"), lr=("lr", "first"))
        for s in starts.itertuples():
            ax.axvline(s.epoch if many else s.epoch - 0.5, color="0.6", lw=0.6, ls=":")
        if many:
            ax.set_xscale("log")
        else:
            ax.set_xlim(0.4, max(sub.epoch.max(), 1) + 0.6)  # whole epochs only, one epoch included
            if sub.epoch.nunique() <= 15:
                ax.set_xticks(sorted(sub.epoch.unique()))
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(starts.epoch if many else starts.epoch - 0.5))
        top.set_xticklabels([short_lr(lr) for lr in starts.lr], fontsize=6.5)
        top.tick_params(length=2, pad=1)
        ax.set_xlabel("epoch")

    long = _per_model(df, lambda r: [dict(epoch=h["epoch"] + 1, loss=-h["train_objective"], stage=h["stage"],
                                          lr=h["lr"]) for h in r.history])
    one = "One epoch: one point per model (a run of more epochs draws the curve). " if long.epoch.max() == 1 else ""
    _per_model_lines(df, long, "epoch", "loss", "training loss (nats)", stem,
                     f"{captions.figure('training_curves')} {one}{coincide_note(df)}", axis, test=False)


def wallclock(df: pd.DataFrame, stem: Path) -> None:
    """Milliseconds per update of each training job (a stack) against K."""
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    plt, sns = setup()
    base = base_runs(df).drop_duplicates(["dataset", "n_layers", "k"]).assign(
        job=lambda d: d.dataset.str.upper() + np.where(d.data_verified, "", "*") + ", " + d.n_layers.astype(str)
        + np.where(d.n_layers > 1, " layers", " layer"))
    fig = new_figure(plt, 0.75 * PAGE, 3.0)  # a column's width left it small on the report's page
    ax = fig.subplots()
    colours = ["#2ca02c", "#9467bd", "#8c564b", "#7f7f7f"]  # not the VAE's blue and IWAE's red of the other figures
    sns.lineplot(base, x="k", y="stack_ms_per_update", hue="job", style="job", markers=True, dashes=False, ms=4,
                 ax=ax, errorbar=None, palette=colours[: base.job.nunique()])
    k_axis(ax, base.k.unique())
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_locator(LogLocator(subs="auto", numticks=12))
    ax.yaxis.set_minor_formatter(NullFormatter())  # labels at 1, 2, 5 x 10^n only, in one format
    nice = sorted(m * 10.0 ** e for e in range(-2, 6) for m in (1, 2, 5))  # a labelled tick beyond each end
    y = base.stack_ms_per_update
    ax.set_ylim(max(v for v in nice if v <= y.min()), min(v for v in nice if v >= y.max()))
    ax.set_ylabel("ms per update of the stack")
    ax.legend(title=None, frameon=False)
    members = sorted(base.stack_size.unique())
    save(fig, stem, f"{captions.figure('wallclock')} Stacks of {'/'.join(map(str, members))} members; "
                    f"{', '.join(sorted(base.train_device.unique()))}{stand_in_note(df)}. Ours: "
                    f"{budget_note(base_runs(df), test=False)}.")


def learning_curve(curve_df: pd.DataFrame, stem: Path, finals: pd.DataFrame | None = None) -> None:
    """For every cell with stage snapshots: test NLL after each stage, and IWAE - VAE with its paired interval; a cell
    with ``captions.CLOSE_UP_FROM`` or more evaluated stages also gets its latest ``captions.CLOSE_UP`` close up
    (the full scale hides their gaps), beside the paper's. ``finals`` (``records.collect`` of the finished models
    on all their test images, where the curve's points are on the first N): drawn hollow at their epochs, the
    like-with-like comparison with the paper's crosses."""
    from matplotlib.lines import Line2D

    plt, _ = setup()
    t = curve(curve_df)
    ref = paper_reference("table1").set_index(["dataset", "n_layers", "k", "objective"]).nll
    end = 3280  # the paper's epochs: its numbers are drawn there
    cells = list(t[["dataset", "n_layers", "k"]].drop_duplicates().itertuples(index=False, name=None))
    long = [len(t[(t.dataset == d) & (t.n_layers == n) & (t.k == k)]) >= captions.CLOSE_UP_FROM
            for d, n, k in cells]
    fig = new_figure(plt, PAGE, 1.6 * len(cells) + 0.5)
    axes = fig.subplots(len(cells), 3 if any(long) else 2, squeeze=False)

    def drawn(frame, obj):  # K=1: one objective, trained once (as the VAE)
        return f"nll_{obj}" in frame and frame[f"nll_{obj}"].notna().any()

    def nll(ax, c, dataset, layers, k, values=False):
        for obj in ("vae", "iwae"):
            if drawn(c, obj):
                # bars with one training seed only (the caption says so: captions.curve_panels)
                ax.errorbar(c.epochs, c[f"nll_{obj}"], yerr=1.96 * c[f"err_{obj}"] if c.seeds.max() == 1 else None,
                            marker="o", ms=3, capsize=2, lw=1.2, color=PALETTE[OBJ_LABEL[obj]])
                if (dataset, layers, k, obj) in ref.index:
                    ax.plot([end], [ref[(dataset, layers, k, obj)]], "x", ms=5, color=PALETTE[OBJ_LABEL[obj]])
                for epochs, g in final_rows(dataset, layers, k, obj).groupby("epochs"):
                    mean, half = _nll_interval(g)  # on all the test images: over the seeds, or one seed's images
                    hollow(ax, epochs, mean, half, PALETTE[OBJ_LABEL[obj]], values)
        ax.margins(y=0.1)  # the crosses at the bottom not cut by the frame
        ax.set_ylabel("test NLL (nats)")

    def hollow(ax, x, y, err, colour, value, below=False):
        """A final model on all the test images: a hollow diamond with its 95% bar, its value beside it (or below
        it) where asked (the diamond and the paper's cross may coincide)."""
        ax.errorbar([x], [y], yerr=err, fmt="D", ms=4, mfc="none", mew=1, capsize=2, lw=1, color=colour)
        if value:
            ax.annotate(f"{y:.2f}", (x, y), xytext=(-2, -9) if below else (-6, 0), textcoords="offset points",
                        ha="right", va="top" if below else "center", fontsize=6, color=colour)

    def final_rows(dataset, layers, k, obj=None):
        if finals is None:
            return pd.DataFrame(columns=["epochs", "objective"])
        return finals[(finals.dataset == dataset) & (finals.n_layers == layers) & (finals.k == k)
                      & ((finals.objective == obj) if obj else finals.objective.isin(["vae", "iwae"]))]

    for (dataset, layers, k), row, close in zip(cells, axes, long):
        a, b = row[0], row[-1]
        c = t[(t.dataset == dataset) & (t.n_layers == layers) & (t.k == k)].sort_values("epochs")
        nll(a, c, dataset, layers, k)
        a.set_title(f"{title(dataset, layers, verified(curve_df, dataset))}, K={k}")
        k_axis(a, sorted(set(t.epochs.unique()) | {end}), "epochs")
        if len(row) == 3:
            if close:
                last = c.iloc[-captions.CLOSE_UP:]
                nll(row[1], last, dataset, layers, k, values=True)
                row[1].set_title(f"latest {captions.CLOSE_UP} stages, close up")
                k_axis(row[1], sorted(set(last.epochs) | {end}), "epochs")
            else:
                row[1].axis("off")
        if "iwae_minus_vae" not in c or c.iwae_minus_vae.isna().all():  # no pair in this cell: nothing to draw
            b.axis("off")
            b.text(0.5, 0.5, "K=1: VAE and IWAE are one objective,\ntrained once: no IWAE - VAE" if k == 1 else
                   "no IWAE - VAE pair in this cell", ha="center", va="center", transform=b.transAxes)
            continue
        b.plot(c.epochs, c.iwae_minus_vae, "o-", color="k", ms=3, lw=1)
        b.fill_between(c.epochs, c.low, c.high, color="0.8")
        if all((dataset, layers, k, o) in ref.index for o in ("vae", "iwae")):
            b.plot([end], [ref[(dataset, layers, k, "iwae")] - ref[(dataset, layers, k, "vae")]], "x", ms=5,
                   color="0.4")
        pair = final_rows(dataset, layers, k)
        d = compare(pair, dict(objective="iwae"), dict(objective="vae")) if pair.epochs.nunique() == 1 else None
        if d:  # the final pair at the same epochs, paired over the images (over the seeds where several)
            hollow(b, pair.epochs.iloc[0], d["diff"], [[d["diff"] - d["low"]], [d["high"] - d["diff"]]], "k",
                   True, below=True)
        b.axhline(0, color="0.4", ls=":", lw=0.8)
        b.set_ylabel("IWAE - VAE (nats)")
        b.set_title("IWAE - VAE, paired (negative: IWAE better)")
        k_axis(b, sorted(set(t.epochs.unique()) | {end}), "epochs")
    for ax in axes.flat:  # many stages: the epochs' labels slanted, so that 364, 1093 and 3280 do not collide
        if len(ax.get_xticks()) > 6:
            ax.tick_params(axis="x", labelrotation=40)
    shown = [OBJ_LABEL[o] for o in ("vae", "iwae") if drawn(t, o)]
    paired = "iwae_minus_vae" in t and t.iwae_minus_vae.notna().any()
    colours = [PALETTE[o] for o in shown] + (["0.4"] if paired else [])  # the legend: only what is drawn
    legend(fig, {**{o: Line2D([], [], color=PALETTE[o], marker="o", ms=3) for o in shown},
                  **({"IWAE - VAE": Line2D([], [], color="k", marker="o", ms=3),
                      "its paired 95% interval": Line2D([], [], color="0.8", lw=6)} if paired else {}),
                  "the paper's (3,280 epochs, its whole test set, no interval)": tuple(
                      Line2D([], [], color=color, marker="x", ls="", ms=5) for color in colours),
                  **({"ours, the final models on all the test images": tuple(
                      Line2D([], [], color="k" if color == "0.4" else color, marker="D", mfc="none", ls="", ms=4)
                      for color in colours)} if finals is not None else {})})
    save(fig, stem, f"{captions.figure('curve')} {captions.curve_panels(bool(t.seeds.max() == 1), any(long))} "
                    f"{_interval_kind(curve_df)}; {sign('IWAE', 'VAE')}. Ours: {budget_note(curve_df)}."
                    + (f" Hollow diamonds: the finished models on {finals.images.iloc[0]}, as the paper's numbers "
                       f"are (the crosses' like with like; the curve's points are on fewer images)."
                       if finals is not None and len(finals) else ""))


def model_colours(names) -> tuple[dict[str, str], dict[str, str]]:
    """A long run's models (``dataset/L<layers>/<objective>-k<K>/seed<s>``) -> (colour, line style) for each, given
    in the names' order whatever has finished, so that a model keeps its colour from one save's figure to the next:
    its objective's colour for the first model of each objective (VAE blue, IWAE red, as in every figure), another
    colour for each further model; one line style per cell (data set, layers, K)."""
    spare = itertools.cycle(f"C{i}" for i in (2, 4, 1, 6, 8, 9, 5, 7))  # after blue (C0) and red (C3): the others
    colours, styles, cells, used = {}, {}, {}, set()
    for name in sorted(names):
        dataset, layers, run = name.split("/")[:3]
        objective, k = run.rsplit("-k", 1)
        own = PALETTE.get(OBJ_LABEL.get(objective, ""))
        colours[name] = own if own and own not in used else next(spare)
        used.add(colours[name])
        styles[name] = cells.setdefault((dataset, layers, k), ("-", "--", ":", "-.")[len(cells) % 4])
    return colours, styles


def training_so_far(histories: dict[str, list[dict]], stem: Path, note: str, finished=frozenset()) -> None:
    """A long run's training loss per epoch from its models' histories (finished or still training): every epoch
    on a log axis; then, on linear axes with a 25-epoch running median, the last stage of the finished models
    (``finished``: their names) and the latest stage each model still in training has reached, so that whether the
    loss still falls in a stage thousands of epochs long can be seen before its end is evaluated, and how it ended.
    Colours and line styles: ``model_colours`` (a model keeps its colour from one save to the next)."""
    from matplotlib.lines import Line2D

    from iwae import falling

    plt, _ = setup()
    shown = {n: h for n, h in sorted(histories.items(), key=lambda nh: (nh[0] not in finished, nh[0])) if h}
    going = [n for n in shown if n not in finished]
    panels = [(": the finished models", [n for n in shown if n in finished]),
              ("in training: each model's latest stage so far", going)]
    panels = [(what, names) for what, names in panels if names]
    last_done = max((shown[n][-1]["stage"] for n in shown if n in finished), default=None)
    fig = new_figure(plt, PAGE, 2.6)
    whole, *lasts = fig.subplots(1, 1 + max(len(panels), 1))
    colours, styles = model_colours(shown)
    seeds = len({n.rsplit("/seed", 1)[-1] for n in shown}) > 1
    handles = {}
    for name, history in shown.items():
        dataset, layers, run = name.split("/")[:3]
        objective, k = run.rsplit("-k", 1)
        colour, style = colours[name], styles[name]
        shown_as = (f"{dataset.upper()} {layers[1:]} layer{'s' if layers != 'L1' else ''} {label(objective)} K={k}"
                    + (f" seed {name.rsplit('/seed', 1)[-1]}" if seeds else ""))
        handles[shown_as + (" (finished)" if name in finished else "")] = Line2D([], [], color=colour, ls=style)
        t = pd.DataFrame([dict(epoch=h["epoch"] + 1, stage=h["stage"], loss=-h["train_objective"]) for h in history])
        whole.plot(t.epoch, t.loss, color=colour, ls=style, lw=0.8)
        for ax, (what, names) in zip(lasts, panels):
            # the finished models: the last stage they share; a model in training: its own latest stage
            s = t[t.stage == (last_done if name in finished else history[-1]["stage"])]
            if name in names and len(s):
                ax.plot(s.epoch, s.loss, color=colour, lw=0.4, alpha=0.35)
                ax.plot(s.epoch, falling.running_median(s.loss), color=colour, ls=style, lw=1.4)
    ends = [1]  # a tick at each stage's end: 1, 4, 13, ... (3^i epochs per stage)
    while ends[-1] < max((h[-1]["epoch"] + 1 for h in shown.values()), default=1):
        ends.append(3 * ends[-1] + 1)
    k_axis(whole, ends, "epoch")
    whole.tick_params(axis="x", labelrotation=40)
    whole.set_title("every epoch")
    for ax, (what, names) in zip(lasts, panels):
        head = f"stage {last_done}{what}" if what.startswith(":") else what
        ax.set_xlabel("epoch")
        ax.set_title(f"{head}\n(thick: {falling.WINDOW}-epoch running median)", fontsize="small")
    for ax in (whole, *lasts):
        ax.set_ylabel("training loss (nats)")
    legend(fig, handles, ncol=2)
    save(fig, stem, f"{captions.figure('training_so_far')} {note}")


def write_figures(df: pd.DataFrame, out: Path, curve_df: pd.DataFrame | None = None) -> list[str]:
    """Every figure of ``figures_for`` the run under ``out``; -> their names."""
    draw = dict(nll_vs_k=nll_vs_k, active_units=active_units, activity_hist=activity_hist, bounds=bounds,
                training_curves=training_curves, wallclock=wallclock)
    names = figures_for(df, curve_df)
    for name in names:
        if name == "curve":
            learning_curve(curve_df, out / "curve")
        else:
            draw[name](df, out / name)
    return names


def samples(model_paths: list[str], stem: Path, side: int = 5, seed: int = 0) -> None:
    """One labelled matrix per data set and architecture: rows the objectives, columns K; each cell
    side x side Bernoulli means of p(x|h) for h from the generative model (the same prior draws)."""
    import torch

    plt, _ = setup()
    models, budgets = [], set()
    first_seed = min(load_model(p).metadata["train_config"]["seed"] for p in model_paths)
    for path in model_paths:
        model = load_model(path)
        c = model.metadata["train_config"]
        if c["init_from"]:
            continue  # Table 2's continued models are not in the matrix
        if c["seed"] != first_seed:
            continue  # one model per cell: the first seed's
        models.append((c["dataset"], model.config.n_layers, c["objective"], c["k"], model,
                       model.metadata["data"]["verified"], model.metadata["epochs"]))
        budgets.add(c["budget"])
    groups = sorted({(d, layers) for d, layers, *_ in models})
    cols = min(2, len(groups))
    rows = -(-len(groups) // cols)
    fig = plt.figure(figsize=(PAGE if cols > 1 else COLUMN, 2.7 * rows + 0.2), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(rows, cols, wspace=0.04)).ravel()
    for sf in subfigs[len(groups):]:
        sf.set_visible(False)
    for sf, (dataset, layers) in zip(subfigs, groups):
        cells = [(o, k, m, v) for d, lay, o, k, m, v, _ in models if (d, lay) == (dataset, layers)]
        objs = sorted({o for o, *_ in cells}, key=lambda o: (o != "vae", o != "iwae", o))
        ks = sorted({k for _, k, *_ in cells})
        axes = sf.subplots(len(objs), len(ks), squeeze=False, gridspec_kw=dict(wspace=0.03, hspace=0.03))
        sf.suptitle(title(dataset, layers, all(v for *_, v in cells)))
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        for o, k, m, _ in cells:
            means = m.sample_x_means(side * side, generator=torch.Generator().manual_seed(seed)).numpy()
            axes[objs.index(o), ks.index(k)].imshow(
                means.reshape(side, side, 28, 28).transpose(0, 2, 1, 3).reshape(side * 28, side * 28),
                cmap="gray_r", vmin=0, vmax=1)
        for j, k in enumerate(ks):
            axes[0, j].set_title(f"K = {k}", fontsize=7)
        for i, o in enumerate(objs):
            axes[i, 0].set_ylabel(label(o), fontsize=7)
    epochs = "/".join(str(e) for e in sorted({e for *_, e in models}))
    save(fig, stem, f"{captions.figure('samples')} Budget {', '.join(sorted(budgets))}, the models of training seed "
                    f"{first_seed} after {epochs} epochs.")


def snr_figure(rows: pd.DataFrame, fitted: pd.DataFrame, stem: Path) -> None:
    """SNR of each estimator's gradient against K on log-log axes (the floor of a zero-mean gradient removed, with
    jackknife intervals): the K with signal (filled) and the line fitted through them, whose slope and interval the
    legend gives; a K without signal (its interval reaches zero) a hollow triangle on the axis' floor (below it),
    left out of the fit."""
    from iwae.snr import models_note
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    plt, _ = setup()
    checkpoints = list(dict.fromkeys(rows.checkpoint))
    fig = new_figure(plt, PAGE, 3.0 * len(checkpoints) + 0.3)
    axes = fig.subplots(len(checkpoints), 2, squeeze=False)
    fits = {(r.checkpoint, r.estimator, r.network): r for r in fitted.itertuples()}
    for i, ckpt in enumerate(checkpoints):
        for j, net in enumerate(("recognition", "generative")):
            ax = axes[i, j]
            sub = rows[(rows.checkpoint == ckpt) & (rows.network == net)]
            with_signal = sub[(sub.snr > 0) & (sub["low"] > 0)]
            bottom = 0.5 * (with_signal["low"].min() if len(with_signal) else 1.0)
            groups = list(sub.groupby("estimator", sort=False))
            # estimators that share this network's gradient (every one's generative gradient is IWAE's) measure the
            # same thing: drawn once, under one name, not as lines hidden under each other
            same = len(groups) > 1 and all(np.array_equal(g.sort_values("k").snr.to_numpy(),
                                                          groups[0][1].sort_values("k").snr.to_numpy(), equal_nan=True)
                                           for _, g in groups)
            for n, (est, g) in enumerate(groups[:1] if same else groups):
                color = f"C{n}"
                f = fits.get((ckpt, est, net))
                fitted_ks = {int(k) for k in ks_text(f.ks_fitted).split(",") if k.strip()} if f is not None else set()
                g = g.sort_values("k")
                on, off = g[g.k.isin(fitted_ks)], g[~g.k.isin(fitted_ks)]
                has = f is not None and np.isfinite(f.slope)
                who = "every estimator (one gradient)" if same else label(est)
                name = who + (f" ({f.slope:+.2f} [{f.low:+.2f}, {f.high:+.2f}])" if has
                              else " (no slope: signal at fewer than 2 K)")
                ax.errorbar(on.k, on.snr, yerr=[on.snr - on["low"], on["high"] - on.snr], fmt="o", ms=3, capsize=2,
                            color=color, label=name)
                off = off[off.snr.notna()]  # an undefined SNR (no gradient at all, as RWS-DReG's at K = 1): not drawn
                if len(off):  # no signal: a hollow triangle pointing down on the axis' floor, left out of the fit
                    ax.plot(off.k, np.full(len(off), bottom), "v", ms=4, mfc="none", color=color, clip_on=False)
                if has:  # the fitted line through the K with signal
                    lx, ly = np.log(on.k.to_numpy(float)), np.log(on.snr.to_numpy(float))
                    ks = np.array([on.k.min(), on.k.max()], dtype=float)
                    ax.plot(ks, np.exp(ly.mean() + f.slope * (np.log(ks) - lx.mean())), "--", lw=1, color=color)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if ax.get_ylim()[0] < bottom * 1.01:  # a K without signal: its triangle on the axis' floor
                ax.set_ylim(bottom=bottom)
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0,)))
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # a tick or more even within a decade
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(StrMethodFormatter("{x:g}"))
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("K")
            ax.set_ylabel("SNR (rms, floor removed)")
            ax.set_title(f"{net} network, {ckpt}")
            # below the panel, where it hides no point
            ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    save(fig, stem, f"{captions.figure('snr')} SNR: the root mean square over the parameters of |E g| / sd g over "
                    f"{int(rows.draws.iloc[0])} draws on {int(rows.images.iloc[0])} training images, minus the floor "
                    f"of a zero-mean gradient (1/draws in SNR^2); a K without signal: its interval reaches zero. "
                    f"Checkpoints: {', '.join(checkpoints)}.{models_note(rows)}")
