"""The tables, built from run records (``iwae.records``): Table 1 and Table 2 in the paper's layout (ours beside
the paper's), the cost and the paper budget projected, the learning curve, the noise floor, Table 3 and the
estimators. CSV rows are long and complete; the ``*_paper``/``*_shown`` functions give the printed layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from iwae import records
from iwae.projection import paper_jobs, project
from iwae.records import OBJ_LABEL, at_ceiling, base_runs, compare, label, paper_reference
from iwae.render import INIT_SHOWN, interval, intervals, nll_cell
from iwae.stats import paired_difference


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
                         data=records.data_label(g.data_verified)))
    ours = pd.DataFrame(rows)
    ref = paper_reference("table1").rename(columns={"nll": "nll_paper", "active_units": "active_units_paper"})
    t = ours.merge(ref, on=["dataset", "n_layers", "k", "objective"], how="left")
    t["nll_minus_paper"] = t.nll - t.nll_paper
    diffs = [compare(base, dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective=r.objective),
                     dict(dataset=r.dataset, n_layers=r.n_layers, k=r.k, objective="vae")) if r.objective != "vae"
             else None for r in t.itertuples()]
    for col in ("diff", "low", "high", "over", "n", "seed_sd"):
        t[f"minus_vae_{col}" if col != "diff" else "minus_vae"] = [d[col] if d else np.nan for d in diffs]
    return t.sort_values(["dataset", "n_layers", "k", "objective"],
                         key=lambda c: c.map(_paper_order) if c.name == "objective" else c).reset_index(drop=True)


def table1_paper(long: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the paper prints it: one row per (dataset, layers, K); NLL (active units) of VAE and IWAE, ours
    beside the paper's, and the paired IWAE - VAE difference."""
    rows = []
    for (dataset, layers, k), g in long.groupby(["dataset", "n_layers", "k"], sort=False):
        row = {"data": dataset.upper() + ("" if g.data.iloc[0] == records.VERIFIED else "*"), "layers": layers, "K": k}
        for obj in ("vae", "iwae"):
            r = g[g.objective == obj]
            name = OBJ_LABEL[obj]
            if len(r):
                r = r.iloc[0]
                row[f"{name}: ours"] = nll_cell(r.nll, r.nll_sd, r.active_units)
                row[f"{name}: paper"] = nll_cell(r.nll_paper, np.nan, r.active_units_paper) if pd.notna(
                    r.nll_paper) else ""
            elif k == 1 and len(g) and set(g.objective) <= {"vae", "iwae"}:  # one objective at K=1: trained once
                other = OBJ_LABEL["vae" if obj == "iwae" else "iwae"]
                row[f"{name}: ours"] = f"= {other} (one objective at K=1)"
                ref = paper_reference().set_index(["dataset", "n_layers", "k", "objective"])
                key = (dataset, layers, 1, obj)
                row[f"{name}: paper"] = nll_cell(ref.nll[key], np.nan, ref.active_units[key]) if key in ref.index else ""
            else:
                row[f"{name}: ours"] = row[f"{name}: paper"] = ""
        iw = g[g.objective == "iwae"]
        row["IWAE - VAE [95% CI]"] = ("identical (K=1)" if k == 1 and (not len(iw) or iw.minus_vae.iloc[0] == 0)
                                      else "" if not len(iw) else
                                      interval(iw.minus_vae.iloc[0], iw.minus_vae_low.iloc[0], iw.minus_vae_high.iloc[0]))
        rows.append(row)
    return pd.DataFrame(rows)


def _paper_order(objective: str) -> tuple:
    """VAE, then IWAE (the paper's order), then the others by name."""
    return ({"vae": 0, "iwae": 1}.get(objective, 2), objective)


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
    ours = pd.DataFrame(rows, columns=cols)  # in the paper's order, whatever the order of the records read
    ours = ours.sort_values("first_objective", key=lambda c: c.map(_paper_order), kind="stable")
    ref = paper_reference("table2").rename(columns=lambda c: c + "_paper" if c.startswith(("nll", "active")) else c)
    t = ours.merge(ref, on=["first_objective", "first_k", "second_objective", "second_k"], how="left")
    t["after_minus_first_paper"] = t.nll_second_paper - t.nll_first_paper
    return t


