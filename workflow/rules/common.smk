# The config checked and resolved into a plan (iwae.pipeline, iwae.plan: tested without Snakemake), and the small
# input functions the rules call. No science and no shell bodies here.
import os
import shlex
import shutil
import sys

import yaml
from snakemake.utils import validate

REPO = os.path.abspath(workflow.basedir)
sys.path.insert(0, os.path.join(REPO, "src"))
from iwae import pipeline
from iwae.plan import CONTINUED, RUN, RUN_TAIL, Plan, csv, dataset_of, fill


def config_error(message):
    """Stop before any job with one line: what is wrong and the fix (no traceback, not the whole schema)."""
    sys.exit(f"config: {message}")


pipeline.coerce(config)  # `--config ks=[1,5]` arrives as strings
with open(os.path.join(REPO, "workflow", "schemas", "config.schema.yaml")) as f:
    problem = pipeline.config_problem(config, yaml.safe_load(f))
if problem:
    config_error(problem)
validate(
    config, schema="../schemas/config.schema.yaml"
)  # the schema's defaults filled in
if config["omniglot_file"] and "omniglot" not in config["allow_unverified"]:
    print(
        "NOTE: omniglot_file is set; if it is not the paper's chardata.mat its checksum will not match and "
        "the fetch step stops unless allow_unverified lists omniglot."
    )


def cuda_in_use():
    """Whether train/evaluate jobs run on CUDA: device cuda[:N], or auto on a machine that has CUDA."""
    if config["device"].startswith("cuda"):
        return True
    if config["device"] == "auto":
        try:
            import torch

            return torch.cuda.is_available()
        except ImportError:
            return False
    return False


CUDA = cuda_in_use()
# a budget's grid narrows the default grid; a grid key the user gives (--config seeds=[0,1,2], or in a file
# passed with --configfile) wins over it
P = Plan(config, workflow.config_settings.overwrite_config, CUDA)
for problem in P.problems():
    config_error(problem)
BUDGET, GRID, EXP = P.budget, P.grid, P.experiments
DATA = config["data_dir"]
LATEXMK = shutil.which("latexmk")
# The jobs run the package of this checkout with the Python that runs Snakemake (its environment, whatever `python`
# comes first on PATH); with --sdm conda, the environment's own python.
CONDA = any(m.name == "CONDA" for m in workflow.deployment_settings.deployment_method)
IWAE = (
    f"PYTHONPATH={os.path.join(REPO, 'src')}${{PYTHONPATH:+:$PYTHONPATH}} "
    f"{'python' if CONDA else shlex.quote(sys.executable)} -m iwae"
)
# The conda environment of the jobs (--sdm conda): with a CUDA build of PyTorch where jobs run on CUDA.
ENV = "../envs/iwae-cuda.yaml" if CUDA else "../envs/iwae.yaml"
# Cluster placement, added to every rule's resources (ignored by local runs).
SLURM = {
    key: config[key] for key in ("slurm_partition", "slurm_account") if config.get(key)
}
REPORT_RESOURCES = dict(**SLURM, runtime=10, mem_mb=2000)  # the small report jobs

# what this run (or dry run) is and will cost, before anything else
print(
    pipeline.summary(config, P.user_keys, CUDA, workflow.resource_settings.cores or 1),
    file=sys.stderr,
)
if config["budget"] == "paper" and not CUDA:
    print(
        "NOTE: budget 'paper' on the CPU: on a GPU machine it runs on CUDA by itself (device: auto); on a cluster, "
        "submit with device=cuda (see profiles/slurm/config.yaml); `make cpu-paper` trains four of its MNIST models "
        "on a CPU in about a day.",
        file=sys.stderr,
    )
if not LATEXMK:
    print(
        "NOTE: latexmk is not installed, so the paper PDF (results/paper/report.pdf) is skipped."
    )


wildcard_constraints:
    dataset="mnist|omniglot",
    layers="[12]",
    objective="[a-z_]+[0-9.]*",
    first="vae|iwae",
    k=r"\d+",
    fk=r"\d+",
    seed=r"\d+",
    stage=r"\d",


def job_resources(kind, runtime):
    """Resources of a train or evaluate job: memory and GPUs from config's resources, the budget's runtime."""
    return dict(
        **SLURM,
        mem_mb=config["resources"][kind]["mem_mb"],
        runtime=runtime,
        gpu=P.gpus(kind),
    )


def data_folder(wildcards, input, output):
    """The data cache of a job: the folder above its manifest (an input, or fetch_data's output)."""
    manifest = input.manifest if "manifest" in input.keys() else output.manifest
    return os.path.dirname(os.path.dirname(manifest))


def manifest_of(wildcards):
    """The data manifest of an evaluation's run."""
    return f"{DATA}/{dataset_of(wildcards.run)}/manifest.json"


def run_of(wildcards):
    """The run folder of a job's wildcards (dataset, layers, objective, k, seed)."""
    return RUN.format(**wildcards)


def train_priority(wildcards):
    """A training job's priority (train_per_stage): the cells' order, the first cell's jobs first."""
    return P.priority(run_of(wildcards))


def previous_snapshot(wildcards):
    """The snapshot of the stage before a stage job's (train_per_stage): the chain's order; none for the first."""
    return P.previous_snapshot(run_of(wildcards), wildcards.get("stage"))


def curve_arg(wildcards, input):
    """--curve and the learning curve's metrics, where the run has one."""
    return f"--curve {' '.join(input.curve)}" if input.curve else ""


def noise_floor_arg():
    """--noise-floor for a one-seed run's tables: the measured floor (config noise_floor), where it exists."""
    path = config.get("noise_floor")
    if not path or len(GRID["seeds"]) > 1:
        return ""
    path = path if os.path.isabs(path) else os.path.join(REPO, path)
    return f"--noise-floor {path}" if os.path.exists(path) else ""
