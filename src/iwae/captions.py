"""Every figure's and table's caption, written once: the figures put it first in their footnote, the tables first in
their caption (md and tex), the LaTeX report reads the figures' from ``captions.tex`` (written beside the tables),
and the HTML report's caption files
(``workflow/report/*.rst``) are generated from it (``python -m iwae.captions workflow/report``; a test checks they
are up to date). What a caption says of one run (budget, epochs, images, seeds, intervals) is added where the
figure or table is written, from the run's own records."""

from __future__ import annotations

import sys
from pathlib import Path

FIGURES = {
    "nll_vs_k": "Test NLL against the number of samples K used in training (left; crosses: the paper's), and the "
                "paired IWAE - VAE difference with its 95% interval (right; negative: IWAE better; crosses: the "
                "paper's difference).",
    "active_units": "Active units per stochastic layer against K (A_u = Var_x E_q[u|x] >= 0.01); markers: the "
                    "paper's counts, one marker per layer; dotted: every unit active (the counter's ceiling).",
    "activity_hist": "A histogram in the style of the paper's, of log10 A_u of the latent units, VAE against IWAE at the largest K, one "
                     "panel per stochastic layer; dashed: the threshold A_u = 0.01 above which a unit counts as "
                     "active.",
    "bounds": "The NLL bounds -L_1 >= -L_5 >= -L_50 >= ... >= -L_5000 of every model against the K of the bound at "
              "evaluation (colour: the training objective; line style: the K it was trained with).",
    "training_curves": "Mean training loss (minus the objective) per epoch; dotted lines: a stage starts, at the "
                       "learning rate printed on the top axis.",
    "training_so_far": "A long run's mean training loss (minus the objective, on the training images) per epoch of "
                       "each model so far, from its training history: every epoch; close up, the last stage of the "
                       "finished models and the latest stage each model still in training has reached, where no test "
                       "NLL is evaluated before the stage ends. Each model's loss is minus its own objective (the "
                       "VAE's ELBO, the IWAE's K-sample bound): the levels of two objectives are not comparable, "
                       "their slopes are.",
    "samples": "Samples: Bernoulli means of p(x|h) for h drawn from each generative model (the same draws for all); "
               "one matrix per data set and architecture, rows the objectives, columns K.",
    "curve": "Learning curve of each cell with stage snapshots: test NLL after each stage, and the paired IWAE - VAE "
             "difference with its 95% interval (negative: IWAE better); every stage point of ours on the same "
             "test images; crosses: the paper's numbers after its 3,280 epochs on its whole test set (no interval "
             "given).",
    "wallclock": "Milliseconds per update of each Table 1 training job (a stack of members sharing every update; "
                 "a run's Table 2 continuations, if it has any, are in the cost table) against K, on the device that trained them.",
    "snr": "Gradient signal-to-noise ratio of each estimator against K (Rainforth et al. 2018), recognition and "
           "generative networks, at each checkpoint (a trained model and an earlier snapshot of it: their epochs below), the floor of a zero-mean "
           "gradient removed, with 95% jackknife intervals: the K with signal and the least-squares line through "
           "them (the slope and its interval in the legend); a K without signal as a hollow triangle on the axis' floor "
           "(its SNR is below the axis, indistinguishable from zero), left out; an undefined SNR (a zero gradient) "
           "not drawn.",
}
TABLES = {
    "table1": "Table 1 in the paper's layout: test NLL in nats (active units per layer) of VAE and IWAE, ours (on "
              "the test images named below) beside the paper's (on its whole test set; a subset's mean need not be "
              "the whole set's: docs/paper-cpu/first_images), and IWAE - VAE paired over the same test images and "
              "matched by seed (negative: IWAE better), with its 95% interval over the seeds, or over the test images "
              "of one seed (no verdict).",
    "table2": "Table 2: MNIST 1-layer models trained further with the other objective at lr 1e-4, continuing the "
              "first run's optimiser and random state as the authors did; ours beside the paper's, and after - "
              "first paired over the same test images (negative: continuing improved the NLL).",
    "table3": "Beyond the paper, Table 3 (Rainforth et al. 2018) on Burda's protocol in NLL terms: -L_K (the IWAE "
              "bound with K samples, for every model) and the test NLL (K=5000) of IWAE, PIWAE, MIWAE, CIWAE and "
              "VAE, beside the published values negated into NLL (reference data), and X - IWAE paired (negative: X "
              "better).",
    "estimators": "Beyond the paper: IWAE against IWAE-STL, IWAE-DReG and RWS-DReG on the same protocol: test NLL "
                  "(active units) and X - IWAE paired over the same test images (negative: X better).",
    "snr": "Fitted slopes of log SNR against log K for each estimator and network, with their 95% jackknife "
           "intervals (expected with IWAE: about -1/2 for the recognition network, +1/2 for the generative network).",
    "family_claims": "Beyond the paper in words: each objective's and estimator's test NLL minus IWAE's with its "
                     "interval and what it is over (a verdict only from training seeds), and each SNR slope with its "
                     "interval against the slope expected, the K without signal named.",
    "curve": "Learning curve: test NLL of each model after each stage of the schedule, and IWAE - VAE paired "
             "(negative: IWAE better) with its 95% interval.",
    "noise_floor": "The run-to-run noise floor: the sd over training seeds of each model's test NLL and of the "
                   "paired IWAE - VAE difference (its mean with the mean's 95% interval over the seeds; its sd with "
                   "the sd's own 95% interval, chi-square with seeds - 1 degrees of freedom: the floor's uncertainty); "
                   "'initial weights' says whether the seeds shared the authors' (then the sd leaves out the noise "
                   "of the initial weights) or drew their own.",
    "wallclock": "Cost: the wall-clock of every training job (a stack of members sharing every update; several "
                 "stacks in one process share it too), evaluation seconds per model, and the paper budget projected "
                 "on the same device from these measurements.",
}
RECORDS = {"figure": "The budget, epochs, test images and training seeds are in the figure's footnote (written from "
                     "the run's own records).",
           "table": "The budget, epochs, test images and training seeds are in the table's caption (written from the "
                    "run's own records)."}


