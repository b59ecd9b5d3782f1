"""The report's tables and sentences on inputs with known answers: verdicts only from seeds, the active units'
ceiling, Table 2's sentence, one sign convention and the images in every caption, figures against K only with
several K."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from iwae import claims, figures, records, render, report, stats, tables
from iwae.evaluate import metrics_record
from iwae.figures import figures_for

IMAGES = 300


def write_metrics(folder, dataset="mnist", layers=1, objective="iwae", k=5, seed=0, shift=0.0, active=(30,),
                  continued_from=None, epochs=4, rng=None):
    """A metrics file as `iwae evaluate` writes it (``iwae.evaluate.metrics_record``), with per-image test
    log-likelihoods -100 - shift + noise on the same images for every model (the noise is the images')."""
    rng = rng or np.random.default_rng(0)
    images = np.random.default_rng(123).normal(0, 3, IMAGES)  # the same images in every file
    ll = -100.0 - shift + images + rng.normal(0, 0.05, IMAGES)
    run = folder / (f"{objective}-k{k}-s{seed}" + ("-cont" if continued_from else ""))
    run.mkdir(parents=True, exist_ok=True)
    tc = dict(dataset=dataset, n_layers=layers, objective=objective, k=k, seed=seed, init_from=continued_from,
              optimizer="published", init="authors", data_order="fixed", budget="quick", continue_state=True,
              train_subset=None)
    meta = dict(train_config=tc, model_config=dict(n_layers=layers), data={"verified": True}, epochs=epochs,
                updates=epochs * 2980, train_seconds=100.0, stack_size=2,
                stack=[dict(objective="vae", seed=seed), dict(objective="iwae", seed=seed)],
                seconds_per_epoch=25.0, device="CPU (test)", train_path="stacked eager",
                history=[dict(epoch=e, stage=0, lr=1e-3, train_objective=-110.0 + e, seconds=25.0)
                         for e in range(epochs)])
    result = dict(test_ll=float(ll.mean()), test_ll_sem=float(ll.std() / np.sqrt(IMAGES)), test_ll_per_image=list(ll),
                  eval_k=5000, n_test=IMAGES, test_bounds={"L1": -110.0, f"L{k}": -105.0, "L5000": float(ll.mean())},
                  train_ll=-99.0, active_units=list(active), active_units_total=int(sum(active)),
                  activity=[[0.1] * a + [1e-4] * (u - a) for a, u in zip(active, records.CEILING[layers])],
                  test_ll_active_only=float(ll.mean()), eval_seconds=10.0)
    m = metrics_record(meta, {"verified": True}, result, dict(k=5000, test_subset=IMAGES, seed=1234, activity_ddof=0),
                       "CPU (test)", None, "test")
    path = run / "metrics.json"
    path.write_text(json.dumps(m))
    return path


def grid(tmp_path, seeds, iwae_gain, active_iwae=(30,), active_vae=(20,)):
    """MNIST 1 layer, K = 1 and 5, VAE and IWAE; IWAE's NLL lower by ``iwae_gain(seed)`` at K=5."""
    paths = []
    for s in seeds:
        rng = np.random.default_rng(10 + s)
        for obj in ("vae", "iwae"):
            paths.append(write_metrics(tmp_path, objective=obj, k=1, seed=s, shift=3.0, rng=rng, active=(25,)))
        paths.append(write_metrics(tmp_path, objective="vae", k=5, seed=s, shift=2.0, rng=rng, active=active_vae))
        paths.append(write_metrics(tmp_path, objective="iwae", k=5, seed=s, shift=2.0 - iwae_gain(s), rng=rng,
                                   active=active_iwae(s) if callable(active_iwae) else active_iwae))
    return records.collect(paths)


def _claims(df, floor=None):
    return claims.claims(tables.table1_long(df), df, floor)


def test_one_seed_gives_the_image_level_interval_and_no_verdict(tmp_path):
    df = grid(tmp_path, [0], lambda s: 1.0)
    floor = pd.DataFrame([dict(dataset="mnist", n_layers=1, k=5, budget="noise", epochs=4, seeds=3, images="the first 300 test images (binarisation seed 1234)",
                               nll_sd_vae=0.2, nll_sd_iwae=0.25, iwae_minus_vae=-1.1, iwae_minus_vae_sd=0.31,
                               low=-1.9, high=-0.3)])
    text = " ".join(_claims(df, floor))
    k5 = next(s for s in _claims(df, floor) if s.startswith("MNIST, 1 layer, K=5: IWAE - VAE"))
    assert "-1.00 nats" in k5 and "over the first 300 test images of one training seed" in k5
    assert "no verdict" in k5 and "0.31 nats" in k5  # the noise floor of this cell beside it, ...
    assert "95% interval 0.16 to 1.95" in k5  # ... with its own uncertainty (an sd over 3 seeds: 0.52x-6.28x) ...
    assert "budget noise, 4 epochs, the first 300 test images, 3 seeds" in k5  # ... where it was measured ...
    assert "3.2 times the floor's upper end" not in k5 and "0.5 times the floor's upper end" in k5  # ... its upper end
    assert not re.search(r"\b(supports|contradicts)\b", text)


def test_several_seeds_give_verdicts_from_the_interval_over_seeds(tmp_path):
    df = grid(tmp_path / "a", [0, 1, 2], lambda s: 1.0 + 0.1 * s)
    k5 = next(s for s in _claims(df) if "K=5: IWAE - VAE" in s)
    assert "over 3 training seeds" in k5 and "in this cell after 4 epochs this run supports" in k5
    assert "the paper makes it for every K > 1 after 3,280 epochs, where a sign after 4 need not hold" in k5
    df = grid(tmp_path / "b", [0, 1, 2], lambda s: [1.0, -1.2, 0.3][s])  # training noise as large as the effect
    k5 = next(s for s in _claims(df) if "K=5: IWAE - VAE" in s)
    assert "does not resolve" in k5
    df = grid(tmp_path / "c", [0, 1, 2], lambda s: -1.0 - 0.1 * s)
    assert "this run contradicts" in next(s for s in _claims(df) if "K=5: IWAE - VAE" in s)
    # seeds that share the authors' initial weights and data order: the intervals say what they count
    assert "share the authors' initial weights and data order" in render.interval_note(df)
    assert "share" not in render.interval_note(df.assign(init="seeded"))


def test_active_units_at_the_ceiling_are_not_an_ordering(tmp_path):
    df = grid(tmp_path / "a", [0, 1], lambda s: 1.0, active_iwae=(50,), active_vae=(41,))
    au = next(s for s in _claims(df) if "K=5: active units" in s)
    assert "ceiling" in au and "supports" not in au and "VAE 41 of 50 (mean over 2 seeds;" in au
    # the same +12 at both seeds: a t interval of no width, which gives no verdict
    df = grid(tmp_path / "b", [0, 1], lambda s: 1.0, active_iwae=(33,), active_vae=(21,))
    au = next(s for s in _claims(df) if "K=5: active units" in s)
    assert "+12.0 units at every seed: an interval of no width, so no verdict from 2 seeds" in au
    assert "supports" not in au
    df = grid(tmp_path / "c", [0, 1, 2], lambda s: 1.0, active_iwae=lambda s: (30 + 2 * s,), active_vae=(21,))
    au = next(s for s in _claims(df) if "K=5: active units" in s)
    assert "IWAE - VAE = +11.0 units [95% CI +6.0, +16.0]: this run supports the paper's claim" in au
    assert "after 4 epochs, where a count says how far pruning has got" in au  # not the paper's converged count
    # a seed at the ceiling is said, even where the others let the interval give a verdict
    df = grid(tmp_path / "d", [0, 1, 2], lambda s: 1.0, active_iwae=lambda s: (40 + 5 * s,), active_vae=(21,))
    au = next(s for s in _claims(df) if "K=5: active units" in s)
    assert "at the counter's ceiling: IWAE in 1 of 3 seeds" in au


def test_table2_gets_a_sentence_with_its_paired_difference(tmp_path):
    first = write_metrics(tmp_path, objective="iwae", k=50, shift=0.0)
    cont = write_metrics(tmp_path, objective="vae", k=1, shift=-1.0, continued_from=str(first.parent / "model.pt"),
                         epochs=3)
    df = records.collect([first, cont])
    t2 = tables.table2(df)
    assert len(t2) == 1 and t2.after_minus_first.iloc[0] == pytest.approx(-1.0, abs=0.02)
    sentence = next(s for s in claims.claims(tables.table1_long(df), df) if s.startswith("Table 2"))
    assert "then VAE K=1 for 3 more epochs" in sentence and "after - first = -1.00 nats" in sentence
    assert "no verdict from one training seed" in sentence and "+1.24" in sentence
    assert "no continuation with the same objective" in sentence  # what after - first cannot separate


def test_every_caption_states_the_sign_the_images_and_the_seeds_and_names_its_table_once(tmp_path):
    df = grid(tmp_path, [0], lambda s: 1.0)
    out = tmp_path / "tables"
    report.write_tables(df, out)
    names = {}
    for name in ("table1", "wallclock"):
        caption = (out / f"{name}.md").read_text().split("\n\n")[0]
        assert "first 300 test images" in caption and "1 training seed" in caption and "budget quick" in caption
        names[name] = re.findall(r"\bTable \d+\b", caption)
    assert records.sign("IWAE", "VAE") in (out / "table1.md").read_text()
    assert names == {"table1": ["Table 1"], "wallclock": []}  # the paper's numbers only, each once
    tex = (out / "table1.tex").read_text()
    assert ("\\caption*{" in tex or "\\captionof*{" in tex) and "\\caption{" not in tex  # LaTeX's own numbers cannot collide with the papers'


def test_figures_against_k_need_several_k(tmp_path):
    many = grid(tmp_path / "a", [0], lambda s: 1.0)
    one_k = records.collect([write_metrics(tmp_path / "b", objective=o, k=50) for o in ("vae", "iwae")])
    assert {"nll_vs_k", "active_units", "wallclock"} <= set(figures_for(many))
    assert not {"nll_vs_k", "active_units", "wallclock"} & set(figures_for(one_k))


def test_a_floor_measured_elsewhere_says_where_and_is_not_applied_beyond_its_cell():
    floor = pd.DataFrame([dict(dataset="mnist", n_layers=1, k=5, budget="noise", epochs=4, seeds=3,
                               images="the first 1,000 test images (binarisation seed 1234)", nll_sd_vae=0.2,
                               nll_sd_iwae=0.2, iwae_minus_vae=-1.1, iwae_minus_vae_sd=0.17, low=-1.5, high=-0.7)])
    here = dict(epochs=40, images="the first 2,000 test images (binarisation seed 1234)")
    note = claims.floor_note(floor, "mnist", 1, 5, -2.1, here)
    assert "not at this run's 40 epochs and the first 2,000 test images" in note
    assert "likely a lower bound" in note  # authors' initial weights shared by the seeds (not recorded: assumed so)
    assert claims.floor_note(floor, "mnist", 2, 5, -2.1, here) == ""  # another cell: no floor
    assert claims.floor_note(floor, "mnist", 1, 50, -2.1, here) == ""


def test_every_caption_is_written_once_and_the_html_report_files_come_from_it():
    """The HTML report's caption files are iwae.captions' text (regenerate: python -m iwae.captions workflow/report),
    every figure and table the pipeline can promise has one, and the LaTeX report reads the figures' from
    captions.tex."""
    from conftest import REPO

    from iwae import captions

    folder = REPO / "workflow" / "report"
    for name, text in captions.rst_files().items():
        assert (folder / name).read_text() == text, f"{name} is stale: run python -m iwae.captions workflow/report"
    names = set(figures.figure_names(several_k=True, curve=True)) | {"samples", "snr"}
    assert names <= set(captions.FIGURES)
    assert set(report.table_names(curve=True, noise_floor=True)) | {"table3", "estimators", "snr"} <= set(captions.TABLES)
    tex = captions.tex_definitions()
    assert all(f"\\csname cap:{n}\\endcsname" in tex for n in names)
    assert "\\fig{nll_vs_k}\n" in (REPO / "paper" / "report.tex").read_text()  # the caption is not written there


def test_each_tables_caption_starts_with_its_one_caption(tmp_path):
    from iwae import captions

    df = grid(tmp_path / "runs", [0, 1], lambda s: 1.0 + 0.2 * s)  # two seeds: Table 1 and the noise floor
    report.write_tables(df, tmp_path / "tables")
    for name in ("table1", "table2", "wallclock", "noise_floor"):
        text = (tmp_path / "tables" / f"{name}.md").read_text()
        if name == "table2" and "not part of this run" in text:
            continue
        assert text.startswith(captions.table(name)), name
    cost = (tmp_path / "tables" / "wallclock.md").read_text()  # records without the machine's load say so once
    assert "load is not in these records" in cost and "machine load" not in cost
    # the floor printed with its own interval (an sd over 2 seeds: chi-square, 1 degree of freedom) and its seeds'
    # initial weights
    floor = pd.read_csv(tmp_path / "tables" / "noise_floor.csv").iloc[-1]  # the last row of the table below
    low, high = stats.sd_interval(floor.iwae_minus_vae_sd, 2)
    assert high / floor.iwae_minus_vae_sd > 30  # one degree of freedom: the upper end 31.9 times the estimate
    row = (tmp_path / "tables" / "noise_floor.md").read_text().splitlines()[-1]
    assert f"{floor.iwae_minus_vae_sd:.2f} [{low:.2f}, {high:.2f}]" in row and "the authors' (shared by every seed)" in row


def test_tex_escape_makes_every_special_character_printable():
    from iwae.render import tex_escape

    assert tex_escape("50% of a_b & #1 in p(x|h) >= 0.01, 'paper' -> ours ± 0.1") == (
        "50\\% of a\\_b \\& \\#1 in p(x$|$h) $\\geq$ 0.01, `paper' $\\to$ ours $\\pm$ 0.1")
    assert tex_escape("a\\b") == "a\\textbackslash{}b"
    assert tex_escape("SNR^2 ~ 1/draws, x^y") == "SNR$^{2}$ \\textasciitilde{} 1/draws, x\\textasciicircum{}y"
    assert tex_escape("Var_x E_q[u|x], sum_k w_k, {objective} $5") == (
        "$\\mathrm{Var}_{x}$ $E_{q}$[u$|$x], $\\sum_{k}$ $w_{k}$, \\{objective\\} \\$5")
    # the paper's subscripted symbols as math, an identifier's underscore still escaped, a hyphen not a minus
    assert tex_escape("-L_1 >= -L_5000 (A_u of eval_k, IWAE-L_64)") == (
        "$-L_{1}$ $\\geq$ $-L_{5000}$ ($A_{u}$ of eval\\_k, IWAE-$L_{64}$)")


def test_the_cost_table_projects_the_paper_budget_from_the_measured_steps(tmp_path):
    """Closed form: a job's paper hours are its measured ms per update x the paper's updates / 3.6e6; the sentence
    sums the measured jobs and names those this run did not measure."""
    df = grid(tmp_path, [0], lambda s: 1.0)  # MNIST 1 layer, K = 1 and 5: two of the paper's 14 jobs
    j = tables.jobs(df)
    proj, sentences = tables.projection(j)
    ms = {int(r.k): r.stack_ms_per_update for r in j.itertuples()}
    for r in proj.itertuples():
        k = int(r.job.split("K=")[1])
        assert r.paper_updates == 3280 * 2980 and r.paper_hours == pytest.approx(ms[k] * 3280 * 2980 / 3.6e6)
    assert f"{proj.paper_hours.sum():,.1f} hours for the 2 of 14 jobs" in sentences[0]
    assert "Not measured by this run: mnist L1 K=50" in sentences[0]


def test_the_cost_table_says_when_other_work_shared_the_machine(tmp_path):
    """A one-thread job whose median load is half a core or more above its thread was slowed by other work: the
    cost table prints its load against the cores and the projection's sentence says so; a job at its own thread
    is not named, and records from before the load was recorded say so instead of a number."""
    def job(loads, k):
        path = write_metrics(tmp_path, k=k)
        m = json.loads(path.read_text())
        m["train"]["device"] = "CPU (AMD EPYC, 1 thread)"
        m["train"]["history"] = [dict(h, load=v, cores=2) for h, v in zip(m["train"]["history"], loads)]
        path.write_text(json.dumps(m))
        return path

    quiet, shared = job([1.0, 1.0, 0.9, 1.2], 1), job([2.1, 1.9, 2.0, 0.9], 5)
    j = tables.jobs(records.collect([quiet, shared]))
    assert list(tables.jobs_shown(j)["machine load"]) == ["1.0 of 2 cores", "1.9 of 2 cores"]  # medians
    sentence = tables.projection(j)[1][0]
    assert "Other work shared the machine while 1 of these 2 jobs trained (their median load 1.9 to 1.9 of 2 " \
           "cores, above their 1 thread)" in sentence
    assert "shared the machine while" not in tables.projection(tables.jobs(records.collect([quiet])))[1][0]
    old = tables.jobs(records.collect([write_metrics(tmp_path / "old", k=5)]))
    assert "machine load" not in tables.jobs_shown(old)  # a column of "not recorded" would say nothing
    assert list(tables.jobs_shown(tables.jobs(records.collect([quiet, write_metrics(tmp_path / "old", k=50)])))[
        "machine load"]) == ["1.0 of 2 cores", "not recorded"]  # a run resumed by newer code: each job's own
    assert "shared the machine while" not in tables.projection(old)[1][0]


def test_a_k1_cell_trained_once_fills_both_columns_as_the_paper_prints_it(tmp_path):
    """At K=1 VAE and IWAE are one objective: a run that trains the cell once (the cpu_paper budget's vae-k1) prints
    it under both, with the paper's number beside each, and IWAE - VAE as identical."""
    paths = [write_metrics(tmp_path, objective="vae", k=1), write_metrics(tmp_path, objective="vae", k=5),
             write_metrics(tmp_path, objective="iwae", k=5, shift=-1.0)]
    t = tables.table1_paper(tables.table1_long(records.collect(paths)))
    k1 = t[t.K == 1].iloc[0]
    assert k1["IWAE: ours"] == "= VAE (one objective at K=1)" and k1["IWAE: paper"] == "86.76 (19)"
    assert k1["IWAE - VAE [95% CI]"] == "identical (K=1)"
    assert t[t.K == 5].iloc[0]["IWAE - VAE [95% CI]"].startswith("-1.00")


def test_the_learning_curves_caption_says_what_its_panels_show(tmp_path):
    """One training seed: each model has its own interval bars; several: a point is the seeds' mean and has none;
    the close-up panel is named only where a cell has 5 or more stages (the figure draws it only then)."""
    from iwae import figures

    def run(seeds, epochs):
        return records.collect([write_metrics(tmp_path / f"s{len(seeds)}e{len(epochs)}" / f"ep{e}", objective=o,
                                              seed=s, epochs=e, shift=5.0 / e)
                                for s in seeds for e in epochs for o in ("vae", "iwae")])

    captions_of = {}
    for name, df in {"one seed, 4 stages": run([0], [1, 4, 13, 40]),
                     "one seed, 5 stages": run([0], [1, 4, 13, 40, 121]),
                     "three seeds, 4 stages": run([0, 1, 2], [1, 4, 13, 40])}.items():
        figures.learning_curve(df, tmp_path / name / "curve")
        captions_of[name] = (tmp_path / name / "curve.caption.tex").read_text()
    four = captions_of["one seed, 4 stages"]
    assert "Bars: each model" in four and "close up" not in four
    five = captions_of["one seed, 5 stages"]
    assert "Bars: each model" in five and "latest 3 evaluated stages close up" in five
    many = captions_of["three seeds, 4 stages"]
    assert "mean over the seeds, without bars" in many and "Bars" not in many and "close up" not in many


def test_the_snr_tables_left_out_ks_are_lettered_notes_under_it(tmp_path):
    """A K left out of a slope's fit is named once under the table, its letter in each cell it applies to, so that
    the table stays narrow enough to print at a legible size; a cell without one has no letter."""
    rows = pd.DataFrame(dict(checkpoint=["trained"] * 2, model=["m.pt"] * 2, k=[1, 10], draws=[200] * 2,
                             images=[5] * 2))
    fitted = pd.DataFrame(dict(estimator=["iwae", "rws", "rws_dreg", "rws_dreg"],
                               network=["recognition", "recognition", "recognition", "generative"],
                               checkpoint=["trained"] * 4, slope=[-0.5, 0.2, 0.1, 0.5], low=[-0.6, 0.1, 0.0, 0.4],
                               high=[-0.4, 0.3, 0.2, 0.6], ks_without_signal=["", "1", "1", ""],
                               ks_undefined=["", "", "1", "1"]))
    report.write_snr_table(rows, fitted, tmp_path / "snr")
    lines = (tmp_path / "snr.md").read_text().splitlines()
    caption, table = lines[0], [line for line in lines if line.startswith("| ")]
    assert "(a): no signal at K=1, left out of the fit; (b): zero gradient, no SNR, at K=1, left out" in caption
    cells = {line.split("|")[1].strip(): line for line in table[1:]}
    assert "-0.50 [-0.60, -0.40] " in cells["IWAE"] and "(a)" not in cells["IWAE"]
    assert "+0.20 [+0.10, +0.30] (a)" in cells["RWS"]
    assert "+0.10 [+0.00, +0.20] (a) (b)" in cells["RWS-DReG"] and "+0.50 [+0.40, +0.60] (b)" in cells["RWS-DReG"]


def test_the_learning_curve_draws_the_final_models_beside_the_papers_numbers(tmp_path, monkeypatch):
    """The finished models on all their test images are hollow diamonds at their own epochs and NLL, and IWAE - VAE
    of the two at the pair's epochs; the paper's crosses at 3,280 epochs carry its Table 1 numbers; a K=1 cell
    (one objective) gets a sentence where the IWAE - VAE panel would be."""
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda fig, stem, note="": drawn.setdefault("fig", fig))
    curve = records.collect([write_metrics(tmp_path / "curve" / f"ep{e}", objective=o, k=k, epochs=e, shift=5.0 / e)
                             for e in (1, 4) for o, k in (("vae", 5), ("iwae", 5), ("vae", 1))])
    finals = records.collect([write_metrics(tmp_path / "final", objective="vae", k=5, epochs=3280, shift=-12.0),
                              write_metrics(tmp_path / "final", objective="iwae", k=5, epochs=3280, shift=-13.5)])
    figures.learning_curve(curve, tmp_path / "curve", finals)
    rows = [ax for ax in drawn["fig"].axes if ax.get_title() or ax.texts]
    k5 = next(ax for ax in rows if ax.get_title().endswith("K=5"))
    pair = next(ax for ax in rows if ax.get_title().startswith("IWAE - VAE"))

    def points(ax, marker):
        return sorted((float(x), round(float(y), 6)) for line in ax.get_lines() if line.get_marker() == marker
                      for x, y in zip(line.get_xdata(), line.get_ydata()))

    nll = {o: float(finals[finals.objective == o].nll.iloc[0]) for o in ("vae", "iwae")}
    assert points(k5, "D") == sorted((3280.0, round(v, 6)) for v in nll.values())
    assert points(pair, "D") == [(3280.0, round(nll["iwae"] - nll["vae"], 6))]
    ref = records.paper_reference("table1").set_index(["dataset", "n_layers", "k", "objective"]).nll
    assert points(k5, "x") == sorted((3280.0, round(float(ref[("mnist", 1, 5, o)]), 6)) for o in ("vae", "iwae"))
    assert any("one objective" in t.get_text() for ax in rows for t in ax.texts)
    k1 = next(ax for ax in rows if ax.get_title().endswith("K=1"))
    assert points(k1, "D") == []  # no finished K=1 model given: nothing hollow in its panel


