"""compare's tables from made-up run records: time to target, means over seeds, diverged runs."""

import json

import pytest

from study import analysis
from study.statistics import decide


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
        "protocol": "tuned",
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


def evaluation(**protocols):
    """{protocol: [test accuracy per seed]} in the format of metrics/eval/<variant>.json."""
    return {
        protocol: {
            "seeds": {str(seed): {"test_accuracy": a, "test_loss": 0.1} for seed, a in enumerate(accuracies)}
        }
        for protocol, accuracies in protocols.items()
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


def study_runs():
    records = [
        make_record("fast", 0, [0.97, 0.98]),
        make_record("fast", 1, [0.96, 0.98]),
        make_record("fast", 2, [0.97, 0.99]),
        make_record("slow", 0, [0.5, 0.6]),
        make_record("slow", 1, [0.5, 0.6]),
        make_record("slow", 2, [0.5, None], diverged_epoch=2),
    ]
    evaluations = {"fast": evaluation(tuned=[0.97, 0.98, 0.99]), "slow": evaluation(tuned=[0.5, 0.6, 0.1])}
    return analysis.runs_table(records, evaluations, 0.97, chance=0.2)


def test_summary_gives_each_metric_a_mean_and_interval_over_seeds():
    runs = study_runs()
    assert len(runs) == 6 and set(runs["protocol"]) == {"tuned"}
    summary = analysis.summary(runs)
    accuracy = summary["fast"]["tuned"]["test_accuracy"]
    assert accuracy["mean"] == pytest.approx(0.98) and accuracy["n_seeds"] == 3
    assert accuracy["ci_low"] < 0.98 < accuracy["ci_high"]
    assert summary["fast"]["tuned"]["epochs_to_target"]["mean"] == pytest.approx(4 / 3)
    assert summary["fast"]["tuned"]["seeds_reaching_target"] == 3
    assert summary["slow"]["tuned"]["seeds_reaching_target"] == 0
    assert summary["slow"]["tuned"]["seeds_diverged"] == 1
    assert summary["slow"]["tuned"]["epochs_to_target"] == {
        "mean": None,
        "std": None,
        "ci_low": None,
        "ci_high": None,
        "n_seeds": 0,
    }
    json.dumps(summary, allow_nan=False)  # strict JSON, for dvc metrics


def test_pairwise_compares_every_ordered_pair_seed_by_seed_by_the_claims_rule():
    pairs = analysis.pairwise(study_runs(), margin=0.003, alpha=0.05).set_index(["variant_a", "variant_b"])
    assert len(pairs) == 2
    fast_vs_slow = pairs.loc[("fast", "slow")]
    assert fast_vs_slow["mean"] == pytest.approx((0.47 + 0.38 + 0.89) / 3)
    assert fast_vs_slow["share_a_better"] == 1.0
    assert pairs.loc[("slow", "fast"), "mean"] == pytest.approx(-fast_vs_slow["mean"])
    differences = [0.47, 0.38, 0.89]
    decided = decide(differences, True, 0.003, 0.05)
    assert fast_vs_slow["outcome"] == decided["outcome"]  # the claims' own rule and words
    assert fast_vs_slow["ci_low"] == pytest.approx(decided["ci_low"])
    reverse = decide([-d for d in differences], True, 0.003, 0.05)
    assert pairs.loc[("slow", "fast"), "outcome"] == reverse["outcome"]
    assert "within_noise" not in pairs  # one rule decides "beyond noise": no second one beside it


def test_the_summary_table_is_long_form():
    table = analysis.summary_table(analysis.summary(study_runs()))
    assert set(table.columns) == {
        "variant",
        "protocol",
        "metric",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n_seeds",
    }
    assert len(table) == 2 * len(analysis.SUMMARY_METRICS)


def test_curves_hold_one_row_per_epoch():
    curves = analysis.curves_table([make_record("a", 0, [0.1, 0.2, 0.3], steps_per_epoch=7)])
    assert curves["epoch"].tolist() == [1, 2, 3]
    assert set(curves.columns) >= {"variant", "protocol", "seed", "epoch", "seconds", "val_accuracy"}
