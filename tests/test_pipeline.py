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
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "paper", "profiles"]


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
    out = snakemake(wd, "-n", "-p", "--config", "budget=paper")
    counts = job_counts(out.stdout + out.stderr)
    assert counts["train"] == 24  # 2 datasets x 2 layer counts x {vae, iwae} x K in {1, 5, 50}
    assert counts["train_continued"] == 2  # Table 2
    assert counts["evaluate"] == 26
    assert counts["fetch_data"] == 2
    text = out.stdout + out.stderr
    for cell in ("results/omniglot/L2/iwae-k50/seed0/model.pt", "results/mnist/L1/vae-k1/seed0/model.pt",
                 "results/mnist/L1/continued/vae-k1_then_iwae-k50/seed0/model.pt",
                 "results/mnist/L1/continued/iwae-k50_then_vae-k1/seed0/model.pt"):
        assert cell in text
    assert "--stages 0,1,2,3,4,5,6,7" in text and "--k 5000" in text


@pytest.mark.parametrize(
    "override, expected",
    [
        (["budget=fast"], r"'budget'.*'fast'.*\['paper', 'quick', 'smoke'\]"),
        (["device=gpu"], r"device"),
        (["objectives=[vae,rws]"], r"rws"),
    ],
)
def test_bad_config_value_names_the_key(tmp_path, override, expected):
    wd = workflow_copy(tmp_path)
    out = snakemake(wd, "-n", "--config", *override, check=False)
    assert out.returncode != 0
    assert re.search(expected, out.stdout + out.stderr, re.S), out.stdout + out.stderr


def test_lint_is_clean(tmp_path):
    out = snakemake(workflow_copy(tmp_path), "--lint")
    assert "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(tmp_path):
    mirror = mirror_or_fail()
    wd = workflow_copy(tmp_path)
    write_fake_omniglot(tmp_path / "tiny" / "chardata.mat", n_train=1_400, n_test=60)
    config = ["--config", "budget=smoke", f"data_mirror={mirror}", f"omniglot_file={tmp_path / 'tiny' / 'chardata.mat'}",
              "allow_unverified=[omniglot]"]
    snakemake(wd, "--cores", "2", *config)

    # every table and figure, the report and (where latexmk is, as in CI) the PDF
    for name in ("table1", "table2", "wallclock"):
        for ext in ("csv", "md", "tex"):
            assert (wd / "results" / "tables" / f"{name}.{ext}").stat().st_size > 0
    for fig in ("nll_vs_k", "active_units_vs_k", "wallclock_vs_k", "activity_hist", "bounds", "training_curves",
                "samples"):
        assert (wd / "results" / "figures" / f"{fig}.png").stat().st_size > 10_000
    if shutil.which("latexmk") or os.environ.get("CI"):
        assert (wd / "results" / "paper" / "report.pdf").read_bytes()[:4] == b"%PDF"
    snakemake(wd, "--cores", "1", *config, "--report", "report.html")
    html = (wd / "report.html").read_text(errors="ignore")
    assert "nll_vs_k.png" in html and "activity_hist.png" in html

    # the tables hold the runs' numbers
    t1 = pd.read_csv(wd / "results" / "tables" / "table1.csv")
    assert len(t1) == 24
    for _, row in t1.iterrows():
        m = json.loads((wd / "results" / row.dataset / f"L{row.n_layers}" / f"{row.objective}-k{row.k}" / "seed0"
                        / "metrics.json").read_text())
        assert row.nll == pytest.approx(-m["eval"]["test_ll"], abs=1e-9)
        assert str(row.active_units) == "+".join(map(str, m["eval"]["active_units"]))
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
