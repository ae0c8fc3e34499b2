# fruit-synth: `make report` and `make test` each create the environment (.venv) when it is missing
# or when pyproject.toml changed since it was made. Byte-compiling: pip compiles every installed file on one core;
# `compileall -j 0` does it on all of them (48 s wall for 1 min 25 s of CPU, measured here). The compiled files matter:
# where PYTHONDONTWRITEBYTECODE is set (as on this machine) nothing is cached at import, and without them every process
# compiles torch again (importing torch and the package took 32 s, against 8 s with them). A few files in the installed
# packages are not Python 3.11 and fail to compile, under pip too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= demo
# The tests' own processes keep large buffers as the command does (fruit_synth.core.processes): without it, glibc hands
# every batch's buffers back to the system and faults them in again.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1
# ... and OpenMP threads wait passively, as the command has them (core.processes.wait_passively)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: env build-env test report export check-sync lint nbtest pytest browser clean-report notebooks ablation

# The stamp holds pyproject.toml's sha256, not its time: nbdev-export rewrites the file unchanged, which would otherwise
# make every later `make` build the environment again.
env:
	@if [ ! -x $(BIN)/python ] || [ "$$(cat $(STAMP) 2>/dev/null)" != "$$(sha256sum pyproject.toml | cut -d' ' -f1)" ]; then \
	  $(MAKE) --no-print-directory build-env; fi

build-env:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	@sha256sum pyproject.toml | cut -d' ' -f1 > $(STAMP)

# The notebooks are the source: exporting them must leave fruit_synth/ exactly as committed.
check-sync: env
	$(BIN)/nbdev-export
	@if [ -n "$$(git status --porcelain -- fruit_synth)" ]; then \
	  git status --porcelain -- fruit_synth; \
	  echo "fruit_synth/ is out of sync with nbs/: run 'make export' and commit the result"; exit 1; fi

export: env
	$(BIN)/nbdev-export

# ruff: the notebooks (the source) formatted at 120 columns, the package they export lint-free (rules: pyproject.toml).
lint: env
	$(BIN)/ruff format --check nbs
	$(BIN)/ruff check fruit_synth

# The tests never reach a model hub, whatever network the machine has (tests/conftest.py does the same for pytest).
nbtest: env
	HF_HUB_OFFLINE=1 $(BIN)/nbdev-test --flags slow --timing --skip-file-re "^(experiment|explore)\.ipynb$$"

# pytest-xdist: one worker per core, each test file on one worker (a file's module fixtures, such as the report's
# demo run, are made once); the slowest tests are listed at the end.
pytest: env browser
	$(BIN)/pytest -n auto --dist loadfile --durations=12

# The report's browser check drives Debian's Chromium (headless): installed here when missing and we are root with
# apt-get; otherwise the check is skipped with its reason (under CI it fails instead).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the report's browser check (apt-get)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: the browser check will be skipped"; \
	  else echo "no chromium, and no root to install it: the browser check will be skipped"; fi; }

test: check-sync lint nbtest pytest

report: env
	$(BIN)/fruit-synth report --profile $(PROFILE)
	@echo "open report/index.html"

# Execute the notebooks in place with their outputs kept (pictures compressed), for readers on a code host.
# NB="nbs/learn/02_evaluate.ipynb nbs/study/03_report.ipynb" runs only those; the default is every notebook but experiment/explore.
notebooks: env
	$(BIN)/python tools/execute_notebooks.py $(NB)

# The recipe and scene ablations on the shared real photos (cells flagged `#| ablation` in nbs/study/01_ablations):
# about three hours on two CPU cores from nothing (148 runs of about 75 s); finished runs under work/grocery/ablation are
# reused. Outputs stay in the notebooks.
ablation: env
	$(BIN)/python tools/execute_notebooks.py --ablation nbs/study/01_ablations.ipynb
