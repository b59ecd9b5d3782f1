"""The writers of a run's tables and sentences (csv, md, tex), from run records (``iwae.records``): the tables are
built by ``iwae.tables``, the sentences by ``iwae.claims``, printed by ``iwae.render``.

CSV files are long and complete (one row per model or comparison, full precision); Markdown and LaTeX print
the tables as a reader wants them: Table 1 and Table 2 in the paper's layout, ours beside the paper's.
Every caption says the budget, epochs, test images and training seeds, and the one sign convention
(``records.sign``): a difference is of test NLL, A - B, negative when A is better.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iwae import captions, records
from iwae.claims import claims, family_claims, floor_summary
from iwae.records import base_runs, budget_note, label, sign
from iwae.render import (INIT_SHOWN, PAPER, SNR_UNDEFINED, fmt_table, interval_note, intervals, ks_text,
                         latex_table, nll_cell, number, sd_cell, tex_escape)
from iwae.tables import (curve_shown, data_shown, estimators, jobs, jobs_shown, load_recorded, noise_floor, projection,
                         protocol, table1_long, table1_paper, table2, table2_paper, table3)


def write_table(long: pd.DataFrame, shown: pd.DataFrame, stem: Path, caption: str, size: str = "small") -> None:
    """stem.csv (long, full precision), stem.md and stem.tex (``shown``, as printed: ``render.latex_table``)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    long.drop(columns=[c for c in ("ll", "activity", "bounds", "history", "protocol", "active", "stack")
                       if c in long.columns]).to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(f"{caption}\n\n" + fmt_table(shown).to_markdown(index=False, disable_numparse=True)
                                       + "\n")
    stem.with_suffix(".tex").write_text(latex_table(shown, caption, size))


def table_names(curve: bool, noise_floor: bool) -> list[str]:
    """The tables ``write_tables`` writes as csv, md and tex (what the pipeline promises): Table 1, Table 2 (or
    its sentence), the cost; the learning curve with stage snapshots; the noise floor with several seeds of VAE and
    IWAE."""
    return ["table1", "table2", "wallclock"] + (["curve"] if curve else []) + (["noise_floor"] if noise_floor else [])


