"""The batch-size sweep gives every size its own learning rate, tuned on the same budget, and measures
its memory in fresh processes: `python -m stages.batch_sweep` run once on tiny fake data."""

import json
import math

import pandas as pd
import pytest

from study.batch_sizes import analytic_memory_bytes
from tests.workspace import finish, get_params, make_workspace, set_params, stage

TRAIN_SIZE = 200  # of the workspace's 1,600 training images
TUNE_SEEDS = [100, 101]
EVALUATION_SEEDS = [0, 1, 2]
SWEEP_SEEDS = 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = make_workspace(tmp_path_factory.mktemp("batch_sweep"), seeds=EVALUATION_SEEDS, epochs=1)
    raw = get_params(folder)
    raw["tune"].update(seeds=TUNE_SEEDS, points=3, refine=1, epochs=1)  # epochs: the sweep's own horizon wins
    raw["batch_sweep"].update(
        batch_sizes=[8, "full"],
        train_size=TRAIN_SIZE,
        full_batch_steps=100,  # the schema's least: 100 steps of 200 images
        search=[0.01, 1.0],
        tuning_seeds=1,  # the sweep's small budget: the first tuning seed only
        seeds=SWEEP_SEEDS,
        memory_repeats=3,
    )
    set_params(folder, raw)
    finish(stage(folder, "stages.batch_sweep"))
    return folder


def table(folder, path) -> pd.DataFrame:
    return pd.read_csv(folder / path, dtype={"batch_label": str})


def test_every_size_is_tuned_with_the_same_trials_on_tuning_seeds_only(sweep):
    tuning = table(sweep, "metrics/batch_tuning.csv")
    assert set(tuning["batch_label"]) == {"8", "full"}
    for _, trials in tuning.groupby("batch_label"):
        assert len(trials) == 3 + 2  # coarse grid, then one rate each side of its best, on one seed
        assert (trials["stage"] == "coarse").sum() == 3
        assert sorted(set(trials["seed"])) == TUNE_SEEDS[:1]
    runs = table(sweep, "metrics/batch_size.csv")
    assert sorted(set(runs["seed"])) == EVALUATION_SEEDS[:SWEEP_SEEDS]  # tuning seeds never evaluate


def test_each_size_trains_at_its_own_chosen_rate(sweep):
    tuning = table(sweep, "metrics/batch_tuning.csv")
    runs = table(sweep, "metrics/batch_size.csv")
    summary = json.loads((sweep / "metrics/batch_size.json").read_text())
    for label, trials in tuning.groupby("batch_label"):
        means = (
            trials.dropna(subset=["mean_val_accuracy"]).groupby("learning_rate")["mean_val_accuracy"].first()
        )
        best = means[means == means.max()].index.min()  # the lower rate wins a tie
        assert set(trials.loc[trials["chosen"], "learning_rate"]) == {best}
        assert set(runs.loc[runs["batch_label"] == label, "learning_rate"]) == {best}
        assert summary[f"batch-{label}"]["learning_rate"] == best
        for seed in EVALUATION_SEEDS[:SWEEP_SEEDS]:
            record = json.loads(
                (sweep / f"sweeps/batch_size/batch-{label}/seed-{seed}/record.json").read_text()
            )
            assert record["settings"]["learning_rate"] == best


def test_full_batch_takes_full_batch_steps_and_the_others_train_epochs(sweep):
    runs = table(sweep, "metrics/batch_size.csv").set_index(["batch_label", "seed"])
    assert (runs.loc["full", "steps_run"] == 100).all() and (runs.loc["full", "epochs_run"] == 100).all()
    assert (runs.loc["8", "epochs_run"] == 1).all()
    assert (runs.loc["8", "steps_run"] == math.ceil(TRAIN_SIZE / 8)).all()
    assert (runs["n_train"] == TRAIN_SIZE).all()
    tuning = table(sweep, "metrics/batch_tuning.csv")
    assert tuning.groupby("batch_label")["epochs"].first().to_dict() == {"8": 1, "full": 100}
    curves = table(sweep, "plots/batch_size_curves.csv")
    full = curves[(curves["batch_label"] == "full") & (curves["seed"] == 0)]
    assert full["step"].tolist() == list(range(1, 101))  # one score per step: every epoch is one step


def test_memory_is_measured_repeatedly_in_distinct_fresh_processes(sweep):
    memory = table(sweep, "metrics/batch_memory.csv")
    assert memory.groupby("batch_label")["repeat"].apply(sorted).to_dict() == {
        "8": [0, 1, 2],
        "full": [0, 1, 2],
    }
    assert memory["pid"].nunique() == len(memory)
    assert (memory["peak_memory_bytes"] > 0).all()
    runs = table(sweep, "metrics/batch_size.csv")
    for label, repeats in memory.groupby("batch_label"):
        median = repeats["peak_memory_bytes"].median()
        assert (runs.loc[runs["batch_label"] == label, "peak_memory_bytes"] == median).all()


def test_analytic_memory_counts_weights_slots_and_one_batch():
    widths = [784, 128, 10]
    weights = 785 * 128 + 129 * 10
    assert analytic_memory_bytes(widths, 1) == 4 * (2 * weights + (2 * 922 - 784))
    assert (
        analytic_memory_bytes(widths, 1, optimizer_slots=2) - analytic_memory_bytes(widths, 1) == 8 * weights
    )
    sizes = [1, 8, 32, 256, 10_000]
    growth = [analytic_memory_bytes(widths, b) for b in sizes]
    assert growth == sorted(growth) and len(set(growth)) == len(sizes)


def test_analytic_memory_in_the_tables_grows_with_batch_size(sweep):
    memory = table(sweep, "metrics/batch_memory.csv")
    analytic = memory.groupby("batch_size")["analytic_memory_bytes"].first()
    assert analytic.is_monotonic_increasing and analytic.is_unique
    assert analytic.loc[8] == analytic_memory_bytes([784, 128, 10], 8)


def test_the_tables_columns(sweep):
    columns = {
        "metrics/batch_size.csv": [
            "batch_label", "batch_size", "learning_rate", "on_edge", "seed", "final_val_accuracy",
            "val_accuracy_epoch1", "epochs_to_target", "steps_to_target", "seconds_to_target",
            "train_seconds", "seconds_per_step", "steps_run", "peak_memory_bytes", "analytic_memory_bytes",
            "unstable", "diverged",
        ],
        "metrics/batch_tuning.csv": [
            "batch_label", "stage", "learning_rate", "seed", "val_accuracy", "mean_val_accuracy", "chosen",
            "on_edge",
        ],
        "metrics/batch_memory.csv": [
            "batch_label", "repeat", "pid", "peak_memory_bytes", "memory_kind", "analytic_memory_bytes",
        ],
        "plots/batch_size_curves.csv": [
            "batch_label", "learning_rate", "seed", "step", "epoch", "seconds", "val_accuracy",
        ],
    }  # fmt: skip
    for path, wanted in columns.items():
        assert set(wanted) <= set(table(sweep, path).columns), path
    summary = json.loads((sweep / "metrics/batch_size.json").read_text())
    assert set(summary) == {"batch-8", "batch-full"}
    full = summary["batch-full"]
    assert (
        full["steps"] == 100 and full["n_train"] == TRAIN_SIZE and full["peak_memory_bytes"]["repeats"] == 3
    )
    assert (
        full["peak_memory_bytes"]["low"]
        <= full["peak_memory_bytes"]["median"]
        <= full["peak_memory_bytes"]["high"]
    )
    assert full["final_val_accuracy"]["n_seeds"] == SWEEP_SEEDS
