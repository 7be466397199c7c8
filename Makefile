# adaragct — `make help` lists the targets. Every target creates or reuses .venv by itself.
SHELL := /bin/bash
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# cpu: faiss-cpu (a CUDA machine: make install-gpu after); quant: bitsandbytes, which tests/models exercise on the CPU
EXTRAS ?= cpu,quant,sweep,slurm,dev
# Where `make install` takes torch from, besides pip's usual indexes. The default, PyTorch's CPU index, gives a
# machine without CUDA the CPU build (~190 MB) instead of PyPI's Linux default (the CUDA 13 build and its nvidia-*
# wheels, ~3 GB). It goes to pip as --extra-index-url, for the torch step only, not as --index-url: torch's own
# dependencies (sympy, jinja2, ...) and their pins in constraints.txt still come from PyPI, and for the pinned
# version the index's 2.13.0+cpu outranks PyPI's 2.13.0 (a local version sorts after its public one, PEP 440), so
# pip takes the CPU wheel wherever that index has one for the platform. Empty it (`make install TORCH_INDEX=`) to
# take torch from pip's usual indexes, or point it at another (https://download.pytorch.org/whl/cu126). An index
# that does not answer in 5 s is left out with one line (tools/index_reachable.py): pip would retry each of its
# pages 5 times (77 s of warnings here, where only package registries are reachable; minutes where packets drop).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export WANDB_MODE := offline

.DEFAULT_GOAL := help


demo: $(STAMP) ## the whole study on the demo cohort (prepare, index, train align+base+rag, copy baselines, infer x5, CIs, claims), ~18 min on 2 cores
	$(PY) -m adaragct.demo

demo-ablations: $(STAMP) ## claims (b) bottleneck, (c) model size: the demo (if not done), its ablation cells (Hydra multirun), table + plot; ~30 min after the demo (the larger cell pretrains its own LM)
	$(PY) -m adaragct.demo
	$(PY) -m adaragct.demo -m demo_ablation=whole_ct,tiny_large
	$(PY) -m adaragct.experiments.demo_ablations

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

# every version comes from constraints.txt (what CI tests); pyproject.toml only holds the accepted ranges
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned by the constraints, from TORCH_INDEX when it answers (see TORCH_INDEX above)
	@idx="$$($(PY) tools/index_reachable.py '$(TORCH_INDEX)')" && \
		echo "$(PY) -m pip install -q -c constraints.txt $$idx torch" && \
		$(PY) -m pip install -q -c constraints.txt $$idx torch
	$(PY) -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	@$(PY) -c 'import torch; print("installed torch", torch.__version__, "- CUDA build:", torch.version.cuda or "no")'
	@touch $(STAMP)

install: $(STAMP) ## create/refresh .venv with the package and the extras in EXTRAS (TORCH_INDEX: see the Makefile)

# a machine with a CUDA GPU: faiss-gpu in place of faiss-cpu (both provide the module `faiss`, so never both), then
# the build that got imported is reported (adaragct.retrieval.faiss_build)
install-gpu: $(STAMP) ## swap faiss-cpu for faiss-gpu in .venv (a CUDA machine) and report the faiss build imported
	$(PY) -m pip uninstall -y -q faiss-cpu faiss-gpu
	$(PY) -m pip install -q -c constraints.txt faiss-gpu
	$(PY) -m adaragct.retrieval.faiss_build

