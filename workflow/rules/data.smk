# Data: fetched once per dataset, on the machine that runs Snakemake (compute nodes may have no internet).


localrules:
    fetch_data,


rule fetch_data:
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    log:
        "logs/fetch_data/{dataset}.log",
    benchmark:
        "benchmarks/rules/fetch_data/{dataset}.tsv"
    conda:
        ENV
    resources:
        **SLURM,
        runtime=30,
        mem_mb=1000,
    params:
        iwae=IWAE,
        data_dir=data_folder,
        mirror=f"--mirror {config['data_mirror']}" if config["data_mirror"] else "",
        source=lambda w: (
            f"--source-file {config['omniglot_file']}"
            if w.dataset == "omniglot" and config["omniglot_file"]
            else ""
        ),
        unverified=lambda w: (
            "--allow-unverified" if w.dataset in config["allow_unverified"] else ""
        ),
    shell:
        "{params.iwae} fetch {wildcards.dataset} --data-dir {params.data_dir} {params.mirror} {params.source} "
        "{params.unverified} > {log} 2>&1"
