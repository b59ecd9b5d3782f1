"""Tables, and the sentences on what a run supports, from run records (``iwae.records``).

CSV files are long and complete (one row per model or comparison, full precision); Markdown and LaTeX print
the tables as a reader wants them: Table 1 and Table 2 in the paper's layout, ours beside the paper's.
Every caption says the budget, epochs, test images and training seeds, and the one sign convention
(``records.sign``): a difference is of test NLL, A - B, negative when A is better.

Verdicts: a sentence says "supports" or "contradicts" only from an interval over two or more training
seeds (``iwae.stats.verdict``). With one seed it gives the interval over the test images, labelled as such,
with the measured run-to-run noise floor beside it where one is given, and no verdict.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from iwae import records
from iwae.projection import paper_jobs, project
from iwae.records import OBJ_LABEL, at_ceiling, base_runs, budget_note, compare, label, paper_reference, sign
from iwae.stats import mean_ci, paired_difference, verdict

PAPER = "'paper': Burda et al. 2016, arXiv:1509.00519 v4 (reference data)"
CLAIM_WORD = {"below": "supports", "above": "contradicts", "unresolved": "does not resolve"}


# ----------------------------------------------------------------------------- formatting
def interval(d: float, low: float, high: float) -> str:
    """A paired difference as printed: "d [low, high]"; "d" alone where it has no interval; "" where none."""
    if pd.isna(d):
        return ""
    return f"{d:+.2f}" if pd.isna(low) else f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"


def intervals(t: pd.DataFrame, diff: str, low: str = "low", high: str = "high") -> list[str]:
    """A column of paired differences as printed (``interval`` of each row)."""
    return [interval(*row) for row in t.reindex(columns=[diff, low, high]).itertuples(index=False)]


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


def interval_note(df: pd.DataFrame) -> str:
    """A caption's sentence on what the intervals of a run's comparisons are over."""
    seeds = df.seed.nunique()
    if seeds > 1:
        return (f"95% intervals: Student's t over the {seeds} training seeds' paired mean differences (each on "
                f"the same test images)")
    return ("95% intervals over the test images of ONE training seed: they measure the test set's sampling noise, "
            "not training's, and give no verdict")


def _number(v: float, fmt: str = "{:.2f}") -> str:
    return "" if pd.isna(v) else fmt.format(v)


# ----------------------------------------------------------------------------- Table 1
def table1_long(df: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the paper's, one row per (dataset, layers, K, objective), everything a machine needs."""
    base = base_runs(df)
    rows = []
    for key, g in base.groupby(["dataset", "n_layers", "k", "objective"]):
        rows.append(dict(zip(["dataset", "n_layers", "k", "objective"], key), nll=float(g.nll.mean()),
                         nll_sd=float(g.nll.std()) if len(g) > 1 else np.nan,
                         nll_sem_images=float(g.nll_sem.mean()), seeds=len(g),
                         active_units=records.mean_units(g.active), active_total=float(g.active_total.mean()),
                         at_ceiling=all(at_ceiling(key[1], a) for a in g.active),
                         nll_active_only=float(g.nll_active_only.mean()), train_nll=float(g.train_nll.mean()),
                         budget=g.budget.iloc[0], epochs=int(g.epochs.iloc[0]), eval_k=int(g.eval_k.iloc[0]),
                         n_test=int(g.n_test.iloc[0]), images=g.images.iloc[0], optimizer=g.optimizer.iloc[0],
                         init=g.init.iloc[0], data_order=g.data_order.iloc[0], device=g.train_device.iloc[0],
                         data="verified" if g.data_verified.all() else "UNVERIFIED (stand-in)"))
    ours = pd.DataFrame(rows)
    ref = paper_reference("table1").rename(columns={"nll": "nll_paper", "active_units": "active_units_paper"})
    t = ours.merge(ref, on=["dataset", "n_layers", "k", "objective"], how="left")
    t["nll_minus_paper"] = t.nll - t.nll_paper
    diffs = [compare(base, dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective=r.objective),
                     dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective="vae")) if r.objective != "vae"
             else None for r in t.itertuples()]
    for col in ("diff", "low", "high", "over", "n", "seed_sd"):
        t[f"minus_vae_{col}" if col != "diff" else "minus_vae"] = [d[col] if d else np.nan for d in diffs]
    order = {o: i for i, o in enumerate(["vae", "iwae"])}
    return t.sort_values(["dataset", "n_layers", "k", "objective"],
                         key=lambda c: c.map(order).fillna(9) if c.name == "objective" else c).reset_index(drop=True)


