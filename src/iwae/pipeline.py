"""The pipeline's grid: which models a configuration trains, in plain Python (the Snakefile and the tools around a
run both read it from here, and tests check it without Snakemake).

A configuration's ``grid`` (datasets, layers, objectives, ks, seeds, table2) is the default grid narrowed by the
budget's ``grid``; a key the user gives (``--config``, ``--configfile``) wins over the budget's. A budget's
``cells`` (each a grid narrowing that one, in order) train the union of their models, the first cell's first.
"""

from __future__ import annotations

import difflib
import itertools
import re

GRID_KEYS = ("datasets", "layers", "objectives", "ks", "seeds", "table2")
RUN_TAIL = "{dataset}/L{layers}/{objective}-k{k}/seed{seed}"


def grid(config: dict, user_keys=()) -> dict:
    """The grid of ``config``'s budget: its ``grid`` over the defaults, the user's keys over both."""
    budget = config["budgets"][config["budget"]]
    return {key: config[key] if key in user_keys else budget.get("grid", {}).get(key, config[key])
            for key in GRID_KEYS}


def cells(config: dict, user_keys=()) -> list[dict]:
    """The budget's cells, each a whole grid (the budget's grid where a cell is silent, the user's keys over all);
    one cell, the grid itself, for a budget without cells."""
    base = grid(config, user_keys)
    return [{key: base[key] if key in user_keys else cell.get(key, base[key]) for key in GRID_KEYS}
            for cell in config["budgets"][config["budget"]].get("cells", [{}])]


def cell_runs(cell: dict, prefix: str = "results/") -> list[str]:
    """The run folders of one grid, in the order dataset, layers, objective, K, seed."""
    return [prefix + RUN_TAIL.format(dataset=d, layers=l, objective=o, k=k, seed=s)
            for d, l, o, k, s in itertools.product(cell["datasets"], cell["layers"], cell["objectives"], cell["ks"],
                                                   cell["seeds"])]


def runs(config: dict, user_keys=(), prefix: str = "results/") -> list[str]:
    """The Table 1 run folders a configuration trains: the union of its cells', in their order."""
    return list(dict.fromkeys(r for cell in cells(config, user_keys) for r in cell_runs(cell, prefix)))


def priority(config: dict, run: str, user_keys=()) -> int:
    """A training job's priority: the first cell's runs highest (Snakemake runs higher priorities first)."""
    found = [i for i, cell in enumerate(cells(config, user_keys)) if run in cell_runs(cell)]
    n = len(config["budgets"][config["budget"]].get("cells", [{}]))
    return n - min(found, default=n)


# ----------------------------------------------------------------------------- the config, checked
# what a key allows, in words, where the schema's own message would show a regular expression
ALLOWED = {"device": "auto, cpu, cuda or cuda:N (N: a GPU's index)"}


def coerce(config: dict) -> dict:
    """``--config`` values as the schema types them (Snakemake passes list items and booleans as strings)."""
    for key in ("layers", "ks", "seeds"):
        if isinstance(config.get(key), list):
            config[key] = [int(v) if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v) else v
                           for v in config[key]]
    for key in ("table2", "family", "evaluate_by_group"):
        if str(config.get(key)).lower() in ("true", "false"):
            config[key] = str(config[key]).lower() == "true"
    if re.fullmatch(r"-?\d+", str(config.get("activity_ddof"))):
        config["activity_ddof"] = int(config["activity_ddof"])
    return config


