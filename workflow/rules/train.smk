# Training. One job trains a whole group -- every objective and seed of one (dataset, layers, K) -- as
# one stack (`iwae train --objectives ... --seeds ...`); each member still writes its own model.pt.
# A killed job leaves checkpoint.pt in its first member's folder; running the workflow again resumes
# from it, because the checkpoint is not a declared output and is never deleted.


rule train:
    """Table 1: the grid's objectives x seeds of one (dataset, layers, K), trained together."""
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    output:
        models=group_outputs("results/", GRID["objectives"], GRID["seeds"]),
        snapshots=(
            [
                f
                for s in BUDGET["stages"]
                for f in group_outputs(
                    "results/",
                    GRID["objectives"],
                    GRID["seeds"],
                    f"stages/stage{s}.pt",
                )
            ]
            if BUDGET.get("eval_stages")
            else []
        ),
    log:
        "logs/train/{dataset}/L{layers}/k{k}.log",
    benchmark:
        "benchmarks/rules/train/{dataset}/L{layers}/k{k}.tsv"
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=BUDGET["train_runtime_min"],
        gpu=gpus("train"),
    params:
        iwae=IWAE,
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        objectives=csv(GRID["objectives"]),
        seeds=csv(GRID["seeds"]),
        out=group_pattern("results/"),
        stages=stages_arg(),
        common=train_args(),
    shell:
        "{params.iwae} train --dataset {wildcards.dataset} --layers {wildcards.layers} --k {wildcards.k} "
        "--objectives {params.objectives} --seeds {params.seeds} {params.stages} {params.common} "
        "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"


rule train_continued:
    """The paper's Table 2: continue finished models with the other objective at lr 1e-4 (stage 7),
    with their optimiser and random state (table2_state: continue), every seed in one job.
    """
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
        first=expand(
            "results/{{dataset}}/L{{layers}}/{{first}}-k{{fk}}/seed{seed}/model.pt",
            seed=GRID["seeds"],
        ),
    output:
        models=expand(
            "results/{{dataset}}/L{{layers}}/continued/{{first}}-k{{fk}}_then_{{objective}}-k{{k}}/seed{seed}/model.pt",
            seed=GRID["seeds"],
        ),
    log:
        "logs/train/{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}.log",
    benchmark:
        "benchmarks/rules/train/{dataset}/L{layers}/continued/{first}-k{fk}_then_{objective}-k{k}.tsv"
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=BUDGET["train_runtime_min"],
        gpu=gpus("train"),
    params:
        iwae=IWAE,
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        seeds=csv(GRID["seeds"]),
        scale=BUDGET["table2_epochs"] / 3**7,
        common=train_args(),
        state="--fresh-optimizer" if config["table2_state"] == "fresh" else "",
        first=lambda w: f"results/{w.dataset}/L{w.layers}/{w.first}-k{w.fk}/seed{{seed}}/model.pt",
        out=lambda w: f"results/{w.dataset}/L{w.layers}/continued/{w.first}-k{w.fk}_then_{w.objective}-k{w.k}/seed{{seed}}",
    shell:
        "{params.iwae} train --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--objective {wildcards.objective} --k {wildcards.k} --seeds {params.seeds} "
        "--stages 7 --epoch-scale {params.scale} --init-from '{params.first}' {params.state} {params.common} "
        "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"


for experiment in ("table3", "estimators"):

    rule:
        """Beyond the paper (Table 3, the estimator comparison): the experiment's objectives x seeds of one
        (dataset, layers, K), trained together, under results/<experiment>/."""
        name:
            f"train_{experiment}"
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            models=group_outputs(
                f"results/{experiment}/",
                EXP[experiment]["objectives"],
                EXP[experiment]["seeds"],
            ),
        log:
            f"logs/train/{experiment}/{{dataset}}/L{{layers}}/k{{k}}.log",
        benchmark:
            f"benchmarks/rules/train/{experiment}/{{dataset}}/L{{layers}}/k{{k}}.tsv"
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **SLURM,
            mem_mb=config["resources"]["train"]["mem_mb"],
            runtime=BUDGET["train_runtime_min"],
            gpu=gpus("train"),
        params:
            iwae=IWAE,
            data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
            objectives=csv(EXP[experiment]["objectives"]),
            seeds=csv(EXP[experiment]["seeds"]),
            out=group_pattern(f"results/{experiment}/"),
            stages=stages_arg(),
            common=train_args(),
        shell:
            "{params.iwae} train --dataset {wildcards.dataset} --layers {wildcards.layers} --k {wildcards.k} "
            "--objectives {params.objectives} --seeds {params.seeds} {params.stages} {params.common} "
            "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"