CLOSE_UP, CLOSE_UP_FROM = 3, 5  # the learning curve: a cell with 5 or more evaluated stages gets its latest 3 close up


def curve_panels(one_seed: bool | None = None, close_up: bool | None = None) -> str:
    """What the learning curve's panels show besides its caption, as a figure has them (None: both cases, for a
    caption written before the run, the HTML report's)."""
    bars = ("Bars: each model's own 95% interval (not paired: two models' bars may overlap where their paired "
            "difference excludes 0)")
    mean = "each model's point is the mean over the seeds, without bars"
    if one_seed is None:
        parts = [f"{bars}, with one training seed; with several, {mean}."]
    else:
        parts = [f"{bars}." if one_seed else f"{mean[0].upper()}{mean[1:]}."]
    if close_up or close_up is None:
        parts.append(f"Middle: the latest {CLOSE_UP} evaluated stages close up"
                     + (f" (a cell with {CLOSE_UP_FROM} or more)." if close_up is None else "."))
    return " ".join(parts)


def figure(name: str) -> str:
    return FIGURES[name]


def table(name: str) -> str:
    return TABLES[name]


def rst_files() -> dict[str, str]:
    """The HTML report's caption files: {file name: text}."""
    out = {f"figure_{n}.rst": f"{c}{' ' + curve_panels() if n == 'curve' else ''} {RECORDS['figure']}\n"
           for n, c in FIGURES.items()}
    out.update({f"table_{n}.rst": f"{c} {RECORDS['table']}\n" for n, c in TABLES.items()})
    return out


def tex_definitions() -> str:
    """``\\cap:<name>`` for every figure, for the LaTeX report's ``\\fig{<name>}``."""
    from iwae.render import tex_escape

    return "".join(f"\\expandafter\\def\\csname cap:{n}\\endcsname{{{tex_escape(c)}}}\n" for n, c in FIGURES.items())


if __name__ == "__main__":  # python -m iwae.captions workflow/report: write the HTML report's caption files
    folder = Path(sys.argv[1])
    for name, text in rst_files().items():
        (folder / name).write_text(text)
    print(f"wrote {len(rst_files())} caption files in {folder}")
