# Config validation and the functions that turn the config into targets. No science here.
import os
import shlex
import shutil
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = os.path.abspath(workflow.basedir)
sys.path.insert(0, os.path.join(REPO, "src"))
SCHEMA = "../schemas/config.schema.yaml"
from iwae import pipeline


def config_error(message):
    """Stop before any job with one line: what is wrong and the fix (no traceback, not the whole schema)."""
    sys.exit(f"config: {message}")


pipeline.coerce(config)  # `--config ks=[1,5]` arrives as strings
with open(os.path.join(REPO, "workflow", "schemas", "config.schema.yaml")) as f:
    problem = pipeline.config_problem(config, yaml.safe_load(f))
if problem:
    config_error(problem)
validate(config, schema=SCHEMA)  # the schema's defaults filled in
if config["omniglot_file"] and "omniglot" not in config["allow_unverified"]:
    print(
        "NOTE: omniglot_file is set; if it is not the paper's chardata.mat its checksum will not match and "
        "the fetch step stops unless allow_unverified lists omniglot."
    )

BUDGET = config["budgets"][config["budget"]]
# a budget's grid narrows the default grid; a grid key the user gives (--config seeds=[0,1,2], or in a file
# passed with --configfile) wins over it. A budget's cells train the union of their runs (iwae.pipeline).
USER_KEYS = set(workflow.config_settings.overwrite_config)
GRID = pipeline.grid(config, USER_KEYS)
CELLS = pipeline.cells(config, USER_KEYS)
PER_STAGE = bool(BUDGET.get("train_per_stage", False))
EXP = {
    name: {**spec, **BUDGET.get("experiments", {}).get(name, {})}
    for name, spec in config["experiments"].items()
}
DATA = config["data_dir"]
RUN_TAIL = pipeline.RUN_TAIL
RUN = f"results/{RUN_TAIL}"  # Table 1; the family experiments put their runs under results/<experiment>/
CONT = "results/{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}/seed{seed}"
LATEXMK = shutil.which("latexmk")
# The jobs run the package of this checkout with the Python that runs Snakemake (its environment, whatever `python`
# comes first on PATH); with --sdm conda, the environment's own python.
CONDA = any(m.name == "CONDA" for m in workflow.deployment_settings.deployment_method)
IWAE = (
    f"PYTHONPATH={os.path.join(REPO, 'src')}${{PYTHONPATH:+:$PYTHONPATH}} "
    f"{'python' if CONDA else shlex.quote(sys.executable)} -m iwae"
)


def check_objectives():
    """Every (objective, K, layers) of the grid and the experiments, checked by the registry."""
    try:
        from iwae import objectives
    except (
        ImportError
    ):  # a Snakemake environment without torch: the training jobs check the same
        return
    combos = [
        ("objectives", o, k, l)
        for o in GRID["objectives"]
        for k in GRID["ks"]
        for l in GRID["layers"]
    ]
    if config["family"]:
        t3, est = EXP["table3"], EXP["estimators"]
        combos += [
            ("experiments/table3", o, t3["k"], t3["layers"]) for o in t3["objectives"]
        ]
        combos += [
            ("experiments/estimators", o, k, est["layers"])
            for o in est["objectives"]
            for k in est["ks"]
        ]
    for key, name, k, layers in combos:
        try:
            objectives.get(name).check(k, layers)
        except ValueError as e:
            config_error(f"{key}: {e}")


