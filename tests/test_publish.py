"""A run published into a docs folder (iwae.publish): its records suffice to write its tables again, the
hand-written README is kept, and files it did not write are named, not deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import write_metrics

from iwae import records, report
from iwae.publish import publish, table_inputs, tables_again


def test_the_published_records_write_the_same_tables_again_and_nothing_hand_written_is_lost(tmp_path):
    run = tmp_path / "run"
    results = run / "results"
    paths = [write_metrics(results / "mnist", objective=obj, k=5, seed=s, shift=2.0 - 0.3 * (obj == "iwae"))
             for s in (0, 1) for obj in ("vae", "iwae")]
    first = write_metrics(results / "mnist", objective="iwae", k=50)  # Table 2: a continuation, named as the
    paths += [first, write_metrics(results / "mnist", objective="vae", k=1, shift=-1.0, epochs=3,  # pipeline does
                                   continued_from=str(first.parent.relative_to(run) / "model.pt"))]
    report.write_tables(records.collect(paths), results / "tables")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("written by hand")
    (docs / "old.md").write_text("an earlier run's table")

    wrote, other = publish(run, docs)

    assert {"table1.md", "claims.md", "wallclock.csv"} <= set(wrote) and len(wrote) == len(set(wrote))
    assert (docs / "README.md").read_text() == "written by hand"
    assert other == ["old.md"] and (docs / "old.md").exists()
    again = tmp_path / "again"
    report.write_tables(records.collect(sorted(docs.glob("records/**/metrics.json"))), again)
    assert "IWAE K=50" in (again / "table2.md").read_text()  # the continuation found its first model
    for name in ("table1.md", "table1.csv", "table2.md", "claims.md", "noise_floor.csv"):
        assert (again / name).read_text() == (docs / name).read_text(), name


def test_a_table_the_grid_leaves_empty_is_not_published(tmp_path):
    run = tmp_path / "run"
    results = run / "results"
    paths = [write_metrics(results / "mnist", objective=obj, k=5) for obj in ("vae", "iwae")]
    report.write_tables(records.collect(paths), results / "tables")
    wrote, _ = publish(run, tmp_path / "docs")
    assert (results / "tables" / "table2.md").exists() and "table1.md" in wrote
    assert not {"table2.md", "table2.csv"} & set(wrote)  # no Table 2 in this grid: nothing to publish


def test_a_run_without_its_report_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "run" / "results").mkdir(parents=True)
    with pytest.raises(SystemExit, match="has not written its report yet; run it to its end"):
        publish(tmp_path / "run", tmp_path / "docs")


def test_tables_again_rewrites_a_published_folders_tables_from_its_records_as_its_run_did(tmp_path):
    """`make docs-tables`: a published folder's tables and claims written again from its records by the code as it
    is now, with the inputs the run's tables rule gave: each model's final metrics but not the family's copies nor
    the stage snapshots (else the same model twice), the curve where the folder has one, the noise floor for one
    training seed. An outdated sentence is replaced; all_runs.csv (the run's paths) and README.md stay."""
    run = tmp_path / "run"
    results = run / "results"
    paths = [write_metrics(results / "mnist", objective=obj, k=5, shift=2.0 - 0.3 * (obj == "iwae"))
             for obj in ("vae", "iwae")]
    family = write_metrics(results / "estimators" / "mnist", objective="iwae", k=5)  # the same model, the family's
    stage = write_metrics(results / "mnist" / "iwae-k5-s0" / "stages", objective="iwae", k=5, epochs=1, shift=9.0)
    stage.rename(stage.parent.parent / "stage0.metrics.json")
    floor = Path(__file__).parents[1] / "docs/noise-floor/noise_floor.csv"  # the measured floor, as the config's
    curve = records.collect([stage.parent.parent / "stage0.metrics.json", *paths])
    report.write_tables(records.collect(paths), results / "tables", curve, floor=None)
    docs = tmp_path / "docs"
    publish(run, docs)
    (docs / "README.md").write_text("written by hand")
    finals = {str(docs / "records" / p.relative_to(results)) for p in paths}

    args = table_inputs(docs, floor)
    assert set(args[:args.index("--curve")]) == finals  # not the family's copy, not the stage snapshot
    assert str(docs / "records" / family.relative_to(results)) not in args
    curve_files = set(args[args.index("--curve") + 1:args.index("--noise-floor")])
    assert curve_files == finals | {str(docs / "records/mnist/iwae-k5-s0/stages/stage0.metrics.json")}
    assert args[-2:] == ["--noise-floor", str(floor)]

    claims = (docs / "claims.md").read_text()
    (docs / "claims.md").write_text(claims.replace("IWAE", "an outdated word"))
    runs = (docs / "all_runs.csv").read_text()
    changed = tables_again(docs, tmp_path / "scratch", floor)
    assert "claims.md" in changed
    assert (docs / "claims.md").read_text() == (tmp_path / "scratch" / "claims.md").read_text()
    assert "an outdated word" not in (docs / "claims.md").read_text()
    assert (docs / "all_runs.csv").read_text() == runs and (docs / "README.md").read_text() == "written by hand"
    assert "table1.md" not in tables_again(docs, tmp_path / "again", floor)  # written again: nothing changes
