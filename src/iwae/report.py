"""Tables, the paired comparisons and the sentences on what a run supports, from the metrics files.

Every number shown comes from a metrics file (see ``collect``); the paper's numbers come only from
``iwae/reference/*.csv`` and are always labelled "paper". CSV files are long and complete (one row
per model); Markdown and LaTeX print Table 1 and Table 2 as the paper does, ours beside the paper's.
Figures are in ``iwae.figures``.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from iwae.schedule import epoch_plan, schedule
from iwae.stats import mean_ci, paired_difference, verdict

OBJ_LABEL = {"vae": "VAE", "iwae": "IWAE"}
MNIST_UPDATES_PER_EPOCH, OMNIGLOT_UPDATES_PER_EPOCH = 59_600 // 20, (24_345 - 1_345) // 20


def label(objective: str) -> str:
    """VAE, IWAE, IWAE-DReG, MIWAE(8), CIWAE(0.5), ..."""
    if objective in OBJ_LABEL:
        return OBJ_LABEL[objective]
    base, _, arg = objective.partition("_")
    if base in ("miwae", "piwae") and arg.startswith("m"):
        return f"{base.upper()}({arg[1:]})"
    if base == "ciwae" and arg.startswith("b"):
        return f"CIWAE({arg[1:]})"
    return objective.upper().replace("_", "-")


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
        tc = tr["train_config"]
        rows.append(dict(
            metrics=str(p), run_dir=str(Path(p).resolve().parent), dataset=run["dataset"], n_layers=run["n_layers"],
            objective=run["objective"], k=run["k"], seed=run["seed"], budget=run["budget"],
            continued_from=run.get("continued_from"), protocol=run.get("protocol", {}),
            nll=-ev["test_ll"], nll_sem=ev.get("test_ll_sem"), nll_active_only=-ev["test_ll_active_only"],
            ll=np.asarray(ev.get("test_ll_per_image", []), dtype=float), train_nll=-ev["train_ll"],
            eval_k=ev["eval_k"], n_test=ev["n_test"], active=ev["active_units"],
            active_units="+".join(str(a) for a in ev["active_units"]), active_total=ev["active_units_total"],
            activity=ev["activity"], bounds=ev["test_bounds"], epochs=tr["epochs"], updates=tr["updates"],
            train_seconds=tr["train_seconds"], stack_size=tr.get("stack_size", 1),
            seconds_per_epoch=tr["seconds_per_epoch"], eval_seconds=ev["eval_seconds"], train_device=tr["device"],
            eval_device=ev["device"], train_path=tr.get("train_path", "?"), optimizer=tc["optimizer"],
            init=tc.get("init", "seeded"), data_order=tc.get("data_order", "reshuffle"), history=tr["history"],
            data_verified=m["data"]["verified"],
        ))
    if not rows:
        raise ValueError("no metrics files given")
    df = pd.DataFrame(rows)
    df["ms_per_update"] = 1e3 * df.train_seconds / df.stack_size / df.updates  # per model, stacks shared out
    return df


def base_runs(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.continued_from.isna()]


def data_status(df: pd.DataFrame) -> str:
    bad = sorted(df[~df.data_verified].dataset.unique())
    return "all data verified" if not bad else f"{', '.join(bad)}: UNVERIFIED stand-in data"


def budget_note(df: pd.DataFrame) -> str:
    budgets = ", ".join(sorted(df.budget.unique()))
    return (f"budget {budgets}; {int(df.epochs.max())} epochs; test NLL = -log p(x) estimated with "
            f"K={int(df.eval_k.max())} on {int(df.n_test.max())} test images; {data_status(df)}")


def _seeds(rows: pd.DataFrame) -> dict[int, pd.Series]:
    return {int(r.seed): r for _, r in rows.iterrows()}


def compare(df: pd.DataFrame, a: dict, b: dict) -> dict | None:
    """NLL(a) - NLL(b), paired over the test images (and seeds), for two selections of df (dicts of column values)."""
    pick = lambda sel: _seeds(df[np.logical_and.reduce([df[c] == v for c, v in sel.items()])])  # noqa: E731
    ra, rb = pick(a), pick(b)
    seeds = sorted(set(ra) & set(rb))
    if not seeds or any(len(ra[s].ll) == 0 or len(ra[s].ll) != len(rb[s].ll) for s in seeds):
        return None
    # NLL = -ll: NLL(a) - NLL(b) = ll(b) - ll(a)
    return paired_difference([rb[s].ll for s in seeds], [ra[s].ll for s in seeds])


def table1_long(df: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the paper's, one row per (dataset, layers, K, objective), everything a machine needs."""
    base = base_runs(df)
    rows = []
    for key, g in base.groupby(["dataset", "n_layers", "k", "objective"]):
        nll, low, high = mean_ci(g.nll)
        au = np.mean(np.stack(g.active.map(np.asarray)), axis=0)
        rows.append(dict(zip(["dataset", "n_layers", "k", "objective"], key), nll=nll,
                         nll_sd=float(g.nll.std()) if len(g) > 1 else np.nan,
                         nll_sem_images=float(g.nll_sem.mean()), seeds=len(g),
                         active_units="+".join(f"{a:g}" for a in np.round(au, 1)), active_total=float(au.sum()),
                         nll_active_only=float(g.nll_active_only.mean()), train_nll=float(g.train_nll.mean()),
                         budget=g.budget.iloc[0], epochs=int(g.epochs.iloc[0]), eval_k=int(g.eval_k.iloc[0]),
                         n_test=int(g.n_test.iloc[0]), optimizer=g.optimizer.iloc[0], init=g.init.iloc[0],
                         data_order=g.data_order.iloc[0], device=g.train_device.iloc[0],
                         data="verified" if g.data_verified.all() else "UNVERIFIED (stand-in)"))
    ours = pd.DataFrame(rows)
    ref = paper_reference("table1").rename(columns={"nll": "nll_paper", "active_units": "active_units_paper"})
    t = ours.merge(ref, on=["dataset", "n_layers", "k", "objective"], how="left")
    t["nll_minus_paper"] = t.nll - t.nll_paper
    diffs = [compare(base, dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective=r.objective),
                     dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective="vae")) if r.objective != "vae"
             else None for r in t.itertuples()]
    t["minus_vae"] = [d["diff"] if d else np.nan for d in diffs]
    t["minus_vae_low"] = [d["low"] if d else np.nan for d in diffs]
    t["minus_vae_high"] = [d["high"] if d else np.nan for d in diffs]
    t["minus_vae_over"] = [d["over"] if d else "" for d in diffs]
    order = {o: i for i, o in enumerate(["vae", "iwae"])}
    return t.sort_values(["dataset", "n_layers", "k"], kind="stable").sort_values(
        ["dataset", "n_layers", "k", "objective"], key=lambda c: c.map(order).fillna(9) if c.name == "objective" else c)


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.2f}" if not np.isfinite(sd) else f"{mean:.2f} ± {sd:.2f}"


