"""The primer's questions, answered from the decided claims: what the report says first.

compare writes this (metrics/answers.json) so that the report only words it: per question, each
protocol's verdict (the claim's own), the one test that carries it (the claim's first test under that
protocol: the direct comparison of the variants the question is about) with its numbers, and how the
claim's other tests went. Which variant is best overall is read from the pairwise table, decided by the
same rule as every claim. The primer's trade-off table (batch, stochastic and mini-batch gradient
descent: speed and memory) is filled from the batch-size claim's own tests, cell by cell.

Which variant or batch size plays which part is derived once, here, from the settings (claims.roles,
claims.size_roles), and written beside the answers for the report to name them.
"""

from collections import Counter

import pandas as pd

from study import claims
from study.statistics import CONTRADICTED, INCONCLUSIVE, NO_EFFECT, SUPPORTED

QUESTIONS = {  # claim id -> the primer's question, in the study's words
    "gd_slow": "Is full-batch gradient descent slow to converge?",
    "momentum": "Does momentum help?",
    "nesterov": "Does Nesterov's look-ahead beat plain momentum?",
    "adaptive": "Do adaptive learning rates (Adam, RMSProp, Adagrad) converge faster than plain SGD?",
    "schedules": "Does a learning-rate schedule beat a constant rate?",
    "learning_rate": "Is a high learning rate fast but unstable, and a low one slow but stable?",
    "optimal_momentum": "Is there an optimal amount of momentum?",
}
# The numbers of a decided test that an answer quotes; the rest stays in metrics/claims.json.
QUOTED = ("test", "measure", "kind", "a", "b", "a_mean", "b_mean", "mean", "ci_low", "ci_high", "margin",
          "ratio", "ratio_low", "ratio_high", "factor", "count", "of", "outcome")  # fmt: skip
OUTCOMES = (SUPPORTED, CONTRADICTED, NO_EFFECT, INCONCLUSIVE)
# The primer's trade-off table: each part's predicted convergence speed and memory.
PRIMER_TABLE = {
    "full": ("batch gradient descent", "slow", "high"),
    "stochastic": ("stochastic gradient descent", "fast", "low"),
    "mini": ("mini-batch gradient descent", "balanced", "balanced"),
}


def quoted(test: dict) -> dict:
    return {k: test[k] for k in QUOTED if k in test}


def answer(claim: dict) -> dict:
    """One claim as an answer: per protocol its verdict, its first test, and how the others went."""
    found = {}
    for protocol, decided in claim["verdicts"].items():
        tests = [t for t in claim["tests"] if t["protocol"] == protocol]
        if not tests:
            continue
        others = Counter(t["outcome"] for t in tests[1:])
        found[protocol] = {
            "verdict": decided["verdict"],
            "tests": len(tests),
            "headline": quoted(tests[0]),
            "others": {o: others[o] for o in OUTCOMES if others[o]},
        }
    return {
        "id": claim["id"],
        "question": QUESTIONS[claim["id"]],
        "claim": claim["claim"],
        "protocols": found,
    }


def best_variant(summary: dict, pairwise: pd.DataFrame) -> dict:
    """Per protocol, the variant with the highest mean test accuracy, and the runner-up's difference to
    it as the pairwise table decided it (the same rule as the claims, a predicted higher)."""
    found = {}
    for protocol in claims.PROTOCOL_ORDER:
        means = {
            v: p[protocol]["test_accuracy"]["mean"]
            for v, p in summary.items()
            if protocol in p and p[protocol]["test_accuracy"]["mean"] is not None
        }
        if len(means) < 2:
            continue
        best, second = sorted(means, key=lambda v: -means[v])[:2]
        row = pairwise[
            (pairwise["protocol"] == protocol)
            & (pairwise["variant_a"] == best)
            & (pairwise["variant_b"] == second)
        ]
        fields = summary[best][protocol]["test_accuracy"]
        found[protocol] = {
            "best": best,
            "test_accuracy": {k: fields[k] for k in ("mean", "ci_low", "ci_high", "n_seeds")},
            "learning_rate": summary[best][protocol]["learning_rate"],
            "runner_up": second,
            "runner_up_test_accuracy": means[second],
            "difference": {
                k: _plain(row[k].iloc[0]) for k in ("mean", "ci_low", "ci_high", "margin", "outcome")
            }
            if len(row)
            else None,
        }
    return found


def tradeoffs(claim: dict, labels) -> list[dict]:
    """The primer's trade-off table, row by row (batch GD, SGD, mini-batch): what the primer predicts for
    convergence speed and memory, and every test of the batch-size claim that bears on each cell, seen
    from that row's batch size (a test of it against another size)."""
    parts = claims.size_roles(set(map(str, labels)))
    rows = []
    for part, (name, speed, memory) in PRIMER_TABLE.items():
        if part not in parts:
            continue
        label = f"batch {parts[part]}"
        mine = [t for t in claim["tests"] if label in (t["a"], t["b"])]
        rows.append(
            {
                "part": part,
                "name": name,
                "batch_label": parts[part],
                "primer_speed": speed,
                "primer_memory": memory,
                "speed": [quoted(t) for t in mine if t["kind"] != "memory"],
                "memory": [quoted(t) | _medians(t) for t in mine if t["kind"] == "memory"],
            }
        )
    return rows


def _medians(test: dict) -> dict:
    return {k: test[k] for k in ("a_median", "b_median") if k in test}


def _plain(value):
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def build(judged: list[dict], summary: dict, pairwise: pd.DataFrame, variants: dict, batch_labels) -> dict:
    """Everything the report's opening says: roles, the best variant, the trade-off table, the answers."""
    by_id = {c["id"]: c for c in judged}
    return {
        "roles": claims.roles(variants),
        "batch_roles": claims.size_roles(set(map(str, batch_labels))) if len(batch_labels) else {},
        "best": best_variant(summary, pairwise),
        "tradeoffs": tradeoffs(by_id["batch_tradeoffs"], batch_labels) if "batch_tradeoffs" in by_id else [],
        "answers": [answer(by_id[i]) for i in QUESTIONS if i in by_id],
    }
