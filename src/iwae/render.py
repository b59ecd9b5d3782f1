"""How numbers are printed: intervals and the sentence saying what they are over, NLL cells, table formatting and
LaTeX. One wording for every table, sentence and figure footnote."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from iwae.stats import sd_interval

PAPER = "'paper': Burda et al. 2016, arXiv:1509.00519 v4 (reference data)"


def interval(d: float, low: float, high: float) -> str:
    """A paired difference as printed: "d [low, high]"; "d" alone where it has no interval; "" where none."""
    if pd.isna(d):
        return ""
    return f"{d:+.2f}" if pd.isna(low) else f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"


def intervals(t: pd.DataFrame, diff: str, low: str = "low", high: str = "high") -> list[str]:
    """A column of paired differences as printed (``interval`` of each row)."""
    return [interval(*row) for row in t.reindex(columns=[diff, low, high]).itertuples(index=False)]


def sd_cell(sd: float, n: int) -> str:
    """A standard deviation over ``n`` seeds with its own 95% interval: "0.17 [0.09, 1.08]"."""
    low, high = sd_interval(sd, int(n))
    return f"{sd:.2f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) else number(sd)


# an SNR estimate where the gradient is zero at every draw (RWS-DReG's recognition gradient at K = 1)
SNR_UNDEFINED = "zero gradient, no SNR,"

# the ``init`` option in words, for tables and the protocol sentence
INIT_SHOWN = {"authors": "the authors' (shared by every seed)", "seeded": "drawn per seed (init: seeded)"}


def nll_cell(nll: float, sd: float, au: str = "") -> str:
    """"102.32 (41)", or "102.32 ± 0.12 (41)" with the sd over seeds; "" where there is no number."""
    if pd.isna(nll):
        return ""
    text = f"{nll:.2f}" if pd.isna(sd) else f"{nll:.2f} ± {sd:.2f}"
    return f"{text} ({au})" if au else text


def over_note(d: dict | pd.Series | None, images: str) -> str:
    """What an interval is over, for a sentence or a caption."""
    if d is None:
        return ""
    if d["over"] == "seeds":
        return f"{int(d['n'])} training seeds"
    return f"{images.split(' (')[0]} of one training seed"


def ks_text(value) -> str:
    """A list of K as stored in a CSV cell ("1,10", or a lone 1 read back as a number; empty: none): "1,10", "1", ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def interval_kind(seeds: int) -> str:
    """What 95% intervals are over, in short (a figure's footnote); ``interval_note`` is the caption's sentence."""
    if seeds > 1:
        return f"95% intervals over the {seeds} training seeds"
    return "95% intervals over the test images of one training seed (not training's noise)"


def interval_note(df: pd.DataFrame) -> str:
    """A caption's sentence on what the intervals of a run's comparisons are over."""
    seeds = df.seed.nunique()
    if seeds > 1:
        shared = ("init" in df and set(df.init) == {"authors"} and "data_order" in df
                  and set(df.data_order) == {"fixed"})
        caveat = ("; the seeds share the authors' initial weights and data order, so these intervals count only the "
                  "noise of training's random binarisation and latent samples and are probably too narrow")
        return (f"95% intervals: Student's t over the {seeds} training seeds' paired mean differences (each on "
                f"the same test images)" + (caveat if shared else ""))
    return ("95% intervals over the test images of ONE training seed: they measure the test set's sampling noise, "
            "not training's, and give no verdict")


def number(v: float, fmt: str = "{:.2f}") -> str:
    return "" if pd.isna(v) else fmt.format(v)


def fmt_table(t: pd.DataFrame) -> pd.DataFrame:
    out = t.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return out


TEX = {"\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "$": "\\$", "&": "\\&", "%": "\\%", "_": "\\_",
       "#": "\\#", "±": "$\\pm$", "->": "$\\to$", ">=": "$\\geq$", ">": "$>$", "<": "$<$", "|": "$|$",
       "^": "\\textasciicircum{}", "~": "\\textasciitilde{}"}
# the symbols written with a subscript in plain text (A_u, L_K, -L_64, Var_x, E_q, sum_k, w_k) are set as math,
# and a power (SNR^2)
_MATH = {"A": "A", "L": "L", "E": "E", "w": "w", "Var": "\\mathrm{Var}", "sum": "\\sum"}
_SYMBOL = (r"(?:(?<!\w)(?P<minus>-))?\b(?P<symbol>" + "|".join(_MATH) + r")_(?P<sub>[A-Za-z0-9]+)\b"
           r"|(?<=\w)\^(?P<power>[0-9]+)\b")
_TEX = re.compile(_SYMBOL + "|" + "|".join(re.escape(k) for k in sorted(TEX, key=len, reverse=True)))


def _tex_piece(m: re.Match) -> str:
    if m.group("symbol"):
        return f"${m.group('minus') or ''}{_MATH[m.group('symbol')]}_{{{m.group('sub')}}}$"
    if m.group("power"):
        return f"$^{{{m.group('power')}}}$"
    return TEX[m.group(0)]


def tex_escape(text: str) -> str:
    """Plain text printable by LaTeX: every special character replaced in one pass (a replacement is never
    escaped again); the paper's subscripted symbols (A_u, -L_5000) as math."""
    text = re.sub(r"(^|[\s(])'", r"\1`", text)  # an opening quote
    return _TEX.sub(_tex_piece, text)


def latex_table(t: pd.DataFrame, caption: str, size: str = "small") -> str:
    """A booktabs table at a legible size, in the text's flow right where it is written (as the report's figures
    are: nothing floats, so a table and a figure never overrun a page together), unnumbered: its caption names it
    (the paper's Table 1, 2, Rainforth's Table 3, ...), so LaTeX's own numbers cannot collide with the papers'."""
    shown = fmt_table(t).map(lambda v: tex_escape(v) if isinstance(v, str) else v)  # cells and headers as the
    shown.columns = [tex_escape(str(c)) for c in shown.columns]  # captions are: -L_64 as math
    body = shown.to_latex(index=False, escape=False, column_format="l" * len(t.columns))
    # a table wider than the text is shrunk to its width (graphicx), never cut off at the page's edge
    body = f"\\resizebox{{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}}{{!}}{{%\n{body.rstrip()}%\n}}\n"
    # in a minipage: the caption never ends a page that its table begins the next
    return (f"\\begin{{center}}\\begin{{minipage}}{{\\linewidth}}\\centering\\{size}\n"
            f"\\captionof*{{table}}{{{tex_escape(caption)}}}\n{body}\\end{{minipage}}\\end{{center}}\n")

