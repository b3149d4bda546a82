"""The claims table that opens the report: each primer claim, the tests that decided it, its verdict.

Only displays metrics/claims.json, which compare wrote with study/claims.py: the verdicts are computed
there from the data, never here.
"""

import json
import math
from pathlib import Path

import pandas as pd

VERDICT_MARK = {"supported": "supported", "contradicted": "contradicted", "depends": "depends"}
VERDICT_COLOR = {"supported": "#1a7f37", "contradicted": "#cf222e", "depends": "#9a6700"}
OUTCOME_MARK = {"supported": "✓", "contradicted": "✗", "within noise": "≈"}
ACCURACY_WORDS = ("accuracy", "share")


def load(path) -> list[dict]:
    return json.loads(Path(path).read_text())


def _number(value, measure: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if any(word in measure for word in ACCURACY_WORDS):
        return f"{100 * value:.1f}%"
    if "memory" in measure:
        return f"{value / 2**20:.0f} MiB"
    return f"{value:.3g}"


def _points(value, measure: str, signed: bool = True) -> str:
    if value is None:
        return "?"
    if any(word in measure for word in ACCURACY_WORDS):
        return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{value:+.3g}" if signed else f"{value:.3g}"


def test_line(test: dict) -> str:
    """One test in words: `adam vs mbgd, defaults: 93.1% vs 88.0%, +5.1 points [+4.0, +6.2] (5) ✓`."""
    mark = OUTCOME_MARK.get(test["outcome"], "?")
    measure = test.get("measure", "")
    if "ratio" in test:
        ratio = test["ratio"]
        ratio_text = "?" if ratio is None else f"{ratio:.2f}×"
        return (
            f"{test['test']}: {_number(test['a_mean'], measure)} vs {_number(test['b_mean'], measure)} "
            f"({ratio_text}) {mark}"
        )
    if "count" in test:
        return f"{test['test']}: {test['count']} of {test['of']} diverged {mark}"
    unit = " pts" if any(word in measure for word in ACCURACY_WORDS) else ""
    interval = (
        f"[{_points(test.get('ci_low'), measure)}, {_points(test.get('ci_high'), measure)}]"
        if test.get("ci_low") is not None
        else "[no interval]"
    )
    return (
        f"{test['test']}: {_number(test['a_mean'], measure)} vs {_number(test['b_mean'], measure)}, "
        f"{_points(test.get('mean'), measure)}{unit} {interval} (n={test.get('n_seeds') or 0}) {mark}"
    )


def claims_table(found: list[dict]) -> pd.DataFrame:
    """One row per claim: the claim, its verdict, and every test with its numbers."""
    rows = []
    for number, claim in enumerate(found, start=1):
        tests = claim["evidence"]["tests"]
        evidence = "<br>".join(test_line(t) for t in tests) or "no measurement in this study"
        notes = claim["evidence"].get("notes") or []
        if notes:
            evidence += "<br><i>" + "; ".join(notes) + "</i>"
        rows.append(
            {
                "#": number,
                "claim (the primer, in our words)": claim["claim"],
                "verdict": VERDICT_MARK.get(claim["verdict"], claim["verdict"]),
                "evidence: a vs b, difference a − b [95% interval] (pairs)": evidence,
            }
        )
    return pd.DataFrame(rows).set_index("#")


def styled(table: pd.DataFrame):
    """The table as HTML that keeps its line breaks, left-aligned, for the notebook and the page."""

    def color(verdict: str) -> str:
        return f"color: {VERDICT_COLOR[verdict]}; font-weight: bold" if verdict in VERDICT_COLOR else ""

    return (
        table.style.set_uuid("claims")  # a fixed id: the same study gives the same page
        .set_properties(**{"text-align": "left", "vertical-align": "top"})
        .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
        .map(color, subset=["verdict"])
    )


def claims_text(found: list[dict]) -> str:
    """A few sentences: how many claims held, and which the data contradicted or qualified."""
    numbered = [claim | {"position": i} for i, claim in enumerate(found, start=1)]
    by = {verdict: [c for c in numbered if c["verdict"] == verdict] for verdict in VERDICT_MARK}
    lines = [
        f"Of the primer's {len(found)} claims, the measurements support {len(by['supported'])}, "
        f"contradict {len(by['contradicted'])}, and qualify {len(by['depends'])} "
        "(the verdict depends on the measure, the optimizer or the protocol, or the difference is within "
        "noise)."
    ]
    for claim in by["contradicted"]:
        lines.append(f"- **Contradicted** ({_short(claim)}): {claim['claim']}")
    for claim in by["depends"]:
        lines.append(f"- **Depends** ({_short(claim)}): {_depends_words(claim)}")
    lines.append(
        "\nHow a verdict is decided: every test compares two settings paired by seed (or by start, on the "
        "landscapes) and looks at the 95% interval of their difference: wholly on the side the claim "
        "predicts ✓, wholly on the other ✗, including zero ≈ (within noise). A claim is *supported* "
        "only when every test is ✓, *contradicted* when every test is ✗, and *depends* otherwise. "
        "Memory, measured once per setting, counts as different at 1.5× or more."
    )
    return "\n".join(lines)


def _short(claim: dict) -> str:
    return f"#{claim['position']}, {claim['id'].replace('_', ' ')}"


def _depends_words(claim: dict) -> str:
    tests = claim["evidence"]["tests"]
    if not tests:
        return "nothing in this study tested it."
    held = [t["test"] for t in tests if t["outcome"] == "supported"]
    failed = [t["test"] for t in tests if t["outcome"] == "contradicted"]
    noise = [t["test"] for t in tests if t["outcome"] == "within noise"]
    parts = []
    if held:
        parts.append(f"holds for {_few(held)}")
    if failed:
        parts.append(f"fails for {_few(failed)}")
    if noise:
        parts.append(f"within noise for {_few(noise)}")
    return "; ".join(parts) + "."


def _few(labels: list[str], most: int = 2) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")