def table1_paper(long: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the paper prints it: one row per (dataset, layers, K); NLL (active units) of VAE and IWAE, ours
    beside the paper's, and the paired IWAE - VAE difference."""
    rows = []
    for (dataset, layers, k), g in long.groupby(["dataset", "n_layers", "k"], sort=False):
        row = {"data": dataset.upper() + ("" if g.data.iloc[0] == "verified" else "*"), "layers": layers, "K": k}
        for obj in ("vae", "iwae"):
            r = g[g.objective == obj]
            name = OBJ_LABEL[obj]
            if len(r):
                r = r.iloc[0]
                row[f"{name}: ours"] = nll_cell(r.nll, r.nll_sd, r.active_units)
                row[f"{name}: paper"] = nll_cell(r.nll_paper, np.nan, r.active_units_paper) if pd.notna(
                    r.nll_paper) else ""
            else:
                row[f"{name}: ours"] = row[f"{name}: paper"] = ""
        iw = g[g.objective == "iwae"]
        row["IWAE - VAE [95% CI]"] = ("" if not len(iw) else "identical (K=1)" if k == 1 and iw.minus_vae.iloc[0] == 0
                                      else interval(iw.minus_vae.iloc[0], iw.minus_vae_low.iloc[0],
                                                    iw.minus_vae_high.iloc[0]))
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Table 2
def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Continued-training runs: the first model's numbers, the continued model's, and after - first paired over
    the same test images (and seeds); ours beside the paper's."""
    cont = df[df.continued_from.notna()]
    rows = []
    for (obj, k), g in cont.groupby(["objective", "k"], sort=False):
        firsts = [p.iloc[0] for p in (_parent(df, r.continued_from) for r in g.itertuples()) if len(p)]
        if len(firsts) != len(g):
            continue
        first = pd.DataFrame(firsts)
        after, before = [r.ll for r in g.itertuples()], [p.ll for p in firsts]
        d = paired_difference([-x for x in after], [-x for x in before]) if all(
            len(a) and len(a) == len(b) for a, b in zip(after, before)) else None
        rows.append(dict(
            first_objective=first.objective.iloc[0], first_k=int(first.k.iloc[0]), second_objective=obj, second_k=k,
            seeds=len(g), epochs_first=int(first.epochs.iloc[0]), epochs_second=int(g.epochs.iloc[0]),
            nll_first=float(first.nll.mean()), nll_first_sd=float(first.nll.std()) if len(g) > 1 else np.nan,
            active_first="/".join(first.active_units), nll_second=float(g.nll.mean()),
            nll_second_sd=float(g.nll.std()) if len(g) > 1 else np.nan, active_second="/".join(g.active_units),
            after_minus_first=d["diff"] if d else np.nan, low=d["low"] if d else np.nan,
            high=d["high"] if d else np.nan, over=d["over"] if d else "", n=d["n"] if d else np.nan,
            budget=g.budget.iloc[0], images=g.images.iloc[0], device=g.train_device.iloc[0]))
    cols = ["first_objective", "first_k", "second_objective", "second_k", "seeds", "epochs_first", "epochs_second",
            "nll_first", "nll_first_sd", "active_first", "nll_second", "nll_second_sd", "active_second",
            "after_minus_first", "low", "high", "over", "n", "budget", "images", "device"]
    ours = pd.DataFrame(rows, columns=cols)
    ref = paper_reference("table2").rename(columns=lambda c: c + "_paper" if c.startswith(("nll", "active")) else c)
    t = ours.merge(ref, on=["first_objective", "first_k", "second_objective", "second_k"], how="left")
    t["after_minus_first_paper"] = t.nll_second_paper - t.nll_first_paper
    return t


def _parent(df: pd.DataFrame, continued_from: str) -> pd.DataFrame:
    """The row of the model a Table 2 run continued: its run folder (absolute, or relative to the workflow's
    folder, whatever folder the report runs in)."""
    folder = Path(continued_from).parent
    if folder.is_absolute():
        return df[df.run_dir == str(folder.resolve())]
    return df[df.run_dir.map(lambda d: Path(d).parts[-len(folder.parts):] == folder.parts)]


def table2_paper(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{
        "first": f"{label(r.first_objective)} K={r.first_k}",
        "NLL (AU)": nll_cell(r.nll_first, r.nll_first_sd, r.active_first),
        "paper": nll_cell(r.nll_first_paper, np.nan, r.active_first_paper),
        "then": f"{label(r.second_objective)} K={r.second_k}, {r.epochs_second} more epochs",
        "NLL (AU) ": nll_cell(r.nll_second, r.nll_second_sd, r.active_second),
        "paper ": nll_cell(r.nll_second_paper, np.nan, r.active_second_paper),
        "after - first [95% CI]": interval(r.after_minus_first, r.low, r.high),
        "paper  ": f"{r.after_minus_first_paper:+.2f}",
    } for r in t.itertuples()])


