# The commands people type. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ray: the Ray Serve backend's conformance tests run in `make test`
EXTRAS ?= all,dev,ray
# pip prints one harmless warning per package for this machine's optional local indexes; hide only those.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help install demo test test-fast lint format bench figures slides clean

help:
	@echo "make demo   create .venv, install, run 'lockgate quickstart'"
	@echo "make test   install, then ruff, mypy and the whole pytest suite"
	@echo "make test-fast  the unit tests only (no server, database or slow test): about a minute"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  run the benchmarks in benchmarks/ (writes benchmarks/results/*.json)"
	@echo "make figures regenerate docs/images/ (Graphviz diagrams, lockgate --plot figures)"
	@echo "make slides figures, then docs/slides/*.md to HTML and PDF in build/slides/ (Marp, Chromium)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install only when what it depends on changed. torch is pinned and installed first, so nothing
# later can make pip resolve an unpinned (multi-gigabyte CUDA) torch.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]' 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import lockgate, torch, mlflow; print('installed lockgate', lockgate.__version__, 'torch', torch.__version__, 'mlflow', mlflow.__version__)"
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/lockgate quickstart --fresh

lint: install
	$(BIN)/ruff check lockgate tests benchmarks scripts examples deploy
	$(BIN)/ruff format --check lockgate tests benchmarks scripts examples deploy
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix lockgate tests benchmarks scripts examples deploy
	$(BIN)/ruff format lockgate tests benchmarks scripts examples deploy

test: lint
	bash scripts/test

# While you work: tests that start no server, database or MLflow store and take under 5 s each
# (every slower test is marked `slow` or `integration`). `make test` still runs everything.
test-fast: install
	LOCKGATE_SKIP_POSTGRES=1 bash scripts/test -m "not integration and not slow" -q -p no:cacheprovider

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

# The images of the decks and docs (scripts/figures.py): Graphviz diagrams from docs/diagrams/*.dot, the
# rollout state machine from the controller's table, and figures drawn by lockgate commands (`--plot`).
# FIGURES=diagrams,commands skips the quickstart-based ones (runs compare, optimize): about 15 s, not a minute.
FIGURES ?= diagrams,commands,tracked
FIGURES_OUT ?= docs/images
comma := ,
figures: $(STAMP)
	bash scripts/install-graphviz >/dev/null
	$(BIN)/python scripts/figures.py --out $(FIGURES_OUT) $(foreach kind,$(subst $(comma), ,$(FIGURES)),--only $(kind)) >/dev/null

# The teaching decks: Marp CLI at the exact version in docs/slides/package-lock.json, installed once by
# `npm ci` into docs/slides/node_modules (git-ignored); the PDF is printed by the headless Chromium that
# scripts/install-chromium installs. Images are referenced as images/NAME (docs/slides/images is a link
# to docs/images) and copied next to the HTML.
SLIDES := docs/slides
DECKS := mlops-fundamentals model-deployment
SLIDES_OUT ?= build/slides
$(SLIDES)/node_modules/.package-lock.json: $(SLIDES)/package.json $(SLIDES)/package-lock.json
	cd $(SLIDES) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

slides: figures $(SLIDES)/node_modules/.package-lock.json
	mkdir -p $(SLIDES_OUT)/images
	cp docs/images/*.svg docs/images/*.png $(SLIDES_OUT)/images/
	for deck in $(DECKS); do $(SLIDES)/node_modules/.bin/marp --html --no-stdin $(SLIDES)/$$deck.md -o $(SLIDES_OUT)/$$deck.html; done
	browser="$$(bash scripts/install-chromium)"; \
	for deck in $(DECKS); do CHROME_PATH="$$browser" $(SLIDES)/node_modules/.bin/marp --pdf --pdf-notes --allow-local-files --no-stdin $(SLIDES)/$$deck.md -o $(SLIDES_OUT)/$$deck.pdf; done

clean:
	rm -rf $(VENV) .lockgate .pytest_cache .mypy_cache .ruff_cache
