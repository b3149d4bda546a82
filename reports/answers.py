"""The report's opening: where it was built, its contents, the primer's questions answered in plain words,
and the primer's trade-off table filled with what was measured.

Words only: every number, interval and verdict is read from metrics/answers.json, which compare wrote
from its own decided claims (study/answers.py). Nothing here compares two numbers.
"""

import pandas as pd

from reports.results import PROTOCOL_NAMES, Tables, pct, size, styled

PRIMER = "`seed/000_a766fd6a87b39245.txt`, a notebook-style primer on optimization algorithms"
PROTOCOL_LEAD = {"tuned": "At each variant's own best rate (tuned)", "defaults": "At Keras' defaults"}


def header_text(tables: Tables, commit: str | None, built: str | None) -> str:
    devices = sorted(set(tables.runs["device"].dropna().astype(str))) if "device" in tables.runs else []
    return (
        f"Built from commit `{commit or 'unknown'}` on {built or 'an unrecorded date'}; "
        f"runs trained on {'; '.join(devices) or 'an unrecorded device'}. "
        f"It tests the claims of the primer {PRIMER}."
    )


def contents(headings: list[tuple[str, str]]) -> str:
    """A table of contents: `(anchor, heading)` pairs, each heading written with `anchor(...)`."""
    return "**Contents**\n\n" + "\n".join(f"{i}. [{text}](#{a})" for i, (a, text) in enumerate(headings, 1))


def anchor(name: str, heading: str, level: int = 2) -> str:
    return f'<a id="{name}"></a>\n\n{"#" * level} {heading}'


# --- one decided test as words --------------------------------------------------------------------------


