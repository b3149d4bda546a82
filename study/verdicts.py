"""How a claim's tests are decided and combined into a verdict per protocol.

A test compares two settings, paired by seed or start, and is decided by study/statistics.py's
`decide` against the margin of its kind (params.yaml's `compare.margins`): `supported`,
`contradicted`, `no detectable effect` or `inconclusive`. Memory, measured a few times per setting in
fresh processes, is decided by the ratio of its repeats instead.

Within one claim and protocol, k tests share an error budget of 1 − confidence (Bonferroni: each test
at alpha = (1 − confidence)/k), so the chance that any of a claim's decisions is wrong by chance is at
most 1 − confidence. The verdict is the tests' common outcome when they agree, and `mixed` otherwise,
naming which conditions went which way ("holds: per epoch | fails: per second").
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from study.statistics import CONTRADICTED, INCONCLUSIVE, NO_EFFECT, SUPPORTED, decide

MIXED, NOT_TESTED = "mixed", "not tested"
VERDICTS = (SUPPORTED, CONTRADICTED, NO_EFFECT, INCONCLUSIVE, MIXED, NOT_TESTED)
PROTOCOL_ORDER = ("tuned", "defaults")
CONDITION_WORDS = {
    SUPPORTED: "holds",
    CONTRADICTED: "fails",
    NO_EFFECT: "no effect",
    INCONCLUSIVE: "undecided",
}


@dataclass(frozen=True)
class Rules:
    """How differences are judged: params.yaml's `compare`."""

    confidence: float = 0.95
    margins: dict = field(default_factory=lambda: {"accuracy": 0.003, "share": 0.05, "steps": 0.1})
    memory_factor: float = 1.5

    @classmethod
    def from_params(cls, compare) -> "Rules":
        return cls(compare.confidence, compare.margins.model_dump(), compare.memory_factor)


@dataclass
class Test:
    """One comparison: `a` against `b`, where the claim predicts a is `higher` (or lower).

    `kind` picks the margin: accuracy (points of accuracy), share (of landscape starts), steps
    (relative to b's mean), memory (repeats compared by ratio), count (decided where it is made).
    `a_values` and `b_values` are paired (by seed or start) except for memory's repeats.
    """

    label: str
    measure: str
    kind: str
    protocol: str
    a: str
    b: str
    higher: bool
    a_values: list
    b_values: list
    setting: dict = field(default_factory=dict)  # what was held equal: rates, effective steps, budgets
    outcome: str | None = None  # set for `count` tests; the others are decided with their claim

    def decided(self, rules: Rules, alpha: float) -> dict:
        a_mean, b_mean = mean_of(self.a_values), mean_of(self.b_values)
        base = {
            "test": self.label,
            "kind": self.kind,
            "protocol": self.protocol,
            "measure": self.measure,
            "a": self.a,
            "b": self.b,
            "predicted": f"{self.a} {'higher' if self.higher else 'lower'}",
            "a_mean": rounded(a_mean),
            "b_mean": rounded(b_mean),
            **{k: rounded(v) for k, v in self.setting.items()},
        }
        if self.kind == "count":
            return {**base, "outcome": self.outcome}
        if self.kind == "memory":
            return {**base, **_memory_decision(self, rules.memory_factor)}
        margin = rules.margins[self.kind]
        if self.kind == "steps":
            margin = margin * abs(b_mean) if b_mean else margin
        differences = [
            x - y for x, y in zip(self.a_values, self.b_values, strict=True) if finite(x) and finite(y)
        ]
        decision = decide(differences, self.higher, margin, alpha)
        return {**base, **{k: rounded(v) for k, v in decision.items()}}


def _memory_decision(test: Test, factor: float) -> dict:
    """Memory measured a few times per setting, unpaired: `a` needs much more than `b` when even its
    smallest repeat is `factor` times b's largest; it does not when even its largest is under `factor`
    times b's smallest; between the two the repeats cannot decide."""
    a = [v for v in test.a_values if finite(v)]
    b = [v for v in test.b_values if finite(v) and v > 0]
    if not a or not b:
        return {"ratio": None, "outcome": INCONCLUSIVE}
    ratio, worst, best = np.median(a) / np.median(b), min(a) / max(b), max(a) / min(b)
    if worst >= factor:
        outcome = SUPPORTED if test.higher else CONTRADICTED
    elif best < factor:
        outcome = CONTRADICTED if test.higher else SUPPORTED
    else:
        outcome = INCONCLUSIVE
    return {
        # the medians, as metrics/batch_size.json reports the same repeats: one number per quantity
        "a_median": rounded(float(np.median(a))),
        "b_median": rounded(float(np.median(b))),
        "ratio": rounded(float(ratio)),
        "ratio_low": rounded(worst),
        "ratio_high": rounded(best),
        "factor": factor,
        "repeats": min(len(a), len(b)),
        "outcome": outcome,
    }


@dataclass
class Claim:
    id: str
    claim: str
    source: str  # "primer": the primer asserts it; "implied": the study adds it
    tests: list[Test] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def judged(self, rules: Rules) -> dict:
        verdicts, tests = {}, []
        for protocol in PROTOCOL_ORDER:
            family = [t for t in self.tests if t.protocol == protocol]
            alpha = (1 - rules.confidence) / max(len(family), 1)
            decided = [t.decided(rules, alpha) for t in family]
            tests += decided
            verdicts[protocol] = {
                "verdict": verdict([d["outcome"] for d in decided]),
                "conditions": conditions(decided),
                "tests": len(decided),
                "alpha_per_test": rounded(alpha) if decided else None,
            }
        return {
            "id": self.id,
            "claim": self.claim,
            "source": self.source,
            "verdicts": verdicts,
            "tests": tests,
            "notes": self.notes,
        }


def verdict(outcomes: Sequence[str]) -> str:
    """The tests' common outcome when they agree, `mixed` when they do not, `not tested` without tests."""
    if not outcomes:
        return NOT_TESTED
    return outcomes[0] if len(set(outcomes)) == 1 else MIXED


def conditions(decided: list[dict]) -> str | None:
    """For a mixed verdict, which tests went which way: "holds: …; fails: …; no effect: …"."""
    if verdict([d["outcome"] for d in decided]) != MIXED:
        return None
    parts = []
    for outcome, word in CONDITION_WORDS.items():
        labels = [d["test"] for d in decided if d["outcome"] == outcome]
        if labels:
            parts.append(f"{word}: {'; '.join(labels)}")
    return " | ".join(parts)


def mean_of(values) -> float | None:
    kept = [v for v in values if finite(v)]
    return float(np.mean(kept)) if kept else None


def finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def rounded(value):
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return round(float(value), 6) if math.isfinite(value) else None
    return value
