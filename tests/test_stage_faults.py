"""Stages fail with one clear line, never a traceback: evaluate and compare run for real as processes on
missing or foreign input; run_stage turns an OSError or a MemoryError into one line; and a stage dies
with the process that started it, leaving nothing half-written.
"""

import contextlib
import errno
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from ruamel.yaml import YAML

from study import errors

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path) -> Path:
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())
    raw["variants"] = {"adam": raw["variants"]["adam"]}
    YAML().dump(raw, tmp_path / "params.yaml")
    return tmp_path


def fails(folder: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_evaluate_without_prepared_data_says_which_stage_to_run(workspace):
    assert "dvc repro prepare" in fails(workspace, "stages.evaluate", "adam")


def test_evaluate_of_an_unknown_variant_lists_the_known_ones(workspace):
    assert (
        fails(workspace, "stages.evaluate", "adamw")
        == "error: unknown variant 'adamw': params.yaml defines adam"
    )


def test_evaluate_refuses_a_missing_or_foreign_model(workspace):
    import numpy as np

    from study import data

    x = np.zeros((20, 28, 28), np.float32)
    y = np.arange(20, dtype=np.uint8) % 10
    data.write_prepared(
        workspace / "data" / "prepared", {"train": (x, y), "validation": (x, y), "test": (x, y)}
    )
    assert "models/adam/defaults/seed-0.keras is missing" in fails(workspace, "stages.evaluate", "adam")
    (workspace / "models" / "adam" / "defaults").mkdir(parents=True)
    (workspace / "models" / "adam" / "defaults" / "seed-0.keras").write_text("not a model")
    assert "is not a readable Keras model" in fails(workspace, "stages.evaluate", "adam")
    assert not (workspace / "metrics").exists()


def test_compare_without_records_says_to_run_the_pipeline(workspace):
    line = fails(workspace, "stages.compare")
    assert "record.json is missing" in line and "dvc repro" in line
    assert not (workspace / "metrics").exists()


# run_stage, every stage's entry point: where a variant's name comes from, and what an OSError or a
# MemoryError becomes.


@pytest.fixture
def entry(monkeypatch):
    """run_stage in this process, without its parent watchdog and with SIGTERM's handler restored."""
    monkeypatch.setattr(errors, "die_with_parent", lambda: None)
    previous = signal.getsignal(signal.SIGTERM)
    yield errors.run_stage
    signal.signal(signal.SIGTERM, previous)


def test_a_variants_stage_takes_its_name_from_dvc_stage(entry, monkeypatch):
    seen = []
    for argv, stage in [
        (["variant.py"], "variant@adam"),
        (["variant.py", "sgd"], "variant@adam"),
        (["download.py"], "download"),
    ]:
        monkeypatch.setattr(sys, "argv", list(argv))
        monkeypatch.setenv("DVC_STAGE", stage)
        entry(lambda: seen.append(sys.argv[1:]))
    assert seen == [["adam"], ["sgd"], []]  # by hand, the argument wins; a stage without a variant has none


@pytest.mark.parametrize(
    ("failure", "line"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "data/prepared/train.npz"),
            "error: data/prepared/train.npz: No space left on device: the disk is full: free some space",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "runs/adam"),
            "error: runs/adam: Permission denied",
        ),
        (OSError(errno.EIO, "Input/output error"), "error: Input/output error: fix the cause and rerun"),
        (MemoryError(), "error: out of memory: close other programs"),
    ],
    ids=["disk-full", "permissions", "no-filename", "memory"],
)
def test_an_os_error_or_memory_error_is_one_line(entry, monkeypatch, capsys, failure, line):
    monkeypatch.setattr(sys, "argv", ["stage.py"])

    def main():
        raise failure

    with pytest.raises(SystemExit) as exit:
        entry(main)
    assert exit.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(line) and stderr.count("\n") == 1


# A stage dies with whoever started it: `dvc repro` killed leaves no stage behind, writing outputs that
# DVC would never record. The stage here writes its output through atomic_file and then waits.
STAGE = """
import time
from study.atomic import atomic_file
from study.errors import run_stage

def main():
    with atomic_file("out.txt") as tmp:
        tmp.write_text("half")
        print("writing", flush=True)
        time.sleep(60)

run_stage(main)
"""


@pytest.mark.parametrize("through_shell", [False, True], ids=["dvc-stage", "dvc-shell-stage"])
def test_a_stage_dies_with_the_process_that_started_it(tmp_path, through_shell):
    stage = [sys.executable, "-c", STAGE]
    # As DVC runs a stage: directly, or through `sh -c` when the shell does not hand its process over.
    command = ["sh", "-c", f"{shlex.join(stage)}; true"] if through_shell else stage
    starter = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, time; subprocess.Popen({command!r}); time.sleep(60)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout.readline() == "writing\n"
        running = [p for p in psutil.Process(starter.pid).children(recursive=True) if "-c" in p.cmdline()]
        stage_process = next(p for p in running if p.cmdline()[:2] == [sys.executable, "-c"])
        starter.kill()  # SIGKILL: no chance to pass anything on
        starter.wait()
        stage_process.wait(timeout=5)  # gone within a few polls, not after its minute of work
        assert starter.stderr.read() == "interrupted: no output was written; rerun `dvc repro` to continue\n"
    finally:
        starter.kill()
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                process.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither out.txt nor a temporary copy
