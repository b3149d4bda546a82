"""The statistics behind every comparison, checked against scipy and numbers done by hand."""

import math

import pytest
from scipy import stats

from study.statistics import (
    CONTRADICTED,
    INCONCLUSIVE,
    NO_EFFECT,
    SUPPORTED,
    decide,
    describe,
    minimum_detectable_effect,
)


def test_describe_matches_a_t_interval_done_by_hand():
    values = [0.95, 0.96, 0.97, 0.98, 0.99]
    result = describe(values)
    mean, sd = 0.97, math.sqrt(sum((v - 0.97) ** 2 for v in values) / 4)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)  # 2.776 * sd / sqrt(5)
    assert result["mean"] == pytest.approx(mean)
    assert result["std"] == pytest.approx(sd)
    assert result["ci_low"] == pytest.approx(mean - half)
    assert result["ci_high"] == pytest.approx(mean + half)
    assert result["n_seeds"] == 5
    assert half == pytest.approx(2.7764451 * sd / math.sqrt(5), rel=1e-6)


def test_describe_leaves_out_missing_values_and_counts_the_rest():
    result = describe([1.0, None, float("nan"), 3.0])
    assert result["n_seeds"] == 2 and result["mean"] == 2.0
    assert result["ci_low"] < 2.0 < result["ci_high"]


def test_describe_of_one_or_no_value():
    assert describe([0.5]) == {"mean": 0.5, "std": None, "ci_low": 0.5, "ci_high": 0.5, "n_seeds": 1}
    assert describe([None])["mean"] is None and describe([])["n_seeds"] == 0


def test_identical_values_have_a_zero_width_interval():
    assert describe([2.0, 2.0, 2.0])["ci_low"] == 2.0


def test_decide_reads_the_interval_against_the_predicted_side():
    lead = [0.010, 0.012, 0.011, 0.009, 0.010]
    assert decide(lead, higher=True, margin=0.003, alpha=0.05)["outcome"] == SUPPORTED
    assert decide(lead, higher=False, margin=0.003, alpha=0.05)["outcome"] == CONTRADICTED
    assert decide([-x for x in lead], higher=False, margin=0.003, alpha=0.05)["outcome"] == SUPPORTED


def test_decide_calls_a_tight_interval_inside_the_margin_no_detectable_effect():
    tiny = [0.0004, -0.0003, 0.0001, 0.0, -0.0002, 0.0003]
    result = decide(tiny, higher=True, margin=0.003, alpha=0.05)
    assert result["outcome"] == NO_EFFECT
    # TOST: each one-sided test at alpha, i.e. the 1 - 2 alpha interval, inside the margin.
    half = stats.t.ppf(0.95, 5) * stats.sem(tiny)
    assert result["tost_high"] == pytest.approx(sum(tiny) / 6 + half)


def test_decide_calls_a_wide_interval_inconclusive():
    wide = [0.01, -0.012, 0.004, -0.006]
    result = decide(wide, higher=True, margin=0.003, alpha=0.05)
    assert result["outcome"] == INCONCLUSIVE
    assert result["mde"] > 0.003  # this test could not have seen an effect of the margin's size


def test_decide_with_one_pair_decides_nothing():
    assert decide([0.5], higher=True, margin=0.003, alpha=0.05)["outcome"] == INCONCLUSIVE


def test_the_minimum_detectable_effect_shrinks_with_more_seeds():
    assert minimum_detectable_effect(0.003, 10, 0.05) < minimum_detectable_effect(0.003, 5, 0.05)
    # (t_{0.975,9} + t_{0.8,9}) x sd / sqrt(10), by hand
    expected = (stats.t.ppf(0.975, 9) + stats.t.ppf(0.8, 9)) * 0.003 / math.sqrt(10)
    assert minimum_detectable_effect(0.003, 10, 0.05) == pytest.approx(expected)
