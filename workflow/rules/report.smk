rule tables:
    input:
        all_metrics(),
    output:
        TABLES,
        runs="results/tables/all_runs.csv",
    log:
        "logs/report/tables.log",
    benchmark:
        "benchmarks/rules/report/tables.tsv"
    resources:
        **SLURM,
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae report tables {input} --out results/tables > {log} 2>&1"


rule figures:
    input:
        all_metrics(),
    output:
        report("results/figures/nll_vs_k.png", caption="../report/nll_vs_k.rst", category="Table 1"),
        report("results/figures/active_units_vs_k.png", caption="../report/active_units.rst", category="Table 1"),
        report("results/figures/wallclock_vs_k.png", caption="../report/wallclock.rst", category="Cost"),
        report("results/figures/activity_hist.png", caption="../report/activity_hist.rst", category="Active units"),
        report("results/figures/bounds.png", caption="../report/bounds.rst", category="Bounds"),
        report("results/figures/training_curves.png", caption="../report/training_curves.rst", category="Training"),
    log:
        "logs/report/figures.log",
    benchmark:
        "benchmarks/rules/report/figures.tsv"
    resources:
        **SLURM,
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae report figures {input} --out results/figures > {log} 2>&1"


rule samples:
    input:
        all_models(),
    output:
        report(SAMPLES, caption="../report/samples.rst", category="Samples"),
    log:
        "logs/report/samples.log",
    benchmark:
        "benchmarks/rules/report/samples.tsv"
    resources:
        **SLURM,
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/iwae.yaml"
    shell:
        "iwae report samples {input} --out {output} > {log} 2>&1"