def write_tables(df: pd.DataFrame, out_dir: Path, curve_df: pd.DataFrame | None = None,
                 floor: pd.DataFrame | None = None) -> None:
    """Table 1, Table 2, the cost, the learning curve, the noise floor and claims.md of a run under ``out_dir``."""
    base = base_runs(df)
    note = budget_note(base)  # Table 2's continuations say their own epochs
    t1 = table1_long(df)
    one_seed = "" if base.seed.nunique() > 1 else (" " + floor_summary(floor) if floor is not None else "")
    write_table(t1, table1_paper(t1), out_dir / "table1",
                f"{captions.table('table1')} "
                f"{'Ours are the mean over seeds ± their sd' if base.seed.nunique() > 1 else 'Ours: one training seed'}"
                f"{'; * stand-in data (not the paper file: UNVERIFIED)' if not base.data_verified.all() else ''}. "
                f"{PAPER}. {sign('IWAE', 'VAE')}; paired over the same test images, matched by training seed; "
                f"{interval_note(base)}.{one_seed} Ours: {note}.", size="footnotesize")
    t2 = table2(df)
    if len(t2):
        write_table(t2, table2_paper(t2), out_dir / "table2",
                    f"{captions.table('table2')} {PAPER}. "
                    f"{sign('after', 'first')}; paired over the "
                    f"same test images; {interval_note(df[df.continued_from.notna()])}. Ours: "
                    f"{budget_note(base[base.dataset == 'mnist'])}; then the "
                    f"continuations' {'/'.join(map(str, sorted(t2.epochs_second.unique())))} more epochs.",
                    size="footnotesize")
    else:  # the grid has no Table 2 (table2: false): a sentence, not an empty table
        t2.to_csv(out_dir / "table2.csv", index=False)
        for ext in ("md", "tex"):
            (out_dir / f"table2.{ext}").write_text("Table 2 (continued training) is not part of this run's grid.\n")
    j = jobs(df)
    proj, sentences = projection(j)
    write_table(j, jobs_shown(j), out_dir / "wallclock",
                f"{captions.table('wallclock')} ms/update is the whole stack's (where several stacks ran in one "
                f"process, taking turns, 'stacks' says how many, and ms/update is all of theirs). "
                + ("Machine load: the median over the job's epochs of the machine's 1-minute load average at an "
                   "epoch's end, against its cores; above the job's own threads, other work shared the machine and "
                   "slowed the job." if load_recorded(j) else
                   "The machine's load is not in these records (the code that trained them predates it), so they "
                   "cannot say whether other work shared the machine.") + f" Ours: {note}.",
                size="footnotesize")  # right under its section's heading
    shown_proj = pd.DataFrame({"device": proj.get("device"), "job": proj.get("job"), "members": proj.get("members"),
                               "ms/update (measured)": proj.get("stack_ms_per_update", pd.Series(dtype=float)).map(
                                   lambda v: f"{v:.2f}"),
                               "paper updates": proj.get("paper_updates", pd.Series(dtype=float)).map(
                                   lambda v: f"{v:,.0f}"),
                               "paper hours": proj.get("paper_hours", pd.Series(dtype=float)).map(lambda v: f"{v:,.1f}")})
    (out_dir / "wallclock.md").write_text((out_dir / "wallclock.md").read_text() + "\n" + " ".join(sentences) + "\n\n"
                                          + (shown_proj.to_markdown(index=False, disable_numparse=True) + "\n"
                                             if len(proj) else ""))
    proj.to_csv(out_dir / "projection.csv", index=False)
    (out_dir / "projection.tex").write_text(
        tex_escape(" ".join(sentences)) + "\n" if sentences else "No training job in this run.\n")
    (out_dir / "protocol.tex").write_text(tex_escape(protocol(df)) + "\n")
    (out_dir / "runnote.tex").write_text(f"\\newcommand{{\\runnote}}{{{tex_escape(note)}}}\n")
    (out_dir / "captions.tex").write_text(captions.tex_definitions())  # \fig{name}'s caption, written once
    if curve_df is not None:
        c = records.curve(curve_df)
        write_table(c, curve_shown(c), out_dir / "curve",
                    f"{captions.table('curve')} {sign('IWAE', 'VAE')}; {interval_note(curve_df)}. Ours: "
                    f"{budget_note(curve_df)}.")
    nf = noise_floor(t1)
    if len(nf):
        shown = pd.DataFrame({"data": data_shown(nf.dataset, nf.data), "layers": nf.n_layers, "K": nf.k,
                              "seeds": nf.seeds,
                              "NLL sd: VAE": nf.nll_sd_vae, "NLL sd: IWAE": nf.nll_sd_iwae,
                              "IWAE - VAE": intervals(nf, "iwae_minus_vae"),
                              "its sd [95% CI]": [sd_cell(sd, n) for sd, n in zip(nf.iwae_minus_vae_sd, nf.seeds)],
                              "initial weights": nf.init.map(INIT_SHOWN).fillna(nf.init)})
        write_table(nf, shown, out_dir / "noise_floor",
                    f"{captions.table('noise_floor')} {sign('IWAE', 'VAE')}. Ours: {note}.")
    sentences = claims(t1, df, floor)
    head = f"What this run can say, at its budget ({note}). {interval_note(base)}."
    if base.seed.nunique() == 1 and floor is not None:
        head += " " + floor_summary(floor)
    (out_dir / "claims.md").write_text(head + "\n\n" + "".join(f"- {s}\n" for s in sentences))
    (out_dir / "claims.tex").write_text(tex_escape(head) + "\n\\begin{itemize}\n" + "".join(
        f"\\item {tex_escape(s)}\n" for s in sentences) + "\\end{itemize}\n" if sentences else
        "No paired comparison in this run.\n")
    df.drop(columns=["ll", "activity", "bounds", "history", "active", "stack"]).to_csv(out_dir / "all_runs.csv",
                                                                                        index=False)


def write_table3(paths, stem: Path) -> pd.DataFrame:
    """Table 3 (``stem``.md/.csv/.tex) from the metrics of its runs; -> the table."""
    df3 = records.collect(paths)
    t3 = table3(df3)
    sd = " ± sd over seeds" if t3.seeds.max() > 1 else ""
    shown = pd.DataFrame({"objective": t3.label, "seeds": t3.seeds,
                          f"-L_{int(t3.k.iloc[0])}{sd}": [nll_cell(b, s) for b, s in zip(t3.neg_bound, t3.neg_bound_sd)],
                          "paper": t3.neg_bound_paper.map(number),
                          f"NLL{sd}": [nll_cell(v, s) for v, s in zip(t3.nll, t3.nll_sd)],
                          "paper ": t3.nll_paper.map(number),
                          "X - IWAE [95% CI]": intervals(t3, "minus_iwae")})
    write_table(t3, shown, stem,
                f"{captions.table('table3')} Here K = {int(t3.k.iloc[0])}; the bound is the training objective of "
                f"IWAE only, an upper bound on the NLL for every model. X - IWAE is of the test NLL: "
                f"{sign('X', 'IWAE')}; {interval_note(df3)}; the bounds' "
                f"differences have no interval (the evaluation keeps a bound's mean, not its value per image). "
                f"'paper': Rainforth et al. 2018 as quoted in src/iwae/reference/paper_rainforth2018.csv (see its "
                f"note on where each value was checked), negated into NLL (reference data). Ours: {budget_note(df3)}.")
    return t3