# ----------------------------------------------------------------------------- cost
def jobs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per training job (a stack of members trained together): its measured wall-clock."""
    # a Table 1 job trains one (dataset, layers, K); a Table 2 job one direction (its second objective)
    t = df.assign(cont=df.continued_from.notna(), direction=np.where(df.continued_from.notna(), df.objective, ""))
    rows = []
    for (device, dataset, layers, k, cont, _), g in t.groupby(
            ["train_device", "dataset", "n_layers", "k", "cont", "direction"], sort=True):
        seconds = float(g.train_seconds.max())
        what = (f"Table 2: then {label(g.objective.iloc[0])}" if cont else
                ", ".join(f"{label(o)}" for o in dict.fromkeys(g.objective)))
        rows.append(dict(job=f"{dataset} L{layers} K={k}" + (" (continued)" if cont else ""), models=what,
                         members=int(g.stack_size.iloc[0]), seeds=g.seed.nunique(), together=int(g.together.max()),
                         device=device, path=g.train_path.iloc[0], updates=int(g.updates.iloc[0]),
                         stack_ms_per_update=float(g.stack_ms_per_update.iloc[0]), train_minutes=seconds / 60,
                         eval_seconds_per_model=float(g.eval_seconds.mean()), dataset=dataset, n_layers=layers, k=k,
                         continued=cont))
    return pd.DataFrame(rows)


def jobs_shown(j: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "job": j.job, "models": j.models, "members": j.members, "updates": j.updates.map(lambda v: f"{v:,}"),
        "stacks": j.together, "ms/update": j.stack_ms_per_update.map(lambda v: f"{v:.2f}"),
        "train (min)": j.train_minutes.map(lambda v: f"{v:.1f}"),
        "eval (s/model)": j.eval_seconds_per_model.map(lambda v: f"{v:.0f}")})


def projection(j: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The paper budget's training on each measured device from this run's stacks (``iwae.projection``):
    the rows of the measured jobs, and one sentence per device."""
    rows, sentences = [], []
    for device, g in j.groupby("device"):
        base, cont = g[~g.continued], g[g.continued]
        # stacks trained together share each update's wall-clock: each gets its share, the job's total is the time
        step = {(r.dataset, r.n_layers, r.k, False): r.stack_ms_per_update / r.together for r in base.itertuples()}
        step.update({("mnist", 1, r.k, True): r.stack_ms_per_update for r in cont.itertuples()})
        seeds = int(base.seeds.max()) if len(base) else 1
        members = int(base.members.max()) if len(base) else 2
        p = project(paper_jobs(seeds=seeds, objectives=max(1, members // seeds)),
                    lambda job: step.get((job.dataset, job.layers, job.k, job.after is not None)))
        for r in p["rows"]:
            if r["hours"] is not None:
                rows.append(dict(device=device, job=r["job"], members=r["members"], paper_updates=r["updates"],
                                 stack_ms_per_update=r["stack_ms_per_update"], paper_hours=r["hours"]))
        missing = f" Not measured by this run: {', '.join(p['missing'])}." if p["missing"] else ""
        how = ("each data set's groups together in one process, as this run trained them" if base.together.max() > 1
               else "one job at a time")
        sentences.append(
            f"On {device}, the paper budget's training (3,280 epochs per Table 1 job, 2,187 per Table 2 job) with "
            f"this run's stacks, {how}: {p['train_hours']:,.1f} hours for the {p['measured']} of {p['jobs']} jobs "
            f"this run measured (evaluation not included).{missing}")
    return pd.DataFrame(rows), sentences


# ----------------------------------------------------------------------------- learning curve, noise floor
def curve_shown(c: pd.DataFrame) -> pd.DataFrame:
    """The learning curve as printed: NLL and active units of both objectives, the paired difference."""
    return pd.DataFrame({
        "data": c.dataset.str.upper(), "layers": c.n_layers, "K": c.k, "epochs": c.epochs,
        "VAE NLL": [nll_cell(v, np.nan) for v in c.get("nll_vae", pd.Series(np.nan, index=c.index))],
        "IWAE NLL": [nll_cell(v, np.nan) for v in c.get("nll_iwae", pd.Series(np.nan, index=c.index))],
        "AU VAE / IWAE": [f"{a} / {b}" for a, b in c.reindex(columns=["au_vae", "au_iwae"]).fillna("").itertuples(
            index=False)],
        "IWAE - VAE [95% CI]": ["identical (K=1)" if k == 1 and d == 0 else text for k, d, text in
                                zip(c.k, c.get("iwae_minus_vae", pd.Series(np.nan, index=c.index)),
                                    intervals(c, "iwae_minus_vae"))]})


def noise_floor(long: pd.DataFrame) -> pd.DataFrame:
    """The run-to-run noise floor from a run with two or more seeds: per cell, the sd over seeds of each model's
    test NLL and of the paired IWAE - VAE difference."""
    rows = []
    for (dataset, layers, k), g in long[long.seeds > 1].groupby(["dataset", "n_layers", "k"]):
        iw, va = g[g.objective == "iwae"], g[g.objective == "vae"]
        if not (len(iw) and len(va)):
            continue
        iw, va = iw.iloc[0], va.iloc[0]
        rows.append(dict(dataset=dataset, n_layers=layers, k=k, budget=iw.budget, epochs=iw.epochs, seeds=iw.seeds,
                         images=iw.images, nll_sd_vae=va.nll_sd, nll_sd_iwae=iw.nll_sd,
                         iwae_minus_vae=iw.minus_vae, iwae_minus_vae_sd=iw.minus_vae_seed_sd,
                         low=iw.minus_vae_low, high=iw.minus_vae_high))
    return pd.DataFrame(rows)


def floor_note(floor: pd.DataFrame | None, dataset: str, layers: int, k: int) -> str:
    """", the noise floor of this cell: ..." where the floor file has it."""
    if floor is None:
        return ""
    f = floor[(floor.dataset == dataset) & (floor.n_layers == layers) & (floor.k == k)]
    if not len(f):
        return ""
    f = f.iloc[0]
    return (f"; the run-to-run sd of IWAE - VAE in this cell is {f.iwae_minus_vae_sd:.2f} nats (budget {f.budget}, "
            f"{f.seeds} seeds, docs/noise-floor)")


def floor_summary(floor: pd.DataFrame | None) -> str:
    if floor is None or not len(floor):
        return ""
    cells = "; ".join(f"{r.dataset.upper()} {r.n_layers} layer{'s' if r.n_layers > 1 else ''} K={r.k}: "
                      f"{r.iwae_minus_vae_sd:.2f} nats "
                      f"(NLL sd VAE {r.nll_sd_vae:.2f}, IWAE {r.nll_sd_iwae:.2f})" for r in floor.itertuples())
    budgets = ", ".join(sorted(floor.budget.unique()))
    return (f"The measured run-to-run noise floor (budget {budgets}, {int(floor.seeds.max())} training seeds, "
            f"docs/noise-floor): the sd over seeds of IWAE - VAE is {cells}.")


# ----------------------------------------------------------------------------- what the run supports
def _difference_sentence(d: dict, images: str) -> str:
    return f"{d['diff']:+.2f} nats [95% CI {d['low']:+.2f}, {d['high']:+.2f}] over {over_note(d, images)}"


def claims(long: pd.DataFrame, df: pd.DataFrame, floor: pd.DataFrame | None = None) -> list[str]:
    """Sentences, with the numbers, on the paper's claims at this run's budget. A verdict only from an interval over
    two or more training seeds; with one seed the image-level interval, labelled, and the noise floor."""
    out = []
    base = base_runs(df)
    for (dataset, layers), g in long.groupby(["dataset", "n_layers"]):
        where = records.where(dataset, layers, g.data.iloc[0] == "verified")
        images = g.images.iloc[0]
        for r in g[(g.objective == "iwae") & (g.k > 1) & g.minus_vae.notna()].itertuples():
            d = dict(diff=r.minus_vae, low=r.minus_vae_low, high=r.minus_vae_high, over=r.minus_vae_over,
                     n=r.minus_vae_n)
            paper = r.nll_paper - g[(g.objective == "vae") & (g.k == r.k)].nll_paper.iloc[0]
            v = verdict(d)
            head = f"{where}, K={r.k}: IWAE - VAE = {_difference_sentence(d, images)}"
            if v == "one seed":
                out.append(f"{head}: no verdict from one training seed{floor_note(floor, dataset, layers, r.k)} "
                           f"(the paper: {paper:+.2f}).")
            else:
                out.append(f"{head}: this run {CLAIM_WORD[v]} the paper's claim that IWAE beats VAE for K > 1 "
                           f"(the paper: {paper:+.2f}).")
        for obj in ("vae", "iwae"):
            ks = sorted(g[g.objective == obj].k)
            steps = [(k1, k2, compare(base, dict(dataset=dataset, n_layers=layers, objective=obj, k=k2),
                                      dict(dataset=dataset, n_layers=layers, objective=obj, k=k1)))
                     for k1, k2 in zip(ks, ks[1:])]
            steps = [(k1, k2, d) for k1, k2, d in steps if d]
            if not steps:
                continue
            verdicts = [verdict(d) for _, _, d in steps]
            paper = g[g.objective == obj].set_index("k").nll_paper
            detail = "; ".join(f"NLL(K={k2}) - NLL(K={k1}) = {_difference_sentence(d, images)} (the paper: "
                               f"{paper[k2] - paper[k1]:+.2f})" for k1, k2, d in steps)
            if "one seed" in verdicts:
                word = "no verdict from one training seed"
            elif all(v == "below" for v in verdicts):
                word = "supported at every step"
            elif any(v == "above" for v in verdicts):
                word = "contradicted at a step"
            else:
                word = "not resolved at every step"
            out.append(f"{where}, {OBJ_LABEL.get(obj, obj)}: NLL falling as K grows: {word} ({detail}).")
        out += _active_unit_claims(g, base, where, dataset, layers)
    out += _table2_claims(df)
    return out


def _active_unit_claims(g: pd.DataFrame, base: pd.DataFrame, where: str, dataset: str, layers: int) -> list[str]:
    """Per K > 1 and per stochastic layer: IWAE's active units against VAE's. A layer where either model has every
    unit active (the counter's ceiling) is reported as such, not ordered; the others get a verdict only from an
    interval over two or more seeds."""
    out = []
    cell = base[(base.dataset == dataset) & (base.n_layers == layers)]
    for k in sorted(g.k.unique()):
        per = {o: cell[(cell.k == k) & (cell.objective == o)].set_index("seed").active for o in ("iwae", "vae")}
        seeds = sorted(set(per["iwae"].index) & set(per["vae"].index))
        if k == 1 or not seeds:
            continue
        parts = []
        for layer, units in enumerate(records.CEILING[layers]):
            a = np.array([per["iwae"][s][layer] for s in seeds], dtype=float)
            b = np.array([per["vae"][s][layer] for s in seeds], dtype=float)
            name = f"layer {layer + 1}: " if layers > 1 else ""
            counts = f"{name}IWAE {a.mean():g}, VAE {b.mean():g} of {units}"
            if (a == units).all() or (b == units).all():
                who = "both" if (a == units).all() and (b == units).all() else "IWAE" if (a == units).all() else "VAE"
                parts.append(f"{counts} ({who} at the counter's ceiling, every unit active: the count does not order "
                             f"them)")
            elif len(seeds) < 2:
                parts.append(f"{counts} (no verdict from one training seed)")
            else:
                diff, low, high = mean_ci(a - b)
                # stats.verdict of VAE - IWAE (more units for IWAE puts it below zero: the wording of "supports")
                v = verdict(dict(over="seeds", low=-high, high=-low))
                parts.append(f"{counts} (mean over {len(seeds)} seeds); IWAE - VAE = {diff:+.1f} units [95% CI "
                             f"{low:+.1f}, {high:+.1f}]: this run {CLAIM_WORD[v]} the paper's claim that IWAE has more "
                             f"active units")
        out.append(f"{where}, K={k}: active units, " + "; ".join(parts) + ".")
    return out


def _table2_claims(df: pd.DataFrame) -> list[str]:
    out = []
    for r in table2(df).itertuples():
        if pd.isna(r.after_minus_first):
            continue
        d = dict(diff=r.after_minus_first, low=r.low, high=r.high, over=r.over, n=r.n)
        head = (f"Table 2, {label(r.first_objective)} K={r.first_k} then {label(r.second_objective)} "
                f"K={r.second_k} for {r.epochs_second} more epochs: NLL {r.nll_first:.2f} -> "
                f"{r.nll_second:.2f}, after - first = {_difference_sentence(d, r.images)}")
        v = verdict(d)
        paper_dir = "worsens" if r.after_minus_first_paper > 0 else "improves"
        claim = (f"the paper's finding that continuing with {label(r.second_objective)} {paper_dir} the NLL "
                 f"(the paper: {r.after_minus_first_paper:+.2f} after {3**7:,} more epochs)")
        if v == "one seed":
            out.append(f"{head}: no verdict from one training seed on {claim}. The first model is "
                       f"{r.nll_first - r.nll_first_paper:+.2f} nats from the paper's after {r.epochs_first} of its "
                       f"3,280 epochs, and this run has no continuation with the same objective, so after - first "
                       f"mixes the change of objective with more training.")
        else:
            want = "above" if r.after_minus_first_paper > 0 else "below"
            word = "supports" if v == want else ("does not resolve" if v == "unresolved" else "contradicts")
            out.append(f"{head}: this run {word} {claim}.")
    return out


# ----------------------------------------------------------------------------- family (beyond the paper)
def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Rainforth et al. 2018's table in NLL terms: -L_K (the IWAE-K training bound at evaluation, as an NLL bound)
    and the test NLL (K=5000), each objective's difference to IWAE paired."""
    ref = paper_reference("rainforth2018")
    rows = []
    for obj, g in df.groupby("objective", sort=False):
        k = int(g.k.iloc[0])
        bound = [-float(b[f"L{k}"]) for b in g.bounds]
        row = dict(objective=obj, label=label(obj), k=k, seeds=len(g), neg_bound=float(np.mean(bound)),
                   neg_bound_sd=float(np.std(bound, ddof=1)) if len(g) > 1 else np.nan, nll=float(g.nll.mean()),
                   nll_sd=float(g.nll.std()) if len(g) > 1 else np.nan, epochs=int(g.epochs.iloc[0]),
                   budget=g.budget.iloc[0], images=g.images.iloc[0])
        d = compare(df, dict(objective=obj), dict(objective="iwae")) if obj != "iwae" else None
        if d:
            row.update(minus_iwae=d["diff"], low=d["low"], high=d["high"], over=d["over"], n=d["n"])
        rows.append(row)
    t = pd.DataFrame(rows).merge(ref, on="objective", how="left")
    t["neg_bound_paper"], t["nll_paper"] = -t.bound_paper, -t.log_px_paper  # the paper's, as NLL
    return t


def estimators(df: pd.DataFrame) -> pd.DataFrame:
    """Each estimator against IWAE on the same protocol: NLL, the paired difference, active units."""
    rows = []
    for (dataset, layers, k, obj), g in df.groupby(["dataset", "n_layers", "k", "objective"], sort=False):
        row = dict(dataset=dataset, n_layers=layers, k=k, objective=obj, label=label(obj), seeds=len(g),
                   nll=float(g.nll.mean()), nll_sd=float(g.nll.std()) if len(g) > 1 else np.nan,
                   active_units="/".join(g.active_units), stack_ms_per_update=float(g.stack_ms_per_update.mean()),
                   members=int(g.stack_size.iloc[0]), epochs=int(g.epochs.iloc[0]), budget=g.budget.iloc[0],
                   data="verified" if g.data_verified.all() else "UNVERIFIED (stand-in)")
        if obj != "iwae":
            d = compare(df, dict(dataset=dataset, n_layers=layers, k=k, objective=obj),
                        dict(dataset=dataset, n_layers=layers, k=k, objective="iwae"))
            if d:
                row.update(minus_iwae=d["diff"], low=d["low"], high=d["high"], over=d["over"], n=d["n"])
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- writers
def _fmt(t: pd.DataFrame) -> pd.DataFrame:
    out = t.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return out


def tex_escape(text: str) -> str:
    text = re.sub(r"(^|[\s(])'", r"\1`", text)  # an opening quote
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"), ("±", "$\\pm$"),
                 ("->", "$\\to$"), (">=", "$\\geq$"), (">", "$>$"), ("<", "$<$")):
        text = text.replace(a, b)
    return text


def latex_table(t: pd.DataFrame, caption: str, size: str = "small", position: str | None = "htbp") -> str:
    """A booktabs table at a legible size (a float at ``position``, or in the text's flow for None), unnumbered: its
    caption names it (the paper's Table 1, 2, Rainforth's Table 3, ...), so LaTeX's own numbers cannot collide
    with the papers'."""
    body = _fmt(t).to_latex(index=False, escape=True, column_format="l" * len(t.columns)).replace("±", "$\\pm$")
    if position is None:  # in the text's flow, right where it is written (under its section's heading)
        return (f"\\begin{{center}}\\{size}\n\\captionof*{{table}}{{{tex_escape(caption)}}}\n{body}"
                f"\\end{{center}}\n")
    return (f"\\begin{{table}}[{position}]\n\\centering\\{size}\n\\caption*{{{tex_escape(caption)}}}\n"
            f"{body}\\end{{table}}\n")


def write_table(long: pd.DataFrame, shown: pd.DataFrame, stem: Path, caption: str, size: str = "small",
                position: str | None = "htbp") -> None:
    """stem.csv (long, full precision), stem.md and stem.tex (``shown``, as printed)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    long.drop(columns=[c for c in ("ll", "activity", "bounds", "history", "protocol", "active", "stack")
                       if c in long.columns]).to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(f"{caption}\n\n" + _fmt(shown).to_markdown(index=False, disable_numparse=True)
                                       + "\n")
    stem.with_suffix(".tex").write_text(latex_table(shown, caption, size, position))


def protocol(df: pd.DataFrame) -> str:
    """One paragraph: what this run did (budget, epochs, evaluation, options, devices, data)."""
    base = base_runs(df)
    opts = sorted({(r.init, r.data_order, r.optimizer) for r in base.itertuples()})
    return (f"This run: budget {', '.join(sorted(df.budget.unique()))}, {int(base.epochs.max())} epochs "
            f"({int(base.updates.max()):,} updates per model of the largest data set), {records.seeds_note(base)}; "
            f"initial weights / data "
            f"order / optimiser: {'; '.join(' / '.join(o) for o in opts)}; test NLL with K={int(df.eval_k.max())} "
            f"on {' / '.join(sorted(df.images.unique()))}; trained on {', '.join(sorted(df.train_device.unique()))}; "
            f"{records.data_status(df)}.")


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
                f"Table 1 (Burda et al. 2016), reproduced: test NLL in nats (active units per stochastic layer) of "
                f"VAE and IWAE, ours beside the paper's; "
                f"{'ours are the mean over seeds ± their sd' if base.seed.nunique() > 1 else 'ours: one training seed'}"
                f"{'; * stand-in data (not the paper file: UNVERIFIED)' if not base.data_verified.all() else ''}. "
                f"{PAPER}. {sign('IWAE', 'VAE')}; paired over the same test images, matched by training seed; "
                f"{interval_note(base)}.{one_seed} Ours: {note}.", size="footnotesize")
    t2 = table2(df)
    if len(t2):
        write_table(t2, table2_paper(t2), out_dir / "table2",
                    f"Table 2 (Burda et al. 2016), reproduced: MNIST, 1 stochastic layer, a model trained with the "
                    f"first objective, then trained further with the other at lr 1e-4 continuing its optimiser and "
                    f"random state; test NLL (active units), ours beside the paper's. {PAPER}. "
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
                f"Cost: wall-clock of every training group, a stack of members trained together: ms/update is the "
                f"whole stack's (its members share each update; where several stacks ran in one process, taking "
                f"turns, 'stacks' says how many, and ms/update is all of theirs); training minutes; evaluation "
                f"seconds per model. Ours: {note}.",
                size="footnotesize", position=None)  # right under its section's heading
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
    if curve_df is not None:
        c = records.curve(curve_df)
        write_table(c, curve_shown(c), out_dir / "curve",
                    f"Learning curve: test NLL after each stage of the schedule, and {sign('IWAE', 'VAE')} (paired; "
                    f"{interval_note(curve_df)}). Ours: {budget_note(curve_df)}.")
    nf = noise_floor(t1)
    if len(nf):
        shown = pd.DataFrame({"data": nf.dataset.str.upper(), "layers": nf.n_layers, "K": nf.k, "seeds": nf.seeds,
                              "NLL sd: VAE": nf.nll_sd_vae, "NLL sd: IWAE": nf.nll_sd_iwae,
                              "IWAE - VAE": intervals(nf, "iwae_minus_vae"), "its sd": nf.iwae_minus_vae_sd})
        write_table(nf, shown, out_dir / "noise_floor",
                    f"The run-to-run noise floor: the sd over training seeds of each model's test NLL and of the "
                    f"paired difference {sign('IWAE', 'VAE')}, with its 95% interval over the seeds. Ours: {note}.")
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


def write_table3(paths, stem: Path) -> None:
    """Table 3 (``stem``.md/.csv/.tex) from the metrics of its runs."""
    df3 = records.collect(paths)
    t3 = table3(df3)
    sd = " ± sd over seeds" if t3.seeds.max() > 1 else ""
    shown = pd.DataFrame({"objective": t3.label, "seeds": t3.seeds,
                          f"-L_K{sd}": [nll_cell(b, s) for b, s in zip(t3.neg_bound, t3.neg_bound_sd)],
                          "paper": t3.neg_bound_paper.map(_number),
                          f"NLL{sd}": [nll_cell(v, s) for v, s in zip(t3.nll, t3.nll_sd)],
                          "paper ": t3.nll_paper.map(_number),
                          "X - IWAE [95% CI]": intervals(t3, "minus_iwae")})
    write_table(t3, shown, stem,
                f"Table 3 (Rainforth et al. 2018) on Burda's protocol, in NLL terms: -L_K, the training bound with "
                f"all K = {int(t3.k.iloc[0])} samples at evaluation (an upper bound on the NLL), and the test NLL "
                f"(K=5000). {sign('X', 'IWAE')}; paired over "
                f"the same test images; {interval_note(df3)}. 'paper': Rainforth et al. 2018 as quoted in "
                f"src/iwae/reference/paper_rainforth2018.csv, negated into NLL (reference data). Ours: "
                f"{budget_note(df3)}.")


def write_estimators(paths, stem: Path) -> None:
    """The estimator comparison (``stem``.md/.csv/.tex) from the metrics of its runs."""
    dfe = records.collect(paths)
    te = estimators(dfe)
    shown = pd.DataFrame({
        "data": te.dataset.str.upper() + np.where(te.data == "verified", "", "*"), "K": te.k, "estimator": te.label,
        "seeds": te.seeds, "NLL (AU)": [nll_cell(v, s, a) for v, s, a in zip(te.nll, te.nll_sd, te.active_units)],
        "X - IWAE [95% CI]": intervals(te, "minus_iwae")})
    stacks = "; ".join(f"K={r.k}: {r.stack_ms_per_update:.1f} ms" for r in te.drop_duplicates("k").itertuples())
    write_table(te, shown, stem,
                f"Gradient estimators of the IWAE bound on the same protocol: test NLL (active units) and the "
                f"difference to IWAE, {sign('X', 'IWAE')} (paired over the "
                f"same test images; {interval_note(dfe)}). The estimators of one K were trained as one stack "
                f"of {int(te.members.max())}, which shares every update ({stacks} per update of the whole stack); "
                f"what each estimator costs alone is measured by benchmarks/bench_estimators.py. Ours: "
                f"{budget_note(dfe)}.")


def write_snr_table(rows: pd.DataFrame, fitted: pd.DataFrame, stem: Path) -> None:
    """The fitted SNR slopes (``stem``.md/.csv/.tex)."""
    models = ", ".join(f"{c} = {m}" for c, m in dict(zip(rows.checkpoint, rows.model)).items())
    wide = fitted.pivot_table(index="estimator", columns=["network", "checkpoint"], values="slope", sort=False)
    columns = [(net, c) for net in ("recognition", "generative") for c in dict.fromkeys(fitted.checkpoint)
               if (net, c) in wide.columns]
    shown = pd.DataFrame({"estimator": [label(e) for e in wide.index]} | {
        f"{net}, {c}": ["" if pd.isna(v) else f"{v:+.2f}" for v in wide[(net, c)]] for net, c in columns})
    write_table(fitted, shown, stem,
                f"Fitted slopes of log SNR against log K (gradient signal-to-noise ratio, Rainforth et al. 2018), "
                f"least squares over K = {', '.join(map(str, sorted(rows.k.unique())))}, "
                f"{int(rows.draws.iloc[0])} draws on {int(rows.images.iloc[0])} training images; Rainforth et al.'s "
                f"asymptotic rates for IWAE are -1/2 for the recognition network and +1/2 for the generative network. "
                f"One row per estimator; one column per network and checkpoint. Models: {models}.")

