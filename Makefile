# Two commands on a fresh machine:
#   make study   creates .venv from requirements.txt if needed, then runs the whole study (`dvc repro`)
#   make test    creates .venv with the test dependencies if needed, then lints and runs the tests
# On a machine with an NVIDIA GPU: `make study REQUIREMENTS=requirements-gpu.txt`.
# `make quick`: the same pipeline on a small preset (QUICK below), as a DVC experiment, to try things out.

PYTHON ?= python3
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
BIN := $(VENV)/bin

# The stages run `python -m stages.<name>`: the virtualenv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# 10,000 training images, 2 epochs, 2 seeds, 5 learning rates per tuning grid, 3 momenta, 50 starts
# per landscape: every stage and every section of the report, in a minute or two.
QUICK := -S prepare.train_size=10000 -S train.epochs=2 -S 'train.seeds=[0,1]' -S tune.points=5 \
	-S 'momentum_sweep.momenta=[0.0,0.9,0.99]' -S landscapes.starts=50 -S landscapes.steps=1000

.PHONY: study quick test lint clean

study: $(VENV)/.study-installed
	dvc repro

quick: $(VENV)/.study-installed
	dvc exp run $(QUICK)

test: $(VENV)/.dev-installed
	ruff check .
	pytest

lint: $(VENV)/.dev-installed
	ruff check .

$(VENV)/.study-installed: $(REQUIREMENTS) requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS)
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf dvc_plots .pytest_cache .ruff_cache
