"""The sentences on what a run supports. A sentence says "supports" or "contradicts" only from an interval over
two or more training seeds (``iwae.stats.verdict``). With one seed it gives the interval over the test images,
labelled as such, with the measured run-to-run noise floor beside it where one is given, and no verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iwae import records
from iwae.records import OBJ_LABEL, base_runs, compare, label
from iwae.render import SNR_UNDEFINED, ks_text, over_note
from iwae.schedule import schedule
from iwae.stats import mean_ci, sd_interval, verdict
from iwae.tables import table2

CLAIM_WORD = {"below": "supports", "above": "contradicts", "unresolved": "does not resolve"}
PAPER_EPOCHS = sum(s.epochs for s in schedule())  # the paper's claims are about models trained this long (3,280)


def _after(epochs: int) -> str:
    """" after N epochs", the budget a verdict speaks for, where it is short of the paper's."""
    return f" after {epochs:,} epochs" if epochs < PAPER_EPOCHS else ""


def _claim_scope(epochs: int) -> str:
    """For whom the paper makes its claim that IWAE beats VAE, and how far a shorter budget's sign speaks to it."""
    if epochs < PAPER_EPOCHS:
        return (f"the paper makes it for every K > 1 after {PAPER_EPOCHS:,} epochs, where a sign after {epochs:,} "
                f"need not hold")
    return "made for every K > 1"


def _units(mean: float) -> str:
    """A mean count of active units: whole where it is whole, else to one decimal."""
    return f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"


def floor_interval(row) -> tuple[float, float]:
    """The 95% interval of a floor's sd of IWAE - VAE (an sd over ``row.seeds`` seeds)."""
    return sd_interval(row.iwae_minus_vae_sd, int(row.seeds))


def floor_provenance(row) -> str:
    """Where a floor was measured and what it counts: budget, epochs, images, seeds, initial weights."""
    init = getattr(row, "init", None)
    lower = ("the seeds share the authors' initial weights and data order, so it counts only the noise of training's "
             "random binarisation and latent samples: likely a lower bound on training's noise")
    if init is None or pd.isna(init):
        counts = f"initial weights not recorded in the floor file (the noise budget's default is the authors': {lower})"
    elif init == "authors":
        counts = lower
    else:
        counts = f"independent initial weights per seed ({init})"
    return (f"budget {row.budget}, {int(row.epochs)} epochs, {row.images.split(' (')[0]}, {int(row.seeds)} seeds; "
            f"{counts}; docs/noise-floor")


def floor_note(floor: pd.DataFrame | None, dataset: str, layers: int, k: int, diff: float | None = None,
               here: dict | None = None) -> str:
    """"; the noise floor of this cell: its sd with its 95% interval and where it was measured", where the floor
    file has the cell; ``diff`` is compared with the floor's upper end; ``here`` (epochs, images) says where this
    run differs from where the floor was measured."""
    if floor is None:
        return ""
    f = floor[(floor.dataset == dataset) & (floor.n_layers == layers) & (floor.k == k)]
    if not len(f):
        return ""
    f = f.iloc[0]
    low, high = floor_interval(f)
    text = (f"; the run-to-run sd of IWAE - VAE measured in this cell is {f.iwae_minus_vae_sd:.2f} nats (95% "
            f"interval {low:.2f} to {high:.2f}; {floor_provenance(f)})")
    if here:
        other = [f"{int(here['epochs']):,} epochs" if int(here["epochs"]) != int(f.epochs) else "",
                 here["images"].split(" (")[0] if here["images"].split(" (")[0] != f.images.split(" (")[0] else ""]
        other = [o for o in other if o]
        if other:
            text += f", not at this run's {' and '.join(other)}"
    if diff is not None and np.isfinite(high):
        text += (f"; |IWAE - VAE| here is {abs(diff) / high:.1f} times the floor's upper end (a size beside one "
                 f"run-to-run sd, not a significance test)")
    return text


def floor_summary(floor: pd.DataFrame | None) -> str:
    if floor is None or not len(floor):
        return ""
    cells = "; ".join(f"{r.dataset.upper()} {r.n_layers} layer{'s' if r.n_layers > 1 else ''} K={r.k}: "
                      f"{r.iwae_minus_vae_sd:.2f} nats (95% interval {floor_interval(r)[0]:.2f} to "
                      f"{floor_interval(r)[1]:.2f}; NLL sd VAE {r.nll_sd_vae:.2f}, IWAE {r.nll_sd_iwae:.2f})"
                      for r in floor.itertuples())
    return (f"The measured run-to-run noise floor ({floor_provenance(floor.iloc[0])}): the sd over seeds of "
            f"IWAE - VAE is {cells}. Only in these cells, at that budget and on those images.")


