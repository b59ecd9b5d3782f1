"""Run records: the metrics files of a run read into one table, labels, the paper's reference numbers, and the
paired comparisons that tables, sentences and figures all use. ``iwae.report`` (tables, sentences) and
``iwae.figures`` build on this module; neither imports the other.

Every number comes from a metrics file written by ``iwae evaluate``; the paper's numbers come only from
``iwae/reference/*.csv`` and are always labelled "paper". Two models are compared only on the same test images
(the same subset, binarised from the same seed: ``images`` must match) and matched by training seed.

Sign convention, in every table of the suite (``sign``): a difference is of test NLL (nats), "A - B" =
NLL(A) - NLL(B), so NEGATIVE means A is BETTER (A gives the test images a higher likelihood).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from iwae.stats import paired_difference

OBJ_LABEL = {"vae": "VAE", "iwae": "IWAE"}
CEILING = {1: (50,), 2: (100, 50)}  # latent units per stochastic layer: every unit active at most


def sign(a: str = "A", b: str = "B") -> str:
    """The one sign convention, as every caption states it."""
    return f"{a} - {b} = NLL({a}) - NLL({b}) in nats, negative when {a} is better"


def signed(value: float, digits: int = 2) -> str:
    """A signed difference to ``digits`` decimals, or to one more where those round it to zero (-0.004, not
    -0.00: a sign shown must be the number's)."""
    text = f"{value:+.{digits}f}"
    return f"{value:+.{digits + 1}f}" if value and float(text) == 0 else text


def where(dataset: str, layers: int, verified: bool, layer: str = "layer") -> str:
    """A cell's name in sentences and titles: 'MNIST, 2 layers', 'OMNIGLOT (stand-in data), 1 stochastic layer'."""
    return f"{dataset.upper()}{'' if verified else ' (stand-in data)'}, {layers} {layer}{'s' if layers > 1 else ''}"


def label(objective: str) -> str:
    """VAE, IWAE, IWAE-DReG, MIWAE(8), CIWAE(0.5), ..."""
    if objective in OBJ_LABEL:
        return OBJ_LABEL[objective]
    base, _, arg = objective.partition("_")
    if base in ("miwae", "piwae") and arg.startswith("m"):
        return f"{base.upper()}({arg[1:]})"
    if base == "ciwae" and arg.startswith("b"):
        return f"CIWAE({arg[1:]})"
    return objective.upper().replace("_", "-").replace("DREG", "DReG")


def model_name(dataset: str, layers: int, objective: str, k: int) -> str:
    """'MNIST 1L IWAE K=5': a model's name in the long run's tables, and the key that joins them (the yardstick's
    rows to the final table's)."""
    return f"{dataset.upper()} {layers}L {label(objective)} K={k}"


def pair_name(dataset: str, layers: int, k: int) -> str:
    """'MNIST 1L IWAE - VAE K=5 (paired)': a cell's IWAE - VAE in the same tables."""
    return f"{dataset.upper()} {layers}L IWAE - VAE K={k} (paired)"


def paper_reference(table: str = "table1") -> pd.DataFrame:
    """The paper's published numbers (reference data, not ours)."""
    path = resources.files("iwae") / "reference" / f"paper_{table}.csv"
    with path.open() as f:
        return pd.read_csv(f, comment="#", dtype={"active_units": str, "active_first": str, "active_second": str})


def images_of(ev: dict) -> str:
    """Which test images a metrics file's numbers are on: 'the first N test images' or 'all N test images', binarised
    once from the evaluation seed (the same binary images in every run evaluated with that seed)."""
    cfg = ev.get("eval_config", {})
    n = int(ev["n_test"])
    which = f"the first {n:,}" if cfg.get("test_subset") else f"all {n:,}"
    return f"{which} test images (binarisation seed {cfg.get('seed', '?')})"


def collect(paths: list[str | Path], first_images: int | None = None) -> pd.DataFrame:
    """One row per metrics file, with the numbers the tables and figures use. ``first_images``: the test NLL (and
    every comparison) on the first N of the evaluated test images only -- the same binary images in every run
    evaluated with the same seed, whatever its subset (to put runs evaluated on different subsets side by side)."""
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        run, ev, tr = m["run"], m["eval"], m["train"]
        if first_images:
            if len(ev.get("test_ll_per_image", [])) < first_images:
                raise ValueError(f"{p}: evaluated on {ev['n_test']} test images, fewer than first_images="
                                 f"{first_images}")
            ll = np.asarray(ev["test_ll_per_image"][:first_images], dtype=float)
            ev = dict(ev, test_ll_per_image=ll, test_ll=float(ll.mean()), n_test=first_images,
                      test_ll_sem=float(ll.std(ddof=1) / np.sqrt(len(ll))),
                      eval_config=dict(ev.get("eval_config", {}), test_subset=first_images))
        tc = tr["train_config"]
        rows.append(dict(
            metrics=str(p), run_dir=str(Path(p).resolve().parent), dataset=run["dataset"], n_layers=run["n_layers"],
            objective=run["objective"], k=run["k"], seed=run["seed"], budget=run["budget"],
            continued_from=run.get("continued_from"), protocol=run.get("protocol", {}),
            nll=-ev["test_ll"], nll_sem=ev.get("test_ll_sem"), nll_active_only=-ev.get("test_ll_active_only", np.nan),
            ll=np.asarray(ev.get("test_ll_per_image", []), dtype=float), train_nll=-ev["train_ll"],
            eval_k=ev["eval_k"], n_test=ev["n_test"], images=images_of(ev), active=ev["active_units"],
            active_units="+".join(str(a) for a in ev["active_units"]), active_total=ev["active_units_total"],
            activity=ev["activity"], bounds=ev["test_bounds"], epochs=tr["epochs"], updates=tr["updates"],
            step=(tr.get("in_training") or {}).get("step", 0),  # a model `iwae peek` took inside an epoch
            train_seconds=tr["train_seconds"], stack_size=tr.get("stack_size", 1), stack=tr.get("stack", []),
            together=tr.get("trained_together_with", 0) + 1,
            seconds_per_epoch=tr["seconds_per_epoch"], eval_seconds=ev["eval_seconds"], train_device=tr["device"],
            eval_device=ev["device"], train_path=tr.get("train_path", "?"), optimizer=tc["optimizer"],
            init=tc.get("init", "seeded"), data_order=tc.get("data_order", "reshuffle"), history=tr["history"],
            data_verified=m["data"]["verified"], code_version=tr.get("code_version", "?"),
            train_subset=tc.get("train_subset"),
            activity_images=ev.get("eval_config", {}).get("active_units_n", np.nan),  # the training images of A_u
            **machine_load(tr["history"]),
        ))
    if not rows:
        raise ValueError("no metrics files given")
    df = pd.DataFrame(rows)
    df["stack_ms_per_update"] = 1e3 * df.train_seconds / df.updates  # the whole stack's wall-clock per update
    return df


def one_per_model(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` if each model (data set, layers, objective, K, training seed, what it continued) has one metrics file
    in it; else a ValueError that names the files given twice for one model (a table has one cell per model)."""
    key = ["dataset", "n_layers", "objective", "k", "seed", "continued_from"]
    models = df.fillna({"continued_from": ""})
    twice = models[models.duplicated(key, keep=False)]
    if len(twice):
        names = "; ".join(f"{dataset} L{layers} {objective}-k{k} seed {seed}{' from ' + was if was else ''}: "
                          + ", ".join(g.metrics)
                          for (dataset, layers, objective, k, seed, was), g in twice.groupby(key))
        raise ValueError(f"one metrics file per model, but some models have several ({names}); give each model's "
                         f"once (a published run's records/estimators/ and records/table3/ are the family's: "
                         f"`iwae report family`, not Table 1's)")
    return df


def machine_load(history: list[dict]) -> dict:
    """The machine's median 1-minute load average at the ends of a model's epochs and its cores (NaN for records
    written before the trainer recorded them): above the job's own threads, other work shared the machine."""
    loads = [h["load"] for h in history if "load" in h]
    cores = [h["cores"] for h in history if "cores" in h]
    return dict(load=float(np.median(loads)) if loads else np.nan, cores=max(cores) if cores else np.nan)


def base_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs trained from scratch (not Table 2's continuations)."""
    return df[df.continued_from.isna()]


VERIFIED = "verified"  # a table's data column: the data passed their checksum (the paper's files)


def data_label(verified: pd.Series) -> str:
    """A group's data, as every table writes it: ``VERIFIED`` when all its runs' data passed their checksum, else
    the stand-in's label."""
    return VERIFIED if verified.all() else "UNVERIFIED (stand-in)"


def data_status(df: pd.DataFrame) -> str:
    bad = sorted(df[~df.data_verified].dataset.unique())
    return ("all data verified" if not bad else f"{', '.join(bad)}: UNVERIFIED stand-in data (where a paper's number "
                                                 f"is beside it, it is for the paper's own file, other data)")


def seeds_note(df: pd.DataFrame) -> str:
    return seeds_text(df.seed.unique().tolist())


def seeds_text(seeds) -> str:
    """'1 training seed (0)', '2 training seeds (0, 1)'."""
    seeds = sorted(int(s) for s in set(seeds))
    return f"{len(seeds)} training seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})"


def budget_note(df: pd.DataFrame, test: bool = True) -> str:
    """Budget, epochs, images and seeds: what every caption says (``test=False``: for a figure that shows no test
    image, without the evaluation's)."""
    budgets = ", ".join(sorted(df.budget.unique()))
    epochs = sorted(df.epochs.unique())
    subsets = sorted({int(n) for n in df.get("train_subset", pd.Series(dtype=float)).dropna()})
    trained_on = f" on the first {'/'.join(f'{n:,}' for n in subsets)} training images" if subsets else ""
    images = " / ".join(sorted(df.images.unique()))
    evaluation = f"test NLL = -log p(x) estimated with K={int(df.eval_k.max())} on {images}; " if test else ""
    return (f"budget {budgets}; {'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}{trained_on}; "
            f"{seeds_note(df)}; {evaluation}{data_status(df)}")


def _by_seed(rows: pd.DataFrame) -> dict[int, pd.Series]:
    return {int(r.seed): r for _, r in rows.iterrows()}


def select(df: pd.DataFrame, sel: dict) -> pd.DataFrame:
    return df[np.logical_and.reduce([df[c] == v for c, v in sel.items()])] if sel else df


def compare(df: pd.DataFrame, a: dict, b: dict) -> dict | None:
    """NLL(a) - NLL(b) for two selections of ``df`` (dicts of column values), paired over the same test images
    and matched by training seed (``iwae.stats.paired_difference``: over seeds with two or more, else over the
    images). None where they share no seed or not the same images."""
    ra, rb = _by_seed(select(df, a)), _by_seed(select(df, b))
    seeds = sorted(set(ra) & set(rb))
    if not seeds or any(len(ra[s].ll) == 0 or ra[s].images != rb[s].images or len(ra[s].ll) != len(rb[s].ll)
                        for s in seeds):
        return None
    # NLL = -ll: NLL(a) - NLL(b) = ll(b) - ll(a)
    return paired_difference([rb[s].ll for s in seeds], [ra[s].ll for s in seeds])


def curve(df: pd.DataFrame) -> pd.DataFrame:
    """A learning curve from stage snapshots: NLL per (dataset, layers, K, objective, epochs) and IWAE - VAE at
    each point, paired (over seeds where there are several)."""
    rows = []
    for (dataset, layers, k, epochs), g in df.groupby(["dataset", "n_layers", "k", "epochs"]):
        row = dict(dataset=dataset, n_layers=layers, k=k, epochs=epochs, seeds=g.seed.nunique(),
                   images=" / ".join(sorted(g.images.unique())),
                   data=data_label(g.data_verified))
        for obj, h in g.groupby("objective"):
            row[f"nll_{obj}"] = float(h.nll.mean())
            row[f"err_{obj}"] = float(h.nll.std()) if len(h) > 1 else float(h.nll_sem.mean())
            row[f"au_{obj}"] = mean_units(h.active)
        d = compare(g, dict(objective="iwae"), dict(objective="vae"))
        if d:
            row.update(iwae_minus_vae=d["diff"], low=d["low"], high=d["high"], over=d["over"], n=d["n"])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["dataset", "n_layers", "k", "epochs"])


def mean_units(active: pd.Series) -> str:
    """Active units per layer, the mean over seeds: "41", "100+6", "45.5"."""
    return "+".join(f"{a:g}" for a in np.round(np.mean(np.stack(active.map(np.asarray)), axis=0), 1))


def at_ceiling(layers: int, active: list[int]) -> bool:
    """Whether every latent unit of every layer is active: the count cannot show more."""
    return tuple(active) == CEILING[layers]
