"""A finished run's outputs into a folder to commit (``docs/quick-run`` and the like): its tables (md, csv), figures
(png), report (pdf; a table the run's grid leaves empty, such as Table 2 without its continuations, is left out),
and every record the report is written from (each model's and each stage snapshot's
``metrics.json`` with its per-image log-likelihoods, the SNR measurements), under ``records/`` in the run's layout,
so that later code writes the tables, claims and figures again without training a model::

    python -m iwae.publish runs/docs/quick docs/quick-run
    iwae report tables $(find docs/quick-run/records -name metrics.json -not -path '*stages*') --out /tmp/tables

The folder's hand-written README.md is never touched; files an earlier publish left that this run did not write
are named (not deleted: a file may be someone's work)."""

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m iwae.publish", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the run's folder (Snakemake's --directory, e.g. runs/docs/quick)")
    ap.add_argument("docs", help="the folder to commit (e.g. docs/quick-run)")
    args = ap.parse_args(argv)
    wrote, other = publish(Path(args.run), Path(args.docs))
    records = sum(name.startswith("records") for name in wrote)
    print(f"{args.docs}: {len(wrote) - records} tables, figures and reports, {records} records from {args.run}")
    if other:
        print(f"not written by this run (stale? delete them if so): {', '.join(other)}")


if __name__ == "__main__":
    main()
