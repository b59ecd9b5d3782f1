# Evaluation: the K=5000 estimate, bounds and active units of each model (one job per model, or per
# training group with evaluate_by_group: true), and of the stage snapshots for a learning curve.


rule evaluate:
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
    conda:
        ENV
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["evaluate"]["mem_mb"],
        runtime=BUDGET["eval_runtime_min"],
        gpu=gpus("evaluate"),
    params:
        iwae=IWAE,
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        args=eval_args(),
    shell:
        "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} {params.args} "
        "--threads {threads} > {log} 2>&1"


rule evaluate_stage:
    """A stage snapshot of a Table 1 model (budgets with eval_stages: true): the learning curve."""
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
    conda:
        ENV
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["evaluate"]["mem_mb"],
        runtime=BUDGET["eval_runtime_min"],
        gpu=gpus("evaluate"),
    params:
        iwae=IWAE,
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        args=eval_args(),
    shell:
        "{params.iwae} evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} {params.args} "
        "--threads {threads} > {log} 2>&1"


if config["evaluate_by_group"]:

    ruleorder: evaluate_group > evaluate

    rule evaluate_group:
        """Every member of a Table 1 training group in one job (one process; the data read once)."""
        input:
            models=group_outputs("results/", GRID["objectives"], GRID["seeds"]),
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            metrics=group_outputs(
                "results/", GRID["objectives"], GRID["seeds"], "metrics.json"
            ),
        log:
            "logs/evaluate/{dataset}/L{layers}/k{k}.log",
        benchmark:
            "benchmarks/rules/evaluate/{dataset}/L{layers}/k{k}.tsv"
        conda:
            ENV
        threads: config["resources"]["evaluate"]["threads"]
        resources:
            **SLURM,
            mem_mb=config["resources"]["evaluate"]["mem_mb"],
            runtime=BUDGET["eval_runtime_min"]
            * len(GRID["objectives"])
            * len(GRID["seeds"]),
            gpu=gpus("evaluate"),
        params:
            iwae=IWAE,
            data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
            args=eval_args(),
        shell:
            "{params.iwae} evaluate --model {input.models} --out {output.metrics} --data-dir {params.data_dir} "
            "{params.args} --threads {threads} > {log} 2>&1"