def _parent(df: pd.DataFrame, continued_from: str) -> pd.DataFrame:
    """The row of the model a Table 2 run continued: its run folder (absolute, or relative to the workflow's
    folder, whatever folder the report runs in; below ``results/``, so that records published elsewhere, as
    ``docs/quick-run/records``, still find it)."""
    folder = Path(continued_from).parent
    if folder.is_absolute():
        return df[df.run_dir == str(folder.resolve())]
    parts = folder.parts[1:] if folder.parts[:1] == ("results",) else folder.parts
    return df[df.run_dir.map(lambda d: Path(d).parts[-len(parts):] == parts)]


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


def _continuation(df: pd.DataFrame, r) -> str:
    """A Table 2 job in words: "IWAE K=50, then VAE K=1" (the model it continued first)."""
    first = _parent(df, r.continued_from)
    return (f"{label(first.objective.iloc[0])} K={int(first.k.iloc[0])}, then " if len(first) else "then ") + \
        f"{label(r.objective)} K={int(r.k)}"


def jobs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per training job (a stack of members trained together): its measured wall-clock."""
    # a Table 1 job trains one (dataset, layers, K); a Table 2 job one direction (its second objective)
    t = df.assign(cont=df.continued_from.notna(), direction=np.where(df.continued_from.notna(), df.objective, ""))
    rows = []
    for (device, dataset, layers, k, cont, _), g in t.groupby(
            ["train_device", "dataset", "n_layers", "k", "cont", "direction"], sort=True):
        seconds = float(g.train_seconds.max())
        what = (f"Table 2: {_continuation(df, g.iloc[0])}" if cont else
                ", ".join(label(o) for o in sorted(set(g.objective), key=_paper_order)))
        rows.append(dict(job=f"{dataset} L{layers} K={k}" + (" (continued)" if cont else ""), models=what,
                         members=int(g.stack_size.iloc[0]), seeds=g.seed.nunique(), together=int(g.together.max()),
                         device=device, path=g.train_path.iloc[0], updates=int(g.updates.iloc[0]),
                         stack_ms_per_update=float(g.stack_ms_per_update.iloc[0]), train_minutes=seconds / 60,
                         eval_seconds_per_model=float(g.eval_seconds.mean()), dataset=dataset, n_layers=layers, k=k,
                         continued=cont, load=_median(g.load), cores=_median(g.cores)))
    return pd.DataFrame(rows)


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else np.nan


def data_shown(datasets: pd.Series, data: pd.Series) -> pd.Series:
    """A table's data column: the data set's name, marked * where its data are the stand-in ('data' not
    ``records.VERIFIED``, as ``records.data_label`` writes it)."""
    return datasets.str.upper() + np.where(data == records.VERIFIED, "", "*")


def load_recorded(j: pd.DataFrame) -> bool:
    """Whether any job's records carry the machine's load (code from 2026-12-06 records it at each epoch's end)."""
    return bool(np.isfinite(j.load).any()) if "load" in j and len(j) else False


def jobs_shown(j: pd.DataFrame) -> pd.DataFrame:
    """The cost table as printed; the machine load column only where some job recorded it (a column of "not
    recorded" says nothing the caption cannot)."""
    shown = pd.DataFrame({
        "job": j.job, "models": j.models, "members": j.members, "updates": j.updates.map(lambda v: f"{v:,}"),
        "stacks": j.together, "ms/update": j.stack_ms_per_update.map(lambda v: f"{v:.2f}"),
        "train (min)": j.train_minutes.map(lambda v: f"{v:.1f}"),
        "eval (s/model)": j.eval_seconds_per_model.map(lambda v: f"{v:.0f}"),
        "machine load": [f"{load:.1f} of {cores:.0f} cores" if np.isfinite(load) else "not recorded"
                         for load, cores in zip(j.load, j.cores)]})
    return shown if load_recorded(j) else shown.drop(columns="machine load")


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
            f"this run measured (evaluation not included).{missing} A projection from this run's steps only: jobs "
            f"that shared the device, another thread count or another day's speed give another."
            + shared_note(g, device))
    return pd.DataFrame(rows), sentences