def test_final_models_of_several_seeds_are_one_diamond_each_at_the_seeds_mean(tmp_path, monkeypatch):
    """Several training seeds: the curve's points are the seeds' means, and so is each final diamond; IWAE - VAE of
    the finals is the mean of the seeds' paired differences."""
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda fig, stem, note="": drawn.setdefault("fig", fig))
    curve = records.collect([write_metrics(tmp_path / "curve" / f"ep{e}s{s}", objective=o, seed=s, epochs=e,
                                           shift=5.0 / e) for e in (1, 4) for o in ("vae", "iwae") for s in (0, 1)])
    finals = records.collect([write_metrics(tmp_path / "final", objective=o, seed=s, epochs=3280,
                                            shift=-12.0 - (1.5 if o == "iwae" else 0) - s,
                                            rng=np.random.default_rng(s))
                              for o in ("vae", "iwae") for s in (0, 1)])
    figures.learning_curve(curve, tmp_path / "curve", finals)
    axes = [ax for ax in drawn["fig"].axes if ax.get_title()]
    k5, pair = axes[0], next(ax for ax in axes if ax.get_title().startswith("IWAE - VAE"))
    diamonds = sorted(round(float(y), 6) for line in k5.get_lines() if line.get_marker() == "D"
                      for y in line.get_ydata())
    mean = {o: float(finals[finals.objective == o].nll.mean()) for o in ("vae", "iwae")}
    assert diamonds == sorted(round(v, 6) for v in mean.values())
    (x, y), = [(float(a), float(b)) for line in pair.get_lines() if line.get_marker() == "D"
               for a, b in zip(line.get_xdata(), line.get_ydata())]
    assert (x, y) == pytest.approx((3280.0, mean["iwae"] - mean["vae"]))


