"""The primer's claims, each tested against the study's measurements, with a verdict decided by code.

A claim is a list of tests. A test compares two things that the claim says differ (SGD against batch
GD per epoch, momentum against plain SGD on a landscape), paired by seed or by start so that shared
luck cancels, and looks at the 95% interval of the difference in the direction the claim predicts:
- `supported`: the interval lies wholly on the side the claim predicts;
- `contradicted`: it lies wholly on the other side;
- `within noise`: it includes zero (the data cannot tell the two apart).
Quantities measured once per setting (memory) have no interval: they count as different when one is
at least `MEMORY_FACTOR` times the other.

The claim's verdict: `supported` when every test supports it, `contradicted` when every test
contradicts it, otherwise `depends`, and the verdict names what it depends on (which tests went which
way). A difference within noise therefore never supports a claim. Every number that decided a verdict
is kept in the claim's `evidence`, so that a reader can check it, and a rerun with other params
recomputes every verdict.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.statistics import describe, paired_difference

SUPPORTED, CONTRADICTED, NOISE, DEPENDS = "supported", "contradicted", "within noise", "depends"
VERDICTS = (SUPPORTED, CONTRADICTED, DEPENDS)
MEMORY_FACTOR = 1.5  # "much more memory": at least this many times as much
ADAPTIVE = ("adam", "rmsprop", "adagrad")
MULTI_MINIMA = ("two_wells", "rastrigin")  # the landscapes with local minima besides the global ones


@dataclass
class Test:
    """One comparison: `a` against `b` on `measure`, where the claim predicts `a` is `higher` (or lower)."""

    label: str
    measure: str
    a: str
    b: str
    higher: bool
    a_mean: float | None
    b_mean: float | None
    difference: dict  # a − b: mean, ci_low, ci_high, n (seeds or starts), or a ratio for memory
    outcome: str

    def as_dict(self) -> dict:
        return {
            "test": self.label,
            "measure": self.measure,
            "a": self.a,
            "b": self.b,
            "predicted": f"{self.a} {'higher' if self.higher else 'lower'}",
            "a_mean": _round(self.a_mean),
            "b_mean": _round(self.b_mean),
            **{k: _round(v) for k, v in self.difference.items()},
            "outcome": self.outcome,
        }


@dataclass
class Claim:
    id: str
    claim: str
    tests: list[Test] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict([t.outcome for t in self.tests])

    def depends_on(self) -> str | None:
        if self.verdict != DEPENDS:
            return None
        if not self.tests:
            return "no measurement tested it (its runs are not in this study)"
        parts = []
        for outcome in (SUPPORTED, CONTRADICTED, NOISE):
            labels = [t.label for t in self.tests if t.outcome == outcome]
            if labels:
                parts.append(f"{outcome}: {'; '.join(labels)}")
        return " | ".join(parts)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "claim": self.claim,
            "verdict": self.verdict,
            "depends_on": self.depends_on(),
            "evidence": {"tests": [t.as_dict() for t in self.tests], "notes": self.notes},
        }


def verdict(outcomes: Sequence[str]) -> str:
    """All tests support -> supported; all contradict -> contradicted; anything else -> depends."""
    if outcomes and all(o == SUPPORTED for o in outcomes):
        return SUPPORTED
    if outcomes and all(o == CONTRADICTED for o in outcomes):
        return CONTRADICTED
    return DEPENDS


def outcome(difference: dict, higher: bool) -> str:
    """Which side of zero the 95% interval of a − b lies on, against the predicted side."""
    low, high = difference.get("ci_low"), difference.get("ci_high")
    if low is None or high is None or (difference.get("n_seeds") or 0) < 2:
        return NOISE  # one pair has no spread to measure noise against
    if low > 0:
        return SUPPORTED if higher else CONTRADICTED
    if high < 0:
        return CONTRADICTED if higher else SUPPORTED
    return NOISE


def paired_test(label: str, measure: str, a: str, b: str, a_values, b_values, higher: bool = True) -> Test:
    """A paired comparison (by seed or by start) of two equally long lists of values."""
    difference = paired_difference(list(a_values), list(b_values))
    return Test(
        label,
        measure,
        a,
        b,
        higher,
        describe(a_values)["mean"],
        describe(b_values)["mean"],
        {k: difference[k] for k in ("mean", "ci_low", "ci_high", "n_seeds", "share_a_better")},
        outcome(difference, higher),
    )


def ratio_test(label: str, measure: str, a: str, b: str, a_value, b_value, higher: bool = True) -> Test:
    """A quantity measured once per setting: a/b against MEMORY_FACTOR instead of an interval."""
    ratio = a_value / b_value if a_value and b_value else None
    if ratio is None:
        result = NOISE
    elif ratio >= MEMORY_FACTOR:
        result = SUPPORTED if higher else CONTRADICTED
    elif ratio <= 1 / MEMORY_FACTOR:
        result = CONTRADICTED if higher else SUPPORTED
    else:
        result = NOISE
    return Test(label, measure, a, b, higher, a_value, b_value, {"ratio": ratio}, result)


# ---- the measurements, as the tests read them --------------------------------------------------------


@dataclass
class Evidence:
    """The study's tables (study/analysis.py), as compare writes them; any may be empty."""

    runs: pd.DataFrame  # variant, protocol, seed, test_accuracy, final_val_accuracy, ...
    curves: pd.DataFrame  # variant, protocol, seed, epoch, val_accuracy
    batch_runs: pd.DataFrame  # batch_label, seed, peak_memory_bytes, ...
    batch_curves: pd.DataFrame  # batch_label, seed, step, epoch, seconds, val_accuracy
    momentum_runs: pd.DataFrame  # momentum, nesterov, seed, final_val_accuracy
    tuning: pd.DataFrame  # variant, learning_rate, val_accuracy, diverged
    landscapes: pd.DataFrame  # function, variant, start, reached_global, diverged

    def has(self, *variants: str) -> bool:
        return not self.runs.empty and set(variants) <= set(self.runs["variant"])

    def by_seed(self, variant: str, protocol: str, column: str) -> pd.Series:
        runs = self.runs[(self.runs["variant"] == variant) & (self.runs["protocol"] == protocol)]
        return runs.set_index("seed")[column]

    def epoch_one(self, variant: str, protocol: str) -> pd.Series:
        """Validation accuracy after the first epoch, per seed (NaN where the run had diverged)."""
        c = self.curves
        rows = c[(c["variant"] == variant) & (c["protocol"] == protocol) & (c["epoch"] == 1)]
        return rows.set_index("seed")["val_accuracy"].astype(float)


