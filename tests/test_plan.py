"""The pipeline's plan without Snakemake: the runs, paths and job arguments a configuration makes, the checks a schema
cannot make, and the tables and figures it promises equal to what the package writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_report import grid as report_grid

from iwae import figures, report
from iwae.plan import Plan, fill


def _config(budget="quick", **over):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(budget=budget, **over)
    for b in config["budgets"].values():  # the schema's defaults, as Snakemake's validate fills them
        for key, value in dict(eval_stages=False, train_together=False, eval_active_only=True,
                               train_per_stage=False, checkpoint_minutes=10).items():
            b.setdefault(key, value)
    return config


def test_fill_is_expand_with_the_missing_wildcards_left_open():
    assert fill("r/{dataset}/L{layers}/{objective}-k{k}", objective=["vae", "iwae"], k=[1, 5]) == [
        "r/{dataset}/L{layers}/vae-k1", "r/{dataset}/L{layers}/vae-k5", "r/{dataset}/L{layers}/iwae-k1",
        "r/{dataset}/L{layers}/iwae-k5"]


def test_the_quick_budgets_runs_paths_and_arguments():
    p = Plan(_config())
    assert len(p.runs()) == 24 and p.runs()[0] == "results/mnist/L1/vae-k1/seed0"
    assert p.table2_runs() == ["results/mnist/L1/continued/vae-k1_then_iwae-k50/seed0",
                               "results/mnist/L1/continued/iwae-k50_then_vae-k1/seed0"]
    assert p.all_metrics()[-1] == "results/mnist/L1/continued/iwae-k50_then_vae-k1/seed0/metrics.json"
    assert p.curve_metrics() == [] and p.group_snapshots("results/", p.grid) == []
    assert p.member_files("results/", p.grid) == ["results/{dataset}/L{layers}/vae-k{k}/seed0/model.pt",
                                                  "results/{dataset}/L{layers}/iwae-k{k}/seed0/model.pt"]
    assert p.stages_arg() == "--stages 0,1 --epoch-scale 1.0"
    assert "--optimizer published --init authors --data-order fixed" in p.protocol_args()
    assert p.eval_args() == ("--k 5000 --test-subset 1000 --train-subset 200 --active-units-n 500 "
                             "--activity-ddof 0 --device auto")
    assert p.snr_model() == "results/mnist/L1/iwae-k50/seed0"
    assert p.experiment_runs("table3")[0] == "results/table3/mnist/L1/iwae-k64/seed0"
    assert p.family() == [] and "results/figures/snr.png" in Plan(_config(family=True)).family()
    assert "results/tables/family_claims.md" in Plan(_config(family=True)).family()


def test_a_learning_curve_evaluates_the_stages_on_their_own_images_and_the_final_models_on_all():
    p = Plan(_config("gpu"))
    assert "--test-subset 2000" in p.eval_args(stage=True) and "--test-subset" not in p.eval_args()
    assert "--no-active-only" in p.eval_args()
    run = "results/mnist/L1/vae-k1/seed0"
    assert f"{run}/stages/stage1.metrics.json" in p.curve_metrics()  # every stage but the last ...
    assert f"{run}/stages/stage2.metrics.json" not in p.curve_metrics()  # ... whose point is the final model's
    assert len(p.curve_metrics()) == 12 * 5 * 2 + 12 * 5  # 12 models x 5 seeds: stages 0 and 1, then the final
    assert p.together_files("model.pt")[0] == "results/{dataset}/L1/vae-k1/seed0/model.pt"


def test_a_per_stage_model_chains_its_stages():
    p = Plan(_config("cpu_paper"))
    run = "results/mnist/L1/vae-k5/seed0"
    assert p.previous_snapshot(run, 0) == [] and p.previous_snapshot(run, 3) == [f"{run}/stages/stage2.pt"]
    assert p.previous_snapshot(run, None) == [f"{run}/stages/stage6.pt"]  # the last stage's job
    assert [p.priority(r) for r in p.runs()] == [3, 3, 2, 1]


@pytest.mark.parametrize("over, said", [
    (dict(objectives=["iwae", "iwae_dreg"], layers=[2]), "objectives: objective 'iwae_dreg' is written for one"),
    (dict(objectives=["iwae"]), "'table2': Table 2 continues the grid's VAE K=1 and IWAE K=50 models"),
])
def test_what_the_registry_refuses_is_said_with_the_key(over, said):
    problems = Plan(_config(**over), user_keys=over).problems()
    assert any(said in p for p in problems), problems
    assert Plan(_config()).problems() == []


def test_the_tables_and_figures_promised_are_those_the_package_writes(tmp_path):
    df = report_grid(tmp_path / "runs", [0], lambda s: 1.0)  # MNIST 1 layer, K = 1 and 5, VAE and IWAE
    config = _config(datasets=["mnist"], layers=[1], ks=[1, 5], table2=False)
    p = Plan(config, user_keys={"datasets", "layers", "ks", "table2"})
    report.write_tables(df, tmp_path / "results" / "tables")
    written = figures.write_figures(df, tmp_path / "results" / "figures")
    files = {str(f.relative_to(tmp_path)) for f in (tmp_path / "results").rglob("*.*")}
    assert set(p.tables()) <= files  # promised tables (beside them: claims, protocol, the projection)
    assert {f for f in files if "/figures/" in f} == set(p.figures())
    assert [Path(f).stem for f in p.figures() if f.endswith(".pdf")] == written
    # one K: no figure against K, promised or written
    one_k = Plan(_config(datasets=["mnist"], layers=[1], ks=[5], table2=False), user_keys={"datasets", "layers", "ks"})
    assert not any("nll_vs_k" in f for f in one_k.figures())
    assert figures.figures_for(df[df.k == 5]) == [Path(f).stem for f in one_k.figures() if f.endswith(".pdf")]
