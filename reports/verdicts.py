"""The primer's claims as metrics/claims.json holds them: each claim, its verdict per protocol and the
tests that decided it.

Only displays what compare decided (study/claims.py and study/verdicts.py): every verdict, outcome,
interval, margin and minimum detectable effect here is read from claims.json, never worked out again.
"""

import math
from dataclasses import dataclass

import pandas as pd
from nbconvert.filters.markdown_mistune import markdown2html_mistune as markdown_html

from reports.results import PROTOCOL_NAMES, rate, size, styled

VERDICT_COLORS = {
    "supported": "#1a7f37",
    "contradicted": "#cf222e",
    "no detectable effect": "#0550ae",
    "inconclusive": "#6e7781",
    "mixed": "#9a6700",
    "not tested": "#6e7781",
}
SOURCE_WORDS = {
    "primer": "the primer's",
    "implied": "implied: the primer does not assert it; the study adds it",
}
LINE_WORDS = {"tuned": "Tuned (each at its own best rate; primary)", "defaults": "At Keras' defaults"}
BUDGETS = {"epoch_budget": "epochs", "step_budget": "steps", "second_budget": "s"}


def rule_text(compare: dict) -> str:
    """How a test is decided and how a claim's tests combine: study/verdicts.py's rule, in words, with
    params.yaml's numbers."""
    confidence = float(compare.get("confidence", 0.95))
    margins = compare.get("margins", {})
    error = 1 - confidence
    return (
        "**How a verdict is reached** (study/verdicts.py; compare decides, this report only shows). Each "
        "test compares two settings, paired by seed (MNIST) or by start (landscapes), holding the rest "
        "equal. The *k* tests of one claim under one protocol share an error rate of "
        f"{error:.2g} (Bonferroni: each at α = {error:.2g}/*k*, so the chance that any of them is wrong by "
        f"chance is at most {error:.2g}). A test is **no detectable effect** when "
        f"its 1 − 2α interval lies inside ±margin ({_margins(margins)}: two one-sided tests), so a "
        "difference smaller than the margin counts as none; otherwise **supported** or **contradicted** "
        "when its 1 − α interval lies wholly on the predicted or the other side of zero, and "
        "**inconclusive** when it is too wide to say. Memory repeats are compared by ratio: *much more* "
        f"when even the smallest ratio is at least {float(compare.get('memory_factor', 1.5)):g}×. A "
        "claim's verdict is its tests' common outcome, or **mixed** when they differ (its tests table "
        "says which went which way). The same rule decides the best variant against the runner-up."
    )


def _margins(margins: dict) -> str:
    words = []
    if "accuracy" in margins:
        words.append(f"±{100 * float(margins['accuracy']):g} points of accuracy")
    if "share" in margins:
        words.append(f"±{100 * float(margins['share']):g} points of a share of landscape starts")
    if "steps" in margins:
        words.append(f"±{100 * float(margins['steps']):g}% of the compared side's steps")
    return ", ".join(words) or "params.yaml's compare.margins"