# the package as a registry would get it: sdist + wheel (python -m build), `twine check --strict` on both, the wheel
# (extra [cpu], pinned by constraints.txt, torch from TORCH_INDEX as in install) in a fresh venv, and its console
# scripts run from outside the checkout. build/twine live in their own venv (.cache/wheel-check/tools, kept between
# runs); the venv the wheel goes into is made anew every time. ~5 min here (2 cores, local wheel cache; the demo
# cohort step ~40 s of it): too slow for `make test`, run it before a release or in a CI job of its own.
WHEEL_CHECK := .cache/wheel-check
wheel-check: ## build sdist + wheel, twine check them, install the wheel into a fresh venv and run its commands from /tmp
	rm -rf dist $(WHEEL_CHECK)/venv
	@test -x $(WHEEL_CHECK)/tools/bin/python || $(PYTHON_BOOT) -m venv $(WHEEL_CHECK)/tools
	$(WHEEL_CHECK)/tools/bin/python -m pip install -q build twine
	$(WHEEL_CHECK)/tools/bin/python -m build --outdir dist .
	$(WHEEL_CHECK)/tools/bin/python -m twine check --strict dist/*
	$(PYTHON_BOOT) -m venv $(WHEEL_CHECK)/venv
	$(WHEEL_CHECK)/venv/bin/python -m pip install -q --upgrade pip
	@idx="$$($(WHEEL_CHECK)/venv/bin/python tools/index_reachable.py '$(TORCH_INDEX)')" && \
		$(WHEEL_CHECK)/venv/bin/python -m pip install -q -c constraints.txt $$idx torch
	$(WHEEL_CHECK)/venv/bin/python -m pip install -q -c constraints.txt "$$(ls dist/*.whl)[cpu]"
	cd /tmp && $(CURDIR)/$(WHEEL_CHECK)/venv/bin/adaragct-demo --help > /dev/null && echo "adaragct-demo --help: ok"
	cd /tmp && $(CURDIR)/$(WHEEL_CHECK)/venv/bin/adaragct-evaluate --help > /dev/null && echo "adaragct-evaluate --help: ok"
	cd /tmp && $(CURDIR)/$(WHEEL_CHECK)/venv/bin/python $(CURDIR)/tools/wheel_contents.py $(CURDIR)/dist

# the tested set without torch and its CUDA stack, for a machine that keeps its own torch (docs/install.md)
constraints-notorch.txt: constraints.txt tools/constraints_notorch.py
	python3 tools/constraints_notorch.py

test: $(STAMP) ## run the default test suite (CPU, minutes; `slow` tests excluded)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Python 3.12 (the release's README installs 3.12; clusters often have it): CI installs the tested set
# (constraints.txt) into .venv312 and runs a fast subset that imports and exercises every package. Measured here,
# 2026-12-06: no CPU torch wheel for 3.12 in the local cache, so pip takes the CUDA 13 build (torch 2.13.0+cu130 and
# its nvidia-* wheels): 74 s for torch, 169 s for everything, 6.2 GB of venv. The subset rather than the whole suite
# (~15 min more on 2 cores): what differs on 3.12 is the interpreter and the wheels pip picks for it, which imports
# and one real test per package catch; the numerics are the same code, checked on 3.11 by `make test`.
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	"$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done)
VENV312 ?= .venv312
TEST312 ?= tests/test_layers.py tests/test_install.py tests/test_configs.py tests/test_ids_io.py \
	tests/data/test_readers.py tests/data/test_sentences.py tests/data/test_prompt.py \
	tests/eval/test_text_metrics.py tests/eval/test_clinical.py tests/eval/test_torchmetrics.py \
	tests/retrieval/test_bank.py tests/retrieval/test_mmr.py tests/models/test_builders.py \
	tests/models/test_projector.py tests/generation/test_policy.py tests/generation/test_predictions.py \
	tests/viewer/test_positions.py tests/models/test_train.py
test-py312: ## install the tested set on Python 3.12 (.venv312) and run a fast subset of the suite (CI runs it)
	@test -n "$(PYTHON312)" || { echo "error: no working python3.12 (fix: pyenv install 3.12, or PYTHON312=/path/to/python3.12)"; exit 1; }
	@test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install -q --upgrade pip
	@idx="$$($(VENV312)/bin/python tools/index_reachable.py '$(TORCH_INDEX)')" && \
		$(VENV312)/bin/python -m pip install -q -c constraints.txt $$idx torch
	$(VENV312)/bin/python -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	$(VENV312)/bin/python -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)'
	$(VENV312)/bin/python -m pytest -m "not slow" $(TEST312) $(PYTEST_ARGS)

test-slow: $(STAMP) ## run only the slow tests
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP) ## run every test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP) ## ruff auto-fix + format
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

# prepare, index, train and infer are `make demo`'s own steps (python -m adaragct.demo until=STEP): its settings
# (conf/demo.yaml) and its ledger, so none rebuilds the demo's inputs with other settings and none redoes its work
prepare: $(STAMP) ## the demo's step 1: its cohort in data/demo/ and its tiny LM pretrained (~8 min; a no-op when current)
	$(PY) -m adaragct.demo until=prepare

index: $(STAMP) ## the demo's steps 1-2: + the sentence bank, image neighbours and context files of its cohort
	$(PY) -m adaragct.demo until=index

train: $(STAMP) ## the demo's steps 1-4: + the tiny model trained on its cohort, phase=align, base (from align's projector), rag
	$(PY) -m adaragct.demo until=train

infer: $(STAMP) ## the demo's rag model generating for its validation volumes, scored: make infer RETRIEVAL=adaptive -> outputs/demo/rag_adaptive/
	$(PY) -m adaragct.demo until=score 'runs=[{phase: rag, retrieval: $(or $(RETRIEVAL),adaptive)}]'

evaluate: $(STAMP) ## score a predictions file: make evaluate PRED=path/to/predictions.jsonl
	$(PY) -m adaragct.evaluate predictions=$(PRED)

analyze: prepare ## embedding-bottleneck report of the demo cohort (variance concentration, probes, plots)
	$(PY) -m adaragct.analyze data=demo

bench-eval: $(STAMP) ## benchmark: our metrics vs pycocoevalcap, bootstrap cost
	$(PY) benchmarks/bench_eval.py

bench-train: prepare ## benchmark: training tokens/s of our Lightning step vs a plain PyTorch loop (demo model and batches), padded share with and without length grouping
	$(PY) benchmarks/bench_train.py

bench-retrieval: $(STAMP) ## benchmark: FAISS vs numpy, per-probe latency, encoder throughput
	$(PY) benchmarks/bench_retrieval.py

bench-viewer: $(STAMP) ## benchmark: the report viewer on 3,039 volumes, page size and load time in headless Chromium vs an eager static page
	$(PY) benchmarks/bench_viewer.py

BENCH_GENERATE := $(PY) benchmarks/bench_generate.py --reports 64 --batches 16 --repeat 1 --max-new 600 \
	--modes none,adaptive,adaptive-speculative,adaptive-speculative-padded generation.max_retrievals=4 \
	generation.probe=draft  # the paper's probe (after_rag) is never a draft of the rewrite: docs/performance.md
bench-generate: index ## benchmark: forward calls, row-steps and tokens/s per output token of none / adaptive / speculative, 64 reports at batch 16, fixed then continuous
	$(BENCH_GENERATE)
	$(BENCH_GENERATE) --continuous

# infer's default ckpt is the last checkpoint of the demo's phase=rag run (data=demo model=tiny phase=rag), which
# `make train` trains or finds current (adaragct.artifacts owns where it is)
sweep-ablation: train ## demo ablation grid (retrieval none/adaptive x top_k 1,3; 16 volumes) + its table
	$(PY) -m adaragct.infer -m ablation=retrieval_grid grid_name=demo_retrieval retrieval=none,adaptive \
		generation.top_k=1,3 generation.max_retrievals=2 limit=16 generation.max_new_tokens=200
	$(PY) -m adaragct.aggregate grid=demo_retrieval

bench: $(STAMP) ## run every benchmark and print one summary table (bench_generate needs `make index`)
	$(PY) benchmarks/run_all.py

clean: ## remove caches and built packages (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache .ruff_cache .cache dist build

.PHONY: demo demo-ablations help install install-gpu wheel-check test test-py312 test-slow test-all lint format prepare index train infer evaluate analyze bench-eval \
	bench-train bench-retrieval bench-viewer bench-generate sweep-ablation bench clean
