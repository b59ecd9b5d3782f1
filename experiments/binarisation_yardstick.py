"""How far another binarisation of the test images moves a model's test NLL: the yardstick for a gap to the paper
(``iwae.yardstick``), from evaluations given by hand. A long run's own: ``make cpu-paper-yardstick`` finds its pairs.

Usage: python experiments/binarisation_yardstick.py A_seed1.json A_seed2.json [B_seed1.json B_seed2.json ...]
       --out docs/paper-cpu/binarisation/yardstick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from iwae.yardstick import write  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="pairs: a model's metrics.json with one seed, then with another")
    ap.add_argument("--out", default=None, help="write OUT.csv, OUT.md and OUT.tex")
    args = ap.parse_args(argv)
    if len(args.metrics) % 2:
        sys.exit("binarisation_yardstick: give the metrics files in pairs (one model, two --seed)")
    pairs = list(zip(map(Path, args.metrics[::2]), map(Path, args.metrics[1::2])))
    print(write(pairs, Path(args.out) if args.out else None))


if __name__ == "__main__":
    main()
