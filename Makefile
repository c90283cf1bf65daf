# Entry points of the course. `make lab` to learn, `make test` to check everything.
#
#   TORCH_SPEC   what pip installs for torch (default "torch>=2.4"; CI uses the CPU wheel torch==2.13.0)
#   TORCH_INDEX  optional extra index for a specific CUDA/ROCm build of torch (see README)
#   LAB_ARGS     extra arguments for JupyterLab, e.g. LAB_ARGS="--no-browser --ip=127.0.0.1"
#   PYTEST_ARGS  extra arguments for pytest, e.g. PYTEST_ARGS="-m 'not slow'"
#   EXTRAS       the package extras to install (default "dev"; CI uses "dev,hf" so the GPT-2 interop tests run)

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch>=2.4
TORCH_INDEX ?=
LAB_ARGS    ?=
PYTEST_ARGS ?=
EXTRAS      ?= dev
JOBS        ?= 2
FIRST_LESSON := notebooks/00_welcome_aigc_pipeline.ipynb
# `make lab` serves the repository root (so notebooks/, exercises/ and solutions/ are all in the file browser)
# and opens lesson 00; with --no-browser, the printed link opens it too.
LAB_ROOT    := $(CURDIR)
LAB_URL     := /lab/tree/$(FIRST_LESSON)

BIN := $(VENV)/bin
STAMP := $(VENV)/.aigc-installed
ROOT_FLAG := $(shell [ "$$(id -u)" = "0" ] && echo --allow-root)
INDEX_FLAG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: help install lab test test-unit test-notebooks test-browser exercises lint strip clean gpu-check

help:
	@echo "make lab        create $(VENV) if missing, install, open JupyterLab at lesson 00"
	@echo "make test       install dev tools, run unit tests + every notebook and solution (fast mode)"
	@echo "make test-browser  the lessons in JupyterLab in headless Chromium (Playwright); screenshots in build/browser/"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make lint       ruff over the package, tests and notebooks"
	@echo "make strip      strip outputs from every notebook (also done by the git filter, see README)"
	@echo "make gpu-check  on a CUDA machine: the cuda-marked tests and the LM speed benchmark (bf16, torch.compile)"
	@echo "make slides     reveal.js decks of the lessons in build/slides/ (offline; SLIDES_MODE=full, LESSONS=03)"
	@echo "make mutation   mutation testing (mutmut, not in CI): score per module, fails below 90 %; MODULES=ngram"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(INDEX_FLAG) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	@echo "Starting JupyterLab; stop it with Ctrl-C (twice) in this terminal."
	$(BIN)/jupyter lab $(ROOT_FLAG) "--ServerApp.root_dir=$(LAB_ROOT)" "--LabApp.default_url=$(LAB_URL)" $(LAB_ARGS)

exercises: $(STAMP)
	$(BIN)/aigc-course make-exercises

lint: $(STAMP)
	$(BIN)/ruff check aigc_course tests benchmarks notebooks solutions scripts

# The real-browser test (also part of `make test`): JupyterLab driven by Playwright in Debian's Chromium.
test-browser: $(STAMP)
	scripts/install_browser_deps.sh $(VENV)
	$(TEST_ENV) $(BIN)/python -m pytest -p no:cacheprovider -rs --durations=6 $(PYTEST_ARGS) tests/browser

.PHONY: slides
# `make slides`: reveal.js decks of the lessons, build/slides/NN_topic.slides.html + build/slides/assets/, that open
# offline (reveal.js 4 and MathJax 2 come once from the npm registry via `npm pack`; needs npm the first time).
# SLIDES_MODE=full executes the lessons in full mode (≈ 35 min); LESSONS="03 05" builds only those lessons.
SLIDES_MODE ?= fast
LESSONS     ?=
slides: $(STAMP)
	$(BIN)/python scripts/make_slides.py $(if $(filter full,$(SLIDES_MODE)),--full) $(LESSONS)

strip: $(STAMP)
	$(BIN)/nbstripout notebooks/*.ipynb solutions/*.ipynb exercises/*.ipynb

# Fast mode, one torch thread per worker (two workers x two threads on two cores stalls torch), no bars.
TEST_ENV := AIGC_FAST=1 AIGC_NUM_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 PYDEVD_DISABLE_FILE_VALIDATION=1
NBVAL := --nbval-lax --nbval-current-env --nbval-kernel-startup-timeout=120
XDIST := -n $(JOBS) --dist loadscope

test: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/aigc-course make-exercises --check && \
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) $(NBVAL) --durations=15 -ra $(PYTEST_ARGS) \
	    tests notebooks solutions; rc=$$?; \
	echo "make test: wall time $$(( $$(date +%s) - start )) s (exit code $$rc)"; exit $$rc

test-unit: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) --durations=10 $(PYTEST_ARGS) tests

test-notebooks: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) $(NBVAL) $(PYTEST_ARGS) notebooks solutions

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# Mutation testing (not part of CI; README "Mutation testing"): a fresh mutmut run over MODULES with $(JOBS)
# workers, then the score per module. MODULES="ngram checks/_core" runs only those.
MUTATION_MODULES := divergences ngram checks checkpoint train exercises gan metrics vae validation sampling gpt lm tokenizers
MODULES ?= $(MUTATION_MODULES)
MUTMUT_STAMP := $(VENV)/.aigc-mutmut
MUTANT_NAMES := $(if $(filter-out $(MODULES),$(MUTATION_MODULES)),$(foreach m,$(MODULES),'aigc_course.$(subst /,.,$(m)).*'))

$(MUTMUT_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,mutation]"
	touch $(MUTMUT_STAMP)

.PHONY: mutation
mutation: $(STAMP) $(MUTMUT_STAMP)
	@start=$$(date +%s); rm -rf mutants; \
	$(TEST_ENV) $(BIN)/mutmut run --max-children $(JOBS) $(MUTANT_NAMES) && \
	$(BIN)/python benchmarks/mutation_score.py $(MODULES); rc=$$?; \
	echo "make mutation: wall time $$(( $$(date +%s) - start )) s (exit code $$rc)"; exit $$rc

# On a machine with a CUDA GPU (≤ 5 min): every `cuda`-marked test, then the language-model speed benchmark,
# which adds bf16-autocast and torch.compile rows when CUDA is present. GPU_PYTHON: an environment with the
# package's dependencies (default: this checkout's venv).
GPU_PYTHON ?= $(BIN)/python
CUDA_TESTS := tests/test_config_device.py tests/test_gan.py tests/test_gan_models.py tests/test_metrics.py \
	tests/test_vae.py tests/test_vae_pins.py tests/test_vae_explore.py tests/test_vae_explore_pins.py \
	tests/test_gpt.py tests/test_gpt_pins.py tests/test_lm.py tests/test_augment.py tests/test_finetune.py
gpu-check:
	$(GPU_PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA GPU here')"
	$(GPU_PYTHON) -m pytest -q -p no:cacheprovider -m cuda $(CUDA_TESTS)
	$(GPU_PYTHON) benchmarks/lm_speed.py --rounds 5
