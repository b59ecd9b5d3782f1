# Training. One job trains a whole group -- every objective and seed of one (dataset, layers, K) -- as
# one stack (`iwae train --objectives ... --seeds ...`); each member still writes its own model.pt.
# A killed job leaves checkpoint.pt in its first member's folder; running the workflow again resumes
# from it, because the checkpoint is not a declared output and is never deleted.
# With train_together (a budget's key), one job per data set trains all of its Table 1 groups in one
# process instead, each on its own CUDA stream (for one GPU); the per-group files are the same.


for name, prefix, grid in TRAIN_GROUPS:

    rule:
        """Table 1 (train) and the family experiments (train_table3, train_estimators): the objectives x seeds
        of one (dataset, layers, K), trained together under the experiment's folder.
        """
        name:
            name
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            models=group_outputs(prefix, grid["objectives"], grid["seeds"]),
            snapshots=snapshot_outputs(prefix, grid) if name == "train" else [],
        log:
            f"logs/{name}/{{dataset}}/L{{layers}}/k{{k}}.log",
        benchmark:
            f"benchmarks/rules/{name}/{{dataset}}/L{{layers}}/k{{k}}.tsv"
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            **train_params(grid),
            out=group_pattern(prefix),
        shell:
            TRAIN_SHELL
            + " --dataset {wildcards.dataset} --layers {wildcards.layers} --k {wildcards.k} >> {log} 2>&1"


if TRAIN_TOGETHER:

    ruleorder: train_together > train

    rule train_together:
        """Every Table 1 group of one data set in one process (several stacks, one CUDA stream each)."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            models=together_outputs("model.pt"),
            snapshots=together_snapshots(),
        log:
            "logs/train/{dataset}/together.log",
        benchmark:
            "benchmarks/rules/train/{dataset}/together.tsv"
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            **train_params(GRID),
            out=out_pattern("results/", "dataset"),
            layers=csv(GRID["layers"]),
            ks=csv(GRID["ks"]),
        shell:
            TRAIN_SHELL
            + " --dataset {wildcards.dataset} --layers {params.layers} --k {params.ks} >> {log} 2>&1"


if PER_STAGE:

    rule train_stage:
        """One model trained up to the end of one stage (train_per_stage): a chain of jobs, each resuming the
        checkpoint the one before left at its stage's end, so that every stage's snapshot is evaluated while the
        next stage trains."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
            before=previous_snapshot,
        output:
            snapshot=f"{RUN}/stages/stage{{stage}}.pt",
        log:
            f"logs/train/{RUN_TAIL}/stage{{stage}}.log",
        benchmark:
            f"benchmarks/rules/train/{RUN_TAIL}/stage{{stage}}.tsv"
        wildcard_constraints:
            stage="|".join(str(s) for s in BUDGET["stages"][:-1]),
        priority: train_priority
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            stages=stages_arg(),
            common=train_args(),
            out=RUN,
        shell:
            "{params.iwae} train --objectives {wildcards.objective} --seeds {wildcards.seed} --dataset {wildcards.dataset} "
            "--layers {wildcards.layers} --k {wildcards.k} {params.stages} {params.common} --until-stage {wildcards.stage} "
            "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"

    rule train_last_stage:
        """The chain's last job (train_per_stage): the last stage, then the model."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
            before=previous_snapshot,
        output:
            model=f"{RUN}/model.pt",
            snapshot=f"{RUN}/stages/stage{BUDGET['stages'][-1]}.pt",
        log:
            f"logs/train/{RUN_TAIL}/stage{BUDGET['stages'][-1]}.log",
        benchmark:
            f"benchmarks/rules/train/{RUN_TAIL}/stage{BUDGET['stages'][-1]}.tsv"
        priority: train_priority
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            stages=stages_arg(),
            common=train_args(),
            out=RUN,
        shell:
            "{params.iwae} train --objectives {wildcards.objective} --seeds {wildcards.seed} --dataset {wildcards.dataset} "
            "--layers {wildcards.layers} --k {wildcards.k} {params.stages} {params.common} "
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
        **job_resources("train", BUDGET["train_runtime_min"]),
    params:
        iwae=IWAE,
        data_dir=data_folder,
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
