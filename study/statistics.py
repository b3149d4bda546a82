"""How sure a comparison is: means over seeds with 95% confidence intervals, and paired differences.

Every variant trains with the same seeds, so two variants can be compared seed by seed (a paired
comparison): the seed's luck (initial weights, data order) is shared and cancels out. Intervals are
Student's t intervals from scipy.stats: with five seeds they are wide, and that is the honest answer.
"""

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def describe(values) -> dict:
    """Mean, standard deviation (n - 1) and the 95% t interval of the mean, over the finite values.

    A value that is missing (a target never reached, a NaN loss) is left out and n_seeds says how many
    remained; with one value the interval is that value alone, with none every field is None.
    """
    sample = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(sample)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
    mean = float(sample.mean())
    if n == 1 or np.all(sample == sample[0]):
        return {"mean": mean, "std": 0.0 if n > 1 else None, "ci_low": mean, "ci_high": mean, "n_seeds": n}
    low, high = stats.t.interval(CONFIDENCE, df=n - 1, loc=mean, scale=stats.sem(sample))
    return {
        "mean": mean,
        "std": float(sample.std(ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_seeds": n,
    }


def paired_difference(a, b) -> dict:
    """How much `a` beats `b`, seed by seed: the mean difference, its 95% interval, and in how many
    seeds a was higher. `within_noise` is true when the interval includes zero."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if _finite(x) and _finite(y)]
    differences = [x - y for x, y in pairs]
    summary = describe(differences)
    wins = sum(d > 0 for d in differences)
    return {
        **summary,
        "share_a_better": wins / len(differences) if differences else None,
        "within_noise": None if summary["mean"] is None else summary["ci_low"] <= 0 <= summary["ci_high"],
    }


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
