"""evaluate and compare, run for real as processes, fail with one clear line on missing or foreign input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

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
