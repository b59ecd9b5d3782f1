"""What a configuration makes: the run layout, every file's path, the tables and figures it promises, and the
arguments of its jobs. The Snakefile's rules take their paths and arguments from here (``workflow/rules/*.smk``
only wire them), and tests check them without Snakemake.

Paths keep Snakemake's wildcards where a rule leaves them open (``{dataset}``, ``{layers}``, ``{objective}``,
``{k}``, ``{seed}``, ``{stage}``, ``{run}``); ``expand``-like filling is done here with ``fill``.
"""

from __future__ import annotations

import itertools
import re

from iwae import pipeline

RUN_TAIL = pipeline.RUN_TAIL  # {dataset}/L{layers}/{objective}-k{k}/seed{seed}
RESULTS = "results/"
RUN = RESULTS + RUN_TAIL  # a Table 1 run; the family experiments' runs are under results/<experiment>/
CONTINUED = RESULTS + "{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}/seed{seed}"  # Table 2
TABLE2_PAIRS = [("vae", 1, "iwae", 50), ("iwae", 50, "vae", 1)]  # (first, its K, then, its K)


def fill(pattern: str, **values) -> list[str]:
    """``pattern`` with every combination of the given lists filled in (in the order given); the wildcards not
    given stay open (Snakemake's ``expand(..., allow_missing=True)``)."""
    keys = list(values)
    lists = [v if isinstance(v, (list, tuple)) else [v] for v in values.values()]
    out = []
    for combo in itertools.product(*lists):
        text = pattern
        for key, value in zip(keys, combo):
            text = text.replace("{" + key + "}", str(value))
        out.append(text)
    return list(dict.fromkeys(out))


def csv(values) -> str:
    return ",".join(str(v) for v in values)