check_objectives()
if (
    GRID["table2"]
    and "mnist" in GRID["datasets"]
    and not {"vae", "iwae"} <= set(GRID["objectives"])
):
    config_error(
        f"'table2': Table 2 continues the grid's VAE K=1 and IWAE K=50 models, but objectives is "
        f"{GRID['objectives']}; add vae and iwae to objectives, or set table2=false."
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
# what this run (or dry run) is and will cost, before anything else
print(
    pipeline.summary(config, USER_KEYS, CUDA, workflow.resource_settings.cores or 1),
    file=sys.stderr,
)
if config["budget"] == "paper" and not CUDA:
    print(
        "NOTE: budget 'paper' on the CPU: on a GPU machine it runs on CUDA by itself (device: auto); on a cluster, "
        "submit with device=cuda (see profiles/slurm/config.yaml); `make cpu-paper` trains four of its MNIST models "
        "on a CPU in about a day.",
        file=sys.stderr,
    )


# The conda environment of the jobs (--sdm conda): with a CUDA build of PyTorch where jobs run on CUDA.
ENV = "../envs/iwae-cuda.yaml" if CUDA else "../envs/iwae.yaml"


def gpus(job):
    """GPUs per job of kind `job` (train, evaluate): the config's number, or 1 on CUDA for 'auto'."""
    value = config["resources"][job]["gpu"]
    return (1 if CUDA else 0) if value == "auto" else value


wildcard_constraints:
    dataset="mnist|omniglot",
    layers="[12]",
    objective="[a-z_]+[0-9.]*",
    first="vae|iwae",
    k=r"\d+",
    fk=r"\d+",
    seed=r"\d+",
    stage=r"\d",


def dataset_of(path):
    """The data set a run folder or file belongs to."""
    return next(part for part in Path(path).parts if part in ("mnist", "omniglot"))


def data_folder(wildcards, input, output):
    """The data cache of a job: the folder above its manifest (an input, or fetch_data's output)."""
    manifest = input.manifest if "manifest" in input.keys() else output.manifest
    return os.path.dirname(os.path.dirname(manifest))


def manifest_of(wildcards):
    return f"{DATA}/{dataset_of(wildcards.run)}/manifest.json"


def csv(values):
    return ",".join(str(v) for v in values)


def group_outputs(prefix, objectives, seeds, name="model.pt"):
    """Every member's file of a training group; {dataset}, {layers} and {k} stay wildcards."""
    return expand(
        f"{prefix}{RUN_TAIL}/{name}",
        objective=objectives,
        seed=seeds,
        allow_missing=True,
    )


def out_pattern(prefix, *known):
    """The --out pattern of a training job: the wildcards ``known`` filled in from the job's, the rest (the
    members' {objective} and {seed}, and whatever the job trains several of) left to `iwae train`.
    """
    return lambda w: expand(
        f"{prefix}{RUN_TAIL}", **{k: getattr(w, k) for k in known}, allow_missing=True
    )[0]


def group_pattern(prefix):
    """The --out pattern of a training group's job: its members fill in {objective} and {seed}."""
    return out_pattern(prefix, "dataset", "layers", "k")


def grid_runs():
    """Run folders of the Table 1 grid: the union of the cells' (the grid itself without cells), in their order."""
    return pipeline.runs(config, USER_KEYS)


def train_priority(wildcards):
    """A training job's priority (train_per_stage): the cells' order, the first cell's jobs first."""
    return pipeline.priority(config, RUN.format(**wildcards), USER_KEYS)


def previous_snapshot(wildcards):
    """The snapshot of the stage before a stage job's (train_per_stage): the chain's order; none for the first."""
    stages = BUDGET["stages"]
    i = (
        stages.index(int(wildcards.stage))
        if "stage" in wildcards.keys()
        else len(stages) - 1
    )
    if i == 0:
        return []
    run = RUN.format(
        **{
            k: getattr(wildcards, k)
            for k in ("dataset", "layers", "objective", "k", "seed")
        }
    )
    return f"{run}/stages/stage{stages[i - 1]}.pt"


TABLE2_PAIRS = [("vae", 1, "iwae", 50), ("iwae", 50, "vae", 1)]


def table2_runs():
    """The paper's Table 2: MNIST, 1 layer, VAE k=1 continued as IWAE k=50, and the reverse."""
    if not GRID["table2"] or "mnist" not in GRID["datasets"]:
        return []
    return [
        CONT.format(dataset="mnist", layers=1, first=f, fk=fk, objective=o, k=k, seed=s)
        for f, fk, o, k in TABLE2_PAIRS
        for s in GRID["seeds"]
    ]


def table3_runs():
    t3 = EXP["table3"]
    return expand(
        f"results/table3/{RUN_TAIL}",
        dataset=t3["dataset"],
        layers=t3["layers"],
        objective=t3["objectives"],
        k=t3["k"],
        seed=t3["seeds"],
    )


def estimator_runs():
    est = EXP["estimators"]
    return expand(
        f"results/estimators/{RUN_TAIL}",
        dataset=est["datasets"],
        layers=est["layers"],
        objective=est["objectives"],
        k=est["ks"],
        seed=est["seeds"],
    )


def curve_metrics():
    """The learning curve (budgets with eval_stages: true): each stage's snapshot evaluated, except the
    last stage's, which is the final model and so its metrics.json (not evaluated twice).
    """
    if not BUDGET.get("eval_stages"):
        return []
    return [
        f"{run}/stages/stage{s}.metrics.json"
        for run in grid_runs()
        for s in BUDGET["stages"][:-1]
    ] + [f"{run}/metrics.json" for run in grid_runs()]


def all_metrics():
    return [f"{run}/metrics.json" for run in grid_runs() + table2_runs()]


def all_models():
    return [f"{run}/model.pt" for run in grid_runs() + table2_runs()]


SNR_MODEL = "results/{dataset}/L{layers}/iwae-k{k}/seed{seed}".format(
    dataset=EXP["snr"]["dataset"],
    layers=EXP["snr"]["layers"],
    k=EXP["snr"]["k"],
    seed=GRID["seeds"][0],
)
TABLE_NAMES = (
    ["table1", "table2", "wallclock"]
    + (["curve"] if BUDGET.get("eval_stages") else [])
    # iwae.report.noise_floor: the sd over seeds of VAE, IWAE and their difference
    + (
        ["noise_floor"]
        if len(GRID["seeds"]) > 1 and {"vae", "iwae"} <= set(GRID["objectives"])
        else []
    )
)
TABLES = expand(
    "results/tables/{name}.{ext}", name=TABLE_NAMES, ext=["csv", "md", "tex"]
)
# as iwae.figures.figures_for: the figures against K only for a grid with several K
FIGURE_NAMES = (
    (["nll_vs_k", "active_units"] if len(GRID["ks"]) > 1 else [])
    + ["activity_hist", "bounds", "training_curves"]
    + (["wallclock"] if len(GRID["ks"]) > 1 else [])
    + (["curve"] if BUDGET.get("eval_stages") else [])
)


def noise_floor_arg():
    """--noise-floor for a one-seed run's tables: the measured floor (config noise_floor), where it exists."""
    path = config.get("noise_floor")
    if not path or len(GRID["seeds"]) > 1:
        return ""
    path = path if os.path.isabs(path) else os.path.join(REPO, path)
    return f"--noise-floor {path}" if os.path.exists(path) else ""


FIGURES = expand("results/figures/{name}.{ext}", name=FIGURE_NAMES, ext=["pdf", "png"])
SAMPLES = expand("results/figures/samples.{ext}", ext=["pdf", "png"])
FAMILY = expand(
    "results/tables/{name}.{ext}",
    name=["table3", "estimators", "snr"],
    ext=["csv", "md", "tex"],
) + expand("results/figures/snr.{ext}", ext=["pdf", "png"])


def final_outputs():
    out = TABLES + FIGURES + SAMPLES + (FAMILY if config["family"] else [])
    if LATEXMK:
        out.append("results/paper/report.pdf")
    else:
        print(
            "NOTE: latexmk is not installed, so the paper PDF (results/paper/report.pdf) is skipped."
        )
    return out


def train_args():
    subset = (
        f"--train-subset {BUDGET['train_subset']}" if BUDGET["train_subset"] else ""
    )
    return (
        f"--budget {config['budget']} --optimizer {config['optimizer']} --init {config['init']} "
        f"--data-order {config['data_order']} --device {config['device']} --step {config['step']} {subset} "
        f"--checkpoint-minutes {BUDGET.get('checkpoint_minutes', 10)}"
    )


def stages_arg():
    return f"--stages {','.join(str(s) for s in BUDGET['stages'])} --epoch-scale {BUDGET['epoch_scale']}"


def train_params(grid):
    """The params every training job of a group (or of several groups) shares."""
    return dict(
        iwae=IWAE,
        data_dir=data_folder,
        objectives=csv(grid["objectives"]),
        seeds=csv(grid["seeds"]),
        stages=stages_arg(),
        common=train_args(),
    )


TRAIN_SHELL = (
    "{params.iwae} train --objectives {params.objectives} --seeds {params.seeds} {params.stages} {params.common} "
    "--threads {threads} --data-dir {params.data_dir} --out '{params.out}'"
)
# Table 1 and the family experiments train the same way; each entry: its name, results prefix and grid
TRAIN_GROUPS = ([] if PER_STAGE else [("train", "results/", GRID)]) + [
    (f"train_{e}", f"results/{e}/", EXP[e]) for e in ("table3", "estimators")
]
TRAIN_TOGETHER = bool(BUDGET.get("train_together", False))


def stage_files(files, last=True):
    """The stage snapshots of a budget with eval_stages: true (a learning curve). ``files(name)``: the member
    files called name of one group or data set; every stage, or all but the last (whose snapshot is the final
    model: last=False)."""
    if not BUDGET.get("eval_stages"):
        return []
    stages = BUDGET["stages"] if last else BUDGET["stages"][:-1]
    return [f for s in stages for f in files(f"stages/stage{s}")]


def snapshot_outputs(prefix, grid):
    """The stage snapshots a Table 1 group's training writes."""
    return stage_files(
        lambda name: group_outputs(
            prefix, grid["objectives"], grid["seeds"], f"{name}.pt"
        )
    )


def group_stage_files(suffix):
    """The stage snapshots (suffix .pt) or their metrics (.metrics.json) of the Table 1 groups' members whose
    curve the budget evaluates."""
    return stage_files(
        lambda name: group_outputs(
            "results/", GRID["objectives"], GRID["seeds"], f"{name}{suffix}"
        ),
        last=False,
    )


def together_outputs(name):
    """Every member's file of every Table 1 group of one data set; {dataset} stays a wildcard."""
    return expand(
        f"{RUN}/{name}",
        layers=GRID["layers"],
        objective=GRID["objectives"],
        k=GRID["ks"],
        seed=GRID["seeds"],
        allow_missing=True,
    )


def together_snapshots():
    """The stage snapshots of every Table 1 group of one data set (train_together)."""
    return stage_files(lambda name: together_outputs(f"{name}.pt"))


def eval_args(job):
    """The evaluation protocol of the budget; stage snapshots (evaluate_stage jobs) on eval_stage_test_subset
    test images where the budget sets it (a learning curve on a fixed subset, the final models on all).
    """
    subset = BUDGET["eval_test_subset"]
    if job == "evaluate_stage" and BUDGET.get("eval_stage_test_subset"):
        subset = BUDGET["eval_stage_test_subset"]
    return (
        f"--k {BUDGET['eval_k']} {f'--test-subset {subset}' if subset else ''} "
        f"--train-subset {BUDGET['eval_train_subset']} --active-units-n {BUDGET['active_units_n']} "
        f"--activity-ddof {config['activity_ddof']} --device {config['device']}"
        + ("" if BUDGET.get("eval_active_only", True) else " --no-active-only")
    )


EVAL_SHELL = (
    "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} "
    "{params.args} --threads {threads} > {log} 2>&1"
)
# a training group's members in one job: the final models, then (learning curves) the stage snapshots
GROUP_EVAL_SHELL = (
    EVAL_SHELL
    + " && if [ -n '{input.snapshots}' ]; then {params.iwae} evaluate --model {input.snapshots} "
    "--out {output.stage_metrics} --data-dir {params.data_dir} {params.stage_args} --threads {threads} >> {log} 2>&1; fi"
)
# A final model and a stage snapshot (a learning curve) are evaluated the same way; each entry: its name,
# model file, metrics file and log
EVALUATIONS = [
    ("evaluate", "{run}/model.pt", "{run}/metrics.json", "logs/evaluate/{run}.log"),
    (
        "evaluate_stage",
        "{run}/stages/stage{stage}.pt",
        "{run}/stages/stage{stage}.metrics.json",
        "logs/evaluate/{run}/stage{stage}.log",
    ),
]


# Cluster placement, added to every rule's resources (ignored by local runs).
SLURM = {
    key: config[key] for key in ("slurm_partition", "slurm_account") if config.get(key)
}


REPORT_RESOURCES = dict(
    **SLURM, runtime=10, mem_mb=2000
)  # the small jobs that write tables and figures


def job_resources(kind, runtime):
    """Resources of a train or evaluate job: memory and GPUs from config's resources, the budget's runtime."""
    return dict(
        **SLURM,
        mem_mb=config["resources"][kind]["mem_mb"],
        runtime=runtime,
        gpu=gpus(kind),
    )