def config_problem(config: dict, schema: dict) -> str | None:
    """The first thing wrong with ``config`` as one sentence that names the key, what it allows and the fix; None
    when the schema and the budget name accept it."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        if config["budget"] not in config["budgets"]:
            return (f"budget {config['budget']!r} is not one of the defined budgets {sorted(config['budgets'])}; "
                    f"set budget to one of them (config/config.yaml or --config budget=NAME)")
        return None
    path = [str(p) for p in error.absolute_path]
    key = ".".join(p for p in path if not p.isdigit()) or "(top level)"
    item = f" (item {int(path[-1]) + 1})" if path and path[-1].isdigit() else ""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        close = {k: difflib.get_close_matches(k, allowed, 1) for k in unknown}
        where = "" if key == "(top level)" else f" in {key}"
        if all(close.values()):
            return (f"unknown key {', '.join(repr(k) for k in unknown)}{where}: did you mean "
                    f"{', '.join(repr(c[0]) for c in close.values())}?")
        return f"unknown key {', '.join(repr(k) for k in unknown)}{where}; the keys{where or ''} are {allowed}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum"):
        word = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<="}[error.validator]
        return f"key {key!r}{item}: {error.instance!r} is not allowed; each value must be {word} {error.validator_value}"
    if error.validator == "pattern" or key in ALLOWED:
        allowed = ALLOWED.get(key, error.schema.get("description", f"values matching {error.validator_value}"))
        return f"key {key!r}: {error.instance!r} is not allowed; use {allowed}"
    if error.validator == "enum":
        return f"key {key!r}{item}: {error.instance!r} is not allowed; use one of {error.validator_value}"
    return f"key {key!r}{item}: {error.message}"


# ----------------------------------------------------------------------------- what a run will cost, said first
REFERENCE_STEPS = "cpu_steps_quick_run.csv"  # iwae/reference: the quick run's measured steps (2-core AMD EPYC)


def _epochs(budget: dict) -> int:
    from iwae.schedule import epoch_plan, schedule

    return len(epoch_plan(schedule(budget["stages"], budget["epoch_scale"])))


def summary(config: dict, user_keys=(), cuda: bool = False, cores: int = 1) -> str:
    """One paragraph said at the start of every run and dry run: the budget, its models, epochs and evaluation,
    the device, and the training and evaluation time projected from the reference measurements (the quick run's
    step and evaluation times on a 2-core CPU; none for CUDA, whose step times depend on the GPU)."""
    from importlib import resources

    from iwae.projection import UPDATES_PER_EPOCH

    name, budget = config["budget"], config["budgets"][config["budget"]]
    g, table1 = grid(config, user_keys), runs(config, user_keys)
    table2 = 2 * len(g["seeds"]) if g["table2"] and "mnist" in g["datasets"] else 0
    epochs = _epochs(budget)
    n_train = budget["train_subset"]
    test = budget["eval_test_subset"]
    stage_test = budget.get("eval_stage_test_subset") or test
    curve = budget.get("eval_stages", False)
    text = (f"iwae-repro, budget {name}: {len(table1)} Table 1 model{'s' if len(table1) != 1 else ''}"
            + (f" + {table2} continued for Table 2" if table2 else "")
            + (" + the family experiments" if config.get("family") else "")
            + f", {epochs:,} epoch{'s' if epochs != 1 else ''} each (stages {', '.join(map(str, budget['stages']))}"
            + (f", on the first {n_train:,} training images" if n_train else "")
            + f"), each evaluated with K={budget['eval_k']:,} on "
            + (f"the first {test:,}" if test else "all") + " test images"
            + (f", and every stage's snapshot on {'the first ' + format(stage_test, ',') if stage_test else 'all'}"
               if curve else "")
            + f"; device {'CUDA' if cuda else 'CPU'}, {cores} job(s) at a time.")
    if cuda:
        return text + " No projected time for CUDA here (`make gpu-check` measures a GPU's steps)."
    import pandas as pd

    with (resources.files("iwae") / "reference" / REFERENCE_STEPS).open() as f:
        ref = pd.read_csv(f, comment="#")
    ref = ref[~ref.continued.astype(bool)]
    per_model = {(r.dataset, int(r.n_layers), int(r.k)): (r.stack_ms_per_update / r.members,
                                                         r.eval_seconds_per_model) for r in ref.itertuples()}
    train_s = eval_s = 0.0
    unknown = 0
    for run in table1:
        _, dataset, layers, objk, _ = run.split("/")
        key = (dataset, int(layers[1:]), int(objk.rsplit("-k", 1)[1]))
        if key not in per_model:
            unknown += 1
            continue
        ms, ev = per_model[key]
        updates = (n_train // 20 if n_train else UPDATES_PER_EPOCH[dataset]) * epochs
        train_s += ms * updates / 1e3
        # the reference evaluated 1,000 test + 200 training images; the time scales with the images
        images = (test or 10_000) + budget["eval_train_subset"]
        eval_s += ev * images / 1200 + (ev * ((stage_test or 10_000) + budget["eval_train_subset"]) / 1200
                                        * (len(budget["stages"]) - 1) if curve else 0)
    lanes = max(1, min(cores, len(table1)))
    left_out = (["Table 2"] if table2 else []) + ([f"{unknown} model(s) with no reference step"] if unknown else [])
    return (text + " Projected, from the quick run's measured steps (2-core AMD EPYC, 2026-11-27, iwae/reference/"
            f"{REFERENCE_STEPS}; another CPU differs): training about {_duration(train_s / lanes)}, evaluation about "
            f"{_duration(eval_s / lanes)}" + (f" ({' and '.join(left_out)} not counted)" if left_out else "") + ".")


def _duration(seconds: float) -> str:
    if seconds < 90 * 60:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