class Plan:
    """The files and jobs of ``config`` (validated, defaults filled) with the user's ``user_keys`` winning over the
    budget's grid; ``cuda``: whether its train and evaluate jobs run on CUDA."""

    def __init__(self, config: dict, user_keys=(), cuda: bool = False):
        self.config, self.user_keys, self.cuda = config, set(user_keys), cuda
        self.budget = config["budgets"][config["budget"]]
        self.grid = pipeline.grid(config, self.user_keys)
        self.cells = pipeline.cells(config, self.user_keys)
        self.per_stage = self.budget["train_per_stage"]
        self.together = self.budget["train_together"]
        self.curve = self.budget["eval_stages"]
        self.stages = list(self.budget["stages"])
        self.experiments = {name: {**spec, **self.budget.get("experiments", {}).get(name, {})}
                            for name, spec in config["experiments"].items()}

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[str]:
        """The Table 1 run folders: the union of the cells' runs, in their order."""
        return pipeline.runs(self.config, self.user_keys, RESULTS)

    def table2_runs(self) -> list[str]:
        """Table 2: MNIST 1 layer, VAE K=1 continued as IWAE K=50 and the reverse, every seed (none without)."""
        if not self.grid["table2"] or "mnist" not in self.grid["datasets"]:
            return []
        return [CONTINUED.format(dataset="mnist", layers=1, first=f, fk=fk, objective=o, k=k, seed=s)
                for f, fk, o, k in TABLE2_PAIRS for s in self.grid["seeds"]]

    def experiment_runs(self, name: str) -> list[str]:
        """The run folders of a family experiment (table3, estimators) under results/<name>/."""
        e = self.experiments[name]
        return fill(f"{RESULTS}{name}/{RUN_TAIL}", dataset=e.get("datasets", e.get("dataset")), layers=e["layers"],
                    objective=e["objectives"], k=e.get("ks", e.get("k")), seed=e["seeds"])

    def snr_model(self) -> str:
        """The run folder of the model the SNR experiment measures (its Table 1 IWAE model, the first seed)."""
        e = self.experiments["snr"]
        return RUN.format(dataset=e["dataset"], layers=e["layers"], objective="iwae", k=e["k"],
                          seed=self.grid["seeds"][0])

    # ------------------------------------------------------------------ a training group's files
    def member_files(self, prefix: str, grid: dict, name: str = "model.pt") -> list[str]:
        """Every member's ``name`` of one training group under ``prefix``; {dataset}, {layers}, {k} stay open."""
        return fill(f"{prefix}{RUN_TAIL}/{name}", objective=grid["objectives"], seed=grid["seeds"])

    @staticmethod
    def group_out(prefix: str, known=("dataset", "layers", "k")):
        """The --out pattern of a training group's job, as a function of its wildcards: the ``known`` ones filled
        in, the rest (its members' {objective} and {seed}, and what the job trains several of) left to `iwae train`."""
        return lambda w: fill(f"{prefix}{RUN_TAIL}", **{key: getattr(w, key) for key in known})[0]

    def stage_names(self, last: bool = True) -> list[str]:
        """'stages/stage<i>' of every stage whose snapshot a learning curve evaluates (none without a curve); all
        stages, or all but the last (whose snapshot is the final model: ``last=False``)."""
        if not self.curve:
            return []
        return [f"stages/stage{s}" for s in (self.stages if last else self.stages[:-1])]

    def group_snapshots(self, prefix: str, grid: dict) -> list[str]:
        """The stage snapshots a Table 1 group's training writes (a learning curve)."""
        return [f for s in self.stage_names() for f in self.member_files(prefix, grid, f"{s}.pt")]

    def group_stage_files(self, suffix: str) -> list[str]:
        """The stage snapshots (suffix .pt) or their metrics (.metrics.json) of a Table 1 group's members whose curve
        the budget evaluates (evaluate_by_group)."""
        return [f for s in self.stage_names(last=False) for f in self.member_files(RESULTS, self.grid, s + suffix)]

    def together_files(self, name: str) -> list[str]:
        """Every member's ``name`` in every Table 1 group of one data set (train_together); {dataset} stays open."""
        g = self.grid
        return fill(f"{RUN}/{name}", layers=g["layers"], objective=g["objectives"], k=g["ks"], seed=g["seeds"])

    def together_snapshots(self) -> list[str]:
        return [f for s in self.stage_names() for f in self.together_files(f"{s}.pt")]

    def previous_snapshot(self, run: str, stage: int | None) -> list[str]:
        """The snapshot of the stage before ``stage`` (None: the last stage) of ``run``: the input that chains a
        train_per_stage model's jobs; none for the first stage."""
        i = self.stages.index(int(stage)) if stage is not None else len(self.stages) - 1
        return [f"{run}/stages/stage{self.stages[i - 1]}.pt"] if i else []

    # ------------------------------------------------------------------ metrics and outputs
    def curve_metrics(self) -> list[str]:
        """The learning curve's points: every stage's snapshot metrics but the last stage's (the final model is that
        point: its metrics.json), then the final models' metrics. None without a curve."""
        if not self.curve:
            return []
        return ([f"{run}/{s}.metrics.json" for run in self.runs() for s in self.stage_names(last=False)]
                + [f"{run}/metrics.json" for run in self.runs()])

    def all_metrics(self) -> list[str]:
        return [f"{run}/metrics.json" for run in self.runs() + self.table2_runs()]

    def all_models(self) -> list[str]:
        return [f"{run}/model.pt" for run in self.runs() + self.table2_runs()]

    def noise_floor(self) -> bool:
        """Whether the run measures a noise floor (two or more seeds of VAE and IWAE)."""
        return len(self.grid["seeds"]) > 1 and {"vae", "iwae"} <= set(self.grid["objectives"])

    def tables(self) -> list[str]:
        from iwae.report import table_names

        names = table_names(curve=self.curve, noise_floor=self.noise_floor())
        return fill(RESULTS + "tables/{name}.{ext}", name=names, ext=["csv", "md", "tex"])

    def figures(self) -> list[str]:
        from iwae.figures import figure_names

        names = figure_names(several_k=len(self.grid["ks"]) > 1, curve=self.curve)
        return fill(RESULTS + "figures/{name}.{ext}", name=names, ext=["pdf", "png", "caption.tex"])

    def samples(self) -> list[str]:
        return fill(RESULTS + "figures/samples.{ext}", ext=["pdf", "png", "caption.tex"])

    def family(self) -> list[str]:
        """The family experiments' tables and figure (none unless the config's family is true)."""
        if not self.config["family"]:
            return []
        return (fill(RESULTS + "tables/{name}.{ext}", name=["table3", "estimators", "snr"], ext=["csv", "md", "tex"])
                + fill(RESULTS + "tables/family_claims.{ext}", ext=["md", "tex"])
                + fill(RESULTS + "figures/snr.{ext}", ext=["pdf", "png", "caption.tex"]))

    def final_outputs(self, latex: bool) -> list[str]:
        return (self.tables() + self.figures() + self.samples() + self.family()
                + ([RESULTS + "paper/report.pdf"] if latex else []))

    # ------------------------------------------------------------------ arguments of the jobs
    def protocol_args(self) -> str:
        """The options every training job of the run shares: budget, protocol, device, step, checkpoints."""
        b, c = self.budget, self.config
        subset = f"--train-subset {b['train_subset']}" if b["train_subset"] else ""
        return (f"--budget {c['budget']} --optimizer {c['optimizer']} --init {c['init']} "
                f"--data-order {c['data_order']} --device {c['device']} --step {c['step']} {subset} "
                f"--checkpoint-minutes {b['checkpoint_minutes']:g}")

    def stages_arg(self) -> str:
        """The schedule of the run's Table 1 and family training: its stages and epoch scale."""
        return f"--stages {csv(self.stages)} --epoch-scale {self.budget['epoch_scale']}"

    def eval_args(self, stage: bool = False) -> str:
        """The evaluation protocol of the budget; a stage snapshot (``stage``) on eval_stage_test_subset test images
        where the budget sets it (a learning curve on a fixed subset, the final models on all)."""
        b = self.budget
        subset = (b.get("eval_stage_test_subset") if stage else None) or b["eval_test_subset"]
        return (f"--k {b['eval_k']} {f'--test-subset {subset} ' if subset else ''}"
                f"--train-subset {b['eval_train_subset']} --active-units-n {b['active_units_n']} "
                f"--activity-ddof {self.config['activity_ddof']} --device {self.config['device']}"
                + ("" if b["eval_active_only"] else " --no-active-only"))

    def priority(self, run: str) -> int:
        return pipeline.priority(self.config, run, self.user_keys)

    def gpus(self, job: str) -> int:
        """GPUs per job of kind ``job`` (train, evaluate): the config's number, or 1 on CUDA for 'auto'."""
        value = self.config["resources"][job]["gpu"]
        return (1 if self.cuda else 0) if value == "auto" else value

    # ------------------------------------------------------------------ checks a schema cannot make
    def problems(self) -> list[str]:
        """What the objective registry refuses in the grid and the experiments, and a Table 2 the grid cannot
        make; each a sentence with the fix."""
        from iwae import objectives

        g = self.grid
        combos = [("objectives", o, k, layers) for o in g["objectives"] for k in g["ks"] for layers in g["layers"]]
        if self.config["family"]:
            t3, est = self.experiments["table3"], self.experiments["estimators"]
            combos += [("experiments/table3", o, t3["k"], t3["layers"]) for o in t3["objectives"]]
            combos += [("experiments/estimators", o, k, est["layers"]) for o in est["objectives"] for k in est["ks"]]
        found = []
        for key, name, k, layers in combos:
            try:
                objectives.get(name).check(k, layers)
            except ValueError as e:
                found.append(f"{key}: {e}")
        if g["table2"] and "mnist" in g["datasets"] and not {"vae", "iwae"} <= set(g["objectives"]):
            found.append(f"'table2': Table 2 continues the grid's VAE K=1 and IWAE K=50 models, but objectives is "
                         f"{g['objectives']}; add vae and iwae to objectives, or set table2=false.")
        return list(dict.fromkeys(found))


def dataset_of(path: str) -> str:
    """The data set a run folder or file belongs to."""
    return next(part for part in re.split(r"[/\\]", path) if part in ("mnist", "omniglot"))
