# Evaluation: the K=5000 estimate, bounds and active units of each model (one job per model, or per
# training group with evaluate_by_group: true), and of the stage snapshots for a learning curve.


for name, model, metrics, log in EVALUATIONS:

    rule:
        """A model's numbers (evaluate) or a stage snapshot's (evaluate_stage: the learning curve)."""
        name:
            name
        input:
            model=model,
            manifest=manifest_of,
        output:
            metrics=metrics,
        log:
            log,
        benchmark:
            log.replace("logs/", "benchmarks/rules/").replace(".log", ".tsv")
        wildcard_constraints:
            run="results/.+/seed[0-9]+",
        priority: 100  # before more training: a learning curve grows while the run goes on
        conda:
            ENV
        threads: config["resources"]["evaluate"]["threads"]
        resources:
            **job_resources("evaluate", BUDGET["eval_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            args=eval_args(name),
        shell:
            EVAL_SHELL


if config["evaluate_by_group"]:

    ruleorder: evaluate_group > evaluate
    ruleorder: evaluate_group > evaluate_stage

    rule evaluate_group:
        """Every member of a Table 1 training group in one job (one process per kind; the data read once): the
        final models, and their stage snapshots where the budget evaluates a learning curve.
        """
        input:
            model=group_outputs("results/", GRID["objectives"], GRID["seeds"]),
            snapshots=group_stage_files(".pt"),
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            metrics=group_outputs(
                "results/", GRID["objectives"], GRID["seeds"], "metrics.json"
            ),
            stage_metrics=group_stage_files(".metrics.json"),
        log:
            "logs/evaluate/{dataset}/L{layers}/k{k}.log",
        benchmark:
            "benchmarks/rules/evaluate/{dataset}/L{layers}/k{k}.tsv"
        conda:
            ENV
        threads: config["resources"]["evaluate"]["threads"]
        resources:
            **job_resources(
                "evaluate",
                BUDGET["eval_runtime_min"]
                * len(GRID["objectives"])
                * len(GRID["seeds"]),
            ),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            args=eval_args("evaluate"),
            stage_args=eval_args("evaluate_stage"),
        shell:
            GROUP_EVAL_SHELL