def _interval(d: float, low: float, high: float) -> str:
    """A paired difference as printed: "d [low, high]"; "d" alone where it has no interval; "" where none."""
    if pd.isna(d):
        return ""
    return f"{d:+.2f}" if pd.isna(low) else f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"


def _intervals(t: pd.DataFrame, diff: str, low: str = "low", high: str = "high") -> list[str]:
    """A column of paired differences as printed (``_interval`` of each row)."""
    return [_interval(*row) for row in t.reindex(columns=[diff, low, high]).itertuples(index=False)]


def table1_paper(long: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the paper prints it: one row per (dataset, layers, K), VAE and IWAE side by side."""
    rows = []
    for (dataset, layers, k), g in long.groupby(["dataset", "n_layers", "k"], sort=False):
        row = {"data": dataset.upper() + ("" if g.data.iloc[0] == "verified" else "*"), "layers": layers, "k": k}
        for obj in ("vae", "iwae"):
            r = g[g.objective == obj]
            if len(r):
                r = r.iloc[0]
                name = OBJ_LABEL[obj]
                row[f"{name} NLL"] = _pm(r.nll, r.nll_sd)
                row[f"{name} paper"] = f"{r.nll_paper:.2f}" if np.isfinite(r.nll_paper) else ""
                row[f"{name} -paper"] = f"{r.nll_minus_paper:+.2f}" if np.isfinite(r.nll_minus_paper) else ""
                row[f"{name} AU (paper)"] = f"{r.active_units} ({r.active_units_paper})"
        iw = g[g.objective == "iwae"]
        row["IWAE-VAE [95% CI]"] = (_interval(iw.minus_vae.iloc[0], iw.minus_vae_low.iloc[0], iw.minus_vae_high.iloc[0])
                                    if len(iw) else "")
        rows.append(row)
    return pd.DataFrame(rows)


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Continued-training runs: the first model's numbers and the continued model's, ours beside the paper's."""
    cont = df[df.continued_from.notna()]
    run_dirs = df.metrics.map(lambda m: str(Path(m).resolve().parent))
    rows = []
    for _, r in cont.iterrows():
        first = df[run_dirs == str(Path(r.continued_from).resolve().parent)]
        base = first.iloc[0] if len(first) else None
        rows.append(dict(
            first_objective=base.objective if base is not None else "?", first_k=base.k if base is not None else -1,
            second_objective=r.objective, second_k=r.k, seed=r.seed, epochs_second=r.epochs,
            nll_first=base.nll if base is not None else np.nan, active_first=base.active_units if base is not None else "",
            nll_second=r.nll, active_second=r.active_units, budget=r.budget, device=r.train_device,
        ))
    ours = pd.DataFrame(rows, columns=["first_objective", "first_k", "second_objective", "second_k", "seed",
                                       "epochs_second", "nll_first", "active_first", "nll_second", "active_second",
                                       "budget", "device"])
    ref = paper_reference("table2").rename(columns=lambda c: c + "_paper" if c.startswith(("nll", "active")) else c)
    t = ours.merge(ref, on=["first_objective", "first_k", "second_objective", "second_k"], how="left")
    t["nll_second_minus_paper"] = t.nll_second - t.nll_second_paper
    return t


def table2_paper(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{
        "first": f"{label(r.first_objective)} k={r.first_k}", "then": f"{label(r.second_objective)} k={r.second_k}",
        "seed": r.seed, "NLL first": f"{r.nll_first:.2f}", "paper": f"{r.nll_first_paper:.2f}",
        "AU first (paper)": f"{r.active_first} ({r.active_first_paper})", "NLL after": f"{r.nll_second:.2f}",
        "paper ": f"{r.nll_second_paper:.2f}", "AU after (paper)": f"{r.active_second} ({r.active_second_paper})",
    } for r in t.itertuples()])


