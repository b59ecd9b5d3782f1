# iwae-repro: Burda, Grosse & Salakhutdinov (ICLR 2016), Table 1 and 2, figures and report.
# Reads like a table of contents; the rules are in workflow/rules/, the science in src/iwae/.
import os


configfile: os.path.join(workflow.basedir, "config", "config.yaml")  # whichever folder runs it (--directory)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        P.final_outputs(latex=bool(LATEXMK)),
