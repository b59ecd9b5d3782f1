"""The pipeline's grid: which models a configuration trains, in plain Python (the Snakefile and the tools around a
run both read it from here, and tests check it without Snakemake).

A configuration's ``grid`` (datasets, layers, objectives, ks, seeds, table2) is the default grid narrowed by the
budget's ``grid``; a key the user gives (``--config``, ``--configfile``) wins over the budget's. A budget's
``cells`` (each a grid narrowing that one, in order) train the union of their models, the first cell's first.
"""

from __future__ import annotations

import itertools

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
