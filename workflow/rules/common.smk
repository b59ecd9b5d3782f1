# Config validation and the functions that turn the config into targets. No science here.
import os
import shutil

from snakemake.utils import validate


# `--config ks=[1,5]` arrives as strings (Snakemake parses list values with YAML's BaseLoader)
for key in ("layers", "ks", "seeds"):
    if isinstance(config.get(key), list):
        config[key] = [int(v) if isinstance(v, str) and v.strip().isdigit() else v for v in config[key]]
if str(config.get("table2")).lower() in ("true", "false"):
    config["table2"] = str(config["table2"]).lower() == "true"
validate(config, schema="../schemas/config.schema.yaml")
if config["budget"] not in config["budgets"]:
    raise ValueError(
        f"config 'budget': {config['budget']!r} is not one of the defined budgets "
        f"{sorted(config['budgets'])}; set budget to one of them (config/config.yaml or --config budget=NAME)."
    )
if config["omniglot_file"] and "omniglot" not in config["allow_unverified"]:
    print(
        "NOTE: omniglot_file is set; if it is not the paper's chardata.mat its checksum will not match and "
        "the fetch step stops unless allow_unverified lists omniglot."
    )

BUDGET = config["budgets"][config["budget"]]
DATA = config["data_dir"]
RUN = "results/{dataset}/L{layers}/{objective}-k{k}/seed{seed}"
CONT = "results/{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}/seed{seed}"
LATEXMK = shutil.which("latexmk")


wildcard_constraints:
    dataset="mnist|omniglot",
    layers="[12]",
    objective="vae|iwae",
    first="vae|iwae",
    k=r"\d+",
    fk=r"\d+",
    seed=r"\d+",


def grid_runs():
    """Run folders of the Table 1 grid."""
    return expand(
        RUN,
        dataset=config["datasets"],
        layers=config["layers"],
        objective=config["objectives"],
        k=config["ks"],
        seed=config["seeds"],
    )


def table2_runs():
    """The paper's Table 2: MNIST, 1 layer, VAE k=1 continued as IWAE k=50, and the reverse."""
    if not config["table2"] or "mnist" not in config["datasets"]:
        return []
    pairs = [("vae", 1, "iwae", 50), ("iwae", 50, "vae", 1)]
    return [
        CONT.format(dataset="mnist", layers=1, first=f, fk=fk, objective=o, k=k, seed=s)
        for f, fk, o, k in pairs
        for s in config["seeds"]
    ]


def all_metrics():
    return [f"{run}/metrics.json" for run in grid_runs() + table2_runs()]


def all_models():
    return [f"{run}/model.pt" for run in grid_runs() + table2_runs()]


TABLES = expand("results/tables/{name}.{ext}", name=["table1", "table2", "wallclock"], ext=["csv", "md", "tex"])
FIGURES = expand(
    "results/figures/{name}.png",
    name=["nll_vs_k", "active_units_vs_k", "wallclock_vs_k", "activity_hist", "bounds", "training_curves"],
)
SAMPLES = "results/figures/samples.png"


def final_outputs():
    out = TABLES + FIGURES + [SAMPLES]
    if LATEXMK:
        out.append("results/paper/report.pdf")
    else:
        print("NOTE: latexmk is not installed, so the paper PDF (results/paper/report.pdf) is skipped.")
    return out


def train_args(budget=BUDGET):
    subset = f"--train-subset {budget['train_subset']}" if budget["train_subset"] else ""
    return (
        f"--budget {config['budget']} --optimizer {config['optimizer']} --device {config['device']} {subset}"
    )


# Cluster placement, added to every rule's resources (ignored by local runs).
SLURM = {
    key: config[key] for key in ("slurm_partition", "slurm_account") if config.get(key)
}
