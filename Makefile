# Two commands on a fresh machine:
#   make study   creates .venv from requirements.txt if needed, then runs the whole study: what changed
#                since the committed results, and what follows it (`dvc repro --allow-missing`)
#   make test    creates .venv with the test dependencies if needed, then lints and runs the tests
# On a machine with an NVIDIA GPU: `make study REQUIREMENTS=requirements-gpu.txt`.
# `make quick`: the same pipeline on a small preset (QUICK below), in a scratch copy (.quick/), to try
#                things out: the committed results stay as they are; the report is .quick/reports/study.html.

PYTHON ?= python3
VENV ?= .venv
REQUIREMENTS ?= requirements.txt
BIN := $(VENV)/bin

# The stages run `python -m stages.<name>`: the virtualenv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# 2,000 training images, 2 epochs, 2 seeds, 2 variants (mbgd, adam; momentum is in its sweep), 3 coarse
# learning rates per tuning grid (5 with the refinement), 3 momenta x 3 effective steps, 3 batch sizes
# on 1,000 images, 2 landscapes of 50 starts and 500 steps: every stage and every section of the report. `~variants.<name>` removes a variant for this experiment only.
QUICK := -S prepare.train_size=2000 -S train.epochs=2 -S 'train.seeds=[0,1]' -S train.defaults_seeds=2 \
	-S tune.points=3 -S momentum_sweep.seeds=2 -S batch_sweep.seeds=2 -S batch_sweep.train_size=1000 \
	-S '~variants.bgd' -S '~variants.sgd' -S '~variants.nesterov' -S '~variants.adagrad' -S '~variants.rmsprop' \
	-S '~variants.mbgd_exponential' -S '~variants.mbgd_cosine' -S '~variants.momentum' \
	-S 'momentum_sweep.momenta=[0.0,0.9,0.99]' -S 'batch_sweep.batch_sizes=[1,32,full]' \
	-S 'landscapes.functions=[two_wells,rosenbrock]' -S landscapes.starts=50 -S landscapes.steps=500

.PHONY: study quick test lint clean

# DVC's cache (data/, models/) is not in git, so a clone lacks it. `dvc repro prepare` rebuilds data/
# (download and split: the same bytes dvc.lock records, so nothing after it re-runs for them); then
# `--allow-missing` skips a stage whose only change is missing cached outputs, such as a clone's
# models: a clone re-runs only the stages whose params or code differ from the committed results.
# The `check` stage runs first either way: a bad params.yaml stops both before anything else runs.
study: $(VENV)/.study-installed
	dvc repro prepare
	dvc repro --allow-missing

# `make quick` runs in a scratch copy, so that its small results never land on the committed ones.
# The copy is the workspace as it stands, committed or not (every file git tracks or would track, edits
# included), without what the stages write (DVC lists it) nor dvc.lock: every stage runs afresh there.
# In it, a git repository with one commit (DVC's experiments and DVCLive want one), then the QUICK
# overrides on top of the workspace's params.yaml through `dvc exp run -S`. MNIST comes from
# MNIST_MIRROR when set (a relative path is taken from here), else from this workspace's verified
# data/raw/mnist.npz when there is one, else from params.yaml's sources. Each `make quick` starts a
# fresh copy; `make clean` removes it.
QUICK_DIR := .quick

define QUICK_COPY
import os, shutil, subprocess, sys
from pathlib import Path
from dvc.repo import Repo

target = Path(sys.argv[1])
try:
    with Repo() as repo:
        outputs = {Path(str(out.def_path)) for stage in repo.index.stages for out in stage.outs}
except Exception as error:  # a dvc.yaml or params.yaml DVC cannot read: one line, as `dvc repro` would say
    sys.exit(f"make quick: DVC cannot list this project's stages: {error}")
listed = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True, check=True
).stdout
for name in filter(None, os.fsdecode(listed).split("\0")):
    path = Path(name)
    if name == "dvc.lock" or not path.is_file() or {path, *path.parents} & outputs:
        continue
    (target / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target / path)
endef
export QUICK_COPY

quick: $(VENV)/.study-installed
	rm -rf $(QUICK_DIR)
	@echo "make quick: copying the workspace to $(QUICK_DIR)/ (without its results)"
	@python -c "$$QUICK_COPY" $(QUICK_DIR)
	@cd $(QUICK_DIR) && git -c init.defaultBranch=quick init -q && git add -A \
		&& git -c user.name=quick -c user.email=quick@localhost -c commit.gpgsign=false \
			commit -q --no-verify -m "make quick: the workspace"
	@mirror="$${MNIST_MIRROR:-}"; \
	case "$$mirror" in ""|*://*|/*|"~"*) ;; *) mirror="$(CURDIR)/$$mirror" ;; esac; \
	if [ -z "$$mirror" ] && [ -f data/raw/mnist.npz ]; then mirror="$(CURDIR)/data/raw/mnist.npz"; fi; \
	cd $(QUICK_DIR) && MNIST_MIRROR="$$mirror" dvc exp run $(QUICK)
	@echo "make quick: the report is $(QUICK_DIR)/reports/study.html; the committed results are untouched"

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
	rm -rf dvc_plots .pytest_cache .ruff_cache $(QUICK_DIR)
