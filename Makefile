# Two commands that work on a fresh machine: `make reproduce` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Local data mirror: $IWAE_DATA_MIRROR, else ../shared/data when it exists (offline dev machines).
IWAE_DATA_MIRROR ?= $(wildcard $(CURDIR)/../shared/data)
export IWAE_DATA_MIRROR
# Omniglot: the paper's chardata.mat is fetched upstream. Where only the labelled stand-in of the
# mirror exists, using it is this explicit, recorded choice (every output says "UNVERIFIED").
# Set OMNIGLOT_STANDIN= (empty) to refuse it.
OMNIGLOT_STANDIN ?= $(wildcard $(IWAE_DATA_MIRROR)/omniglot-substitute/chardata.mat)
SNAKE_ARGS ?=
CONFIG_ITEMS := $(if $(OMNIGLOT_STANDIN),omniglot_file=$(OMNIGLOT_STANDIN) 'allow_unverified=[omniglot]')

.PHONY: venv smoke reproduce family long noise docs-runs docs-publish docs-tables test bench bench-peers gpu-check gpu-prepare cpu-paper cpu-paper-status cpu-paper-stop cpu-paper-save cpu-paper-peek cpu-paper-yardstick

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# A Snakemake killed outright (SIGKILL, a closed terminal) leaves its lock: `unlock` removes it when no Snakemake or
# job runs in this folder, so that the same command goes on where it stopped (it says what it did).
UNLOCK = $(PY) -m iwae.longrun unlock --workdir .

# The smallest run, a first try: the whole grid at the smoke budget (1 epoch on 200 images; not for conclusions).
smoke: venv
	@$(UNLOCK)
	time snakemake --cores all $(SNAKE_ARGS) --config budget=smoke $(CONFIG_ITEMS)

reproduce: venv
	@$(UNLOCK)
	@if [ -n "$(OMNIGLOT_STANDIN)" ]; then echo "NOTE: Omniglot uses the stand-in $(OMNIGLOT_STANDIN) (not the paper's file; results are labelled UNVERIFIED)"; fi
	time snakemake --cores all $(SNAKE_ARGS) $(if $(CONFIG_ITEMS),--config $(CONFIG_ITEMS))
	snakemake --cores 1 $(SNAKE_ARGS) --report results/report.html $(if $(CONFIG_ITEMS),--config $(CONFIG_ITEMS))

test: venv
	$(PY) -m pytest -v --durations=15 $(PYTEST_ARGS)

# Beyond the paper (Table 3, the estimators, the SNR figure) at the quick budget, on top of the reproduction.
family: venv
	@$(UNLOCK)
	time snakemake --cores all $(SNAKE_ARGS) --config family=true $(CONFIG_ITEMS)
	snakemake --cores 1 $(SNAKE_ARGS) --report results/report.html --config family=true $(CONFIG_ITEMS)

# The longer CPU budget (48 min on 2 cores, 2026-11-27): MNIST, 1 layer, K=50, 40 epochs, with its learning curve.
long: venv
	@$(UNLOCK)
	time snakemake --cores all --set-threads train=2 $(SNAKE_ARGS) --config budget=long
	snakemake --cores 1 $(SNAKE_ARGS) --report results/report.html --config budget=long

# The run-to-run noise floor: MNIST 1 and 2 layers, K = 5 and 50, VAE and IWAE, 3 seeds (the run prints its projection
# first: 83 min of training and 48 of evaluation one job at a time, from the quick run's steps).
noise: venv
	@$(UNLOCK)
	time snakemake --cores all $(SNAKE_ARGS) --config budget=noise
	snakemake --cores 1 $(SNAKE_ARGS) --report results/report.html --config budget=noise

# The paper's 3,280 epochs for four MNIST models on this CPU (issue #25; 18-30 h of 2 cores): started, or resumed
# where it stopped, in the background in its own folder; on a machine without its pinned code, from the committed
# state (docs/paper-cpu/state), its code pinned from the commit that state records. cpu-paper-status: progress and projected finish; cpu-paper-save: the state, the
# curve so far and the status at the save (status.txt) into docs/paper-cpu (commit it); cpu-paper-stop: the jobs checkpoint and exit;
# cpu-paper-peek: the models in training as they are now, on all 10,000 test images (about 10 min each on one thread
# beside the run), into docs/paper-cpu/midway with progress.md (commit it; the save writes progress.md again, with the
# finished models' evaluations on all 10,000); cpu-paper-yardstick: each finished model evaluated again with another
# seed (other binary test images and samples; about 10 min each on one thread) where not done yet, and the yardstick
# of every model evaluated twice into docs/paper-cpu/binarisation (then cpu-paper-save: the final table cites it).
CPU_PAPER_DIR ?= runs/cpu-paper
CPU_PAPER_BUDGET ?= cpu_paper
# CPU_PAPER_CORES=1 leaves a core to other work (make docs-runs)
CPU_PAPER_CORES ?= 2
CPU_PAPER_STATE ?= docs/paper-cpu/state
LONGRUN = $(PY) -m iwae.longrun --workdir $(CPU_PAPER_DIR)

