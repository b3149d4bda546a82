"""The verdict logic on made-up measurements: what the records say is what the claims table says."""

import numpy as np
import pandas as pd
import pytest

from study import claims
from study.claims import CONTRADICTED, DEPENDS, NOISE, SUPPORTED, Evidence

SEEDS = [0, 1, 2, 3, 4]
JITTER = np.array([0.001, -0.002, 0.0, 0.002, -0.001])  # seed luck, shared by every variant (paired)


def evidence(**tables) -> Evidence:
    empty = {name: pd.DataFrame() for name in Evidence.__dataclass_fields__}
    return Evidence(**(empty | tables))


def runs_and_curves(epoch_one: dict[str, np.ndarray], test: dict[str, np.ndarray] | None = None):
    """Runs of each variant under both protocols: validation accuracy after epoch 1 and test accuracy."""
    runs, curves = [], []
    for variant, values in epoch_one.items():
        for protocol in ("defaults", "tuned"):
            for seed, value in zip(SEEDS, values, strict=True):
                accuracy = float((test or epoch_one)[variant][seed])
                runs.append(
                    {
                        "variant": variant,
                        "protocol": protocol,
                        "seed": seed,
                        "test_accuracy": accuracy,
                        "final_val_accuracy": accuracy,
                        "schedule": "cosine" if variant.endswith("cosine") else None,
                    }
                )
                curves.append(
                    {
                        "variant": variant,
                        "protocol": protocol,
                        "seed": seed,
                        "epoch": 1,
                        "val_accuracy": value,
                    }
                )
    return pd.DataFrame(runs), pd.DataFrame(curves)


def by_id(found: list[dict], claim_id: str) -> dict:
    return next(c for c in found if c["id"] == claim_id)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([SUPPORTED, SUPPORTED], SUPPORTED),
        ([CONTRADICTED], CONTRADICTED),
        ([SUPPORTED, CONTRADICTED], DEPENDS),
        ([SUPPORTED, NOISE], DEPENDS),
        ([NOISE, NOISE], DEPENDS),
        ([], DEPENDS),
    ],
)
def test_verdict_from_outcomes(outcomes, expected):
    assert claims.verdict(outcomes) == expected


def test_outcome_reads_the_interval_against_the_predicted_side():
    assert claims.outcome({"ci_low": 0.01, "ci_high": 0.03, "n_seeds": 5}, higher=True) == SUPPORTED
    assert claims.outcome({"ci_low": 0.01, "ci_high": 0.03, "n_seeds": 5}, higher=False) == CONTRADICTED
    assert claims.outcome({"ci_low": -0.01, "ci_high": 0.03, "n_seeds": 5}, higher=True) == NOISE
    # one pair has no spread: however large its difference, it cannot be told from noise
    assert claims.outcome({"ci_low": 0.2, "ci_high": 0.2, "n_seeds": 1}, higher=True) == NOISE


def test_adaptive_claim_contradicted_when_plain_sgd_is_faster_in_every_seed():
    runs, curves = runs_and_curves(
        {
            "mbgd": 0.90 + JITTER,
            "adam": 0.85 + JITTER * 1.5,
            "rmsprop": 0.86 + JITTER,
            "adagrad": 0.80 + JITTER * 0.5,
        }
    )
    adaptive = by_id(claims.evaluate(evidence(runs=runs, curves=curves)), "adaptive")
    assert adaptive["verdict"] == CONTRADICTED
    tests = adaptive["evidence"]["tests"]
    assert len(tests) == 6  # three optimizers x two protocols
    adam = next(t for t in tests if t["a"] == "adam")
    assert adam["mean"] == pytest.approx(-0.05, abs=1e-3) and adam["ci_high"] < 0


