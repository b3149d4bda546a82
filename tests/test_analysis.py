"""compare's tables from made-up run records: time to target, means over seeds, diverged runs."""

import json

import pandas as pd
import pytest

from study import analysis


def make_record(
    variant, seed, val_accuracies, seconds_per_epoch=2.0, steps_per_epoch=100, diverged_epoch=None
):
    history = [
        {
            "epoch": epoch,
            "loss": None if diverged_epoch == epoch else 1.0 / epoch,
            "accuracy": accuracy,
            "val_loss": None if diverged_epoch == epoch else 1.0 / epoch,
            "val_accuracy": accuracy,
            "learning_rate": 0.01,
            "seconds": seconds_per_epoch * epoch,
        }
        for epoch, accuracy in enumerate(val_accuracies, start=1)
    ]
    return {
        "variant": variant,
        "seed": seed,
        "settings": {
            "optimizer": "sgd",
            "batch_size": 32,
            "learning_rate": 0.01,
            "momentum": 0.0,
            "schedule": None,
        },
        "batch_size": 32,
        "steps_per_epoch": steps_per_epoch,
        "epochs_run": len(history),
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "train_seconds": history[-1]["seconds"],
        "optimizer_state_bytes": 0,
        "peak_memory_bytes": 1000 * (seed + 1),
        "memory_kind": "rss",
        "history": history,
    }


def evaluation(*accuracies):
    return {
        "seeds": {str(seed): {"test_accuracy": a, "test_loss": 0.1} for seed, a in enumerate(accuracies)},
    }


def test_time_to_target_is_the_first_epoch_at_or_above_it():
    record = make_record("a", 0, [0.90, 0.97, 0.96, 0.99], seconds_per_epoch=1.5, steps_per_epoch=10)
    assert analysis.time_to_target(record, 0.97) == {
        "epochs_to_target": 2,
        "steps_to_target": 20,
        "seconds_to_target": 3.0,
    }


def test_a_target_never_reached_is_none():
    record = make_record("a", 0, [0.5, 0.6])
    assert analysis.time_to_target(record, 0.97)["epochs_to_target"] is None


def test_summary_means_over_seeds_and_counts_those_reaching_the_target():
    records = [
        make_record("fast", 0, [0.97, 0.98]),
        make_record("fast", 1, [0.96, 0.98]),
        make_record("slow", 0, [0.5, 0.6]),
        make_record("slow", 1, [0.5, None], diverged_epoch=2),
    ]
    runs = analysis.runs_table(records, {"fast": evaluation(0.97, 0.99), "slow": evaluation(0.5, 0.1)}, 0.97)
    assert len(runs) == 4
    summary = analysis.summary_table(runs).set_index("variant")
    assert summary.loc["fast", "test_accuracy"] == pytest.approx(0.98)
    assert summary.loc["fast", "epochs_to_target"] == pytest.approx(1.5)
    assert summary.loc["fast", "seeds_reaching_target"] == 2
    assert summary.loc["fast", "peak_memory_bytes"] == pytest.approx(1500)
    assert summary.loc["slow", "seeds_reaching_target"] == 0
    assert summary.loc["slow", "seeds_diverged"] == 1
    assert pd.isna(summary.loc["slow", "epochs_to_target"])


def test_summary_json_is_strict_json_with_null_for_not_reached():
    records = [make_record("slow", 0, [0.5, 0.6])]
    runs = analysis.runs_table(records, {"slow": evaluation(0.5)}, 0.97)
    summary = analysis.summary_json(analysis.summary_table(runs))
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text)["slow"]["epochs_to_target"] is None
    assert summary["slow"]["seeds"] == 1


def test_curves_hold_one_row_per_epoch_with_optimizer_steps():
    curves = analysis.curves_table([make_record("a", 0, [0.1, 0.2, 0.3], steps_per_epoch=7)])
    assert curves["step"].tolist() == [7, 14, 21]
    assert set(curves.columns) >= {"variant", "seed", "epoch", "seconds", "val_accuracy", "learning_rate"}
