"""The figures' common ground: sizes and style, the one palette, saving a figure with its footnote, axes against K,
panels, legends and titles, and the notes that apply only to some runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from iwae.records import base_runs, where

PAGE, COLUMN = 6.7, 3.3


COINCIDE = "VAE and IWAE coincide at K=1 (the same objective: one model)."


def coincide_note(df: pd.DataFrame) -> str:
    """The K=1 note, for a run that has K=1 (and both objectives there)."""
    base = base_runs(df)
    return COINCIDE if {"vae", "iwae"} <= set(base[base.k == 1].objective) else ""


PALETTE = {"VAE": "#1f77b4", "IWAE": "#d62728"}


FOOTNOTE_PT = 6.5


def setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks")
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
                         "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
                         "figure.titlesize": 8, "pdf.fonttype": 42})
    return plt, sns


def new_figure(plt, width: float, height: float):
    return plt.figure(figsize=(width, height), layout="constrained")


def save(fig, stem: Path, footnote: str = "") -> None:
    """stem.png with the footnote (budget, epochs, images, seeds) under the axes, wrapped to the width; stem.pdf
    without it, and the footnote as stem.caption.tex (``\\figurenote``): the LaTeX report's caption of the figure
    (one caption, not two that differ)."""
    from iwae.render import tex_escape

    stem.parent.mkdir(parents=True, exist_ok=True)
    footnote = " ".join(footnote.split())  # a note that does not apply leaves no gap
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight", pad_inches=0.04)
    stem.with_suffix(".caption.tex").write_text(f"\\def\\figurenote{{{tex_escape(footnote)}}}\n")
    if footnote:
        chars = int(fig.get_figwidth() * 72 / (0.5 * FOOTNOTE_PT))
        fig.text(0.0, 0.0, textwrap.fill(footnote, chars), fontsize=FOOTNOTE_PT, color="0.3", ha="left", va="top")
    fig.savefig(stem.with_suffix(".png"), dpi=200, bbox_inches="tight", pad_inches=0.04)
    import matplotlib.pyplot as plt

    plt.close(fig)


def k_axis(ax, ks, xlabel: str = "K (samples in training)", labels=None) -> None:
    """A log axis with a tick at each K of the run, labelled 1, 5, 50 (or ``labels``)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(ks)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(labels or [str(k) for k in sorted(ks)])
    ax.set_xlabel(xlabel)


def cells_of(df: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted({(d, int(layers)) for d, layers in zip(df.dataset, df.n_layers)})


def title(dataset: str, layers: int, verified: bool) -> str:
    return where(dataset, layers, verified, "stochastic layer")


def short_lr(lr: float) -> str:
    """A learning rate in two significant figures, short: 1e-3, 7.2e-4."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def stand_in_note(df: pd.DataFrame) -> str:
    """"; * stand-in data" where some of the run's data are unverified stand-ins, else nothing."""
    return "" if df.data_verified.all() else "; * stand-in data"


def verified(df: pd.DataFrame, dataset: str) -> bool:
    return bool(df[df.dataset == dataset].data_verified.all())


def legend(fig, handles: dict, ncol: int = 4) -> None:
    """The figure's legend above its panels; a tuple of handles is drawn side by side under one label."""
    from matplotlib.legend_handler import HandlerTuple

    fig.legend(list(handles.values()), list(handles), loc="outside upper center", ncol=min(ncol, len(handles)),
               frameon=False, handler_map={tuple: HandlerTuple(ndivide=None)})


def panel_grid(plt, n: int, max_cols: int, row_height: float, extra: float):
    """A figure of ``n`` panels, at most ``max_cols`` a row (full width when more than one column), the spare
    axes hidden. -> (figure, the n axes)."""
    cols = min(max_cols, n)
    rows = -(-n // cols)
    fig = new_figure(plt, PAGE if cols > 1 else COLUMN, row_height * rows + extra)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]
