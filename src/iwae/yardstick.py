"""How far an evaluation's own draws move a model's test NLL: the yardstick for a gap to the paper.

MNIST's test images are grey; every evaluation binarises them (each pixel on with its grey level's probability) and
draws its K=5000 samples, from its seed (`iwae evaluate --seed`). The paper's number comes from its own draw, ours
from another, so a gap between the two holds the difference of two binarisations even for the same model. Given
one model evaluated twice on all the test images with two seeds (the same grey images, other binary images and
samples): both means, their difference, and from the per-image differences the sd of one evaluation's mean about
the mean over binarisations (sd of an image's difference / sqrt(2), over sqrt(N) images) with its 95% half-width,
and the 95% half-width of a difference between two such evaluations (the gap between two binarisations of one
model: sqrt(2) times the sd): a gap to the paper inside it is what the binarisations alone would give. IWAE - VAE
of a cell evaluated so, paired over the images within each evaluation, the same way.

``pair_files`` finds which evaluations are the same model evaluated twice (``make cpu-paper-yardstick``: a long
run's finished models and the models peeked in training, each beside its second evaluation); ``write`` the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from iwae.records import model_name, pair_name
from iwae.stats import evaluation_noise

SECOND_SEED = 4321  # the second evaluation's seed (the pipeline evaluates with 1234)

CAPTION = ("Test NLL (nats, K=5000) of one model evaluated twice on the same grey test images with two seeds "
           "(other binary images and samples): the gap a second binarisation makes, and from the per-image "
           "differences the sd of one evaluation's mean about the mean over binarisations, and the 95% "
           "half-width of a gap between two evaluations (as between ours and the paper's, each from its own "
           "binarisation). IWAE - VAE (paired): the difference paired over the images within each evaluation, "
           "its epochs IWAE / VAE.")


def model_key(blob: dict) -> tuple:
    """What makes two evaluations the same model: its cell, objective and training seed, its updates (a model
    peeked inside an epoch: with the minibatches there) and the number of test images."""
    run, tr = blob["run"], blob["train"]
    return (run["dataset"], run["n_layers"], run["objective"], run["k"], run["seed"], tr["updates"],
            (tr.get("in_training") or {}).get("step", 0), len(blob["eval"]["test_ll_per_image"]))


def evaluation_seed(blob: dict) -> int:
    """The seed of an evaluation (``iwae evaluate --seed``: its binary test images and samples)."""
    return blob["eval"]["eval_config"]["seed"]


def evaluated_with(folder: Path, seed: int) -> dict[Path, dict]:
    """The evaluations (``*.metrics.json``) in ``folder`` made with ``seed``: path -> record."""
    blobs = {p: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.metrics.json"))}
    return {p: b for p, b in blobs.items() if evaluation_seed(b) == seed}


def read(path: str | Path) -> dict:
    """One evaluation: the model's name and cell, its epochs and updates, the evaluation's seed, per-image NLL."""
    blob = json.loads(Path(path).read_text())
    run, ev, tr = blob["run"], blob["eval"], blob["train"]
    step = (tr.get("in_training") or {}).get("step", 0)  # a model peeked inside an epoch: its minibatches there
    return dict(model=model_name(run["dataset"], run["n_layers"], run["objective"], run["k"]),
                cell=(run["dataset"], run["n_layers"], run["k"]), objective=run["objective"],
                epochs=f"{tr['epochs']:,}" + (f" + {step:,} minibatches" if step else ""), updates=tr["updates"],
                seed=evaluation_seed(blob),
                nll=-np.asarray(ev["test_ll_per_image"], dtype=float))


def one_model(a: dict, b: dict) -> dict:
    """The yardstick row of one model evaluated twice (``read``'s dicts, two seeds)."""
    if (a["model"], a["updates"]) != (b["model"], b["updates"]) or len(a["nll"]) != len(b["nll"]):
        raise ValueError(f"{a['model']} ({a['updates']} updates) and {b['model']} ({b['updates']} updates): give the "
                         f"same model evaluated twice on the same number of test images")
    if a["seed"] == b["seed"]:
        raise ValueError(f"{a['model']}: both evaluations used --seed {a['seed']}; the second needs another seed")
    noise = evaluation_noise(a["nll"], b["nll"])
    return dict(model=a["model"], epochs=a["epochs"], images=len(a["nll"]), seeds=f"{a['seed']}, {b['seed']}",
                nll_a=a["nll"].mean(), nll_b=b["nll"].mean(), b_minus_a=noise["diff"], sd_of_one_mean=noise["sd_one"],
                one_mean_95=noise["one"], gap_of_two_95=noise["two"])


def paired_rows(pairs: list[tuple[dict, dict]]) -> list[dict]:
    """IWAE - VAE of a cell whose VAE and IWAE were both evaluated with the same two seeds: the difference is paired
    over the images within each evaluation, so its draws' noise is that of the per-image difference of differences.
    Each IWAE pair goes with the cell's VAE pair of the same seeds nearest to it in updates (models measured at
    several points: each point's own pair)."""
    rows = []
    for ia, ib in pairs:
        if ia["objective"] != "iwae":
            continue
        vaes = [(va, vb) for va, vb in pairs if va["objective"] == "vae" and va["cell"] == ia["cell"]
                and (va["seed"], vb["seed"]) == (ia["seed"], ib["seed"])]
        if not vaes:
            continue
        va, vb = min(vaes, key=lambda p: abs(p[0]["updates"] - ia["updates"]))
        first, second = ia["nll"] - va["nll"], ib["nll"] - vb["nll"]
        noise = evaluation_noise(first, second)
        rows.append(dict(model=pair_name(*ia["cell"]),
                         epochs=f"{ia['epochs']} / {va['epochs']}", images=len(first),
                         seeds=f"{ia['seed']}, {ib['seed']}",
                         nll_a=first.mean(), nll_b=second.mean(), b_minus_a=noise["diff"],
                         sd_of_one_mean=noise["sd_one"], one_mean_95=noise["one"], gap_of_two_95=noise["two"]))
    return rows


def pair_files(firsts: list[Path], seconds: list[Path]) -> list[tuple[Path, Path]]:
    """Each second evaluation beside the first evaluation of the same model (``model_key``) with another seed. A
    second evaluation with no first is an error that names it; firsts without a second are left out. -> (first,
    second) pairs grouped by model: in the order of their cell, then objective (the VAE first), then updates (a
    model's rows in the order it trained: the last is its latest)."""
    blobs = {p: json.loads(Path(p).read_text()) for p in list(firsts) + list(seconds)}
    by_key = {}
    for p in firsts:
        by_key.setdefault(model_key(blobs[p]), []).append(p)
    pairs = []
    for s in seconds:
        seed = evaluation_seed(blobs[s])
        match = [f for f in by_key.get(model_key(blobs[s]), []) if evaluation_seed(blobs[f]) != seed]
        if not match:
            raise ValueError(f"{s}: no first evaluation of this model (the same cell, training seed, updates and "
                             f"number of test images, another --seed) among the {len(firsts)} given; give the "
                             f"folder of its first evaluation (--also: e.g. the run's midway/ evaluations; --state: "
                             f"the committed state's finished models) or remove the file")
        pairs.append((match[0], Path(s)))

    def order(fs):
        dataset, layers, objective, k, seed, updates, step, _ = model_key(blobs[fs[0]])
        return dataset, layers, k, objective != "vae", objective, seed, updates, step

    return sorted(pairs, key=order)


def table(pairs: list[tuple[dict, dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (the rows: each model's, then IWAE - VAE's; the same as shown, rounded)."""
    t = pd.DataFrame([one_model(a, b) for a, b in pairs] + paired_rows(pairs))
    shown = pd.DataFrame({
        "model": t.model, "epochs": t.epochs, "images": t.images.map(lambda v: f"{v:,}"),
        "seeds": t.seeds, "NLL, first seed": t.nll_a.map(lambda v: f"{v:.2f}"),
        "NLL, second seed": t.nll_b.map(lambda v: f"{v:.2f}"),
        "second - first": t.b_minus_a.map(lambda v: f"{v:+.3f}"),
        "one evaluation's mean: sd (95%)": [f"{s:.3f} (±{h:.2f})" for s, h in zip(t.sd_of_one_mean, t.one_mean_95)],
        "two evaluations' gap: 95%": t.gap_of_two_95.map(lambda v: f"±{v:.2f}")})
    return t, shown


def write(files: list[tuple[Path, Path]], out: Path | None) -> str:
    """The yardstick of these pairs of evaluations (a model's first, then its second) into OUT.csv, .md and .tex
    (``out`` None: nothing written). -> the caption and table as markdown."""
    from iwae.report import write_table

    t, shown = table([(read(a), read(b)) for a, b in files])
    if out is not None:
        write_table(t, shown, Path(out), CAPTION)
    return CAPTION + "\n\n" + shown.to_markdown(index=False, disable_numparse=True)
