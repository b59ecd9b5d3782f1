"""The Snakemake pipeline: full DAG of the paper budget, config validation, lint, and a smoke run end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, mirror_or_fail, write_fake_omniglot

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "paper", "profiles", "src"]


def workflow_copy(dest: Path) -> Path:
    """The workflow in a folder of its own, so that tests never touch the user's results/."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 1200, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(SNAKEMAKE + list(args), cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("Reasons:")[0] if "Reasons:" in output else output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def test_paper_budget_dry_run_shows_every_cell(tmp_path):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "-n", "-p", "--config", "budget=paper", "device=cpu")
    counts = job_counts(out.stdout + out.stderr)
    assert counts["train"] == 12  # one job per (dataset, layers, K): VAE and IWAE trained as one stack
    assert counts["train_continued"] == 2  # Table 2
    assert counts["evaluate"] == 26
    assert counts["fetch_data"] == 2
    text = out.stdout + out.stderr
    for cell in ("results/omniglot/L2/iwae-k50/seed0/model.pt", "results/mnist/L1/vae-k1/seed0/model.pt",
                 "results/mnist/L1/continued/vae-k1_then_iwae-k50/seed0/model.pt",
                 "results/mnist/L1/continued/iwae-k50_then_vae-k1/seed0/model.pt"):
        assert cell in text
    assert "--stages 0,1,2,3,4,5,6,7" in text and "--k 5000" in text and "--objectives vae,iwae" in text
    assert "--init authors --data-order fixed" in text and "--optimizer published" in text
    assert "gpu=1" not in text  # device cpu: no job asks for a GPU


def test_paper_budget_on_cuda_asks_one_gpu_per_train_and_evaluate_job(tmp_path):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "-n", "--config", "budget=paper", "device=cuda", "seeds=[0,1,2,3,4]")
    text = out.stdout + out.stderr
    jobs = [j for j in text.split("\n\n") if "rule train" in j or "rule evaluate" in j]
    assert jobs and all("gpu=1" in j for j in jobs), jobs[:2]
    assert job_counts(text)["train"] == 12  # five seeds cost no more jobs: each group trains them together


def test_the_noise_floor_is_asked_of_a_run_only_when_it_can_be_written(tmp_path):
    """The tables rule promises noise_floor.* for two or more seeds of VAE and IWAE (what iwae.tables.noise_floor
    needs), not for a run of one objective: a promise the report cannot keep would fail the run at its end."""
    wd = workflow_copy(tmp_path)
    both = snakemake(wd, "-n", "--config", "budget=smoke", "seeds=[0,1]")
    iwae_only = snakemake(wd, "-n", "--config", "budget=smoke", "seeds=[0,1]", "objectives=[iwae]", "table2=false")
    assert "results/tables/noise_floor.md" in both.stdout + both.stderr
    assert "results/tables/noise_floor.md" not in iwae_only.stdout + iwae_only.stderr


def test_a_grid_key_set_by_the_user_wins_over_the_budgets_grid(tmp_path):
    """The gpu_tiny budget's grid trains seeds 0 and 1 without Table 2; `--config seeds=[0,1,2]` makes it three
    and `table2=true` (config.yaml's own value) brings Table 2 back (a budget's grid narrows the defaults, not
    what the user asks for); table2=true is refused with the fix when the grid has no VAE to continue."""
    wd = workflow_copy(tmp_path)
    budget_only, user = (snakemake(wd, "-n", "--config", "budget=gpu_tiny", *extra).stdout
                         for extra in ([], ["seeds=[0,1,2]"]))
    assert "results/mnist/L1/vae-k1/seed1/model.pt" in budget_only and "seed2/model.pt" not in budget_only
    assert "results/mnist/L1/vae-k1/seed2/model.pt" in user
    # a value equal to config.yaml's default counts too: table2 is true there and false in gpu_tiny's grid
    assert "train_continued" in snakemake(wd, "-n", "--config", "budget=gpu_tiny", "table2=true").stdout
    out = snakemake(wd, "-n", "--config", "objectives=[iwae]", "table2=true", check=False)
    assert out.returncode != 0 and "add vae and iwae to objectives, or set table2=false" in out.stdout + out.stderr


