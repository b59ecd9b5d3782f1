# Evaluation: the K=5000 estimate, bounds and active units of each model (one job per model, or per training
# group with evaluate_by_group: true), and of the stage snapshots for a learning curve. Evaluations run before
# more training (priority): a learning curve grows while the run goes on.


rule evaluate:
    """A model's numbers: the test log-likelihood (K=5000), the bounds, the train log-likelihood, active units."""
    input:
        model="{run}/model.pt",
        manifest=manifest_of,
    output:
        metrics="{run}/metrics.json",
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        "benchmarks/rules/evaluate/{run}.tsv"
    wildcard_constraints:
        run="results/.+/seed[0-9]+",
    priority: 100
    conda:
        ENV
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **job_resources("evaluate", BUDGET["eval_runtime_min"]),
    params:
        iwae=IWAE,
        data_dir=data_folder,
        args=P.eval_args(),
    shell:
        "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} "
        "{params.args} --threads {threads} > {log} 2>&1"


rule evaluate_stage:
    """A stage snapshot's numbers (a point of the learning curve), on the budget's stage test images."""
    input:
        model="{run}/stages/stage{stage}.pt",
        manifest=manifest_of,
    output:
        metrics="{run}/stages/stage{stage}.metrics.json",
    log:
        "logs/evaluate/{run}/stage{stage}.log",
    benchmark:
        "benchmarks/rules/evaluate/{run}/stage{stage}.tsv"
    wildcard_constraints:
        run="results/.+/seed[0-9]+",
    priority: 100
    conda:
        ENV
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **job_resources("evaluate", BUDGET["eval_runtime_min"]),
    params:
        iwae=IWAE,
        data_dir=data_folder,
        args=P.eval_args(stage=True),
    shell:
        "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} "
        "{params.args} --threads {threads} > {log} 2>&1"


if config["evaluate_by_group"]:

    ruleorder: evaluate_group > evaluate
    ruleorder: evaluate_group > evaluate_stage

    rule evaluate_group:
        """Every member of a Table 1 training group in one job (one process per kind; the data read once): the
        final models, then their stage snapshots where the budget evaluates a learning curve.
        """
        input:
            model=P.member_files("results/", GRID),
            snapshots=P.group_stage_files(".pt"),
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            metrics=P.member_files("results/", GRID, "metrics.json"),
            stage_metrics=P.group_stage_files(".metrics.json"),
        log:
            "logs/evaluate/{dataset}/L{layers}/k{k}.log",
        benchmark:
            "benchmarks/rules/evaluate/{dataset}/L{layers}/k{k}.tsv"
        priority: 100
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
            args=P.eval_args(),
            stage_args=P.eval_args(stage=True),
        shell:
            "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} "
            "{params.args} --threads {threads} > {log} 2>&1 && if [ -n '{input.snapshots}' ]; then "
            "{params.iwae} evaluate --model {input.snapshots} --out {output.stage_metrics} --data-dir "
            "{params.data_dir} {params.stage_args} --threads {threads} >> {log} 2>&1; fi"