def overview_table(claims: list[dict]):
    """One row per claim: what it says, whose claim it is, and its verdict under each protocol."""
    rows = {}
    for number, claim in enumerate(claims, start=1):
        verdicts = claim.get("verdicts", {})
        rows[number] = {
            "#": number,
            "claim": claim["claim"],
            "whose": SOURCE_WORDS.get(claim.get("source"), claim.get("source") or "—"),
            **{_protocol_header(p): verdicts[p]["verdict"] for p in PROTOCOL_NAMES if p in verdicts},
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    verdict_columns = [_protocol_header(p) for p in PROTOCOL_NAMES]
    return styled(table, "claims-overview", VERDICT_COLORS, verdict_columns).hide(axis="index")


def _protocol_header(protocol: str) -> str:
    return "verdict, tuned (primary)" if protocol == "tuned" else f"verdict {PROTOCOL_NAMES[protocol]}"


def claim_text(number: int, claim: dict) -> str:
    """The claim, whose it is, its verdict per protocol and notes (which tests went which way is the
    table's outcome column, said once)."""
    source = SOURCE_WORDS.get(claim.get("source"), claim.get("source"))
    lines = [f"**{number}. {claim['claim']}** *({source})*", ""]
    for protocol in PROTOCOL_NAMES:
        decided = claim.get("verdicts", {}).get(protocol)
        if decided is None:
            continue
        verdict = decided["verdict"]
        line = f"- **{LINE_WORDS.get(protocol, protocol)}:** **{verdict}**"
        if decided.get("tests"):
            alpha = decided.get("alpha_per_test")
            tests = decided["tests"]
            line += f"; {tests} test{'s' if tests != 1 else ''}"
            line += f", each at α = {alpha:.2g}" if alpha is not None else ""
        lines.append(line + ".")
    lines += [f"- *{note}*" for note in claim.get("notes") or []]
    return "\n".join(lines)


def tests_table(claim: dict, number: int):
    """The tests of one claim, the tuned protocol's first: means, the difference a − b with its interval
    at the test's α, the margin with the equivalence interval, what was held equal, the outcome (the
    minimum detectable effect stays in metrics/claims.json)."""
    order = list(PROTOCOL_NAMES)
    tests = sorted(claim.get("tests") or [], key=lambda t: order.index(t.get("protocol", "tuned")))
    if not tests:
        return None
    rows = [
        {
            "protocol": PROTOCOL_NAMES.get(t.get("protocol"), t.get("protocol")),
            "test (measure)": _test(t),
            "a / b": _means(t),
            "a − b [interval at 1 − α]": _difference(t),
            "margin ± [equivalence interval]": _margin(t),
            "n": _n(t),
            "held equal": _held_equal(t),
            "outcome": t.get("outcome") or "—",
        }
        for t in tests
    ]
    return styled(pd.DataFrame(rows), f"claim-{number}-tests", VERDICT_COLORS, ["outcome"]).hide(axis="index")


def _test(test: dict) -> str:
    """The test's label, and what it measured where the label does not already say it."""
    measure = test.get("measure") or ""
    return test["test"] if not measure or measure in test["test"] else f"{test['test']} ({measure})"


@dataclass
class Collapsed:
    """A claim's evidence folded under one line (its claim and verdicts), opened on a click: the page
    stays short, and every test is one click away. Displayed by IPython through `_repr_html_`."""

    summary: str  # Markdown, one line
    body: list  # Markdown strings and styled tables

    def _repr_html_(self) -> str:
        inner = [
            markdown_html(item) if isinstance(item, str) else item.to_html()
            for item in self.body
            if item is not None
        ]
        summary = markdown_html(self.summary).strip().removeprefix("<p>").removesuffix("</p>")
        return f"<details><summary>{summary}</summary>{''.join(inner)}</details>"


def summary_line(number: int, claim: dict) -> str:
    verdicts = claim.get("verdicts", {})
    said = "; ".join(
        f"{PROTOCOL_NAMES.get(p, p)}: **{verdicts[p]['verdict']}**" for p in PROTOCOL_NAMES if p in verdicts
    )
    return f"**{number}. {claim['claim']}** ({said})"


def sections(claims: list[dict]) -> list[Collapsed]:
    """Every claim's text and its tests table, in order, each folded under its one-line summary."""
    return [
        Collapsed(summary_line(number, claim), [claim_text(number, claim), tests_table(claim, number)])
        for number, claim in enumerate(claims, start=1)
    ]


# --- one test's numbers, in its own unit --------------------------------------------------------------


def kind(test: dict) -> str:
    """How a test's numbers read: `memory` (bytes, decided by ratio), `count`, `points` (accuracies and
    shares of starts, shown in percentage points) or `number` (steps)."""
    if "ratio" in test:
        return "memory"
    if "count" in test:
        return "count"
    measure = test.get("measure", "")
    return "points" if "accuracy" in measure or "share" in measure else "number"


def _value(value, how: str, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    sign = "+" if signed else ""
    if how == "points":
        return f"{100 * value:{sign}.2f}"
    if how == "memory":
        return size(value)
    return f"{value:{sign},.3g}" if abs(value) < 1000 else f"{value:{sign},.0f}"


def _means(test: dict) -> str:
    how = kind(test)
    if how == "count":
        return "—"
    unit = "%" if how == "points" else ""
    return f"{_value(test.get('a_mean'), how)}{unit} / {_value(test.get('b_mean'), how)}{unit}"


def _difference(test: dict) -> str:
    how = kind(test)
    if how == "count":
        return f"{test.get('count')} of {test.get('of')}"
    if how == "memory":
        if test.get("ratio") is None:
            return "—"
        low, high = _ratio(test.get("ratio_low")), _ratio(test.get("ratio_high"))
        return f"ratio {test['ratio']:.2f}× ({low} to {high} between repeats)"
    unit = " points" if how == "points" else " steps"
    text = _value(test.get("mean"), how, signed=True) + unit
    if test.get("ci_low") is not None:
        text += f" [{_value(test['ci_low'], how, True)}, {_value(test['ci_high'], how, True)}]"
    return text


def _ratio(value) -> str:
    return "?" if value is None else f"{value:.2f}×"


def _margin(test: dict) -> str:
    how = kind(test)
    if how == "memory":
        return f"factor {test.get('factor', '?')}×" if test.get("factor") is not None else "—"
    if how == "count" or test.get("margin") is None:
        return "—"
    text = f"±{_value(test['margin'], how)}"
    if test.get("tost_low") is not None:
        text += f" [{_value(test['tost_low'], how, True)}, {_value(test['tost_high'], how, True)}]"
    return text


def _n(test: dict) -> str:
    for key in ("n", "repeats", "of"):
        if test.get(key) is not None:
            return str(test[key])
    return "—"


def _held_equal(test: dict) -> str:
    """What the test held equal or matched: each side's learning rate and effective step, the budget."""
    parts = []
    for key, words in (("learning_rate", "rate"), ("effective_step", "effective step")):
        a, b = test.get(f"a_{key}"), test.get(f"b_{key}")
        if a is None and b is None:
            continue
        parts.append(f"{words} {rate(a)} (both)" if a == b else f"{words} {rate(a)} / {rate(b)}")
    for key, unit in BUDGETS.items():
        if test.get(key) is not None:
            parts.append(f"budget {_value(float(test[key]), 'number')} {unit}")
    return "; ".join(parts) or "—"
