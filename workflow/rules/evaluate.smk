rule evaluate:
    input:
        model="{run}/model.pt",
        manifest=lambda w: f"{DATA}/{w.run.split('/')[1]}/manifest.json",
    output:
        metrics="{run}/metrics.json",
    log:
        "logs/evaluate/{run}.log",
    benchmark:
        "benchmarks/rules/evaluate/{run}.tsv"
    wildcard_constraints:
        run="results/.+/seed[0-9]+",
    params:
        data_dir=lambda w, input: os.path.dirname(os.path.dirname(input.manifest)),
        subset=f"--test-subset {BUDGET['eval_test_subset']}" if BUDGET["eval_test_subset"] else "",
        k=BUDGET["eval_k"],
        train_subset=BUDGET["eval_train_subset"],
        au=BUDGET["active_units_n"],
        device=config["device"],
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **SLURM,
        mem_mb=config["resources"]["evaluate"]["mem_mb"],
        runtime=BUDGET["eval_runtime_min"],
        gpu=config["resources"]["evaluate"]["gpu"],
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae evaluate --model {input.model} --out {output.metrics} --data-dir {params.data_dir} --k {params.k} "
        "{params.subset} --train-subset {params.train_subset} --active-units-n {params.au} "
        "--device {params.device} --threads {threads} > {log} 2>&1"
