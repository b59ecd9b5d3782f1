"""Where jobs run: several GPU jobs started side by side take different GPUs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

CLAIM = """
import sys, time
from pathlib import Path
from iwae.runtime import claim_gpu
print(claim_gpu(2, Path(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_jobs_side_by_side_take_the_least_busy_gpu(tmp_path):
    """Three jobs on a 2-GPU machine: two on one GPU, one on the other (not all on cuda:0); a job that
    ends gives its GPU back."""
    procs = []
    for _ in range(3):
        procs.append(subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path), "20"], stdout=subprocess.PIPE,
                                      text=True))
        time.sleep(0.5)  # started one after another, as a scheduler does
    gpus = [int(p.stdout.readline()) for p in procs]
    counts = Counter(gpus)
    assert sorted(counts.values()) == [1, 2], gpus
    alone = min(counts, key=counts.get)  # the GPU with one job; the other's two jobs end ...
    for p, g in zip(procs, gpus):
        if g != alone:
            p.kill()
            p.wait()
    late = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path), "0"], capture_output=True, text=True, check=True)
    assert int(late.stdout) != alone  # ... and the next job takes the GPU they left
    for p in procs:
        p.kill()
        p.wait()


def test_a_pinned_copy_of_the_code_records_the_commit_it_was_copied_at(tmp_path):
    """A long run's pinned code sits inside the checkout's (ignored) run folder, where git would name the
    checkout's current commit; its records name the commit in code/COMMIT instead."""
    from pathlib import Path

    from iwae import runtime

    package = tmp_path / "code" / "src" / "iwae"
    package.mkdir(parents=True)
    (tmp_path / "code" / "COMMIT").write_text("3fe7761\n")
    assert runtime.code_version(package).endswith("+3fe7761 (pinned copy)")
    here = Path(runtime.__file__).resolve().parent  # the checkout: its git commit, not a COMMIT file's
    assert "(pinned copy)" not in runtime.code_version(here)
