# Config validation and the functions that turn the config into targets. No science here.
import difflib
import os
import shutil
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = os.path.abspath(workflow.basedir)
sys.path.insert(0, os.path.join(REPO, "src"))
SCHEMA = "../schemas/config.schema.yaml"


def config_error(message):
    """Stop before any job with one short message (not the whole schema)."""
    raise WorkflowError(f"config: {message}")


def schema_error(cfg):
    """The first schema violation of cfg, as one sentence naming the key and the fix."""
    import jsonschema

    with open(os.path.join(REPO, "workflow", "schemas", "config.schema.yaml")) as f:
        schema = yaml.safe_load(f)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(cfg)
    )
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        hints = [
            (
                f"{k!r} (did you mean {difflib.get_close_matches(k, allowed, 1)[0]!r}?)"
                if difflib.get_close_matches(k, allowed, 1)
                else repr(k)
            )
            for k in unknown
        ]
        return (
            f"unknown key {', '.join(hints)} in {where}; the keys there are {allowed}"
        )
    return f"key {where!r}: {error.message}"


# `--config ks=[1,5]` arrives as strings (Snakemake parses list values with YAML's BaseLoader)
for key in ("layers", "ks", "seeds"):
    if isinstance(config.get(key), list):
        config[key] = [
            int(v) if isinstance(v, str) and v.strip().isdigit() else v
            for v in config[key]
        ]
for key in ("table2", "family", "evaluate_by_group"):
    if str(config.get(key)).lower() in ("true", "false"):
        config[key] = str(config[key]).lower() == "true"
if str(config.get("activity_ddof")).isdigit():
    config["activity_ddof"] = int(config["activity_ddof"])
try:
    validate(config, schema=SCHEMA)
except WorkflowError:
    config_error(schema_error(config))
if config["budget"] not in config["budgets"]:
    config_error(
        f"'budget': {config['budget']!r} is not one of the defined budgets {sorted(config['budgets'])}; "
        f"set budget to one of them (config/config.yaml or --config budget=NAME)."
    )
if config["omniglot_file"] and "omniglot" not in config["allow_unverified"]:
    print(
        "NOTE: omniglot_file is set; if it is not the paper's chardata.mat its checksum will not match and "
        "the fetch step stops unless allow_unverified lists omniglot."
    )

BUDGET = config["budgets"][config["budget"]]
GRID = {
    key: BUDGET.get("grid", {}).get(key, config[key])
    for key in ("datasets", "layers", "objectives", "ks", "seeds", "table2")
}
EXP = {
    name: {**spec, **BUDGET.get("experiments", {}).get(name, {})}
    for name, spec in config["experiments"].items()
}
DATA = config["data_dir"]
RUN_TAIL = "{dataset}/L{layers}/{objective}-k{k}/seed{seed}"
RUN = f"results/{RUN_TAIL}"  # Table 1; the family experiments put their runs under results/<experiment>/
CONT = "results/{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}/seed{seed}"
LATEXMK = shutil.which("latexmk")
# Every rule runs the package from this checkout, whatever environment runs the job (venv, conda).
IWAE = f"PYTHONPATH={os.path.join(REPO, 'src')}${{PYTHONPATH:+:$PYTHONPATH}} python -m iwae"


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
if config["budget"] == "paper" and not CUDA:
    print(
        "NOTE: budget 'paper' on the CPU: about 30 h per model on 2 cores. On a GPU machine it runs on CUDA by "
        "itself (device: auto); on a cluster, submit with device=cuda (see profiles/slurm/config.yaml)."
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


def manifest_of(wildcards):
    return f"{DATA}/{dataset_of(wildcards.run)}/manifest.json"


def csv(values):
    return ",".join(str(v) for v in values)


def group_outputs(prefix, objectives, seeds, name="model.pt"):
    """Every member's file of a training group; {dataset}, {layers} and {k} stay wildcards."""
    pattern = f"{prefix}{{{{dataset}}}}/L{{{{layers}}}}/{{objective}}-k{{{{k}}}}/seed{{seed}}/{name}"
    return expand(pattern, objective=objectives, seed=seeds)


def group_pattern(prefix):
    """The --out pattern of a training group's job: its members fill in {objective} and {seed}."""
    return (
        lambda w: f"{prefix}{w.dataset}/L{w.layers}/{{objective}}-k{w.k}/seed{{seed}}"
    )


def grid_runs():
    """Run folders of the Table 1 grid."""
    return expand(
        RUN,
        dataset=GRID["datasets"],
        layers=GRID["layers"],
        objective=GRID["objectives"],
        k=GRID["ks"],
        seed=GRID["seeds"],
    )


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
TABLE_NAMES = ["table1", "table2", "wallclock"] + (
    ["curve"] if BUDGET.get("eval_stages") else []
)
TABLES = expand(
    "results/tables/{name}.{ext}", name=TABLE_NAMES, ext=["csv", "md", "tex"]
)
FIGURE_NAMES = [
    "nll_vs_k",
    "active_units",
    "activity_hist",
    "bounds",
    "training_curves",
    "wallclock",
] + (["curve"] if BUDGET.get("eval_stages") else [])
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
        f"--checkpoint-minutes 10"
    )


def stages_arg():
    return f"--stages {','.join(str(s) for s in BUDGET['stages'])} --epoch-scale {BUDGET['epoch_scale']}"


def eval_args():
    subset = (
        f"--test-subset {BUDGET['eval_test_subset']}"
        if BUDGET["eval_test_subset"]
        else ""
    )
    return (
        f"--k {BUDGET['eval_k']} {subset} --train-subset {BUDGET['eval_train_subset']} "
        f"--active-units-n {BUDGET['active_units_n']} --activity-ddof {config['activity_ddof']} "
        f"--device {config['device']}"
    )


# Cluster placement, added to every rule's resources (ignored by local runs).
SLURM = {
    key: config[key] for key in ("slurm_partition", "slurm_account") if config.get(key)
}
