"""The smoke pipeline submitted through a real one-node SLURM cluster with profiles/slurm."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import slurm_cluster
from conftest import mirror_or_fail
from test_pipeline import snakemake, workflow_copy

GRID = ["datasets=[mnist]", "layers=[1]", "objectives=[vae,iwae]", "ks=[1,50]", "budget=smoke"]  # Table 2 included


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    try:
        started = slurm_cluster.start(folder)
    except (slurm_cluster.ClusterUnavailable, subprocess.CalledProcessError, OSError) as e:
        msg = f"cannot start a SLURM cluster here: {e}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    yield folder
    slurm_cluster.stop(started)


def result_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "results").rglob("*")
            if p.is_file() and "build" not in p.parts}


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_pipeline_through_slurm(cluster, tmp_path):
    mirror = mirror_or_fail()
    config = ["--config", *GRID, f"data_mirror={mirror}"]
    wd = workflow_copy(tmp_path / "slurm")
    env_path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    cmd = ["timeout", "-k", "20", "1200", sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm",
           "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "5", *config]
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=dict(os.environ, PATH=env_path))
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-6000:]

    # every train and evaluate job went through sbatch: its SLURM log names its job id, and the
    # cluster's job-completion log has that id as COMPLETED
    jobs = slurm_cluster.completed_jobs(cluster)
    rule_of = {re.match(r"(\d+)", p.stem).group(1): str(p.parent.relative_to(wd / "logs" / "slurm"))
               for p in (wd / "logs" / "slurm").rglob("*.log")}
    print("\nSLURM job-completion log (rule and wildcards from the plugin's per-job log path):")
    for j in jobs:
        print(f"  JobId={j['JobId']:>4} {j.get('JobState', '?'):<10} {rule_of.get(j['JobId'], '?'):<55} "
              f"Start={j.get('StartTime')} End={j.get('EndTime')} Tres={j.get('Tres')}")
    completed = {j["JobId"] for j in jobs if j.get("JobState") == "COMPLETED"}
    # one train job per (layers, K) group and one per Table 2 direction: each trains its members as a stack
    for rule, expected in (("train", 2), ("train_continued", 2), ("evaluate", 6)):
        logs = list((wd / "logs" / "slurm" / f"rule_{rule}").rglob("*.log"))
        ids = {re.match(r"(\d+)", p.stem).group(1) for p in logs}
        assert len(ids) >= expected, f"{rule}: {len(ids)} SLURM jobs, expected {expected}"
        assert ids <= completed, f"{rule}: jobs {sorted(ids - completed)} are not COMPLETED in the SLURM job log"

    # data fetching and the small report rules ran where snakemake ran (compute nodes may have no internet)
    for rule in ("fetch_data", "tables", "figures", "samples", "paper_pdf"):
        assert not (wd / "logs" / "slurm" / f"rule_{rule}").exists(), f"{rule} was submitted to SLURM"

    # ... and the outputs have the structure of a local run of the same config
    local = workflow_copy(tmp_path / "local")
    snakemake(local, "--cores", "2", *config)
    assert result_files(wd) == result_files(local)
