"""Training faults and reproducibility, with the real train stage in a subprocess on tiny data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from study import data
from tests.fake_mnist import make_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
EXPLODING = {"optimizer": "sgd", "batch_size": 32, "learning_rate": 1.0e6, "momentum": 0.0}


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A folder holding params.yaml (tiny settings) and data/prepared, as after the prepare stage."""
    expected = make_fake_mnist(tmp_path / "mnist.npz", n_train=2000, n_test=300, seed=1)
    arrays = np.load(tmp_path / "mnist.npz")
    scale = lambda x: (x / 255).astype(np.float32)  # noqa: E731
    train, validation = data.split_train_validation(scale(arrays["x_train"]), arrays["y_train"], 400, 0)
    data.write_prepared(
        tmp_path / "data" / "prepared",
        {"train": train, "validation": validation, "test": (scale(arrays["x_test"]), arrays["y_test"])},
    )
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())
    raw["data"]["expected"] = expected
    raw["prepare"]["validation_size"] = 400
    raw["train"]["epochs"] = 2
    raw["variants"] = {"adam": raw["variants"]["adam"], "exploding": EXPLODING}
    set_params(tmp_path, raw)
    return tmp_path


def set_params(folder: Path, raw: dict) -> None:
    YAML().dump(raw, folder / "params.yaml")


def get_params(folder: Path) -> dict:
    return YAML(typ="safe", pure=True).load((folder / "params.yaml").read_text())


def stage(folder: Path, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return out + err


def record(folder: Path, variant: str, seed: int = 0) -> dict:
    return json.loads((folder / "runs" / variant / f"seed-{seed}" / "record.json").read_text())


def test_a_diverging_run_stops_early_and_is_marked(workspace):
    finish(stage(workspace, "stages.train", "exploding"))
    run = record(workspace, "exploding")
    assert run["diverged"] is True
    assert run["diverged_epoch"] == 1 and run["epochs_run"] == 1
    assert run["history"][0]["loss"] is None  # NaN is written as null: JSON has no NaN
    metrics = json.loads((workspace / "metrics" / "train" / "exploding.json").read_text())
    assert metrics["seeds"]["0"]["diverged"] is True
    # Its evaluation goes on too: a diverged model scores at chance, with no finite loss.
    finish(stage(workspace, "stages.evaluate", "exploding"))
    scores = json.loads((workspace / "metrics" / "eval" / "exploding.json").read_text())
    assert scores["test_loss"] is None and scores["test_accuracy"] < 0.3


def test_a_diverging_seed_does_not_stop_the_others(workspace):
    raw = get_params(workspace)
    raw["train"]["seeds"] = [0, 1]
    set_params(workspace, raw)
    finish(stage(workspace, "stages.train", "exploding"))
    assert record(workspace, "exploding", 0)["diverged"]
    # Seed 1 still trains, to its own end: with every unit saturated its loss may stay finite.
    later = record(workspace, "exploding", 1)
    assert later["epochs_run"] == (later["diverged_epoch"] or 2)
    assert (workspace / "models" / "exploding" / "seed-1.keras").exists()


def test_reruns_give_identical_numbers_and_record_their_environment(workspace):
    finish(stage(workspace, "stages.train", "adam"))
    first = record(workspace, "adam")
    finish(stage(workspace, "stages.train", "adam"))
    second = record(workspace, "adam")
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(first["history"]) == strip(second["history"])
    assert first["history"][-1]["val_accuracy"] > 0.5
    environment = first["environment"]
    assert environment["tensorflow"] and environment["keras"] and environment["device"].startswith("CPU")
    assert first["seed"] == 0 and "op_determinism" in environment

    raw = get_params(workspace)
    raw["train"]["seeds"] = [1]
    set_params(workspace, raw)
    finish(stage(workspace, "stages.train", "adam"))
    assert strip(record(workspace, "adam", 1)["history"]) != strip(first["history"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_training_leaves_nothing_half_written(workspace, signum):
    raw = get_params(workspace)
    raw["train"]["epochs"] = 500  # long enough to be interrupted mid-way
    set_params(workspace, raw)
    process = stage(workspace, "stages.train", "adam")
    staging = workspace / "runs" / ".adam.tmp" / "seed-0" / "plots"
    deadline = time.monotonic() + 120
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert staging.exists(), "training never started"
    time.sleep(1.0)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted" in err.splitlines()[-1]
    leftovers = [p for p in (workspace / "runs", workspace / "models", workspace / "metrics") if p.exists()]
    assert all(not any(folder.iterdir()) for folder in leftovers), [list(f.iterdir()) for f in leftovers]

    raw["train"]["epochs"] = 1
    set_params(workspace, raw)
    finish(stage(workspace, "stages.train", "adam"))
    assert record(workspace, "adam")["epochs_run"] == 1


def test_foreign_prepared_data_is_caught_before_keras(workspace):
    x, y = data.load_split(workspace / "data" / "prepared", "train")
    np.savez(workspace / "data" / "prepared" / "train.npz", x=x.reshape(len(x), -1), y=y)
    process = stage(workspace, "stages.train", "adam")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "train.npz" in last and "Traceback" not in err