def write_estimators(paths, stem: Path) -> pd.DataFrame:
    """The estimator comparison (``stem``.md/.csv/.tex) from the metrics of its runs; -> the table."""
    dfe = records.collect(paths)
    te = estimators(dfe)
    shown = pd.DataFrame({
        "data": data_shown(te.dataset, te.data), "K": te.k, "estimator": te.label,
        "seeds": te.seeds, "NLL (AU)": [nll_cell(v, s, a) for v, s, a in zip(te.nll, te.nll_sd, te.active_units)],
        "X - IWAE [95% CI]": intervals(te, "minus_iwae")})
    stacks = "; ".join(f"K={r.k}: {r.stack_ms_per_update:.1f} ms" for r in te.drop_duplicates("k").itertuples())
    write_table(te, shown, stem,
                f"{captions.table('estimators')} {sign('X', 'IWAE')}; {interval_note(dfe)}. The estimators of one K "
                f"were trained as one stack "
                f"of {int(te.members.max())}, which shares every update ({stacks} per update of the whole stack); "
                f"what each estimator costs alone is measured by benchmarks/bench_estimators.py. Ours: "
                f"{budget_note(dfe)}.")
    return te


def write_snr_table(rows: pd.DataFrame, fitted: pd.DataFrame, stem: Path) -> None:
    """The fitted SNR slopes with their 95% jackknife intervals (``stem``.md/.csv/.tex), one row per estimator and one
    column per network and checkpoint; a slope fitted over fewer than every K says which it left out."""
    from iwae.snr import models_note

    models = ", ".join(f"{c} = {m}" for c, m in dict(zip(rows.checkpoint, rows.model)).items())
    cells, notes = {}, {}  # a K left out is a note under the table, its letter in the cell (a narrow table)

    def mark(note: str) -> str:
        return f" ({notes.setdefault(note, 'abcdefghijklmnopqrstuvwxyz'[len(notes) % 26])})"

    for r in fitted.itertuples():
        if np.isfinite(r.slope):
            text = f"{r.slope:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
            if ks_text(r.ks_without_signal):
                text += mark(f"no signal at K={ks_text(r.ks_without_signal)}")
            if ks_text(getattr(r, "ks_undefined", "")):
                text += mark(f"{SNR_UNDEFINED} at K={ks_text(r.ks_undefined)}")
        else:
            text = "no slope: signal at fewer than 2 K"
        cells[(r.estimator, r.network, r.checkpoint)] = text
    estimators = list(dict.fromkeys(fitted.estimator))
    columns = [(net, c) for net in ("recognition", "generative") for c in dict.fromkeys(fitted.checkpoint)]
    shown = pd.DataFrame({"estimator": [label(e) for e in estimators]} | {
        f"{net}, {c}": [cells.get((e, net, c), "") for e in estimators] for net, c in columns})
    write_table(fitted, shown, stem,
                f"{captions.table('snr')} The SNR: the root mean square over the parameters of |E g| / sd g with the "
                f"floor of a zero-mean gradient removed; intervals: each block of draws left out in turn (jackknife); "
                f"least squares over the K = {', '.join(map(str, sorted(rows.k.unique())))} with signal (a K whose "
                f"SNR interval reaches zero is left out and named), {int(rows.draws.iloc[0])} draws on "
                f"{int(rows.images.iloc[0])} training images"
                + "".join(f"; ({letter}): {note}, left out of the fit" for note, letter in notes.items())
                + f". Models: {models}.{models_note(rows)}")


def write_family_claims(t3: pd.DataFrame | None, te: pd.DataFrame | None, fitted: pd.DataFrame | None,
                        stem: Path) -> None:
    """The family experiments in words (``stem``.md and .tex): ``iwae.claims.family_claims``."""
    sentences = family_claims(t3, te, fitted)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text("".join(f"- {s}\n" for s in sentences))
    stem.with_suffix(".tex").write_text("\\begin{itemize}\n" + "".join(f"\\item {tex_escape(s)}\n" for s in sentences)
                                        + "\\end{itemize}\n" if sentences else "No comparison in these experiments.\n")