def _pair(a: pd.Series, b: pd.Series) -> tuple[list, list]:
    """Values of a and b for the seeds (or starts) both have, in the same order."""
    index = a.index.intersection(b.index)
    return [_num(a[i]) for i in index], [_num(b[i]) for i in index]


def _num(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _round(value):
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def compare_variants(
    e: Evidence, a: str, b: str, protocols: Sequence[str], measure: str, higher: bool = True
) -> list[Test]:
    """`a` against `b` under each protocol, on the first epoch's validation accuracy or a runs column."""
    tests = []
    for protocol in protocols:
        if measure == "epoch_one":
            pa, pb = _pair(e.epoch_one(a, protocol), e.epoch_one(b, protocol))
            name = "validation accuracy after epoch 1"
        else:
            pa, pb = _pair(e.by_seed(a, protocol, measure), e.by_seed(b, protocol, measure))
            name = measure.replace("_", " ")
        tests.append(paired_test(f"{a} vs {b}, {protocol}, {name}", name, a, b, pa, pb, higher))
    return tests


# ---- the batch-size sweep ----------------------------------------------------------------------------


def batch_curve(e: Evidence, label: str) -> dict[int, pd.DataFrame]:
    """Each seed's validation curve (checkpoints and epoch ends) for one batch size."""
    c = e.batch_curves[e.batch_curves["batch_label"] == label]
    return {int(seed): rows.sort_values("step") for seed, rows in c.groupby("seed")}


def at_budget(curve: pd.DataFrame, column: str, budget: float) -> float | None:
    """Validation accuracy when `column` (step or seconds) reaches `budget`, interpolated in log(column).

    Before the first score the run has no measured accuracy (None); a run that diverged has none after.
    """
    finite = curve.dropna(subset=["val_accuracy"])
    x = finite[column].to_numpy(float)
    if len(x) == 0 or budget < x[0] or budget > x[-1] * (1 + 1e-9):
        return None
    return float(np.interp(math.log(budget), np.log(x), finite["val_accuracy"].to_numpy(float)))


def batch_test(e: Evidence, a: str, b: str, per: str, higher: bool = True) -> Test:
    """Batch size a against b at an equal budget `per` epoch (after the first), step or second.

    The budget in steps or seconds is the smaller of the two runs' totals: the most both have.
    """
    curves_a, curves_b = batch_curve(e, a), batch_curve(e, b)
    seeds = sorted(set(curves_a) & set(curves_b))
    column = {"epoch": "epoch", "step": "step", "second": "seconds"}[per]
    totals = [curves[s][column].max() for curves in (curves_a, curves_b) for s in seeds]
    budget = 1.0 if per == "epoch" else min(totals, default=math.nan)
    values_a = [at_budget(curves_a[s], column, budget) for s in seeds]
    values_b = [at_budget(curves_b[s], column, budget) for s in seeds]
    unit = {"epoch": "epoch", "step": "steps", "second": "s"}[per]
    measure = f"validation accuracy after {_budget_text(budget)} {unit}"
    label = f"batch {a} vs batch {b}, per {per}"
    return paired_test(label, measure, f"batch {a}", f"batch {b}", values_a, values_b, higher)


def _budget_text(budget: float) -> str:
    if not math.isfinite(budget):
        return "?"
    return f"{budget:.3g}" if budget < 1000 else f"{budget:,.0f}"


def batch_memory(e: Evidence, label: str) -> float | None:
    rows = e.batch_runs[e.batch_runs["batch_label"] == label]["peak_memory_bytes"].dropna()
    return float(rows.median()) if len(rows) else None


def size_roles(labels) -> dict[str, str]:
    """Which batch sizes play the primer's parts: `stochastic` the smallest, `full` the whole split,
    `mini` 32 (or the middle one) among the others; a part no size plays is left out."""
    numbers = sorted(int(x) for x in labels if x != "full")
    roles = {"full": "full"} if "full" in labels else {}
    if numbers:
        roles["stochastic"] = str(numbers[0])
    if middle := numbers[1:]:
        roles["mini"] = str(32 if 32 in middle else middle[len(middle) // 2])
    return roles


def batch_roles(e: Evidence) -> dict[str, str] | None:
    """The sweep's three parts, or None when it lacks one (it needs `full` and two other sizes)."""
    if e.batch_runs.empty:
        return None
    roles = size_roles(set(e.batch_runs["batch_label"]))
    return roles if len(roles) == 3 else None


# ---- the claims --------------------------------------------------------------------------------------


def batch_tradeoffs(e: Evidence) -> Claim:
    claim = Claim(
        "batch_tradeoffs",
        "Batch gradient descent converges slowly and needs much memory; stochastic gradient descent "
        "(one image per step) converges fast and needs little; mini-batch sits in between.",
    )
    roles = batch_roles(e)
    if roles is None:
        claim.notes.append("the batch-size sweep needs batch size `full` and at least two others")
        return claim
    sgd, mini, full = roles["stochastic"], roles["mini"], roles["full"]
    claim.tests += [batch_test(e, sgd, full, per) for per in ("epoch", "step", "second")]
    claim.tests.append(
        ratio_test(
            f"batch {full} vs batch {sgd}, peak memory",
            "peak memory above start (one run alone)",
            f"batch {full}",
            f"batch {sgd}",
            batch_memory(e, full),
            batch_memory(e, sgd),
        )
    )
    claim.tests += [batch_test(e, mini, other, "second") for other in (sgd, full)]
    claim.notes.append(
        f"stochastic = batch {sgd}, mini-batch = batch {mini}, batch GD = the whole split; the same "
        "learning rate for all; budgets in steps and seconds are the smaller run's total"
    )
    return claim


def gd_slow(e: Evidence) -> Claim:
    claim = Claim(
        "gd_slow",
        "Traditional (full-batch) gradient descent converges slowly: it needs many iterations.",
    )
    if e.has("bgd", "mbgd"):
        claim.tests += compare_variants(e, "mbgd", "bgd", _protocols(e), "test_accuracy")
        claim.notes.append("per epoch: after the same epochs, mini-batch SGD against batch GD")
    roles = batch_roles(e)
    if roles is not None:
        claim.tests.append(batch_test(e, roles["mini"], "full", "step"))
        claim.notes.append("per iteration: at the same number of optimizer steps, from the batch-size sweep")
    return claim


def momentum_claim(e: Evidence) -> Claim:
    claim = Claim(
        "momentum",
        "Momentum adds inertia: it speeds convergence and helps escape local minima.",
    )
    if e.has("momentum", "mbgd"):
        claim.tests += compare_variants(e, "momentum", "mbgd", _protocols(e), "epoch_one")
    claim.tests += landscape_tests(e, "momentum", "mbgd", ["rosenbrock"])
    claim.tests += landscape_tests(e, "momentum", "mbgd", ["saddle"], "steps_to_tolerance")
    claim.tests += landscape_tests(e, "momentum", "mbgd", MULTI_MINIMA)
    claim.notes.append(
        "speed: MNIST after one epoch, Rosenbrock's valley within the step budget, steps to leave the "
        "saddle; escaping local minima: the landscapes with local minima"
    )
    return claim


def nesterov_claim(e: Evidence) -> Claim:
    claim = Claim("nesterov", "Nesterov's look-ahead improves on plain momentum.")
    if e.has("nesterov", "momentum"):
        claim.tests += compare_variants(e, "nesterov", "momentum", _protocols(e), "test_accuracy")
    m = e.momentum_runs
    if not m.empty:
        for momentum in sorted(m.loc[m["momentum"] > 0, "momentum"].unique()):
            at = m[m["momentum"] == momentum]
            nesterov = at[at["nesterov"].astype(bool)].set_index("seed")["final_val_accuracy"]
            plain = at[~at["nesterov"].astype(bool)].set_index("seed")["final_val_accuracy"]
            a, b = _pair(nesterov, plain)
            claim.tests.append(
                paired_test(
                    f"Nesterov vs plain at momentum {momentum:g} (sweep)",
                    "final validation accuracy",
                    f"nesterov m={momentum:g}",
                    f"plain m={momentum:g}",
                    a,
                    b,
                )
            )
    return claim


def adaptive_claim(e: Evidence) -> Claim:
    claim = Claim(
        "adaptive",
        "Adaptive learning rates (Adam, RMSProp, Adagrad) converge faster than plain SGD, at their "
        "defaults and when every optimizer is tuned with the same budget.",
    )
    for variant in ADAPTIVE:
        if e.has(variant, "mbgd"):
            claim.tests += compare_variants(e, variant, "mbgd", _protocols(e), "epoch_one")
    claim.notes.append("convergence speed: validation accuracy after the first epoch, against mbgd")
    return claim


def schedules_claim(e: Evidence) -> Claim:
    claim = Claim("schedules", "A learning-rate schedule improves on a constant learning rate.")
    scheduled = sorted(set(e.runs["variant"][e.runs["schedule"].notna()])) if not e.runs.empty else []
    for variant in scheduled:
        if e.has(variant, "mbgd"):
            claim.tests += compare_variants(e, variant, "mbgd", _protocols(e), "test_accuracy")
    claim.notes.append(
        "under `defaults` a scheduled variant also starts from its own learning rate; under `tuned` "
        "every variant starts from its best rate, so only the schedule differs"
    )
    return claim


def learning_rate_claim(e: Evidence) -> Claim:
    claim = Claim(
        "learning_rate",
        "A high learning rate converges fast but may overshoot; a low one is slow but stable.",
    )
    t = e.tuning
    if t.empty:
        return claim
    t = t.assign(score=t["val_accuracy"].where(~t["diverged"].astype(bool), 0.0))  # diverged: learned nothing
    grids = {v: rows.sort_values("learning_rate") for v, rows in t.groupby("variant", sort=False)}
    grids = {v: rows for v, rows in grids.items() if len(rows) >= 2}
    if not grids:
        return claim
    keys = list(grids)
    low, next_up = [grids[k]["score"].iloc[0] for k in keys], [grids[k]["score"].iloc[1] for k in keys]
    high, next_down = [grids[k]["score"].iloc[-1] for k in keys], [grids[k]["score"].iloc[-2] for k in keys]
    measure = "validation accuracy after the tuning budget (a diverged run scores 0)"
    claim.tests += [
        paired_test(
            "lowest rate vs the next one up, across variants",
            measure,
            "lowest",
            "next up",
            low,
            next_up,
            False,
        ),
        paired_test(
            "highest rate vs the next one down, across variants",
            measure,
            "highest",
            "next down",
            high,
            next_down,
            False,
        ),
    ]
    diverged_low = sum(bool(grids[k]["diverged"].iloc[0]) for k in keys)
    claim.tests.append(
        Test(
            "lowest rate stays finite in every variant",
            "diverged runs at the lowest rate",
            "lowest",
            "—",
            False,
            float(diverged_low),
            None,
            {"count": diverged_low, "of": len(keys)},
            SUPPORTED if diverged_low == 0 else CONTRADICTED,
        )
    )
    diverged_high = sum(bool(grids[k]["diverged"].iloc[-1]) for k in keys)
    claim.notes.append(
        f"each variant's tuning grid, one seed per rate, compared across the {len(keys)} variants; "
        f"the highest rate diverged in {diverged_high} of them"
    )
    return claim


def optimal_momentum_claim(e: Evidence) -> Claim:
    claim = Claim("optimal_momentum", "There is an optimal momentum, between too little and too much.")
    m = e.momentum_runs
    if m.empty:
        return claim
    plain = m[~m["nesterov"].astype(bool)]
    by_momentum = {k: rows.set_index("seed")["final_val_accuracy"] for k, rows in plain.groupby("momentum")}
    if len(by_momentum) < 3:
        claim.notes.append("needs at least three momenta")
        return claim
    inner = sorted(by_momentum)[1:-1]  # an optimum "in between" must beat both ends of the range
    best = max(inner, key=lambda k: (by_momentum[k].mean(), -k))
    for end in (min(by_momentum), max(by_momentum)):
        a, b = _pair(by_momentum[best], by_momentum[end])
        label = f"best inner momentum ({best:g}) vs momentum {end:g}"
        claim.tests.append(paired_test(label, "final validation accuracy", f"m={best:g}", f"m={end:g}", a, b))
    claim.notes.append(f"plain SGD with momentum, the sweep's momenta {sorted(by_momentum)}")
    return claim


def landscape_tests(
    e: Evidence, a: str, b: str, functions: Sequence[str], measure: str = "reached_global"
) -> list[Test]:
    """a against b on each landscape, paired by start: the share of starts ending in a global minimum
    (`reached_global`, higher is better) or the steps until a start settled there (`steps_to_tolerance`,
    lower is better; over the starts that both settled)."""
    tests = []
    land = e.landscapes
    if land.empty:
        return tests
    words = {
        "reached_global": "share of starts ending in a global minimum",
        "steps_to_tolerance": "steps until within tolerance of a global minimum",
    }
    for function in [f for f in functions if f in set(land["function"])]:
        rows = land[land["function"] == function]
        va = rows[rows["variant"] == a].set_index("start")[measure].astype(float)
        vb = rows[rows["variant"] == b].set_index("start")[measure].astype(float)
        if va.empty or vb.empty:
            continue
        pa, pb = _pair(va, vb)
        label = f"{a} vs {b} on {function}" + (", steps" if measure == "steps_to_tolerance" else "")
        tests.append(paired_test(label, words[measure], a, b, pa, pb, higher=measure == "reached_global"))
    return tests


def _protocols(e: Evidence) -> list[str]:
    return list(dict.fromkeys(e.runs["protocol"]))


CLAIMS = [
    batch_tradeoffs,
    gd_slow,
    momentum_claim,
    nesterov_claim,
    adaptive_claim,
    schedules_claim,
    learning_rate_claim,
    optimal_momentum_claim,
]


def evaluate(evidence: Evidence) -> list[dict]:
    """Every claim as {"id", "claim", "verdict", "depends_on", "evidence"}, in the primer's order."""
    return [make(evidence).as_dict() for make in CLAIMS]
