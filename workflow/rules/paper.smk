rule paper_pdf:
    """A short LaTeX reproduction report over the generated tables and figures (needs latexmk)."""
    input:
        tex="paper/report.tex",
        tables=TABLES,
        figures=FIGURES + [SAMPLES],
    output:
        pdf=report("results/paper/report.pdf", caption="../report/paper.rst", category="Paper"),
    log:
        "logs/paper/report.log",
    benchmark:
        "benchmarks/rules/paper/report.tsv"
    resources:
        **SLURM,
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/latex.yaml"
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd -outdir=../results/paper/build "
        "{input.tex} > {log} 2>&1 && cp results/paper/build/report.pdf {output.pdf}"
