"""A run published into a docs folder (iwae.publish): its records suffice to write its tables again, the
hand-written README is kept, and files it did not write are named, not deleted."""

from __future__ import annotations

import pytest
from test_report import write_metrics

from iwae import records, report
from iwae.publish import publish


def test_the_published_records_write_the_same_tables_again_and_nothing_hand_written_is_lost(tmp_path):
    run = tmp_path / "run"
    results = run / "results"
    paths = [write_metrics(results / "mnist", objective=obj, k=5, seed=s, shift=2.0 - 0.3 * (obj == "iwae"))
             for s in (0, 1) for obj in ("vae", "iwae")]
    report.write_tables(records.collect(paths), results / "tables")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("written by hand")
    (docs / "old.md").write_text("an earlier run's table")

    wrote, other = publish(run, docs)

    assert {"table1.md", "claims.md", "wallclock.csv"} <= set(wrote) and len(wrote) == len(set(wrote))
    assert (results / "tables" / "table2.md").exists() and not {"table2.md", "table2.csv"} & set(wrote)  # no rows
    assert (docs / "README.md").read_text() == "written by hand"
    assert other == ["old.md"] and (docs / "old.md").exists()
    again = tmp_path / "again"
    report.write_tables(records.collect(sorted(docs.glob("records/**/metrics.json"))), again)
    for name in ("table1.md", "table1.csv", "claims.md", "noise_floor.csv"):
        assert (again / name).read_text() == (docs / name).read_text(), name


def test_a_run_without_its_report_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "run" / "results").mkdir(parents=True)
    with pytest.raises(SystemExit, match="has not written its report yet; run it to its end"):
        publish(tmp_path / "run", tmp_path / "docs")
