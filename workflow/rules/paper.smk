# The LaTeX reproduction report over the generated tables and figures (needs latexmk).


localrules:
    paper_pdf,


if os.path.abspath(os.getcwd()) != REPO:

    localrules:
        paper_source,

    rule paper_source:
        """The report's LaTeX source beside the results, for a run in a folder of its own (--directory)."""
        input:
            os.path.join(REPO, "paper", "report.tex"),
        output:
            "paper/report.tex",
        shell:
            "cp {input} {output}"


rule paper_pdf:
    """A short reproduction report: the protocol, the tables, the figures and what the run supports."""
    input:
        tex="paper/report.tex",
        tables=P.tables(),
        figures=P.figures() + P.samples(),
        family=P.family(),
    output:
        pdf=report(
            "results/paper/report.pdf",
            caption="../report/paper.rst",
            category="Report",
        ),
    log:
        "logs/paper/report.log",
    benchmark:
        "benchmarks/rules/paper/report.tsv"
    conda:
        "../envs/latex.yaml"
    resources:
        **SLURM,
        runtime=10,
        mem_mb=1000,
    params:
        family="\\def\\withfamily{}" if config["family"] else "",
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd -outdir=../results/paper/build "
        "-usepretex='{params.family}' {input.tex} > {log} 2>&1 && cp results/paper/build/report.pdf {output.pdf}"
