# ShearBridge: `make` installs everything and builds ms.pdf; `make test` runs the tests.
#   PROFILE=quick make     whole pipeline in minutes (small data; what the tests use)
#   make                   the paper profile (the numbers the manuscript reports)
#   make check             the fast loop: ruff and the unit tests, no pipeline runs (< 3 min)
#   make bench             pytest-benchmark suite (see README)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

PROFILE ?= paper
CORES ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
STAMP := .make

export SHEARBRIDGE_PROFILE := $(PROFILE)
# The offline shims (snakemake without conda, tectonic -> TeX Live) come first.
export PATH := $(CURDIR)/tools/offline/bin:$(VENV)/bin:$(PATH)
export MPLBACKEND := Agg
# showyourwork keeps a per-user cache; keep it inside the repository.
export XDG_CACHE_HOME ?= $(CURDIR)/.make/cache
# JAX's persistent compilation cache: the same network at another noise level, and every
# evaluation of a trained run, loads its executables instead of compiling them again
# (measured: 18 of 71 CPU seconds of an ablation training). Same executables, same numbers.
export JAX_COMPILATION_CACHE_DIR ?= $(XDG_CACHE_HOME)/shearbridge-jax

.PHONY: all build deps lint check test bench bench-baseline survey converge clean clean-data help

all: deps build ## install what is missing, then build ms.pdf (PROFILE=quick|paper|full)

build: ## build ms.pdf only (no install step)
	@echo ">> building ms.pdf with profile $(PROFILE) on $(CORES) cores"
	showyourwork build --cores $(CORES)
	@ls -l ms.pdf

deps: $(STAMP)/system $(VENV)/.installed ## install Debian TeX Live packages and the pinned venv

$(STAMP)/system: tools/install_system_deps.sh
	@mkdir -p $(STAMP)
	tools/install_system_deps.sh
	@touch $@

# The last step puts Snakemake's Python 3.11 fix (asyncio.coroutine) into the venv as a .pth
# file, so that every Snakemake process has it, cluster job scripts included (tools/offline/README.md).
$(VENV)/.installed: requirements.lock pyproject.toml tools/offline/bin/offline_shims.py
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(VENV)/bin/python -m pip check
	$(VENV)/bin/python tools/offline/bin/offline_shims.py install-asyncio-pth
	@touch $@

lint: deps ## ruff (pinned in requirements.in) at the project's line length (pyproject.toml)
	$(VENV)/bin/ruff check src tests tools

check: lint ## the developer's fast loop: ruff and the unit tests, no paper build, no pipeline runs
	$(VENV)/bin/python -m pytest -q -m "not integration and not pipeline" -p no:cacheprovider

test: lint ## run the whole test suite (includes a quick-profile paper build)
	$(VENV)/bin/python -m pytest

# Benchmarks run in the fast-training process environment (huge-page malloc, XLA flags:
# shearbridge.train.runtime.recommended_env), as `python -m shearbridge train` does.
# The stored baseline (.benchmarks/baseline, committed) is run 0001; when it exists every
# `make bench` prints the comparison. BENCH_FAIL=mean:25% makes a slow-down fail.
BENCH_STORAGE := file://$(CURDIR)/.benchmarks/baseline
BENCH_BASELINE = $(firstword $(wildcard .benchmarks/baseline/*/0001_*.json))
BENCH_ENV = $(shell $(VENV)/bin/python -c "from shearbridge.train.runtime import recommended_env as r; \
	print(' '.join(f'{k}={v}' for k, v in r().items()))")
BENCH_ARGS = tests/benchmarks --benchmark-only --benchmark-enable --benchmark-storage=$(BENCH_STORAGE) \
	  --benchmark-columns=mean,stddev,ops,rounds --benchmark-sort=name

bench: deps ## run the speed benchmarks and compare with the stored baseline
	env $(BENCH_ENV) $(VENV)/bin/python -m pytest $(BENCH_ARGS) \
	  $(if $(BENCH_BASELINE),'--benchmark-compare=*/0001') $(if $(BENCH_FAIL),--benchmark-compare-fail=$(BENCH_FAIL))

bench-baseline: deps ## (re-)record the stored benchmark baseline (.benchmarks/baseline)
	rm -rf .benchmarks/baseline
	env $(BENCH_ENV) $(VENV)/bin/python -m pytest $(BENCH_ARGS) --benchmark-save=baseline

# The survey tier of the survey-scale shear test (README "The survey-scale shear test"): every chunk
# one Snakemake job on every local core, written into src/static/survey/survey/ (commit it); a
# finished chunk is never redone, so an interrupted run resumes. The networks are PROFILE's.
survey: deps ## the survey tier of the survey-scale shear test on every local core (resumable)
	snakemake -s Snakefile --cores $(CORES) --rerun-incomplete --keep-going survey

# PSFNet trained to convergence (README "Training to convergence"): one Snakemake job per seed and
# rung, written into src/static/converged/survey/ (commit it); a finished rung is never redone.
converge: deps ## the training ladder (3 seeds, 1,500 to 24,000 steps) on every local core (resumable)
	snakemake -s Snakefile --cores $(CORES) --rerun-incomplete --keep-going converge

clean: ## remove showyourwork temporaries, figures, numbers and the JAX compilation cache (keeps src/data)
	-showyourwork clean
	rm -rf $(JAX_COMPILATION_CACHE_DIR)

clean-data: ## remove the cached data of PROFILE
	rm -rf src/data/$(PROFILE)

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'
