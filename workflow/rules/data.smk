rule fetch_data:
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    log:
        "logs/fetch_data/{dataset}.log",
    benchmark:
        "benchmarks/rules/fetch_data/{dataset}.tsv"
    params:
        data_dir=lambda w, output: os.path.dirname(os.path.dirname(output.manifest)),
        mirror=f"--mirror {config['data_mirror']}" if config["data_mirror"] else "",
        source=lambda w: f"--source-file {config['omniglot_file']}"
        if w.dataset == "omniglot" and config["omniglot_file"]
        else "",
        unverified=lambda w: "--allow-unverified" if w.dataset in config["allow_unverified"] else "",
    resources:
        **SLURM,
        runtime=30,
        mem_mb=1000,
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae fetch {wildcards.dataset} --data-dir {params.data_dir} {params.mirror} {params.source} "
        "{params.unverified} > {log} 2>&1"
