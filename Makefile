# Two commands on a fresh machine:
#   make study   creates .venv from requirements.txt if needed, then runs the whole study (`dvc repro`)
#   make test    creates .venv with the test dependencies if needed, then lints and runs the tests
# On a machine with an NVIDIA GPU: `make study REQUIREMENTS=requirements-gpu.txt`.

PYTHON ?= python3
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
BIN := $(VENV)/bin

# The stages run `python -m stages.<name>`: the virtualenv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: study test lint clean

study: $(VENV)/.study-installed
	dvc repro

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