@pytest.mark.parametrize(
    "override, expected",
    [
        (["budget=fast"], r"budget 'fast' is not one of the defined budgets \[.*'paper', 'quick', 'smoke'\]"),
        (["device=gpu"], r"key 'device': 'gpu' is not allowed; use auto, cpu, cuda or cuda:N"),
        (["ks=[-5]"], r"key 'ks' \(item 1\): -5 is not allowed; each value must be >= 1"),
        (["seeds=[0,-1]"], r"key 'seeds' \(item 2\): -1 is not allowed; each value must be >= 0"),
        (["objectives=[vae,wake_sleep]"], r"objectives: unknown objective 'wake_sleep'"),
        (["objectives=[iwae,iwae_dreg]", "layers=[2]"], r"objectives: objective 'iwae_dreg' is written for one "
                                                         r"stochastic layer"),
        (["budgett=paper"], r"unknown key 'budgett': did you mean 'budget'\?"),
    ],
)
def test_bad_config_value_is_one_line_naming_the_key_and_what_it_allows(tmp_path, override, expected):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "-n", "--config", *override, check=False)
    assert out.returncode != 0
    said = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("config: ")]
    assert len(said) == 1 and re.search(expected, said[0]), out.stdout + out.stderr
    assert "Traceback" not in out.stderr and 'File "' not in out.stderr  # no frames


def test_jobs_run_with_the_python_that_runs_snakemake_whatever_is_on_path(tmp_path):
    """`.venv/bin/snakemake` without the environment activated: the jobs still run the environment's Python."""
    wd = workflow_copy(tmp_path)
    env = dict(os.environ, PATH="/usr/bin:/bin")
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--config", "budget=smoke"],
                         cwd=wd, capture_output=True, text=True, env=env)
    commands = [line for line in out.stdout.splitlines() if " -m iwae " in line]
    assert commands and all(f"{sys.executable} -m iwae " in line for line in commands), out.stdout[-2000:]


def test_lint_is_clean(tmp_path):
    out = snakemake(workflow_copy(tmp_path), "--lint")
    assert "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr


