"""The eager training step of an older commit against today's, in one process, taking turns on the same MNIST
images (benchmarks/common.time_rounds): "nothing gets slower on the CPU" for a restructuring of the engine.

The older package is taken from git (``git archive <commit> src/iwae``) into a temporary folder and imported
as ``iwae_old``. Its API is that of the commit this was written against (86ebd31, before the one-home
restructuring: ``iwae.stack.Stack(configs, models, data, lr).advance``); another commit may need another
adapter in ``old_stack``.

    .venv/bin/python benchmarks/bench_before_after.py [--before 86ebd31] [--rounds 15]

Prints, per (layers, K, members), the best-of-rounds ms per step before and now and their ratio.
"""
from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import test_images, time_rounds  # noqa: E402

from iwae.config import TrainConfig  # noqa: E402
from iwae.stack import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def import_old(commit: str, into: Path):
    """``src/iwae`` of ``commit`` as the package ``iwae_old`` (its own imports rewritten to match)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src/iwae"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "iwae_old"
    (into / "src" / "iwae").rename(package)
    for f in package.rglob("*.py"):
        f.write_text(re.sub(r"\biwae\b(?=[.\s])", "iwae_old", f.read_text()))
    sys.path.insert(0, str(into))
    return (importlib.import_module("iwae_old.stack"), importlib.import_module("iwae_old.train"),
            importlib.import_module("iwae_old.model"))


def old_stack(old, layers: int, k: int, members: int, grey: torch.Tensor):
    stack_mod, train_mod, model_mod = old
    configs = [train_mod.TrainConfig(n_layers=layers, k=k, objective="iwae", seed=s, init="seeded")
               for s in range(members)]
    bias = model_mod.output_bias_from_data(grey)
    models = [model_mod.initialise(model_mod.IWAEModel(model_mod.ModelConfig(layers)), "seeded", bias, seed=s)
              for s in range(members)]
    stack = stack_mod.Stack(configs, models, grey, lr=1e-4)
    stack.start_epoch(1e-4, 0)
    return stack.advance


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default="86ebd31", help="the older commit")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    grey, _ = test_images(2000, torch.device("cpu"), binary=False)
    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(a.before, Path(tmp))
        print(f"eager step, CPU, {a.threads} threads: {a.before} (before) against the working tree (now)")
        for layers in (1, 2):
            for k in (1, 5, 50):
                for members in (1, 10):
                    now = build([TrainConfig(n_layers=layers, k=k, objective="iwae", seed=s, init="seeded")
                                 for s in range(members)], grey, lr=1e-4)
                    now.start_epoch(1e-4, 0)
                    before = old_stack(old, layers, k, members, grey)
                    t = time_rounds({"before": before, "now": now.step}, torch.device("cpu"), rounds=a.rounds,
                                    number=2 if k == 50 else 10)
                    b, n = 1e3 * min(t["before"]), 1e3 * min(t["now"])
                    print(f"L{layers} K={k:>2} M={members:>2}: before {b:7.3f} ms, now {n:7.3f} ms: "
                          f"now/before {n / b:.3f}", flush=True)


if __name__ == "__main__":
    main()