cpu-paper: venv
	$(PY) -m iwae fetch mnist --data-dir $(CPU_PAPER_DIR)/data
	@if [ -f $(CPU_PAPER_STATE)/state.json ] && [ ! -d $(CPU_PAPER_DIR)/code ]; then $(LONGRUN) restore --state $(CPU_PAPER_STATE); fi
	$(LONGRUN) start -- --cores $(CPU_PAPER_CORES) --rerun-triggers mtime $(SNAKE_ARGS) --config budget=$(CPU_PAPER_BUDGET)

cpu-paper-status: venv
	@$(LONGRUN) status --cores $(CPU_PAPER_CORES) --budget $(CPU_PAPER_BUDGET) --rates docs/paper-cpu/bench_cpu_paper.csv

cpu-paper-stop: venv
	$(LONGRUN) stop

cpu-paper-peek: venv
	$(LONGRUN) peek --out $(dir $(CPU_PAPER_STATE))midway --also $(dir $(CPU_PAPER_STATE))first_images

cpu-paper-yardstick: venv
	$(LONGRUN) yardstick --out $(dir $(CPU_PAPER_STATE))binarisation --also $(dir $(CPU_PAPER_STATE))midway \
	  --state $(CPU_PAPER_STATE)

cpu-paper-save: venv
	$(LONGRUN) save --state $(CPU_PAPER_STATE)
	$(LONGRUN) status --cores $(CPU_PAPER_CORES) --budget $(CPU_PAPER_BUDGET) --rates docs/paper-cpu/bench_cpu_paper.csv \
	  > $(dir $(CPU_PAPER_STATE))status.txt
	@if [ -d $(dir $(CPU_PAPER_STATE))midway ]; then $(LONGRUN) progress --out $(dir $(CPU_PAPER_STATE))midway \
	  --also $(dir $(CPU_PAPER_STATE))first_images; fi

# The runs committed under docs/ made again by the pipeline, one after another, each in its own folder under
# $(DOCS_RUNS) with the code pinned at the chain's start (work on the checkout beside them changes nothing they run):
# the noise floor, the quick run with the IWAE family, the Omniglot stand-in's 2-layer cell at the quick budget on its
# binary copy (experiments/omniglot_binary.py: are the grey levels why IWAE trails there?) and as it is, three seeds,
# to 40 epochs (its 4-epoch snapshots the same cell on the grey images), the noise floor with independent initial
# weights, the long run (and the gradient SNR at its IWAE after 13 and 40 epochs, as the family measures it at 1 and
# 4); then experiments/stack_vs_alone.py (the short runs first, so that each finishes within a sitting). In the
# background: `nohup make docs-runs &`; the same command resumes it where it stopped. DOCS_CORES=1 leaves a core to
# the paper run (make cpu-paper; with both cores, add SNAKE_ARGS="--set-threads train=2"); --rerun-triggers mtime: a
# finished run stays finished when `make docs-publish` rewrites its reports with the checkout's code. Then each into
# its docs/ folder with its records (the metrics the tables are written from, so that later code rewrites them without
# training): `make docs-publish` below (docs/*/README.md, written by hand, says what each holds).
DOCS_RUNS ?= runs/docs
DOCS_CORES ?= 1
DOCS_FLOOR := noise_floor=$(CURDIR)/$(DOCS_RUNS)/noise/results/tables/noise_floor.csv
DOCS_LONG_IWAE := $(DOCS_RUNS)/long/results/mnist/L1/iwae-k50/seed0
DOCS_LONG_SNR := $(DOCS_RUNS)/snr-long/results
# (a --config with commas goes through a variable: $(call) splits its arguments at commas)
DOCS_OMNIGLOT_BINARY := budget=quick 'datasets=[omniglot]' 'layers=[2]' 'ks=[5]' 'seeds=[0,1,2]' table2=false \
  omniglot_file=$(CURDIR)/$(DOCS_RUNS)/omniglot-binary/input/chardata.mat 'allow_unverified=[omniglot]'
