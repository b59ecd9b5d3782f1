"""The environments: the conda files hold what the rules import, at requirements.txt's versions, with a
CUDA build of PyTorch where jobs run on CUDA, and nothing that depends on where Snakemake copies them."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO

# conda-forge name -> the pip name in requirements.txt
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib", "pyyaml": "PyYAML",
                "jinja2": "Jinja2"}
IMPORTED = {"torch", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "tabulate", "Jinja2", "pooch", "tqdm",
            "PyYAML"}


def pins() -> dict[str, str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def conda_deps(path):
    deps = yaml.safe_load(path.read_text())["dependencies"]
    out = {}
    for d in deps:
        if isinstance(d, str) and d != "pip":
            name, version = re.match(r"([\w.-]+)=([^=]+)", d).groups()
            out[CONDA_TO_PIP.get(name, name)] = (name, version)
    return out, deps


@pytest.mark.parametrize("env", ["workflow/envs/iwae.yaml", "workflow/envs/iwae-cuda.yaml", "environment.yml"])
def test_conda_files_hold_what_the_rules_import_at_the_pinned_versions(env):
    deps, raw = conda_deps(REPO / env)
    assert IMPORTED <= set(deps), IMPORTED - set(deps)
    for pip_name, (_, version) in deps.items():
        if pip_name in pins():
            assert version == pins()[pip_name], f"{env}: {pip_name} {version} != requirements.txt {pins()[pip_name]}"
    if env.startswith("workflow"):  # the jobs run this checkout's package: no relative install that breaks on copy
        assert not any(isinstance(d, dict) for d in raw), raw