def paper_updates(dataset: str, table2: bool = False) -> int:
    per_epoch = MNIST_UPDATES_PER_EPOCH if dataset == "mnist" else OMNIGLOT_UPDATES_PER_EPOCH
    return per_epoch * (3**7 if table2 else len(epoch_plan(schedule())))


def wallclock(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: updates, ms per update (a stack's time shared out), train hours, eval seconds, device."""
    t = df.assign(model=df.apply(lambda r: f"{r.dataset} L{r.n_layers} {label(r.objective)} k={r.k}"
                                 + (" (cont.)" if isinstance(r.continued_from, str) else ""), axis=1))
    t["train_h"] = t.train_seconds / t.stack_size / 3600
    cols = ["model", "seed", "stack_size", "updates", "ms_per_update", "train_h", "eval_seconds", "train_device"]
    return t[cols].sort_values(["model", "seed"]).rename(columns={"stack_size": "stack", "train_device": "device"})


def projection(df: pd.DataFrame) -> pd.DataFrame:
    """The paper budget (Table 1 + Table 2) on each measured device, from the measured ms per update per
    (dataset, layers, K, stack size): the stack's time per update x the paper's updates, per training group."""
    rows = []
    base = base_runs(df)
    for (device, dataset, layers, k), g in base.groupby(["train_device", "dataset", "n_layers", "k"]):
        stack_ms = float((1e3 * g.train_seconds / g.updates).max())  # the group's wall-clock per update
        rows.append(dict(device=device, group=f"{dataset} L{layers} k={k}", models=len(g),
                         stack_ms_per_update=stack_ms, paper_hours=stack_ms * paper_updates(dataset) / 3.6e6))
    cont = df[df.continued_from.notna()]
    for (device, k), g in cont.groupby(["train_device", "k"]):
        stack_ms = float((1e3 * g.train_seconds / g.updates).max())
        rows.append(dict(device=device, group=f"Table 2 (then k={k})", models=len(g), stack_ms_per_update=stack_ms,
                         paper_hours=stack_ms * paper_updates("mnist", table2=True) / 3.6e6))
    t = pd.DataFrame(rows)
    if len(t):
        total = t.groupby("device", as_index=False).agg(models=("models", "sum"), paper_hours=("paper_hours", "sum"))
        t = pd.concat([t, total.assign(group="total (run in sequence)", stack_ms_per_update=np.nan)])
    return t


def curve(df: pd.DataFrame) -> pd.DataFrame:
    """A learning curve from stage snapshots: NLL per (dataset, layers, K, objective, epochs), and the
    IWAE - VAE difference at each point, paired."""
    rows = []
    for (dataset, layers, k, epochs), g in df.groupby(["dataset", "n_layers", "k", "epochs"]):
        row = dict(dataset=dataset, n_layers=layers, k=k, epochs=epochs)
        for obj, h in g.groupby("objective"):
            row[f"nll_{obj}"], row[f"sem_{obj}"] = float(h.nll.mean()), float(h.nll_sem.mean())
            row[f"au_{obj}"] = "/".join(h.active_units)
        d = compare(g, dict(objective="iwae"), dict(objective="vae"))
        if d:
            row.update(iwae_minus_vae=d["diff"], low=d["low"], high=d["high"], over=d["over"], n=d["n"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["dataset", "n_layers", "k", "epochs"])


def curve_shown(c: pd.DataFrame) -> pd.DataFrame:
    """The learning curve as printed: NLL and active units of both objectives, the paired difference."""
    return pd.DataFrame({
        "data": c.dataset.str.upper(), "layers": c.n_layers, "k": c.k, "epochs": c.epochs,
        "VAE NLL": c.get("nll_vae"), "IWAE NLL": c.get("nll_iwae"),
        "AU VAE / IWAE": [f"{a} / {b}" for a, b in c.reindex(columns=["au_vae", "au_iwae"]).fillna("").itertuples(index=False)],
        "IWAE-VAE [95% CI]": _intervals(c, "iwae_minus_vae"),
        "over": [f"{n} {o}" if pd.notna(n) else "" for n, o in c.reindex(columns=["n", "over"]).itertuples(index=False)]})


def protocol(df: pd.DataFrame) -> str:
    """One paragraph: what this run did (budget, epochs, evaluation, options, devices, data)."""
    base = base_runs(df)
    opts = sorted({(r.init, r.data_order, r.optimizer) for r in base.itertuples()})
    return (f"This run: budget {', '.join(sorted(df.budget.unique()))}, {int(base.epochs.max())} epochs "
            f"({int(base.updates.max()):,} updates per MNIST model), seeds {sorted(base.seed.unique().tolist())}; "
            f"initial weights / data order / optimiser: {'; '.join(' / '.join(o) for o in opts)}; test NLL with "
            f"K={int(df.eval_k.max())} on {int(df.n_test.max()):,} test images; trained on "
            f"{', '.join(sorted(df.train_device.unique()))}; {data_status(df)}.")


# ----------------------------------------------------------------------------- what the run supports
def claims(long: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """Sentences, with the numbers, on the paper's claims at this run's budget (from the paired intervals)."""
    out = []
    base = base_runs(df)
    for (dataset, layers), g in long.groupby(["dataset", "n_layers"]):
        where = f"{dataset.upper()}{'' if g.data.iloc[0] == 'verified' else ' (stand-in data)'}, {layers} layer(s)"
        iw = g[(g.objective == "iwae") & (g.k > 1) & g.minus_vae.notna()]
        for r in iw.itertuples():
            v = verdict(r.minus_vae_low, r.minus_vae_high) if np.isfinite(r.minus_vae_low) else "unresolved"
            word = {"below": "supports", "above": "contradicts", "unresolved": "does not resolve"}[v]
            out.append(f"{where}, k={r.k}: IWAE - VAE = {r.minus_vae:+.2f} nats of test NLL, 95% CI "
                       f"[{r.minus_vae_low:+.2f}, {r.minus_vae_high:+.2f}] (over {r.minus_vae_over}): this run "
                       f"{word} the paper's claim that IWAE beats VAE for k > 1 (paper: "
                       f"{r.nll_paper - g[(g.objective == 'vae') & (g.k == r.k)].nll_paper.iloc[0]:+.2f}).")
        for obj in ("vae", "iwae"):
            ks = sorted(g[g.objective == obj].k)
            steps = []
            for k1, k2 in zip(ks, ks[1:]):
                d = compare(base, dict(dataset=dataset, n_layers=layers, objective=obj, k=k2),
                            dict(dataset=dataset, n_layers=layers, objective=obj, k=k1))
                if d:
                    steps.append((k1, k2, d))
            if steps:
                ok = all(verdict(d["low"], d["high"]) == "below" for _, _, d in steps)
                detail = "; ".join(f"k={k1}->{k2}: {d['diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
                                   for k1, k2, d in steps)
                out.append(f"{where}, {OBJ_LABEL.get(obj, obj)}: NLL falling with k is "
                           f"{'supported' if ok else 'not supported at every step'} ({detail}).")
        au = g.pivot_table(index="k", columns="objective", values="active_total", aggfunc="first")
        if {"vae", "iwae"} <= set(au.columns):
            more = [(k, au.loc[k, "iwae"], au.loc[k, "vae"]) for k in au.index if k > 1]
            if more:
                ok = all(a > b for _, a, b in more)
                out.append(f"{where}: more active units with IWAE than VAE for k > 1 is "
                           f"{'supported' if ok else 'not supported'} ("
                           + "; ".join(f"k={k}: {a:g} vs {b:g}" for k, a, b in more) + ").")
    return out


# ----------------------------------------------------------------------------- family (beyond the paper)
def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Rainforth et al. 2018's table: the IWAE-K training bound (L_K at evaluation) and log p(x) (K=5000)."""
    ref = paper_reference("rainforth2018")
    rows = []
    for obj, g in df.groupby("objective", sort=False):
        k = int(g.k.iloc[0])
        bound = [float(b[f"L{k}"]) for b in g.bounds]
        row = dict(objective=obj, label=label(obj), k=k, seeds=len(g),
                   bound=float(np.mean(bound)), bound_sd=float(np.std(bound, ddof=1)) if len(g) > 1 else np.nan,
                   log_px=float(-g.nll.mean()), log_px_sd=float(g.nll.std()) if len(g) > 1 else np.nan,
                   epochs=int(g.epochs.iloc[0]), budget=g.budget.iloc[0])
        d = compare(df, dict(objective=obj), dict(objective="iwae")) if obj != "iwae" else None
        if d:  # log p(x) relative to IWAE's = NLL(iwae) - NLL(obj)
            row.update(log_px_minus_iwae=-d["diff"], low=-d["high"], high=-d["low"], over=d["over"])
        rows.append(row)
    return pd.DataFrame(rows).merge(ref, on="objective", how="left")


def estimators(df: pd.DataFrame) -> pd.DataFrame:
    """Each estimator against IWAE on the same protocol: NLL, the paired difference, active units, wall-clock."""
    rows = []
    for (dataset, layers, k, obj), g in df.groupby(["dataset", "n_layers", "k", "objective"], sort=False):
        row = dict(dataset=dataset, n_layers=layers, k=k, objective=obj, label=label(obj), seeds=len(g),
                   nll=float(g.nll.mean()), nll_sd=float(g.nll.std()) if len(g) > 1 else np.nan,
                   active_units="/".join(g.active_units), ms_per_update=float(g.ms_per_update.mean()),
                   epochs=int(g.epochs.iloc[0]), budget=g.budget.iloc[0],
                   data="verified" if g.data_verified.all() else "UNVERIFIED (stand-in)")
        if obj != "iwae":
            d = compare(df, dict(dataset=dataset, n_layers=layers, k=k, objective=obj),
                        dict(dataset=dataset, n_layers=layers, k=k, objective="iwae"))
            if d:
                row.update(minus_iwae=d["diff"], low=d["low"], high=d["high"], over=d["over"])
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- writers
def _fmt(t: pd.DataFrame) -> pd.DataFrame:
    out = t.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return out


def latex_table(t: pd.DataFrame, caption: str, label_: str, size: str = "small") -> str:
    """A booktabs table at a legible size (no shrinking to the text width). LaTeX numbers the table itself, so a
    caption's leading "Table N: " (the Markdown's) is left out.
    """
    caption = re.sub(r"^Table \d+: ", "", caption)
    body = _fmt(t).to_latex(index=False, escape=True, column_format="l" * len(t.columns)).replace("±", "$\\pm$")
    return (f"\\begin{{table}}[htbp]\n\\centering\\{size}\n\\caption{{{_tex_escape(caption)}}}\\label{{{label_}}}\n"
            f"{body}\\end{{table}}\n")


def _tex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"), ("±", "$\\pm$"),
                 ("->", "$\\to$"), (">=", "$\\geq$"), (">", "$>$"), ("<", "$<$")):
        text = text.replace(a, b)
    return text


def write_table(long: pd.DataFrame, shown: pd.DataFrame, stem: Path, caption: str, size: str = "small") -> None:
    """stem.csv (long, full precision), stem.md and stem.tex (``shown``, as printed)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    long.drop(columns=[c for c in ("ll", "activity", "bounds", "history", "protocol", "active") if c in long.columns]
              ).to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(f"{caption}\n\n" + _fmt(shown).to_markdown(index=False) + "\n")
    stem.with_suffix(".tex").write_text(latex_table(shown, caption, f"tab:{stem.name}", size))


def write_tables(df: pd.DataFrame, out_dir: Path, curve_df: pd.DataFrame | None = None) -> None:
    note = budget_note(df)
    paper = "'paper': Burda et al., arXiv:1509.00519 v4 (reference data). "
    t1 = table1_long(df)
    write_table(t1, table1_paper(t1), out_dir / "table1",
                f"Table 1: test NLL (nats) and active units (per layer), ours beside the paper's. {paper}"
                f"IWAE-VAE: the difference of test NLL, paired over the same test images (and seeds), with its 95% "
                f"CI; negative means IWAE is better. Ours: {note}.", size="footnotesize")
    t2 = table2(df)
    if len(t2):
        write_table(t2, table2_paper(t2), out_dir / "table2",
                    f"Table 2: continued training (MNIST, 1 layer), ours beside the paper's. {paper}Ours: {note}.")
    else:  # the grid has no Table 2 (table2: false): a sentence, not an empty table
        t2.to_csv(out_dir / "table2.csv", index=False)
        for ext in ("md", "tex"):
            (out_dir / f"table2.{ext}").write_text("Table 2 (continued training) is not part of this run's grid.\n")
    write_table(wallclock(df), wallclock(df), out_dir / "wallclock",
                "Wall-clock per model (a stack's time shared out among its members): updates, ms per update, "
                f"training hours, evaluation seconds, device. Ours: {note}.")
    proj = projection(df)
    (out_dir / "wallclock.md").write_text((out_dir / "wallclock.md").read_text() + (
        "\nThe paper budget (Table 1 + Table 2) on the same device, projected from these measured updates "
        "(each group's time per update x the paper's updates):\n\n" + _fmt(proj).to_markdown(index=False) + "\n"))
    proj.to_csv(out_dir / "projection.csv", index=False)
    (out_dir / "projection.tex").write_text(latex_table(
        proj, "The paper budget (Table 1 + Table 2) projected on each measured device from the measured time per "
              "update of each training group (a stack of its members) and the paper's number of updates.",
        "tab:projection"))
    (out_dir / "protocol.tex").write_text(_tex_escape(protocol(df)) + "\n")
    if curve_df is not None:
        c = curve(curve_df)
        write_table(c, curve_shown(c), out_dir / "curve",
                    f"Learning curve: test NLL after each stage and IWAE - VAE (paired 95% CI). Ours: {budget_note(curve_df)}.")
    sentences = claims(t1, df)
    (out_dir / "claims.md").write_text("What this run supports, at its budget:\n\n" + "".join(f"- {s}\n" for s in sentences))
    (out_dir / "claims.tex").write_text("\\begin{itemize}\n" + "".join(f"\\item {_tex_escape(s)}\n" for s in sentences)
                                        + "\\end{itemize}\n" if sentences else "No paired comparison in this run.\n")
    df.drop(columns=["ll", "activity", "bounds", "history", "active"]).to_csv(out_dir / "all_runs.csv", index=False)


def write_table3(paths, stem: Path) -> None:
    """Table 3 (``stem``.md/.csv/.tex) from the metrics of its runs."""
    df3 = collect(paths)
    t3 = table3(df3)
    shown = pd.DataFrame({"objective": t3.label, "seeds": t3.seeds,
                          "IWAE-K bound": [_pm(b, s) for b, s in zip(t3.bound, t3.bound_sd)],
                          "paper": t3.bound_paper.map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
                          "log p(x)": [_pm(v, s) for v, s in zip(t3.log_px, t3.log_px_sd)],
                          "paper ": t3.log_px_paper.map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
                          "vs IWAE [95% CI]": _intervals(t3, "log_px_minus_iwae")})
    write_table(t3, shown, stem,
                "Table 3 (Rainforth et al. 2018 on Burda's protocol): the training bound with all K samples and "
                "log p(x) (K=5000), mean ± sd over seeds; 'paper': Rainforth et al. 2018 as quoted in "
                f"src/iwae/reference/paper_rainforth2018.csv (reference data). Ours: {budget_note(df3)}.")


def write_estimators(paths, stem: Path) -> None:
    """The estimator comparison (``stem``.md/.csv/.tex) from the metrics of its runs."""
    dfe = collect(paths)
    te = estimators(dfe)
    shown = pd.DataFrame({
        "data": te.dataset.str.upper() + np.where(te.data == "verified", "", "*"), "k": te.k, "estimator": te.label,
        "seeds": te.seeds, "NLL": [_pm(v, s) for v, s in zip(te.nll, te.nll_sd)],
        "vs IWAE [95% CI]": _intervals(te, "minus_iwae"),
        "AU": te.active_units, "ms/update": te.ms_per_update.map(lambda v: f"{v:.2f}")})
    write_table(te, shown, stem,
                "Gradient estimators of the IWAE bound on the same protocol: test NLL, the difference to IWAE "
                f"(paired 95% CI), active units, ms per update. Ours: {budget_note(dfe)}.")


def write_snr(snr_csv: Path, stem: Path, figure: Path) -> None:
    """The fitted SNR slopes (``stem``.md/.csv/.tex) and the SNR figure from `iwae snr`'s summaries."""
    from iwae import figures
    from iwae.snr import slopes

    rows = pd.read_csv(snr_csv)
    fitted = pd.DataFrame(slopes(rows.to_dict("records")))
    write_table(fitted, fitted, stem,
                "Fitted slopes of log SNR against log K (gradient signal-to-noise ratio, Rainforth et al. 2018): "
                "expected about -1/2 for the recognition network and +1/2 for the generative network with IWAE.")
    figures.snr_figure(rows, fitted, figure)


def write_family(table3_paths, estimator_paths, snr_csv: Path | None, out: Path) -> None:
    """The family experiments' tables and figure under ``out``/tables and ``out``/figures (each part whose
    inputs are given)."""
    if table3_paths:
        write_table3(table3_paths, out / "tables" / "table3")
    if estimator_paths:
        write_estimators(estimator_paths, out / "tables" / "estimators")
    if snr_csv:
        write_snr(Path(snr_csv), out / "tables" / "snr", out / "figures" / "snr")


# ----------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    for what, helptext in (("tables", "Table 1, Table 2, wall-clock, claims (csv, md, tex)"),
                           ("figures", "the figures (pdf and png)")):
        s = sub.add_parser(what, help=helptext)
        s.add_argument("inputs", nargs="+", help="metrics JSON files")
        s.add_argument("--curve", nargs="*", default=None, help="metrics of stage snapshots: a learning curve")
        s.add_argument("--out", required=True, help="output folder")
        if what == "figures":
            s.add_argument("--nll", choices=["auto", "absolute", "difference"], default="auto",
                           help="NLL-vs-K figure: our NLL beside the paper's, or ours minus the paper's (auto: the "
                                "difference where ours are more than 3 nats away)")
    s = sub.add_parser("samples", help="samples of each generative model, one labelled matrix per data set and "
                                       "architecture")
    s.add_argument("inputs", nargs="+", help="model.pt files")
    s.add_argument("--out", required=True, help="output file name without extension (writes .pdf and .png)")
    s = sub.add_parser("family", help="beyond the paper: Table 3, the estimators, the SNR slopes and figure "
                                      "(each part whose inputs are given)")
    s.add_argument("--table3", nargs="+", default=[], help="metrics of the Table 3 runs")
    s.add_argument("--estimators", nargs="+", default=[], help="metrics of the estimator runs")
    s.add_argument("--snr", default=None, help="snr.csv of `iwae snr`")
    s.add_argument("--out", required=True, help="results folder (writes tables/ and figures/ in it)")


def main(args) -> None:
    from iwae import figures

    if args.what == "samples":
        figures.samples(args.inputs, Path(args.out))
    elif args.what == "family":
        if not (args.table3 or args.estimators or args.snr):
            raise SystemExit("iwae report family: nothing to write; give --table3, --estimators and/or --snr")
        write_family(args.table3, args.estimators, args.snr, Path(args.out))
    else:
        df = collect(args.inputs)
        curve_df = collect(args.curve) if args.curve else None
        if args.what == "tables":
            write_tables(df, Path(args.out), curve_df)
        else:
            figures.write_figures(df, Path(args.out), curve_df, nll_mode=args.nll)