def _difference_sentence(d: dict, images: str) -> str:
    return f"{d['diff']:+.2f} nats [95% CI {d['low']:+.2f}, {d['high']:+.2f}] over {over_note(d, images)}"


def claims(long: pd.DataFrame, df: pd.DataFrame, floor: pd.DataFrame | None = None) -> list[str]:
    """Sentences, with the numbers, on the paper's claims at this run's budget. A verdict only from an interval over
    two or more training seeds; with one seed the image-level interval, labelled, and the noise floor."""
    out = []
    base = base_runs(df)
    for (dataset, layers), g in long.groupby(["dataset", "n_layers"]):
        where = records.where(dataset, layers, g.data.iloc[0] == records.VERIFIED)
        images = g.images.iloc[0]
        for r in g[(g.objective == "iwae") & (g.k > 1) & g.minus_vae.notna()].itertuples():
            d = dict(diff=r.minus_vae, low=r.minus_vae_low, high=r.minus_vae_high, over=r.minus_vae_over,
                     n=r.minus_vae_n)
            paper = r.nll_paper - g[(g.objective == "vae") & (g.k == r.k)].nll_paper.iloc[0]
            v = verdict(d)
            head = f"{where}, K={r.k}: IWAE - VAE = {_difference_sentence(d, images)}"
            if v == "one seed":
                here = dict(epochs=int(r.epochs), images=images)
                out.append(f"{head}: no verdict from one training seed"
                           f"{floor_note(floor, dataset, layers, r.k, r.minus_vae, here)} (the paper: {paper:+.2f}).")
            else:
                out.append(f"{head}: in this cell{_after(int(r.epochs))} this run {CLAIM_WORD[v]} the paper's claim "
                           f"that IWAE beats VAE ({_claim_scope(int(r.epochs))}; the paper here: {paper:+.2f}).")
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
                word = "supported at every step" if len(steps) > 1 else "supported at its one step"
            elif any(v == "above" for v in verdicts):
                word = "contradicted at a step"
            else:
                word = "not resolved at its one step" if len(steps) == 1 else "not resolved at every step"
            out.append(f"{where}, {OBJ_LABEL.get(obj, obj)}: NLL falling as K grows{_after(int(g.epochs.max()))}: "
                       f"{word} ({detail}).")
        out += _active_unit_claims(g, base, where, dataset, layers)
    out += _table2_claims(df)
    return out


def _active_unit_claims(g: pd.DataFrame, base: pd.DataFrame, where: str, dataset: str, layers: int) -> list[str]:
    """Per K > 1 and per stochastic layer: IWAE's active units against VAE's. A layer where either model has every
    unit active (the counter's ceiling) is reported as such, not ordered; the others get a verdict only from an
    interval over two or more seeds."""
    out = []
    cell = base[(base.dataset == dataset) & (base.n_layers == layers)]
    epochs = int(cell.epochs.max())
    budget = (f"; after {epochs:,} epochs, where a count says how far pruning has got (the paper's come after "
              f"{PAPER_EPOCHS:,})" if epochs < PAPER_EPOCHS else "")
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
            counts = f"{name}IWAE {_units(a.mean())}, VAE {_units(b.mean())} of {units}"
            mean = f"mean over {len(seeds)} seeds; " if len(seeds) > 1 else ""
            if (a == units).all() or (b == units).all():
                who = "both" if (a == units).all() and (b == units).all() else "IWAE" if (a == units).all() else "VAE"
                parts.append(f"{counts} ({mean}{who} at the counter's ceiling, every unit active, where the count "
                             f"can show no more; the paper's counts come after {PAPER_EPOCHS:,} epochs"
                             + (", and with one training seed there is no verdict)" if len(seeds) < 2 else ")"))
            elif len(seeds) < 2:
                parts.append(f"{counts} (no verdict from one training seed)")
            else:
                diff, low, high = mean_ci(a - b)
                if np.ptp(a - b) == 0:  # a t interval of no width: the seeds show nothing of how a count varies
                    parts.append(f"{counts} (mean over {len(seeds)} seeds); IWAE - VAE = {diff:+.1f} units at every "
                                 f"seed: an interval of no width, so no verdict from {len(seeds)} seeds")
                    continue
                # stats.verdict of VAE - IWAE (more units for IWAE puts it below zero: the wording of "supports")
                v = verdict(dict(over="seeds", low=-high, high=-low))
                full = [f"{who} in {int((x == units).sum())} of {len(seeds)} seeds"
                        for who, x in (("IWAE", a), ("VAE", b)) if (x == units).any()]
                ceiling = f"; at the counter's ceiling: {', '.join(full)}" if full else ""
                parts.append(f"{counts} (mean over {len(seeds)} seeds{ceiling}); IWAE - VAE = {diff:+.1f} units [95% "
                             f"CI {low:+.1f}, {high:+.1f}]: this run {CLAIM_WORD[v]} the paper's claim that IWAE has "
                             f"more active units{budget}")
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



