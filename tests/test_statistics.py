"""The statistics behind every comparison, checked against scipy and numbers done by hand."""

import math

import pytest
from scipy import stats

from study.statistics import describe, paired_difference


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


def test_paired_difference_is_the_t_interval_of_the_per_seed_differences():
    a, b = [0.97, 0.975, 0.972, 0.98, 0.969], [0.96, 0.97, 0.965, 0.97, 0.97]
    result = paired_difference(a, b)
    differences = [x - y for x, y in zip(a, b, strict=True)]
    expected = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert result["mean"] == pytest.approx(sum(differences) / 5)
    assert result["ci_low"] == pytest.approx(expected.low)
    assert result["ci_high"] == pytest.approx(expected.high)
    assert result["share_a_better"] == pytest.approx(4 / 5)
    assert result["within_noise"] == bool(expected.low <= 0 <= expected.high)


def test_a_consistent_difference_is_outside_noise_and_a_mixed_one_is_within():
    assert paired_difference([0.9, 0.91, 0.92], [0.8, 0.805, 0.81])["within_noise"] is False
    assert paired_difference([0.9, 0.8, 0.91], [0.85, 0.86, 0.84])["within_noise"] is True


def test_paired_difference_skips_seeds_missing_on_either_side():
    result = paired_difference([1.0, None, 3.0], [0.0, 1.0, None])
    assert result["n_seeds"] == 1 and result["mean"] == 1.0
