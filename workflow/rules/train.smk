# Training. A killed job leaves checkpoint.pt beside its (missing) model.pt; running the workflow
# again resumes from it, because the checkpoint is not a declared output and is never deleted.


rule train:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    output:
        model=f"{RUN}/model.pt",
    log:
        f"logs/train/{RUN}.log",
    benchmark:
        f"benchmarks/rules/train/{RUN}.tsv"
    params:
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        stages=",".join(str(s) for s in BUDGET["stages"]),
        scale=BUDGET["epoch_scale"],
        common=train_args(),
        out=lambda w, output: os.path.dirname(output.model),
    threads: config["resources"]["train"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=BUDGET["train_runtime_min"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae train --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--objective {wildcards.objective} --k {wildcards.k} --seed {wildcards.seed} "
        "--stages {params.stages} --epoch-scale {params.scale} {params.common} "
        "--threads {threads} --data-dir {params.data_dir} --out {params.out} >> {log} 2>&1"


rule train_continued:
    """The paper's Table 2: continue a finished model with the other objective at lr 1e-4 (stage 7)."""
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
        first="results/{dataset}/L{layers}/{first}-k{fk}/seed{seed}/model.pt",
    output:
        model=f"{CONT}/model.pt",
    log:
        f"logs/train/{CONT}.log",
    benchmark:
        f"benchmarks/rules/train/{CONT}.tsv"
    params:
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        scale=BUDGET["table2_epochs"] / 3**7,
        common=train_args(),
        out=lambda w, output: os.path.dirname(output.model),
    threads: config["resources"]["train"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=BUDGET["train_runtime_min"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae train --dataset {wildcards.dataset} --layers {wildcards.layers} "
        "--objective {wildcards.objective} --k {wildcards.k} --seed {wildcards.seed} "
        "--stages 7 --epoch-scale {params.scale} --init-from {input.first} {params.common} "
        "--threads {threads} --data-dir {params.data_dir} --out {params.out} >> {log} 2>&1"