DOCS_RUN = $(PY) -m iwae.longrun start --wait --workdir $(DOCS_RUNS)/$(1) -- --cores $(DOCS_CORES) --rerun-triggers mtime $(SNAKE_ARGS) --config $(2)
docs-runs: venv
	for run in noise quick long omniglot-l2 omniglot-binary noise-seeded; do $(PY) -m iwae.longrun pin --workdir $(DOCS_RUNS)/$$run; done
	$(call DOCS_RUN,noise,budget=noise)
	$(call DOCS_RUN,quick,family=true $(CONFIG_ITEMS) $(DOCS_FLOOR))
	test -n "$(OMNIGLOT_STANDIN)" || (echo "docs-runs: the Omniglot stand-in is not in $(IWAE_DATA_MIRROR)" && exit 2)
	test -f $(DOCS_RUNS)/omniglot-binary/input/chardata.mat || $(PY) experiments/omniglot_binary.py \
	  --source $(OMNIGLOT_STANDIN) --mnist-data-dir $(DOCS_RUNS)/noise/data --out $(DOCS_RUNS)/omniglot-binary/input/chardata.mat
	$(call DOCS_RUN,omniglot-binary,$(DOCS_OMNIGLOT_BINARY))
	$(call DOCS_RUN,omniglot-l2,budget=omniglot_l2 $(CONFIG_ITEMS))
	$(call DOCS_RUN,noise-seeded,budget=noise init=seeded 'layers=[1]')
	$(call DOCS_RUN,long,budget=long $(DOCS_FLOOR))
	test -f $(DOCS_LONG_SNR)/snr/snr.csv || $(PY) -m iwae snr --data-dir $(DOCS_RUNS)/long/data \
	  --model trained=$(DOCS_LONG_IWAE)/model.pt --model midway=$(DOCS_LONG_IWAE)/stages/stage2.pt \
	  --ks 1,10,100,1000 --estimators iwae,iwae_stl,iwae_dreg,rws,rws_dreg --draws 200 --images 5 \
	  --threads $(DOCS_CORES) --out $(DOCS_LONG_SNR)/snr/snr.csv
	$(PY) -m iwae report family --snr $(DOCS_LONG_SNR)/snr/snr.csv --out $(DOCS_LONG_SNR)
	test -f $(DOCS_RUNS)/stack_vs_alone/stack_vs_alone.csv || $(PY) experiments/stack_vs_alone.py \
	  --data-dir $(DOCS_RUNS)/noise/data --out $(DOCS_RUNS)/stack_vs_alone/stack_vs_alone.csv

# A finished docs run's report written again by this checkout's code and LaTeX template (paper_source: the run's
# pinned copy, however new its file, is replaced; nothing trained or evaluated again), then
# published into its docs folder with its records, e.g.
#   make docs-publish RUN=noise DOCS=noise-floor RUN_CONFIG="budget=noise"
#   make docs-publish RUN=quick DOCS=quick-run RUN_CONFIG="family=true ..." REPORT_RULES="tables figures samples family_tables"
# (RUN_CONFIG: the run's own --config items, as in docs-runs; family_tables only for a run with family=true).
REPORT_RULES ?= tables figures samples
docs-publish: venv
	@test -n "$(RUN)" -a -n "$(DOCS)" -a -n "$(RUN_CONFIG)" || (echo "docs-publish: give RUN=<folder under $(DOCS_RUNS)> DOCS=<folder under docs> RUN_CONFIG='<its --config items>'" && exit 2)
	snakemake --cores 1 --directory $(DOCS_RUNS)/$(RUN) --rerun-triggers mtime --forcerun $(REPORT_RULES) paper_source $(SNAKE_ARGS) --config $(RUN_CONFIG)
	$(PY) -m iwae.publish $(DOCS_RUNS)/$(RUN) docs/$(DOCS)

# The committed runs' tables and claims (.md, .csv) written again from their published records by this checkout's
# code, without the runs (seconds): new wording reaches them; their report.pdf and figures need docs-publish.
DOCS_PUBLISHED ?= docs/quick-run docs/long-run docs/noise-floor docs/omniglot-2layer/binary docs/omniglot-2layer/as-is
docs-tables: venv
	$(PY) -m iwae.publish --tables-again $(DOCS_PUBLISHED)

bench: venv
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_estimators.py

# The suite against pythae's IWAE (the library a user would otherwise pick), same images, device and threads;
# pythae is installed here only (an optional dependency of this benchmark, never of `make venv`).
bench-peers: venv
	$(PY) -m pip install --quiet pythae==0.1.2
	$(PY) benchmarks/bench_peers.py

# On a machine with a GPU (needs only Python, PyTorch, NumPy, pytest): tests, timings, the paper budget projected.
gpu-check:
	bash benchmarks/gpu_check.sh

# On a machine with a package index, before a GPU node that has no internet (benchmarks/gpu_run.sh): the wheels
# of Snakemake and what it needs for the node's Python (3.12 by default), and the MNIST files, in .gpu/ (ignored
# by git; carry it with the checkout). GPU_PY: a Python of the node's version.
GPU_PY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python) $(shell command -v python3.12))
gpu-prepare:
	@test -n "$(GPU_PY)" || (echo "gpu-prepare: no Python 3.12 here; set GPU_PY=/path/to/python3.12" && exit 2)
	mkdir -p .gpu/data/mnist .gpu/wheels
	cp $(IWAE_DATA_MIRROR)/mnist/*.gz .gpu/data/mnist/
	rm -rf /tmp/iwae-gpu-prepare && $(GPU_PY) -m venv /tmp/iwae-gpu-prepare
	/tmp/iwae-gpu-prepare/bin/pip install --quiet --upgrade pip
	/tmp/iwae-gpu-prepare/bin/pip wheel --quiet -w .gpu/wheels snakemake==9.27.1 tabulate==0.9.0 pooch==1.8.2
	du -sh .gpu