def test_workflow_is_snakefmt_formatted():
    out = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", "Snakefile", "workflow"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(tmp_path):
    mirror = mirror_or_fail()
    wd = workflow_copy(tmp_path)
    write_fake_omniglot(tmp_path / "tiny" / "chardata.mat", n_train=1_400, n_test=60)
    config = ["--config", "budget=smoke", f"data_mirror={mirror}", f"omniglot_file={tmp_path / 'tiny' / 'chardata.mat'}",
              "allow_unverified=[omniglot]"]
    snakemake(wd, "--cores", "2", *config)

    # every table and figure (PDF and PNG), the report and (where latexmk is, as in CI) the PDF
    tables = wd / "results" / "tables"
    names = []
    for name in ("table1", "table2", "wallclock"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
        assert "\\caption{" not in (tables / f"{name}.tex").read_text()  # unnumbered: the caption names the table
        caption = (tables / f"{name}.md").read_text().split("\n\n")[0]
        assert "the first 40 test images" in caption and "1 training seed" in caption  # images and seeds
        names += re.findall(r"^Table \d+", caption)
    assert len(names) == len(set(names)) == 2  # the paper's Table 1 and Table 2, each once
    for name in ("table1", "table2"):  # one sign convention, stated in every caption with a difference
        assert "in nats, negative when" in (tables / f"{name}.md").read_text().split("\n\n")[0]
    claims = (tables / "claims.md").read_text()
    assert "IWAE" in claims and "no verdict from one training seed" in claims
    assert not re.search(r": this run (supports|contradicts)", claims)  # one seed: no verdict
    for fig in ("nll_vs_k", "active_units", "activity_hist", "bounds", "training_curves", "wallclock", "samples"):
        assert (wd / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (wd / "results" / "figures" / f"{fig}.pdf").read_bytes()[:4] == b"%PDF"
    for fig in ("active_units", "activity_hist", "wallclock"):  # figures over training images: no evaluation note
        assert "test NLL" not in (wd / "results" / "figures" / f"{fig}.caption.tex").read_text()
    if shutil.which("latexmk") or os.environ.get("CI"):
        assert (wd / "results" / "paper" / "report.pdf").read_bytes()[:4] == b"%PDF"
    snakemake(wd, "--cores", "1", *config, "--report", "report.html")
    html = (wd / "report.html").read_text(errors="ignore")
    assert "nll_vs_k.png" in html and "activity_hist.png" in html and "table1.md" in html
    # the captions take the budget from the run's records (the tables and footnotes), never from the config of the
    # reporting command (which may name another budget)
    assert "written from the run" in html and not re.search(r"[Bb]udget <strong>", html)

    # Table 1 in the paper's layout: one row per (dataset, layers, K) with both objectives
    md = (wd / "results" / "tables" / "table1.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| data"))
    assert all(col in header for col in ("VAE: ours", "VAE: paper", "IWAE: ours", "IWAE: paper", "IWAE - VAE [95% CI]"))
    assert len([line for line in md if line.startswith("| MNIST") or line.startswith("| OMNIGLOT")]) == 12

    # the long CSV holds the runs' numbers
    t1 = pd.read_csv(wd / "results" / "tables" / "table1.csv")
    assert len(t1) == 24
    for _, row in t1.iterrows():
        m = json.loads((wd / "results" / row.dataset / f"L{row.n_layers}" / f"{row.objective}-k{row.k}" / "seed0"
                        / "metrics.json").read_text())
        assert row.nll == pytest.approx(-m["eval"]["test_ll"], abs=1e-9)
        assert str(row.active_units) == "+".join(map(str, m["eval"]["active_units"]))
        assert len(m["eval"]["test_ll_per_image"]) == 40
        assert m["run"]["protocol"] == dict(init="authors", data_order="fixed", optimizer="published",
                                            continue_state=True, activity_ddof=0)
        assert row.budget == "smoke" and m["run"]["budget"] == "smoke"
        assert (row.data == "verified") == (row.dataset == "mnist")
        assert m["data"]["verified"] == (row.dataset == "mnist")
        assert row.nll_paper > 80  # the paper's numbers are there too, from the reference file
    t2 = pd.read_csv(wd / "results" / "tables" / "table2.csv")
    assert len(t2) == 2 and t2.nll_second.notna().all()

    # finished work is not recomputed; a lost metrics file is rebuilt without retraining
    again = snakemake(wd, "--cores", "2", *config, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    lost = "results/mnist/L1/iwae-k5/seed0/metrics.json"
    (wd / lost).unlink()
    counts = job_counts(snakemake(wd, lost, "-n", "--cores", "2", *config).stdout)
    assert counts.get("train", 0) == 0 and counts["evaluate"] == 1


@pytest.mark.slow
def test_family_experiments_smoke_end_to_end(tmp_path):
    """Beyond the paper at the smoke budget: Table 3, the estimator comparison, the SNR slopes and figure."""
    mirror = mirror_or_fail()
    wd = workflow_copy(tmp_path)
    config = ["--config", "budget=smoke", f"data_mirror={mirror}", "datasets=[mnist]", "layers=[1]", "ks=[50]",
              "table2=false", "family=true"]
    snakemake(wd, "--cores", "2", *config)
    tables = wd / "results" / "tables"
    t3 = pd.read_csv(tables / "table3.csv")
    assert list(t3.objective) == ["iwae", "piwae_m2", "miwae_m2", "ciwae_b0.5", "vae"]  # the smoke budget's
    assert t3.nll.notna().all() and t3.neg_bound.notna().all() and (t3.neg_bound >= t3.nll - 1e-6).all()
    assert t3.nll_paper.notna().sum() == 3  # the published values, where the objectives match them
    est = pd.read_csv(tables / "estimators.csv")
    assert set(est.objective) == {"iwae", "iwae_stl", "iwae_dreg", "rws_dreg"} and est.minus_iwae.notna().sum() == 3
    slopes = pd.read_csv(tables / "snr.csv")
    assert set(slopes.network) == {"recognition", "generative"} and set(slopes.checkpoint) == {"trained (1 epoch)", "early (1 epoch)"}  # epochs from the models
    assert "Trained at budget smoke; training seed 0 (one model" in (tables / "snr.md").read_text()
    for ext in ("pdf", "png"):
        assert (wd / "results" / "figures" / f"snr.{ext}").stat().st_size > 10_000
    words = (tables / "family_claims.md").read_text()  # the family in words: every comparison and slope said
    assert "Table 3, PIWAE(2) - IWAE in test NLL" in words and "no verdict from one training seed" in words
    assert "SNR, IWAE, recognition network, trained (1 epoch): slope" in words and "expected about -1/2" in words
    assert "SNR, RWS, recognition network" in words and "no signal at K = 1" in words
    for name in ("nll_vs_k", "active_units", "wallclock"):  # one K (50): no figure against K
        assert not (wd / "results" / "figures" / f"{name}.png").exists()
    assert (wd / "results" / "figures" / "bounds.png").exists()


def test_paired_difference_column_prints_its_interval_or_the_bare_difference():
    """Tables print "d [low, high]"; a difference without an interval (one pair) alone, never "[nan, nan]"."""
    from iwae.render import intervals

    nan = float("nan")
    t = pd.DataFrame(dict(d=[-1.234, 0.5, nan], low=[-1.5, nan, nan], high=[-0.9, nan, nan]))
    assert intervals(t, "d") == ["-1.23 [-1.50, -0.90]", "+0.50", ""]


def test_the_schemas_allowed_values_are_the_packages():
    """The config schema spells the allowed values of each protocol option again: they must be the package's."""
    import yaml

    from iwae import objectives
    from iwae.config import DATA_ORDERS
    from iwae.model import INITS
    from iwae.optim import OPTIMIZERS
    from iwae.stack import STEP_MODES

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    for key, allowed in (("init", INITS), ("optimizer", OPTIMIZERS), ("step", STEP_MODES),
                         ("data_order", DATA_ORDERS)):
        assert props[key]["enum"] == list(allowed), key
    pattern = schema["definitions"]["objectives"]["items"]["pattern"]
    for name in [*objectives._FIXED, "miwae_m8", "piwae_m16", "ciwae_b0.5", "ciwae_b1"]:
        objectives.get(name)
        assert re.fullmatch(pattern.strip("^$"), name), name  # every registry name passes the schema
    for name in ("IWAE", "iwae-dreg", "vae2x"):  # what the schema refuses, the registry refuses too
        assert not re.fullmatch(pattern.strip("^$"), name)
        with pytest.raises(ValueError):
            objectives.get(name)


def _config(**over):
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(over)
    return config


def test_a_budgets_cells_train_the_union_of_their_runs_first_cell_first():
    from iwae import pipeline

    config = _config(budget="cpu_paper")
    runs = pipeline.runs(config)
    assert runs == ["results/mnist/L1/vae-k5/seed0", "results/mnist/L1/iwae-k5/seed0",
                    "results/mnist/L1/vae-k1/seed0", "results/mnist/L2/vae-k1/seed0"]
    assert [pipeline.priority(config, r) for r in runs] == [3, 3, 2, 1]
    # a key the user gives wins over the budget's grid and its cells
    two = pipeline.runs(dict(config, seeds=[0, 1]), user_keys={"seeds"})
    assert len(two) == 8 and "results/mnist/L2/vae-k1/seed1" in two
    only_iwae = pipeline.runs(dict(config, objectives=["iwae"]), user_keys={"objectives"})
    assert only_iwae == ["results/mnist/L1/iwae-k5/seed0", "results/mnist/L1/iwae-k1/seed0",
                         "results/mnist/L2/iwae-k1/seed0"]
    # without cells: the product of the grid (the quick budget's 24 Table 1 runs)
    assert len(pipeline.runs(_config(budget="quick"))) == 2 * 2 * 2 * 3


def test_cpu_paper_dry_run_chains_each_models_stages_and_evaluates_every_snapshot(tmp_path):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "-n", "-p", "--config", "budget=cpu_paper")
    counts = job_counts(out.stdout)
    assert counts["train_stage"] == 4 * 7 and counts["train_last_stage"] == 4  # one job per model and stage
    assert counts["evaluate_stage"] == 4 * 7 and counts["evaluate"] == 4
    assert "train" not in counts and "train_together" not in counts
    text = out.stdout
    assert "--until-stage 6" in text and "--stages 0,1,2,3,4,5,6,7" in text and "--checkpoint-minutes 5" in text
    assert "results/mnist/L2/vae-k1/seed0/model.pt" in text and "iwae-k1" not in text
    assert "--test-subset 2000" in text  # the stage snapshots on the first 2,000 test images


def test_every_run_and_dry_run_starts_by_saying_what_it_is_and_costs(tmp_path):
    wd = workflow_copy(tmp_path)
    quick = snakemake(wd, "-n", "--cores", "2").stderr
    paper = snakemake(wd, "-n", "--cores", "2", "--config", "budget=paper").stderr
    said = [next(line for line in out.splitlines() if line.startswith("iwae-repro, budget")) for out in (quick, paper)]
    assert said[0].startswith("iwae-repro, budget quick: 24 Table 1 models + 2 continued for Table 2, 4 epochs each")
    assert said[1].startswith("iwae-repro, budget paper: 24 Table 1 models") and "3,280 epochs each" in said[1]
    assert "all test images" in said[1] and "the first 1,000 test images" in said[0]
    hours = [float(re.search(r"training about ([\d.]+) (h|days)", s).group(1)) if "training about" in s else 0
             for s in said[1:]]
    assert re.search(r"training about \d+ min", said[0]) and hours[0] > 0  # minutes for quick, more for paper


def test_a_failed_jobs_message_and_fix_are_on_the_screen_not_only_in_its_log(tmp_path):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "--cores", "1", "data/omniglot/manifest.json", "--config", f"omniglot_file={tmp_path}/nope.mat",
                    "allow_unverified=[omniglot]", check=False)
    assert out.returncode != 0
    assert "nope.mat: no such file (given as the source of omniglot)" in out.stdout + out.stderr
