"""A finished run's outputs into a folder to commit (``docs/quick-run`` and the like): its tables (md, csv), figures
(png), report (pdf; a table the run's grid leaves empty, such as Table 2 without its continuations, is left out),
and every record the report is written from (each model's and each stage snapshot's
``metrics.json`` with its per-image log-likelihoods, the SNR measurements), under ``records/`` in the run's layout,
so that later code writes the tables, claims and figures again without training a model::

    python -m iwae.publish runs/docs/quick docs/quick-run
    iwae report tables $(find docs/quick-run/records -name metrics.json -not -path '*stages*' \
        -not -path '*/estimators/*' -not -path '*/table3/*') --noise-floor docs/noise-floor/noise_floor.csv \
        --out /tmp/tables   # Table 1 and 2 as the run wrote them; the family's records: `iwae report family`

The folder's hand-written README.md is never touched; files an earlier publish left that this run did not write
are named (not deleted: a file may be someone's work). ``--tables-again`` writes a published folder's tables and
claims again from its records with the code as it is now (``make docs-tables``: new wording without a rerun), the
way the run's report wrote them; its report.pdf and figures need the run itself (``make docs-runs``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

KEEP = {"README.md"}
TABLES = (".md", ".csv")


def outputs(run: Path) -> dict[str, Path]:
    """What a run publishes: its name in the docs folder -> the run's file."""
    results = Path(run) / "results"
    if not (results / "tables").is_dir():
        raise SystemExit(f"{run}: no results/tables, so the run has not written its report yet; run it to its end "
                         f"(the same command resumes it), then publish")
    empty = {f.stem for f in (results / "tables").glob("*.csv") if len(f.read_text().strip().splitlines()) < 2}
    files = {f.name: f for f in sorted((results / "tables").iterdir()) if f.suffix in TABLES and f.stem not in empty}
    figures = results / "figures"
    files.update({f.name: f for f in sorted(figures.glob("*.png"))} if figures.is_dir() else {})
    if (results / "paper" / "report.pdf").exists():
        files["report.pdf"] = results / "paper" / "report.pdf"
    for f in sorted(results.rglob("*metrics.json")) + sorted((results / "snr").glob("*.csv")):
        files[str(Path("records") / f.relative_to(results))] = f
    return files


def publish(run: Path, docs: Path) -> tuple[list[str], list[str]]:
    """Copies ``outputs(run)`` into ``docs``; -> (the names written, the files there this run did not write)."""
    files = outputs(run)
    docs = Path(docs)
    for name, src in files.items():
        dest = docs / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    present = {str(p.relative_to(docs)) for p in docs.rglob("*") if p.is_file()}
    return list(files), sorted(present - set(files) - KEEP)


FAMILY = ("estimators", "table3")  # records/ folders of the family experiments (`iwae report family`)
FLOOR = Path("docs/noise-floor/noise_floor.csv")  # the config's noise_floor, relative to the repository


def table_inputs(docs: Path, floor: Path | None = FLOOR) -> list[str]:
    """The arguments of ``iwae report tables`` that wrote ``docs``'s tables in its run, from its records: each
    model's final metrics (Table 1 and 2's; not the family's, not the stage snapshots'), the learning curve (the
    stage snapshots' metrics and the final models from scratch) where the folder has one (curve.md), and the
    measured noise floor for a run of one training seed (as the pipeline's tables rule gives them)."""
    from iwae import records

    root = Path(docs) / "records"
    finals = sorted(str(p) for p in root.rglob("metrics.json")
                    if "stages" not in p.parts and p.relative_to(root).parts[0] not in FAMILY)
    if not finals:
        raise SystemExit(f"{docs}: no records/**/metrics.json to write its tables from (a folder `python -m "
                         f"iwae.publish` wrote has them)")
    args, df = list(finals), records.collect(finals)
    if (Path(docs) / "curve.md").exists():
        args += ["--curve", *sorted(str(p) for p in root.rglob("stages/*.metrics.json")),
                 *df[df.continued_from.isna()].metrics]
    if floor is not None and Path(floor).exists() and df.seed.nunique() == 1:
        args += ["--noise-floor", str(floor)]
    return args


def tables_again(docs: Path, scratch: Path, floor: Path | None = FLOOR) -> list[str]:
    """``docs``'s tables and claims (its .md and .csv files that ``iwae report tables`` writes) written again from
    its records into ``docs`` (by way of ``scratch``); all_runs.csv stays (its paths are the run's). -> the names
    that changed."""
    from iwae import cli

    cli.main(["report", "tables", *table_inputs(docs, floor), "--out", str(scratch)])
    changed = []
    for new in sorted(Path(scratch).iterdir()):
        old = Path(docs) / new.name
        kept = new.suffix not in TABLES or not old.exists() or new.name == "all_runs.csv"
        if not kept and new.read_text() != old.read_text():
            shutil.copyfile(new, old)
            changed.append(new.name)
    return changed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m iwae.publish", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="the run's folder (Snakemake's --directory, e.g. runs/docs/quick)")
    ap.add_argument("docs", nargs="+", help="the folder to commit (e.g. docs/quick-run); with --tables-again, "
                    "the published folders to write again")
    ap.add_argument("--tables-again", action="store_true", help="write the published folders' tables and claims "
                    "again from their records (no run needed)")
    args = ap.parse_args(argv)
    if args.tables_again:
        import tempfile

        for docs in ([args.run] if args.run else []) + args.docs:
            with tempfile.TemporaryDirectory() as scratch:
                changed = tables_again(Path(docs), Path(scratch))
            print(f"{docs}: {', '.join(changed) if changed else 'no table changed'}")
        return
    if args.run is None or len(args.docs) != 1:
        ap.error("give the run's folder and one docs folder (or --tables-again and the docs folders)")
    args.docs = args.docs[0]
    wrote, other = publish(Path(args.run), Path(args.docs))
    records = sum(name.startswith("records") for name in wrote)
    print(f"{args.docs}: {len(wrote) - records} tables, figures and reports, {records} records from {args.run}")
    if other:
        print(f"not written by this run (stale? delete them if so): {', '.join(other)}")


if __name__ == "__main__":
    main()
