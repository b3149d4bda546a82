"""How sure a comparison is: means over seeds with 95% confidence intervals, and the decision a paired
difference supports: the one rule that decides "beyond noise" everywhere (claims and pairwise table).

Every variant trains with the same seeds, so two variants can be compared seed by seed (a paired
comparison): the seed's luck (initial weights, data order) is shared and cancels out. Intervals are
Student's t intervals from scipy.stats: with a handful of seeds they are wide, and that is the honest
answer.

A difference is decided (`decide`) in one of four ways, against the side a claim predicts:
- `no detectable effect`: an equivalence test says it lies within ±margin: two one-sided tests at
  level alpha, i.e. the 1 − 2·alpha interval inside (−margin, margin) (Schuirmann's TOST). A
  difference that is consistent in sign but smaller than the margin lands here too: the margin is the
  smallest effect the study counts as one;
- `supported` / `contradicted`: otherwise, its 1 − alpha interval lies wholly on the predicted / the
  other side of zero;
- `inconclusive`: neither: the interval is too wide to decide.
With each decision goes the minimum detectable effect: the smallest true difference the test would
find with 80% power, given the spread it measured. A null result means "smaller than the margin",
never "within noise".
"""

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8
SUPPORTED, CONTRADICTED, NO_EFFECT, INCONCLUSIVE = (
    "supported",
    "contradicted",
    "no detectable effect",
    "inconclusive",
)


def describe(values, confidence: float = CONFIDENCE) -> dict:
    """Mean, standard deviation (n - 1) and the t interval of the mean, over the finite values.

    A value that is missing (a target never reached, a NaN loss) is left out and n_seeds says how many
    remained; with one value the interval is that value alone, with none every field is None.
    """
    sample = _finite_sample(values)
    n = len(sample)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
    mean = float(sample.mean())
    if n == 1 or np.all(sample == sample[0]):
        return {"mean": mean, "std": 0.0 if n > 1 else None, "ci_low": mean, "ci_high": mean, "n_seeds": n}
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=stats.sem(sample))
    return {
        "mean": mean,
        "std": float(sample.std(ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_seeds": n,
    }


def decide(differences, higher: bool, margin: float, alpha: float) -> dict:
    """The decision on paired differences a − b, where a claim predicts a is `higher` (or lower).

    `alpha`: the test's error rate (two-sided for the difference, each one-sided test of the
    equivalence test at alpha). Returns the mean, the 1 − alpha interval, the 1 − 2·alpha interval the
    equivalence test reads, the margin, the minimum detectable effect and the outcome. With fewer than
    two pairs nothing can be decided (`inconclusive`).
    """
    sample = _finite_sample(differences)
    n = len(sample)
    result = {"mean": float(sample.mean()) if n else None, "n": n, "margin": margin, "alpha": alpha}
    if n < 2:
        return {
            **result,
            "ci_low": None,
            "ci_high": None,
            "tost_low": None,
            "tost_high": None,
            "mde": None,
            "outcome": INCONCLUSIVE,
        }
    mean, std = float(sample.mean()), float(sample.std(ddof=1))
    sem = std / math.sqrt(n)
    half = stats.t.ppf(1 - alpha / 2, n - 1) * sem
    tost_half = stats.t.ppf(1 - alpha, n - 1) * sem
    low, high = mean - half, mean + half
    if -margin < mean - tost_half and mean + tost_half < margin:
        outcome = NO_EFFECT  # smaller than the margin, even if consistent in sign: no effect that matters
    elif low > 0:
        outcome = SUPPORTED if higher else CONTRADICTED
    elif high < 0:
        outcome = CONTRADICTED if higher else SUPPORTED
    else:
        outcome = INCONCLUSIVE
    return {
        **result,
        "ci_low": low,
        "ci_high": high,
        "tost_low": mean - tost_half,
        "tost_high": mean + tost_half,
        "mde": minimum_detectable_effect(std, n, alpha),
        "outcome": outcome,
    }


def minimum_detectable_effect(std: float, n: int, alpha: float, power: float = POWER) -> float:
    """The smallest true paired difference a two-sided t test at `alpha` finds with `power`, for n pairs
    whose differences spread by `std` (the usual normal-approximation formula with t quantiles)."""
    if n < 2:
        return math.inf
    return (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * std / math.sqrt(n)


def _finite_sample(values) -> np.ndarray:
    return np.asarray([v for v in values if _finite(v)], dtype=float)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