def test_adaptive_claim_supported_when_every_adaptive_optimizer_is_faster():
    runs, curves = runs_and_curves(
        {"mbgd": 0.88 + JITTER, "adam": 0.93 + JITTER, "rmsprop": 0.94 + JITTER * 2, "adagrad": 0.9 + JITTER}
    )
    assert by_id(claims.evaluate(evidence(runs=runs, curves=curves)), "adaptive")["verdict"] == SUPPORTED


def test_a_difference_within_noise_gives_depends_not_supported():
    # Nesterov ahead on average, but not in every seed: the interval includes zero.
    momentum = np.array([0.950, 0.960, 0.955, 0.948, 0.962])
    nesterov = momentum + np.array([0.010, -0.008, 0.006, -0.004, 0.007])
    runs, curves = runs_and_curves({"momentum": momentum, "nesterov": nesterov})
    claim = by_id(claims.evaluate(evidence(runs=runs, curves=curves)), "nesterov")
    assert {t["outcome"] for t in claim["evidence"]["tests"]} == {NOISE}
    assert claim["verdict"] == DEPENDS
    assert "within noise" in claim["depends_on"]


def test_schedules_compare_only_scheduled_variants_with_the_constant_rate():
    runs, curves = runs_and_curves(
        {"mbgd": 0.93 + JITTER, "mbgd_cosine": 0.95 + JITTER, "adam": 0.97 + JITTER}
    )
    claim = by_id(claims.evaluate(evidence(runs=runs, curves=curves)), "schedules")
    assert {t["a"] for t in claim["evidence"]["tests"]} == {"mbgd_cosine"}
    assert claim["verdict"] == SUPPORTED


def momentum_sweep(means: dict[float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"momentum": m, "nesterov": False, "seed": s, "final_val_accuracy": mean + JITTER[s]}
            for m, mean in means.items()
            for s in SEEDS
        ]
    )


def test_optimal_momentum_inside_the_range_is_supported():
    sweep = momentum_sweep({0.0: 0.92, 0.5: 0.94, 0.9: 0.96, 0.99: 0.90})
    claim = by_id(claims.evaluate(evidence(momentum_runs=sweep)), "optimal_momentum")
    assert claim["verdict"] == SUPPORTED
    assert [t["a"] for t in claim["evidence"]["tests"]] == ["m=0.9", "m=0.9"]


def test_no_optimum_inside_the_range_when_the_most_momentum_is_best():
    sweep = momentum_sweep({0.0: 0.90, 0.5: 0.92, 0.9: 0.95, 0.99: 0.97})
    claim = by_id(claims.evaluate(evidence(momentum_runs=sweep)), "optimal_momentum")
    assert claim["verdict"] == DEPENDS
    assert "contradicted: best inner momentum (0.9) vs momentum 0.99" in claim["depends_on"]


def test_optimal_momentum_contradicted_when_no_momentum_is_best():
    sweep = momentum_sweep({0.0: 0.99, 0.5: 0.92, 0.9: 0.95, 0.99: 0.97})
    claim = by_id(claims.evaluate(evidence(momentum_runs=sweep)), "optimal_momentum")
    assert claim["verdict"] == CONTRADICTED