# the SNR slope each estimator and network is expected to show (Rainforth et al. 2018; Tucker et al. 2018)
EXPECTED_SLOPE = {("iwae", "recognition"): (-0.5, "about -1/2"), ("iwae", "generative"): (0.5, "about +1/2"),
                  ("iwae_dreg", "recognition"): (0.0, "no fall (0 or above)")}


def family_claims(t3: pd.DataFrame | None = None, te: pd.DataFrame | None = None,
                  fitted: pd.DataFrame | None = None) -> list[str]:
    """Sentences on the family experiments, with their numbers and what their intervals are over: Table 3's and the
    estimators' differences to IWAE (a verdict only from seeds), and the SNR slopes against the expected ones
    (an interval that excludes the expectation says the shape fails at this budget; no signal is named)."""
    out = []
    if t3 is not None:
        for r in t3.itertuples():
            if r.objective == "iwae" or pd.isna(getattr(r, "minus_iwae", np.nan)):
                continue
            d = dict(diff=r.minus_iwae, low=r.low, high=r.high, over=r.over, n=r.n)
            iwae = t3[t3.objective == "iwae"].iloc[0]
            paper = (r.nll_paper - iwae.nll_paper) if np.isfinite(r.nll_paper) and np.isfinite(iwae.nll_paper) else None
            v = verdict(d)
            tail = ("no verdict from one training seed" if v == "one seed" else
                    f"over seeds this run finds {r.label} {'better' if v == 'below' else 'worse' if v == 'above' else 'not resolved'}")
            out.append(f"Table 3, {r.label} - IWAE in test NLL = {_difference_sentence(d, r.images)} after "
                       f"{r.epochs} epoch{'s' if r.epochs != 1 else ''}: {tail}" + (f" (Rainforth et al., after full training: {paper:+.2f})."
                                                       if paper is not None else "."))
    if te is not None:
        for r in te.itertuples():
            if r.objective == "iwae" or pd.isna(getattr(r, "minus_iwae", np.nan)):
                continue
            d = dict(diff=r.minus_iwae, low=r.low, high=r.high, over=r.over, n=r.n)
            v = verdict(d)
            tail = ("no verdict from one training seed" if v == "one seed" else
                    f"over seeds {r.label} is {'better' if v == 'below' else 'worse' if v == 'above' else 'not resolved'}")
            out.append(f"Estimators, {r.dataset.upper()} K={r.k}, {r.label} - IWAE in test NLL = "
                       f"{d['diff']:+.2f} nats [95% CI {d['low']:+.2f}, {d['high']:+.2f}] after {r.epochs} "
                       f"epoch{'s' if r.epochs != 1 else ''}: "
                       f"{tail}.")
    if fitted is not None:
        for r in fitted.itertuples():
            exp = EXPECTED_SLOPE.get((r.estimator, r.network))
            where = f"SNR, {label(r.estimator)}, {r.network} network, {r.checkpoint}"
            none = f"; no signal at K = {ks_text(r.ks_without_signal)}, left out" if ks_text(r.ks_without_signal) else ""
            if ks_text(getattr(r, "ks_undefined", "")):
                none += f"; {SNR_UNDEFINED} at K = {ks_text(r.ks_undefined)}, left out"
            if not np.isfinite(r.slope):
                out.append(f"{where}: no slope (signal at fewer than two K{none}).")
                continue
            text = (f"{where}: slope {r.slope:+.2f} [95% CI {r.low:+.2f}, {r.high:+.2f}] over K = "
                    f"{ks_text(r.ks_fitted)}{none}")
            if exp is not None and np.isfinite(r.low):
                value, words = exp
                if r.estimator == "iwae_dreg":
                    fails = r.high < value
                else:
                    fails = not (r.low <= value <= r.high)
                text += (f"; expected {words}: "
                         + ("not seen at this model (the interval, over the draws at its one training seed and these "
                            "images, excludes it)" if fails else "within the interval (over the draws at this model)"))
            out.append(text + ".")
    return out
