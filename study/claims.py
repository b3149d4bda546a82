"""The primer's claims, each tested on what it is about, with a verdict per protocol decided by code.

A claim is a list of tests. A test compares two settings that the claim says differ, and holds the
rest equal: each at its own best learning rate (`tuned`), or at the same effective step η/(1−β) when
momentum is compared with plain SGD, paired by seed (MNIST) or by start (landscapes) so that shared
luck cancels. Each test is decided by study/statistics.py's `decide`: `supported`, `contradicted`,
`no detectable effect` (an equivalence test within a stated margin) or `inconclusive`.

Protocols. `tuned` is primary: every variant at the rate its own equal-budget search chose (tuning
seeds, never evaluation seeds), and the sweeps' settings at their own best rates. `defaults` (Keras'
default rates) is reported apart, labelled "at Keras' defaults": it mostly measures how far each
optimizer's default sits from its best rate.

How a claim's tests combine into a verdict, and the error rate that gives: study/verdicts.py. Every
number that decided a verdict is kept with its test.

Which variant plays which part (plain mini-batch SGD, momentum, Nesterov, adaptive, scheduled) is read
from its settings (`roles`), never from its name.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.statistics import CONTRADICTED, SUPPORTED
from study.verdicts import PROTOCOL_ORDER, Claim, Rules, Test

# ---- the measurements, as the tests read them --------------------------------------------------------


@dataclass
class Evidence:
    """The study's tables as compare reads them; any may be empty."""

    variants: dict  # name -> params variant (its settings decide its role)
    runs: pd.DataFrame  # variant, protocol, seed, test_accuracy, val_accuracy_epoch1, learning_rate, ...
    tuning: pd.DataFrame  # variant, stage, learning_rate, seed, val_accuracy, val_accuracy_epoch1, unstable
    momentum_runs: pd.DataFrame  # momentum, nesterov, effective_step, learning_rate, seed, ...
    batch_runs: pd.DataFrame  # batch_label, learning_rate, seed, ...
    batch_curves: pd.DataFrame  # batch_label, seed, step, epoch, seconds, val_accuracy
    batch_memory: pd.DataFrame  # batch_label, repeat, peak_memory_bytes
    landscapes: pd.DataFrame  # function, test, variant, stands_for, setting, start, reached_global, ...

    def by_seed(self, variant: str, protocol: str, column: str) -> pd.Series:
        runs = self.runs[(self.runs["variant"] == variant) & (self.runs["protocol"] == protocol)]
        return runs.set_index("seed")[column].astype(float)

    def rate(self, variant: str, protocol: str) -> float | None:
        runs = self.runs[(self.runs["variant"] == variant) & (self.runs["protocol"] == protocol)]
        return float(runs["learning_rate"].iloc[0]) if len(runs) else None

    def protocols(self) -> list[str]:
        present = set(self.runs["protocol"]) if not self.runs.empty else set()
        return [p for p in PROTOCOL_ORDER if p in present]


def roles(variants: dict) -> dict:
    """Which variant plays which part, from its settings alone.

    plain: mini-batch SGD without momentum or schedule; stochastic: the same at batch 1; full: at the
    whole split; momentum / nesterov: SGD with momentum at plain's batch size, without / with Nesterov's
    look-ahead; adaptive: every optimizer whose settings say it is (`adaptive`: Adam, RMSprop, Adagrad)
    at plain's batch size; scheduled: plain SGD with a schedule. A part no variant plays is absent.
    """

    def plain_sgd(v) -> bool:
        return v.optimizer == "sgd" and v.momentum == 0 and v.schedule is None

    found: dict = {"adaptive": [], "scheduled": []}
    for name, v in variants.items():
        if plain_sgd(v) and v.batch_size == "full":
            found.setdefault("full", name)
        elif plain_sgd(v) and v.batch_size == 1:
            found.setdefault("stochastic", name)
        elif plain_sgd(v):
            found.setdefault("plain", name)
    batch = variants[found["plain"]].batch_size if "plain" in found else None
    for name, v in variants.items():
        if v.batch_size != batch:
            continue
        if v.optimizer == "sgd" and v.momentum > 0 and v.schedule is None:
            found.setdefault("nesterov" if v.nesterov else "momentum", name)
        elif v.adaptive and v.schedule is None:
            found["adaptive"].append(name)
        elif v.optimizer == "sgd" and v.momentum == 0 and v.schedule is not None:
            found["scheduled"].append(name)
    return found