def test_a_model_keeps_its_colour_in_training_so_far_when_another_finishes(tmp_path, monkeypatch):
    """training_so_far.png is drawn again at every save of a long run: each model's line keeps its colour and
    style whichever models have finished (the first model of each objective in name order gets that objective's
    colour), so that two saves' figures read alike."""
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, stem, note="": drawn.append(fig))
    names = ["mnist/L1/vae-k5/seed0", "mnist/L1/iwae-k5/seed0", "mnist/L1/vae-k1/seed0", "mnist/L2/vae-k1/seed0"]
    histories = {n: [dict(epoch=e, stage=int(np.log(2 * e + 1) / np.log(3)), train_objective=-100.0 + 0.1 * e + i)
                     for e in range(40)] for i, n in enumerate(names)}

    def lines(finished):
        figures.training_so_far(histories, tmp_path / "f", "", finished=frozenset(finished))
        whole = drawn[-1].axes[0]  # every epoch of every model, one line each, in the order drawn
        return {round(float(line.get_ydata()[0]), 6): (line.get_color(), line.get_linestyle())
                for line in whole.get_lines()}

    by_start = {round(100.0 - i, 6): n for i, n in enumerate(names)}
    before, after = lines(names[:2]), lines(names[:3])
    assert before == after and len(set(before.values())) == 4
    colour = {by_start[y]: c for y, (c, _) in after.items()}
    assert colour["mnist/L1/iwae-k5/seed0"] == figures.PALETTE["IWAE"]
    assert colour["mnist/L1/vae-k1/seed0"] == figures.PALETTE["VAE"]  # first VAE in name order, finished or not


def test_a_model_given_twice_to_the_tables_is_an_error_that_names_both_files(tmp_path):
    """A table has one cell per model: the same model's metrics twice (e.g. a published run's records with the
    family's copy of its IWAE among them) is refused, naming the model and both files, not averaged as two seeds
    or failed deep inside the claims; the same cell's other seeds and Table 2's continuations are other models."""
    own = write_metrics(tmp_path / "records", objective="iwae", k=5)
    family = write_metrics(tmp_path / "records" / "estimators", objective="iwae", k=5)
    others = [write_metrics(tmp_path / "records", objective="iwae", k=5, seed=1),
              write_metrics(tmp_path / "records", objective="iwae", k=5, continued_from="vae-k5")]
    df = records.collect([own, *others])
    assert records.one_per_model(df) is df
    with pytest.raises(ValueError, match="several \\(mnist L1 iwae-k5 seed 0: [^;]*\\)") as e:
        records.one_per_model(records.collect([own, family, *others]))
    assert str(own) in str(e.value) and str(family) in str(e.value) and "seed 1" not in str(e.value)
