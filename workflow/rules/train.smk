# Training. One job trains a whole group -- every objective and seed of one (dataset, layers, K) -- as one stack
# (`iwae train --objectives ... --seeds ...`); each member still writes its own model.pt. A killed job leaves
# checkpoint.pt in its first member's folder; running the workflow again resumes from it, because the checkpoint
# is not a declared output and is never deleted. Snakemake does delete the stage snapshots such a job had written
# (a failed job's outputs, and again before it reruns it): the resumed job puts them back from the kept copies in
# each member's checkpoint-stages/ (undeclared, gone when the member is trained). Budgets may instead train each data set's groups in one process
# (train_together: one CUDA stream per group), or each model alone, one job per stage (train_per_stage).


if not (P.per_stage or P.together):

    rule train:
        """Table 1: the objectives x seeds of one (dataset, layers, K), trained together as one stack."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            models=P.member_files("results/", GRID),
            snapshots=P.group_snapshots("results/", GRID),
        log:
            "logs/train/{dataset}/L{layers}/k{k}.log",
        benchmark:
            "benchmarks/rules/train/{dataset}/L{layers}/k{k}.tsv"
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            members=f"--objectives {csv(GRID['objectives'])} --seeds {csv(GRID['seeds'])}",
            stages=P.stages_arg(),
            args=P.protocol_args(),
            out=P.group_out("results/"),
        shell:
            "{params.iwae} train {params.members} {params.stages} {params.args} --threads {threads} "
            "--data-dir {params.data_dir} --out '{params.out}' --dataset {wildcards.dataset} --layers {wildcards.layers} "
            "--k {wildcards.k} >> {log} 2>&1"


if P.together:

    rule train_together:
        """Every Table 1 group of one data set in one process (several stacks, one CUDA stream each)."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
        output:
            models=P.together_files("model.pt"),
            snapshots=P.together_snapshots(),
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
            iwae=IWAE,
            data_dir=data_folder,
            members=f"--objectives {csv(GRID['objectives'])} --seeds {csv(GRID['seeds'])}",
            stages=P.stages_arg(),
            args=P.protocol_args(),
            out=P.group_out("results/", known=("dataset",)),
            groups=f"--layers {csv(GRID['layers'])} --k {csv(GRID['ks'])}",
        shell:
            "{params.iwae} train {params.members} {params.stages} {params.args} --threads {threads} "
            "--data-dir {params.data_dir} --out '{params.out}' --dataset {wildcards.dataset} {params.groups} "
            ">> {log} 2>&1"


if P.per_stage:

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
            stage="|".join(str(s) for s in P.stages[:-1]),
        priority: train_priority
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            stages=P.stages_arg(),
            args=P.protocol_args(),
            out=RUN,
        shell:
            "{params.iwae} train --objectives {wildcards.objective} --seeds {wildcards.seed} --dataset {wildcards.dataset} "
            "--layers {wildcards.layers} --k {wildcards.k} {params.stages} {params.args} --until-stage {wildcards.stage} "
            "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"

    rule train_last_stage:
        """The chain's last job (train_per_stage): the last stage, then the model."""
        input:
            manifest=f"{DATA}/{{dataset}}/manifest.json",
            before=previous_snapshot,
        output:
            model=f"{RUN}/model.pt",
            snapshot=f"{RUN}/stages/stage{P.stages[-1]}.pt",
        log:
            f"logs/train/{RUN_TAIL}/stage{P.stages[-1]}.log",
        benchmark:
            f"benchmarks/rules/train/{RUN_TAIL}/stage{P.stages[-1]}.tsv"
        priority: train_priority
        conda:
            ENV
        threads: config["resources"]["train"]["threads"]
        resources:
            **job_resources("train", BUDGET["train_runtime_min"]),
        params:
            iwae=IWAE,
            data_dir=data_folder,
            stages=P.stages_arg(),
            args=P.protocol_args(),
            out=RUN,
        shell:
            "{params.iwae} train --objectives {wildcards.objective} --seeds {wildcards.seed} --dataset {wildcards.dataset} "
            "--layers {wildcards.layers} --k {wildcards.k} {params.stages} {params.args} "
            "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"


rule train_continued:
    """The paper's Table 2: continue finished models with the other objective at lr 1e-4 (stage 7),
    with their optimiser and random state (table2_state: continue), every seed in one job.
    """
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
        first=fill(f"{RUN}/model.pt", objective="{first}", k="{fk}", seed=GRID["seeds"]),
    output:
        models=[
            f"{CONTINUED}/model.pt".replace("{seed}", str(s)) for s in GRID["seeds"]
        ],
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
        args=P.protocol_args(),
        state="--fresh-optimizer" if config["table2_state"] == "fresh" else "",
        first=lambda w: f"{RUN.format(dataset=w.dataset, layers=w.layers, objective=w.first, k=w.fk, seed='{seed}')}/model.pt",
        out=lambda w: fill(CONTINUED, **{key: getattr(w, key) for key in w.keys()})[0],
    shell:
        "{params.iwae} train --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--objective {wildcards.objective} --k {wildcards.k} --seeds {params.seeds} "
        "--stages 7 --epoch-scale {params.scale} --init-from '{params.first}' {params.state} {params.args} "
        "--threads {threads} --data-dir {params.data_dir} --out '{params.out}' >> {log} 2>&1"


# Beyond the paper: the family experiments' groups, each under results/<experiment>/ (make family).
rule train_table3:
    """Table 3 (Rainforth et al.): the objectives x seeds of one (dataset, layers, K) as one stack."""
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    output:
        models=P.member_files("results/table3/", EXP["table3"]),
    log:
        "logs/train_table3/{dataset}/L{layers}/k{k}.log",
    benchmark:
        "benchmarks/rules/train_table3/{dataset}/L{layers}/k{k}.tsv"
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **job_resources("train", BUDGET["train_runtime_min"]),
    params:
        iwae=IWAE,
        data_dir=data_folder,
        members=f"--objectives {csv(EXP['table3']['objectives'])} --seeds {csv(EXP['table3']['seeds'])}",
        stages=P.stages_arg(),
        args=P.protocol_args(),
        out=P.group_out("results/table3/"),
    shell:
        "{params.iwae} train {params.members} {params.stages} {params.args} --threads {threads} "
        "--data-dir {params.data_dir} --out '{params.out}' --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--k {wildcards.k} >> {log} 2>&1"


rule train_estimators:
    """The gradient estimators against IWAE: the estimators x seeds of one (dataset, layers, K) as one stack."""
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    output:
        models=P.member_files("results/estimators/", EXP["estimators"]),
    log:
        "logs/train_estimators/{dataset}/L{layers}/k{k}.log",
    benchmark:
        "benchmarks/rules/train_estimators/{dataset}/L{layers}/k{k}.tsv"
    conda:
        ENV
    threads: config["resources"]["train"]["threads"]
    resources:
        **job_resources("train", BUDGET["train_runtime_min"]),
    params:
        iwae=IWAE,
        data_dir=data_folder,
        members=f"--objectives {csv(EXP['estimators']['objectives'])} --seeds {csv(EXP['estimators']['seeds'])}",
        stages=P.stages_arg(),
        args=P.protocol_args(),
        out=P.group_out("results/estimators/"),
    shell:
        "{params.iwae} train {params.members} {params.stages} {params.args} --threads {threads} "
        "--data-dir {params.data_dir} --out '{params.out}' --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--k {wildcards.k} >> {log} 2>&1"