def variant_test(e: Evidence, a: str, b: str, protocol: str, column: str, higher: bool = True) -> Test:
    """Variant a against b under one protocol, paired by seed, each at that protocol's own rate."""
    pa, pb = _pair(e.by_seed(a, protocol, column), e.by_seed(b, protocol, column))
    measure = MEASURES[column]
    setting = {}
    for side, name in (("a", a), ("b", b)):
        rate = setting[f"{side}_learning_rate"] = e.rate(name, protocol)
        variant = e.variants[name]
        if (
            variant.optimizer == "sgd" and rate is not None
        ):  # momentum beta at rate eta steps like eta/(1-beta)
            setting[f"{side}_effective_step"] = rate / (1 - variant.momentum)
    label = f"{a} vs {b}, {measure}"
    return Test(label, measure, "accuracy", protocol, a, b, higher, pa, pb, setting)


MEASURES = {
    "val_accuracy_epoch1": "validation accuracy after epoch 1",
    "test_accuracy": "test accuracy",
    "final_val_accuracy": "final validation accuracy",
}


def _pair(a: pd.Series, b: pd.Series) -> tuple[list, list]:
    """Values of a and b for the seeds (or starts) both have, in the same order."""
    index = a.index.intersection(b.index)
    return [_num(a[i]) for i in index], [_num(b[i]) for i in index]