def points(value, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{100 * value:{'+' if signed else ''}.2f}".replace("-", "−")


def difference(test: dict) -> str:
    """A test's a − b with its interval, in its own unit, and what it was compared against."""
    kind = test.get("kind")
    if kind == "memory":
        return (
            f"{size(test.get('a_median'))} against {size(test.get('b_median'))} (median peak memory of "
            f"one run alone in a fresh process), {_ratio(test.get('ratio'))} "
            f"(needs ≥ {test.get('factor')}×)"
        )
    if kind == "count":
        return f"{test.get('count')} of {test.get('of')}"
    if kind == "steps":
        interval = (
            f" [{_steps(test.get('ci_low'))}, {_steps(test.get('ci_high'))}]"
            if test.get("ci_low") is not None
            else ""
        )
        return f"{_steps(test.get('mean'))} steps{interval} (margin ±{_steps(test.get('margin'), False)})"
    interval = (
        f" [{points(test.get('ci_low'))}, {points(test.get('ci_high'))}]"
        if test.get("ci_low") is not None
        else ""
    )
    unit = "points" if kind == "accuracy" else "points of the share of starts"
    return f"{points(test.get('mean'))} {unit}{interval} (margin ±{points(test.get('margin'), False)})"


def _steps(value, signed: bool = True) -> str:
    return "—" if value is None else f"{value:{'+' if signed else ''},.1f}".replace("-", "−")


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


ROLE_WORDS = {"plain": "plain mini-batch SGD", "full": "full-batch GD", "stochastic": "SGD at batch 1"}


def who(name, roles: dict) -> str:
    """A variant's name, with the part it plays where its name does not say it (roles: compare's)."""
    for role, words in ROLE_WORDS.items():
        if roles.get(role) == name:
            return f"`{name}` ({words})"
    return f"`{name}`" if name in _named(roles) else str(name)


def _named(roles: dict) -> set:
    return {n for v in roles.values() for n in (v if isinstance(v, list) else [v])}


def sides(test: dict, roles: dict) -> str:
    return f"{who(test.get('a'), roles)} − {who(test.get('b'), roles)}, {test.get('measure')}"


def _others(found: dict) -> str:
    others = found.get("others") or {}
    n = sum(others.values())
    if not n:
        return ""
    parts = ", ".join(f"{count} {outcome}" for outcome, count in others.items())
    return f" Its {n} other test{'s' if n != 1 else ''}: {parts}."


def answer_text(answer: dict, roles: dict) -> str:
    """One question, answered per protocol: verdict, the test that carries it, the rest counted."""
    parts = [f"**{answer['question']}**"]
    for protocol in PROTOCOL_NAMES:
        found = answer["protocols"].get(protocol)
        if found is None:
            continue
        test = found["headline"]
        parts.append(
            f"{PROTOCOL_LEAD[protocol]}: **{found['verdict']}**. {sides(test, roles)}: {difference(test)}, "
            f"{test['outcome']}.{_others(found)}"
        )
    if len(parts) == 1:
        parts.append("Not tested: this study has no runs for it.")
    return " ".join(parts)


def best_text(best: dict, roles: dict) -> str | None:
    if not best:
        return None
    parts = ["**Which optimizer reaches the highest test accuracy?**"]
    for protocol in PROTOCOL_NAMES:
        found = best.get(protocol)
        if not found:
            continue
        accuracy, diff = found["test_accuracy"], found.get("difference") or {}
        text = (
            f"{PROTOCOL_LEAD[protocol]}: {who(found['best'], roles)}, {pct(accuracy['mean'])} "
            f"[{pct(accuracy['ci_low'])}, {pct(accuracy['ci_high'])}] at rate {found['learning_rate']:.3g}; "
            f"against the runner-up {who(found['runner_up'], roles)} "
            f"({pct(found['runner_up_test_accuracy'])})"
        )
        if diff:
            text += (
                f": {points(diff['mean'])} points [{points(diff['ci_low'])}, {points(diff['ci_high'])}] "
                f"(margin ±{points(diff['margin'], False)}), **{diff['outcome']}**."
            )
        parts.append(text + ("" if diff else "."))
    return " ".join(parts)


def answers_text(tables: Tables) -> str:
    """Every answer, one short paragraph each, the best variant first."""
    found = tables.answers
    roles = found.get("roles") or {}
    paragraphs = [best_text(found.get("best") or {}, roles)]
    paragraphs += [answer_text(a, roles) for a in found.get("answers") or []]
    return "\n\n".join(p for p in paragraphs if p) or "compare wrote no answers."


# --- the primer's trade-off table, measured ---------------------------------------------------------------


def _cell(test: dict, label: str) -> str:
    """A test seen from the row of batch size `label`: its value, the other size's, the outcome."""
    mine, other = ("a", "b") if test["a"] == label else ("b", "a")
    if test["kind"] == "memory":
        value, theirs = test.get(f"{mine}_median"), test.get(f"{other}_median")
        ratio = _ratio(test.get("ratio"))
        return f"{size(value)} vs {size(theirs)} for {test[other]} ({ratio}): {test['outcome']}"
    budget = test["measure"].replace("validation accuracy after ", "after ")
    values = f"{pct(test.get(f'{mine}_mean'))} vs {pct(test.get(f'{other}_mean'))} for {test[other]}"
    return f"{budget}: {values}: {test['outcome']}"


def tradeoff_table(tables: Tables):
    """The primer's table (variant, convergence speed, memory), each cell with the primer's word and the
    batch-size claim's tests that bear on it; outcome as the claim's test decided it."""
    rows = []
    for row in tables.answers.get("tradeoffs") or []:
        label = f"batch {row['batch_label']}"
        rows.append(
            {
                "variant (batch size)": f"{row['name']} ({row['batch_label']})",
                "convergence speed: primer → measured (validation accuracy)": "\n".join(
                    [f"primer: {row['primer_speed']}"] + [_cell(t, label) for t in row["speed"]]
                ),
                "memory: primer → measured": "\n".join(
                    [f"primer: {row['primer_memory']}"]
                    + ([_cell(t, label) for t in row["memory"]] or ["not tested"])
                ),
            }
        )
    if not rows:
        return None
    table = pd.DataFrame(rows)
    return styled(table, "tradeoffs").set_properties(**{"white-space": "pre-line"}).hide(axis="index")
