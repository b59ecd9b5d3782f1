# Tables, figures and sample images from the runs' metrics and models (small jobs: run where Snakemake runs).


localrules:
    tables,
    figures,
    samples,
    family_tables,


rule tables:
    input:
        metrics=P.all_metrics(),
        curve=P.curve_metrics(),
    output:
        [
            (
                report(
                    t,
                    caption=f"../report/table_{os.path.basename(t).split('.')[0]}.rst",
                    category="Tables",
                    labels={"table": os.path.basename(t)},
                )
                if t.endswith(".md")
                else t
            )
            for t in P.tables()
        ],
        runs="results/tables/all_runs.csv",
    log:
        "logs/report/tables.log",
    benchmark:
        "benchmarks/rules/report/tables.tsv"
    conda:
        ENV
    resources:
        **REPORT_RESOURCES,
    params:
        iwae=IWAE,
        curve=curve_arg,
        floor=noise_floor_arg(),
    shell:
        "{params.iwae} report tables {input.metrics} {params.curve} {params.floor} --out results/tables > {log} 2>&1"


rule figures:
    input:
        metrics=P.all_metrics(),
        curve=P.curve_metrics(),
    output:
        [
            (
                report(
                    f,
                    caption=f"../report/figure_{os.path.basename(f).split('.')[0]}.rst",
                    category="Figures",
                    labels={"figure": os.path.basename(f).split(".")[0]},
                )
                if f.endswith(".png")
                else f
            )
            for f in P.figures()
        ],
    log:
        "logs/report/figures.log",
    benchmark:
        "benchmarks/rules/report/figures.tsv"
    conda:
        ENV
    resources:
        **REPORT_RESOURCES,
    params:
        iwae=IWAE,
        curve=curve_arg,
    shell:
        "{params.iwae} report figures {input.metrics} {params.curve} --out results/figures > {log} 2>&1"


rule samples:
    input:
        P.all_models(),
    output:
        report(
            "results/figures/samples.png",
            caption="../report/figure_samples.rst",
            category="Figures",
            labels={"figure": "samples"},
        ),
        "results/figures/samples.pdf",
        "results/figures/samples.caption.tex",
    log:
        "logs/report/samples.log",
    benchmark:
        "benchmarks/rules/report/samples.tsv"
    conda:
        ENV
    resources:
        **REPORT_RESOURCES,
    params:
        iwae=IWAE,
    shell:
        "{params.iwae} report samples {input} --out results/figures/samples > {log} 2>&1"


rule snr:
    """Gradient signal-to-noise ratios against K at the trained SNR model and at its first-stage snapshot."""
    input:
        model=f"{P.snr_model()}/model.pt",
        manifest=f"{DATA}/{EXP['snr']['dataset']}/manifest.json",
    output:
        snr="results/snr/snr.csv",
        slopes="results/snr/snr_slopes.csv",
    log:
        "logs/snr/snr.log",
    benchmark:
        "benchmarks/rules/snr/snr.tsv"
    conda:
        ENV
    threads: config["resources"].get("snr", {}).get("threads", 1)
    resources:
        **SLURM,
        mem_mb=config["resources"].get("snr", {}).get("mem_mb", 3000),
        runtime=BUDGET["eval_runtime_min"],
    params:
        iwae=IWAE,
        data_dir=data_folder,
        early=f"{P.snr_model()}/stages/stage{P.stages[0]}.pt",
        ks=csv(EXP["snr"]["ks"]),
        estimators=csv(EXP["snr"]["estimators"]),
        draws=EXP["snr"]["draws"],
        images=EXP["snr"]["images"],
    shell:
        "{params.iwae} snr --model trained={input.model} --model early={params.early} --data-dir {params.data_dir} "
        "--ks {params.ks} --estimators {params.estimators} --draws {params.draws} --images {params.images} "
        "--threads {threads} --out {output.snr} > {log} 2>&1"


rule family_tables:
    """Beyond the paper: Table 3 (Rainforth et al.), the estimator comparison, the SNR slopes and figure."""
    input:
        table3=[f"{run}/metrics.json" for run in P.experiment_runs("table3")],
        estimators=[f"{run}/metrics.json" for run in P.experiment_runs("estimators")],
        snr="results/snr/snr.csv",
        slopes="results/snr/snr_slopes.csv",
    output:
        [
            (
                report(
                    t,
                    caption=f"../report/{'figure' if t.endswith('.png') else 'table'}_{os.path.basename(t).split('.')[0]}.rst",
                    category="Beyond the paper",
                    labels={"item": os.path.basename(t)},
                )
                if t.endswith((".md", ".png"))
                else t
            )
            for t in P.family()
        ],
    log:
        "logs/report/family.log",
    benchmark:
        "benchmarks/rules/report/family.tsv"
    conda:
        ENV
    resources:
        **REPORT_RESOURCES,
    params:
        iwae=IWAE,
    shell:
        "{params.iwae} report family --table3 {input.table3} --estimators {input.estimators} --snr {input.snr} "
        "--out results > {log} 2>&1"