def shared_note(g: pd.DataFrame, device: str) -> str:
    """" The machine was shared ...": where a CPU job's median load (``records.machine_load``) was above its own
    threads (in the device's name) by half a core or more, so that its wall-clock is slower than a quiet machine's."""
    threads = re.search(r"(\d+) threads?\)", device)
    if not threads or "load" not in g or not np.isfinite(g.load).any():
        return ""
    over = g[g.load >= int(threads.group(1)) + 0.5]
    if not len(over):
        return ""
    return (f" Other work shared the machine while {len(over)} of these {len(g)} jobs trained (their median load "
            f"{over.load.min():.1f} to {over.load.max():.1f} of {int(g.cores.max())} cores, above their "
            f"{threads.group(1)} thread{'s' if threads.group(1) != '1' else ''}): a quiet machine trains them faster.")


def curve_shown(c: pd.DataFrame) -> pd.DataFrame:
    """The learning curve as printed: NLL and active units of both objectives, the paired difference."""
    return pd.DataFrame({
        "data": data_shown(c.dataset, c.data), "layers": c.n_layers, "K": c.k,
        "epochs": c.epochs,
        "VAE NLL": [nll_cell(v, np.nan) for v in c.get("nll_vae", pd.Series(np.nan, index=c.index))],
        "IWAE NLL": [nll_cell(v, np.nan) for v in c.get("nll_iwae", pd.Series(np.nan, index=c.index))],
        "AU VAE / IWAE": [f"{a} / {b}" for a, b in c.reindex(columns=["au_vae", "au_iwae"]).fillna("-").itertuples(
            index=False)],  # "-": that model has not reached this stage (a run still training)
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
        rows.append(dict(dataset=dataset, n_layers=layers, k=k, data=iw.data, budget=iw.budget, epochs=iw.epochs,
                         seeds=iw.seeds,
                         images=iw.images, nll_sd_vae=va.nll_sd, nll_sd_iwae=iw.nll_sd,
                         iwae_minus_vae=iw.minus_vae, iwae_minus_vae_sd=iw.minus_vae_seed_sd,
                         low=iw.minus_vae_low, high=iw.minus_vae_high, init=iw.init, data_order=iw.data_order))
    return pd.DataFrame(rows)


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
                   data=records.data_label(g.data_verified))
        if obj != "iwae":
            d = compare(df, dict(dataset=dataset, n_layers=layers, k=k, objective=obj),
                        dict(dataset=dataset, n_layers=layers, k=k, objective="iwae"))
            if d:
                row.update(minus_iwae=d["diff"], low=d["low"], high=d["high"], over=d["over"], n=d["n"])
        rows.append(row)
    return pd.DataFrame(rows)


def protocol(df: pd.DataFrame) -> str:
    """One paragraph: what this run did (budget, epochs, evaluation, options, devices, data)."""
    base = base_runs(df)
    opts = sorted({(r.init, r.data_order, r.optimizer) for r in base.itertuples()})
    return (f"This run: budget {', '.join(sorted(df.budget.unique()))}, {int(base.epochs.max())} epochs "
            f"({int(base.updates.max()):,} updates per model of the largest data set), {records.seeds_note(base)}; "
            f"initial weights / data "
            f"order / optimiser: {'; '.join(' / '.join(o) for o in opts)} (initial weights "
            f"{'; '.join(INIT_SHOWN.get(i, i) for i in sorted({o[0] for o in opts}))}); test NLL with "
            f"K={int(df.eval_k.max())} on {' / '.join(sorted(df.images.unique()))}; trained on "
            f"{', '.join(sorted(df.train_device.unique()))}; "
            f"{records.data_status(df)}.")