def _num(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


# ---- the batch-size sweep: every size at its own tuned rate -----------------------------------------


def size_roles(labels) -> dict[str, str]:
    """Which batch sizes play the primer's parts: `stochastic` the smallest, `full` the whole split,
    `mini` 32 (or the middle one) among the others; a part no size plays is left out."""
    numbers = sorted(int(x) for x in labels if x != "full")
    found = {"full": "full"} if "full" in labels else {}
    if numbers:
        found["stochastic"] = str(numbers[0])
    if middle := numbers[1:]:
        found["mini"] = str(32 if 32 in middle else middle[len(middle) // 2])
    return found


def batch_roles(e: Evidence) -> dict[str, str] | None:
    if e.batch_runs.empty:
        return None
    found = size_roles(set(e.batch_runs["batch_label"].astype(str)))
    return found if len(found) == 3 else None


def at_budget(curve: pd.DataFrame, column: str, budget: float) -> float | None:
    """Validation accuracy when `column` (epoch, step or seconds) reaches `budget`, interpolated in
    log(column); None before the first score or past the run's end."""
    finite = curve.dropna(subset=["val_accuracy"])
    x = finite[column].to_numpy(float)
    if len(x) == 0 or budget < x[0] or budget > x[-1] * (1 + 1e-9):
        return None
    return float(np.interp(math.log(budget), np.log(x), finite["val_accuracy"].to_numpy(float)))


def batch_test(e: Evidence, a: str, b: str, per: str, higher: bool = True) -> Test:
    """Batch size a against b, each at its own tuned rate, at an equal budget of epochs, optimizer
    steps or seconds: the most both runs have (the smaller of their totals)."""
    curves = e.batch_curves.assign(batch_label=e.batch_curves["batch_label"].astype(str))
    by_seed = {
        label: {
            int(s): rows.sort_values("step")
            for s, rows in curves[curves["batch_label"] == label].groupby("seed")
        }
        for label in (a, b)
    }
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
    column = {"epoch": "epoch", "step": "step", "second": "seconds"}[per]
    budget = min((by_seed[x][s][column].max() for x in (a, b) for s in seeds), default=math.nan)
    values_a = [at_budget(by_seed[a][s], column, budget) for s in seeds]
    values_b = [at_budget(by_seed[b][s], column, budget) for s in seeds]
    unit = {"epoch": "epochs", "step": "steps", "second": "s"}[per]
    measure = f"validation accuracy after {_budget_text(budget)} {unit}"
    setting = {
        f"{per}_budget": budget,
        "a_learning_rate": _batch_rate(e, a),
        "b_learning_rate": _batch_rate(e, b),
    }
    label = f"batch {a} vs batch {b}, per {per}"
    return Test(
        label, measure, "accuracy", "tuned", f"batch {a}", f"batch {b}", higher, values_a, values_b, setting
    )


def _batch_rate(e: Evidence, label: str) -> float | None:
    rows = e.batch_runs[e.batch_runs["batch_label"].astype(str) == label]
    return float(rows["learning_rate"].iloc[0]) if len(rows) else None


def _budget_text(budget: float) -> str:
    if not math.isfinite(budget):
        return "?"
    return f"{budget:.3g}" if budget < 1000 else f"{budget:,.0f}"


def memory_test(e: Evidence, a: str, b: str) -> Test:
    m = e.batch_memory.assign(batch_label=e.batch_memory["batch_label"].astype(str))
    values = [m[m["batch_label"] == x]["peak_memory_bytes"].astype(float).tolist() for x in (a, b)]
    return Test(
        f"batch {a} vs batch {b}, peak memory",
        "peak memory of one run alone (repeats in fresh processes)",
        "memory",
        "tuned",
        f"batch {a}",
        f"batch {b}",
        True,
        *values,
    )


# ---- the momentum sweep: momenta x effective steps ----------------------------------------------------


def sweep_best_steps(m: pd.DataFrame) -> dict[tuple[float, bool], float]:
    """Each (momentum, nesterov) setting's best effective step: the highest mean final validation
    accuracy over the sweep's seeds (the lower step wins a tie)."""
    means = m.groupby(["momentum", "nesterov", "effective_step"])["final_val_accuracy"].mean()
    best = {}
    for (momentum, nesterov), rows in means.groupby(level=[0, 1]):
        steps = rows.droplevel([0, 1]).fillna(-1.0)
        best[(float(momentum), bool(nesterov))] = float(max(steps.index, key=lambda s: (steps[s], -s)))
    return best


def sweep_values(m: pd.DataFrame, momentum: float, nesterov: bool, step: float, column: str) -> pd.Series:
    rows = m[
        (m["momentum"] == momentum) & (m["nesterov"].astype(bool) == nesterov) & (m["effective_step"] == step)
    ]
    return rows.set_index("seed")[column].astype(float)


def sweep_test(
    m: pd.DataFrame, a: tuple[float, bool, float], b: tuple[float, bool, float], column: str, why: str
) -> Test:
    """Sweep setting a = (momentum, nesterov, effective step) against b, paired by seed."""
    pa, pb = _pair(sweep_values(m, *a, column), sweep_values(m, *b, column))
    name = lambda s: f"{'Nesterov' if s[1] else 'momentum'} {s[0]:g} at step {s[2]:g}"  # noqa: E731
    setting = {
        "a_effective_step": a[2],
        "b_effective_step": b[2],
        "a_learning_rate": a[2] * (1 - a[0]),
        "b_learning_rate": b[2] * (1 - b[0]),
    }
    label = f"{name(a)} vs {name(b)} ({why}), sweep"
    return Test(label, MEASURES[column], "accuracy", "tuned", name(a), name(b), True, pa, pb, setting)


# ---- landscapes ---------------------------------------------------------------------------------------


def landscape_rows(e: Evidence, function: str, test: str, variant: str, setting: str) -> pd.DataFrame:
    land = e.landscapes
    stands = land["stands_for"].astype(str) if "stands_for" in land else land["variant"]
    is_variant = (land["variant"] == variant) | stands.str.split(r"[,; ]+").apply(
        lambda names: variant in names
    )
    chosen = land[
        (land["function"] == function) & (land["test"] == test) & is_variant & (land["setting"] == setting)
    ]
    return chosen.set_index("start")


def landscape_test(
    e: Evidence, function: str, test: str, a: str, b: str, a_setting: str, column: str
) -> Test | None:
    """Optimizer a (at `a_setting`) against plain b (at its own best rate) on one function, paired by
    start: the share of starts that reached a global minimum or escaped, or the steps to settle."""
    ra, rb = landscape_rows(e, function, test, a, a_setting), landscape_rows(e, function, test, b, "own best")
    if ra.empty or rb.empty:
        return None
    pa, pb = _pair(ra[column].astype(float), rb[column].astype(float))
    kind = "steps" if column == "steps_to_tolerance" else "share"
    words = {
        "reached_global": "share of starts ending in a global minimum",
        "escaped": "share of starts in a local minimum's basin that escaped to a global minimum",
        "steps_to_tolerance": "steps until settled within tolerance",
    }
    setting = {
        "a_learning_rate": float(ra["learning_rate"].iloc[0]),
        "b_learning_rate": float(rb["learning_rate"].iloc[0]),
    }
    where = "own best rates" if a_setting == "own best" else "plain SGD's effective step"
    label = f"{a} vs {b} on {function}, {test} ({where})"
    higher = column != "steps_to_tolerance"
    return Test(label, words[column], kind, "tuned", a, b, higher, pa, pb, setting)


# ---- the claims ---------------------------------------------------------------------------------------


def batch_tradeoffs(e: Evidence) -> Claim:
    claim = Claim(
        "batch_tradeoffs",
        "Batch gradient descent converges slowly and needs much memory; stochastic gradient descent (one "
        "image per step) converges fast and needs little; mini-batch sits in between.",
        "primer",
    )
    found = batch_roles(e)
    if found is None:
        claim.notes.append("the batch-size sweep needs batch size `full` and at least two others")
        return claim
    sgd, mini, full = found["stochastic"], found["mini"], found["full"]
    claim.tests += [batch_test(e, sgd, full, per) for per in ("epoch", "step", "second")]
    claim.tests.append(memory_test(e, full, sgd))
    claim.tests += [batch_test(e, mini, other, "second") for other in (sgd, full)]
    claim.notes.append(
        f"stochastic = batch {sgd}, mini-batch = batch {mini}, batch GD = the sweep's whole training subset; "
        "every size at its own tuned rate; budgets in epochs, steps and seconds are the smaller run's total"
    )
    return claim


def gd_slow(e: Evidence) -> Claim:
    claim = Claim(
        "gd_slow",
        "Traditional (full-batch) gradient descent converges slowly: it needs many iterations.",
        "primer",
    )
    r = roles(e.variants)
    if "plain" in r and "full" in r:
        for protocol in e.protocols():
            claim.tests.append(variant_test(e, r["plain"], r["full"], protocol, "test_accuracy"))
        claim.notes.append("per epoch: after the same epochs, mini-batch SGD against batch GD")
    found = batch_roles(e)
    if found is not None:
        claim.tests.append(batch_test(e, found["mini"], "full", "step"))
        claim.notes.append("per iteration: at the same number of optimizer steps, each size at its own rate")
    return claim


def momentum_claim(e: Evidence) -> Claim:
    claim = Claim(
        "momentum",
        "Momentum adds inertia: it speeds convergence and helps escape local minima.",
        "primer",
    )
    r = roles(e.variants)
    if "momentum" in r and "plain" in r:
        for protocol in e.protocols():
            claim.tests.append(variant_test(e, r["momentum"], r["plain"], protocol, "val_accuracy_epoch1"))
    m = e.momentum_runs
    if not m.empty:
        best = sweep_best_steps(m)
        plain_step = best.get((0.0, False))
        for momentum in sorted(k[0] for k in best if k[0] > 0 and not k[1]):
            if plain_step is not None:
                claim.tests.append(
                    sweep_test(
                        m,
                        (momentum, False, plain_step),
                        (0.0, False, plain_step),
                        "val_accuracy_epoch1",
                        "same effective step",
                    )
                )
    plain = r.get("plain")
    if "momentum" in r and plain and not e.landscapes.empty:
        for function, test, column in LANDSCAPE_SPEED + LANDSCAPE_ESCAPE:
            for setting in ("own best", "matched step"):
                if made := landscape_test(e, function, test, r["momentum"], plain, setting, column):
                    claim.tests.append(made)
    claim.notes.append(
        "speed: MNIST validation accuracy after one epoch (the variants at their own tuned rates; the sweep "
        "at plain SGD's best effective step η/(1−β)), Rosenbrock's valley within the step budget, steps to "
        "settle past the saddle; escape: starts inside a local minimum's basin that end in a global one"
    )
    return claim


LANDSCAPE_SPEED = [("rosenbrock", "reach", "reached_global"), ("saddle", "settle", "steps_to_tolerance")]
LANDSCAPE_ESCAPE = [("two_wells", "escape", "escaped"), ("rastrigin", "escape", "escaped")]


def nesterov_claim(e: Evidence) -> Claim:
    claim = Claim("nesterov", "Nesterov's look-ahead improves on plain momentum.", "implied")
    r = roles(e.variants)
    if "nesterov" in r and "momentum" in r:
        for protocol in e.protocols():
            claim.tests.append(variant_test(e, r["nesterov"], r["momentum"], protocol, "test_accuracy"))
    m = e.momentum_runs
    if not m.empty:
        best = sweep_best_steps(m)
        for momentum in sorted(k[0] for k in best if k[0] > 0 and k[1]):
            step = best.get((momentum, False))
            if step is not None:
                claim.tests.append(
                    sweep_test(
                        m,
                        (momentum, True, step),
                        (momentum, False, step),
                        "final_val_accuracy",
                        "same momentum and step",
                    )
                )
    claim.notes.append("the primer presents Nesterov's look-ahead but never measures it against momentum")
    return claim


def adaptive_claim(e: Evidence) -> Claim:
    claim = Claim(
        "adaptive",
        "Adaptive learning rates (Adam, RMSProp, Adagrad) converge faster than plain SGD.",
        "primer",
    )
    r = roles(e.variants)
    if "plain" in r:
        for variant in r["adaptive"]:
            for protocol in e.protocols():
                claim.tests.append(variant_test(e, variant, r["plain"], protocol, "val_accuracy_epoch1"))
    claim.notes.append(
        "convergence speed: validation accuracy after the first epoch, against plain mini-batch SGD"
    )
    return claim


def schedules_claim(e: Evidence) -> Claim:
    claim = Claim("schedules", "A learning-rate schedule improves on a constant learning rate.", "implied")
    r = roles(e.variants)
    if "plain" in r:
        for variant in r["scheduled"]:
            for protocol in e.protocols():
                claim.tests.append(variant_test(e, variant, r["plain"], protocol, "test_accuracy"))
    claim.notes.append(
        "tuned: each schedule's initial rate tuned over its whole schedule, plain SGD's constant rate tuned "
        "with the same budget; at Keras' defaults the schedules also start from their own (5x higher) rate"
    )
    return claim


def learning_rate_claim(e: Evidence) -> Claim:
    claim = Claim(
        "learning_rate",
        "A high learning rate converges fast but may overshoot; a low one is slow but stable.",
        "primer",
    )
    t = e.tuning
    if t.empty:
        return claim
    coarse = t[t["stage"] == "coarse"] if "stage" in t else t
    per_rate = coarse.assign(fell=coarse["loss"] < coarse["loss_epoch1"]).groupby(
        ["variant", "learning_rate"], sort=True
    )
    per_rate = per_rate.agg(
        epoch1=("val_accuracy_epoch1", "mean"),
        final=("val_accuracy", "mean"),
        unstable=("unstable", "max"),
        fell=("fell", "min"),
        diverged=("diverged", "max"),
    )
    columns = {k: [] for k in ("fast_best", "fast_low", "final_low", "final_best", "final_high")}
    unstable_high, steady_low = [], []
    for _, grid in per_rate.groupby(level=0):
        grid = grid.droplevel(0).sort_index()
        if len(grid) < 3:
            continue
        final = grid["final"].fillna(0.0)  # a diverged rate learned nothing
        best = final.idxmax()
        columns["fast_best"].append(_num(grid.loc[best, "epoch1"]))
        columns["fast_low"].append(_num(grid["epoch1"].iloc[0]))
        columns["final_low"].append(_num(final.iloc[0]))
        columns["final_best"].append(_num(final.max()))
        columns["final_high"].append(_num(final.iloc[-1]))
        unstable_high.append(bool(grid["unstable"].iloc[-1]))
        steady_low.append(bool(grid["fell"].iloc[0]) and not bool(grid["diverged"].iloc[0]))
    n = len(unstable_high)
    c = columns
    claim.tests += [
        Test("fast: the best rate vs the lowest rate, early progress", "validation accuracy after epoch 1",
             "accuracy", "tuned", "best rate", "lowest rate", True, c["fast_best"], c["fast_low"]),
        Test("slow: the lowest rate vs the best rate, at the end", "final validation accuracy", "accuracy",
             "tuned", "lowest rate", "best rate", False, c["final_low"], c["final_best"]),
        Test("overshoot: the highest rate vs the best rate, at the end", "final validation accuracy",
             "accuracy", "tuned", "highest rate", "best rate", False, c["final_high"], c["final_best"]),
        Test("the highest rate is unstable in some variant", "variants unstable at their highest rate",
             "count", "tuned", "highest rate", "—", True, [float(sum(unstable_high))], [],
             {"count": sum(unstable_high), "of": n}, SUPPORTED if any(unstable_high) else CONTRADICTED),
        Test("the lowest rate is stable in every variant", "variants whose loss fell at their lowest rate",
             "count", "tuned", "lowest rate", "—", True, [float(sum(steady_low))], [],
             {"count": sum(steady_low), "of": n}, SUPPORTED if all(steady_low) else CONTRADICTED),
    ]  # fmt: skip
    claim.notes.append(
        "each variant's coarse tuning grid (the same rates for all), mean over the tuning seeds, paired "
        f"across the {n} variants; unstable: diverged, ended below the chance threshold, or with a "
        "training loss above a uniform guess's; stable: the training loss fell from the first epoch to "
        "the last without diverging (a rate too low to leave chance is slow, not unstable)"
    )
    return claim


def optimal_momentum_claim(e: Evidence) -> Claim:
    claim = Claim(
        "optimal_momentum", "There is an optimal momentum, between too little and too much.", "primer"
    )
    m = e.momentum_runs
    if m.empty:
        return claim
    best = sweep_best_steps(m)
    plain = sorted(k[0] for k in best if not k[1])
    if len(plain) < 3:
        claim.notes.append("needs at least three momenta")
        return claim
    means = {k: sweep_values(m, k, False, best[(k, False)], "final_val_accuracy").mean() for k in plain}
    inner = max(plain[1:-1], key=lambda k: (means[k], -k))  # an optimum "in between" must beat both ends
    for end in (plain[0], plain[-1]):
        claim.tests.append(
            sweep_test(
                m,
                (inner, False, best[(inner, False)]),
                (end, False, best[(end, False)]),
                "final_val_accuracy",
                "each at its own best step",
            )
        )
    claim.notes.append(
        f"plain SGD with momentum {plain}, each at its own best effective step "
        f"{[best[(k, False)] for k in plain]}: an interior optimum counts only if it survives giving "
        "every momentum its own rate"
    )
    return claim


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


def evaluate(evidence: Evidence, rules: Rules) -> list[dict]:
    """Every claim with its verdict per protocol and its decided tests, in the primer's order."""
    return [make(evidence).judged(rules) for make in CLAIMS]


def verdict_table(judged: list[dict]) -> dict:
    """{claim: {protocol: verdict}}: what `dvc metrics diff` and `dvc exp show` compare."""
    return {c["id"]: {p: v["verdict"] for p, v in c["verdicts"].items()} for c in judged}
