"""Training faults and reproducibility, with the real train stage in a subprocess on tiny data."""

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from study import data
from tests.workspace import fake_tuning, finish, get_params, make_workspace, record, set_params, stage


@pytest.fixture
def workspace(tmp_path) -> Path:
    folder = make_workspace(tmp_path)
    fake_tuning(folder, "adam", 0.003)
    fake_tuning(folder, "exploding", 1.0e7)
    return folder


def test_a_diverging_run_stops_early_and_is_marked(workspace):
    finish(stage(workspace, "stages.train", "exploding"))
    run = record(workspace, "exploding")
    assert run["diverged"] is True
    assert run["diverged_epoch"] == 1 and run["epochs_run"] == 1
    assert run["history"][0]["loss"] is None  # NaN is written as null: JSON has no NaN
    metrics = json.loads((workspace / "metrics" / "train" / "exploding.json").read_text())
    assert metrics["defaults"]["0"]["diverged"] is True and metrics["tuned"]["0"]["diverged"] is True
    # Its evaluation goes on too: a diverged model scores at chance, with no finite loss.
    finish(stage(workspace, "stages.evaluate", "exploding"))
    scores = json.loads((workspace / "metrics" / "eval" / "exploding.json").read_text())["defaults"]
    assert scores["test_loss"] is None and scores["test_accuracy"] < 0.3


def test_a_diverging_seed_does_not_stop_the_others(workspace):
    raw = get_params(workspace)
    raw["train"].update(seeds=[0, 1], defaults_seeds=2)
    set_params(workspace, raw)
    finish(stage(workspace, "stages.train", "exploding"))
    assert record(workspace, "exploding", 0)["diverged"]
    # Seed 1 still trains, to its own end: with every unit saturated its loss may stay finite.
    later = record(workspace, "exploding", 1)
    assert later["epochs_run"] == (later["diverged_epoch"] or 2)
    assert (workspace / "models" / "exploding" / "defaults" / "seed-1.keras").exists()


def test_both_protocols_train_at_their_own_learning_rates(workspace):
    finish(stage(workspace, "stages.train", "adam"))
    assert record(workspace, "adam", protocol="defaults")["settings"]["learning_rate"] == 0.001
    tuned = record(workspace, "adam", protocol="tuned")
    assert tuned["settings"]["learning_rate"] == 0.003 and tuned["protocol"] == "tuned"
    assert tuned["history"][0]["learning_rate"] == pytest.approx(0.003)


def test_the_defaults_protocol_trains_the_first_seeds_and_tuned_every_seed(workspace):
    raw = get_params(workspace)
    raw["train"].update(seeds=[3, 4], defaults_seeds=1)
    set_params(workspace, raw)
    finish(stage(workspace, "stages.train", "adam"))
    assert sorted(p.name for p in (workspace / "runs" / "adam" / "defaults").iterdir()) == ["seed-3"]
    assert sorted(p.name for p in (workspace / "runs" / "adam" / "tuned").iterdir()) == ["seed-3", "seed-4"]
    finals = json.loads((workspace / "metrics" / "train" / "adam.json").read_text())
    assert set(finals["defaults"]) == {"3"} and set(finals["tuned"]) == {"3", "4"}


def test_training_without_tuning_says_which_stage_to_run(workspace):
    (workspace / "tuning" / "adam" / "best.json").unlink()
    process = stage(workspace, "stages.train", "adam")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "dvc repro variant@adam" in err.strip().splitlines()[-1]


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

    def staging():  # the stage's temporary folder: its name is unique to the process
        return next(iter((workspace / "runs").glob(".adam.*.tmp/defaults/seed-0/plots")), None)

    deadline = time.monotonic() + 120
    while staging() is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert staging() is not None, "training never started"
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