def batch_sweep(per_size: dict[str, tuple[float, int, float]]):
    """Made-up sweep: per batch label (accuracy gained per epoch, steps per epoch, seconds per step)."""
    runs, curves = [], []
    for label, (per_epoch, steps_per_epoch, seconds_per_step) in per_size.items():
        for seed in SEEDS:
            runs.append(
                {"batch_label": label, "seed": seed, "peak_memory_bytes": 1e6 * steps_per_epoch**-0.5}
            )
            for step in sorted({1, 2, steps_per_epoch // 2 or 1, steps_per_epoch, 2 * steps_per_epoch}):
                epoch = step / steps_per_epoch
                curves.append(
                    {
                        "batch_label": label,
                        "seed": seed,
                        "step": step,
                        "epoch": epoch,
                        "seconds": step * seconds_per_step,
                        "val_accuracy": min(1.0, 0.1 + per_epoch * epoch + JITTER[seed]),
                    }
                )
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_at_budget_interpolates_in_log_steps():
    curve = pd.DataFrame({"step": [10, 1000], "seconds": [1.0, 100.0], "val_accuracy": [0.2, 0.8]})
    assert claims.at_budget(curve, "step", 100) == pytest.approx(0.5)
    assert claims.at_budget(curve, "step", 5) is None  # before the first score nothing was measured
    assert claims.at_budget(curve, "seconds", 100.0) == pytest.approx(0.8)


def test_batch_tradeoffs_depend_on_what_speed_is_measured_against():
    # Small batches learn most per epoch but take many slow steps; the whole split learns most per step.
    runs, curves = batch_sweep({"1": (0.8, 1000, 0.01), "32": (0.6, 32, 0.02), "full": (0.1, 1, 1.0)})
    claim = by_id(claims.evaluate(evidence(batch_runs=runs, batch_curves=curves)), "batch_tradeoffs")
    outcomes = {t["test"]: t["outcome"] for t in claim["evidence"]["tests"]}
    assert outcomes["batch 1 vs batch full, per epoch"] == SUPPORTED
    assert outcomes["batch 1 vs batch full, per step"] == CONTRADICTED
    assert outcomes["batch full vs batch 1, peak memory"] == SUPPORTED
    assert claim["verdict"] == DEPENDS
    assert "contradicted: batch 1 vs batch full, per step" in claim["depends_on"]


def test_momentum_escapes_local_minima_counted_over_the_same_starts():
    starts = range(40)
    landscapes = pd.DataFrame(
        [
            {"function": "two_wells", "variant": variant, "start": s, "reached_global": reached}
            for s in starts
            for variant, reached in (("mbgd", s % 2 == 0), ("momentum", s % 2 == 0 or s % 3 == 0))
        ]
    )
    claim = by_id(claims.evaluate(evidence(landscapes=landscapes)), "momentum")
    (test,) = claim["evidence"]["tests"]
    assert test["a_mean"] == pytest.approx(sum(s % 2 == 0 or s % 3 == 0 for s in starts) / 40)
    assert test["b_mean"] == pytest.approx(0.5)
    assert test["outcome"] == SUPPORTED


def test_every_claim_is_reported_even_without_its_measurements():
    found = claims.evaluate(evidence())
    assert [c["id"] for c in found] == [make(evidence()).id for make in claims.CLAIMS]
    assert len(found) == 8
    assert all(c["verdict"] == DEPENDS and "no measurement" in c["depends_on"] for c in found)


def test_the_batch_sweep_scores_at_log_spaced_steps():
    from stages.batch_sweep import checkpoint_steps

    assert checkpoint_steps(1000, 3) == [1, 2, 5, 10, 22, 46, 100, 215, 464, 1000]
    assert checkpoint_steps(250, 1) == [1, 10, 100]
    assert checkpoint_steps(1, 3) == [1]


def test_steps_to_a_minimum_compare_only_starts_that_both_settled_and_fewer_is_better():
    rows = []
    for start in range(6):
        rows.append({"function": "saddle", "variant": "mbgd", "start": start, "reached_global": True,
                     "steps_to_tolerance": 50 + start})  # fmt: skip
        settled = start != 5  # momentum never settles from start 5: that start is left out of the pairs
        rows.append({"function": "saddle", "variant": "momentum", "start": start, "reached_global": settled,
                     "steps_to_tolerance": 20 + 2 * start if settled else None})  # fmt: skip
    claim = by_id(claims.evaluate(evidence(landscapes=pd.DataFrame(rows))), "momentum")
    (steps,) = [t for t in claim["evidence"]["tests"] if t["test"] == "momentum vs mbgd on saddle, steps"]
    assert steps["n_seeds"] == 5
    assert steps["mean"] == pytest.approx(-30 + 2)  # (20 + 2s) - (50 + s) over s = 0..4
    assert steps["outcome"] == SUPPORTED  # fewer steps is what the claim predicts
