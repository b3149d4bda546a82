"""Batch, stochastic and mini-batch gradient descent: the primer's table of tradeoffs, measured.

The primer says BGD is slow and needs much memory, SGD is fast and needs little, MBGD is balanced in
both. Each claim is judged per protocol among the three variants: *slow* or *high* agrees when the
variant is the worst of the three, *fast* or *low* when it is the best, *balanced* when it lies strictly
between the others. Ties count against a claim: the same epoch or step count, seconds or bytes within
5%, accuracy within half a point. Times to target are judged by their median over seeds, a seed that
never got there counting as slower than any that did; the table shows their means with 95% intervals.
"""

import math

import pandas as pd

from reports.findings import means, to_target
from reports.results import TO_TARGET, Interval, Results, ci, count, missing, names, plural, size, v

NOISE = 0.005  # accuracies within half a point count as tied in the primer's table
SAME = 0.05  # seconds or bytes within 5% of each other count as equal
PRIMER_CLAIMS = {"bgd": ("slow", "high"), "sgd": ("fast", "low"), "mbgd": ("balanced", "balanced")}
ROLE_NAMES = {"bgd": "BGD", "sgd": "SGD", "mbgd": "MBGD"}
SPEED_MEASURES = [  # (label, column, tolerance, relative, higher is faster)
    ("epochs", "epochs_to_target", 0.0, False, False),
    ("steps", "steps_to_target", 0.0, False, False),
    ("seconds", "seconds_to_target", SAME, True, False),
    ("final accuracy", "final_val_accuracy", NOISE, False, True),
]
MEMORY_MEASURES = [("state", "optimizer_state_bytes", SAME, True), ("peak", "peak_memory_bytes", SAME, True)]
CLAIM_POSITION = {"slow": "high", "fast": "low", "balanced": "balanced", "high": "high", "low": "low"}


def position(value: float, others: list[float], tolerance: float, relative: bool) -> str | None:
    """Where `value` stands among `others`: lowest, highest, between them, or tied; None if unknown."""
    if missing(value) or not others or any(missing(o) for o in others):
        return None

    def differs(a, b):
        if a == b:
            return False
        if math.isinf(a) or math.isinf(b):
            return True
        return abs(a - b) > tolerance * (max(abs(a), abs(b)) if relative else 1.0)

    below = [o for o in others if o < value and differs(o, value)]
    above = [o for o in others if o > value and differs(o, value)]
    if len(above) == len(others):
        return "low"
    if len(below) == len(others):
        return "high"
    if below and above:
        return "balanced"
    return "tied"


def agrees(claim: str, value: float, others: list[float], tolerance: float, relative: bool) -> bool | None:
    """Whether a primer claim (slow/fast/balanced, high/low/balanced) matches the measured position.

    Values are costs: lower is faster or smaller. None where the claim cannot be judged (a variant
    missing, or `balanced` with only one other variant to stand between).
    """
    where = position(value, others, tolerance, relative)
    if where is None or (CLAIM_POSITION[claim] == "balanced" and len(others) < 2):
        return None
    return where == CLAIM_POSITION[claim]


def _verdict(judgements: dict[str, bool | None]) -> str:
    known = {label: ok for label, ok in judgements.items() if ok is not None}
    if not known:
        return "n/a"
    yes = [label for label, ok in known.items() if ok]
    if len(yes) == len(known):
        return "yes"
    return "no" if not yes else "partly: " + ", ".join(yes)


def roles(results: Results) -> dict[str, str]:
    return {role: results.groups[role][0] for role in PRIMER_CLAIMS if results.groups[role]}


def cost(results: Results, variant: str, protocol: str, column: str, higher_is_better: bool = False) -> float:
    """What a claim is judged on: lower is faster or smaller."""
    if column in TO_TARGET:
        runs = results.runs_of(variant, protocol)
        return math.nan if runs.empty else float(runs[column].fillna(math.inf).median())
    value = results.value(variant, protocol, column)
    return -value if higher_is_better and not missing(value) else value


def tradeoffs_table(results: Results) -> pd.DataFrame:
    """The primer's differences-and-tradeoffs table for BGD, SGD and MBGD, measured per protocol."""
    present = roles(results)
    target = results.target_text
    speed_columns = [
        f"epochs to {target}",
        f"steps to {target}",
        f"seconds to {target}",
        "final val. accuracy",
    ]
    columns = [("Convergence speed", c) for c in [*speed_columns, "primer says", "agrees"]] + [
        ("Memory", c) for c in ["optimizer state", "peak above start", "primer says", "agrees"]
    ]
    rows = {}
    for protocol in results.protocols:
        for role, (speed_claim, memory_claim) in PRIMER_CLAIMS.items():
            variant = present.get(role)
            if variant is None:
                rows[(f"{ROLE_NAMES[role]} (not run)", protocol)] = {
                    columns[4]: speed_claim,
                    columns[8]: memory_claim,
                }
                continue
            others = [o for r, o in present.items() if r != role]
            speed = {
                label: agrees(
                    speed_claim,
                    cost(results, variant, protocol, column, higher),
                    [cost(results, o, protocol, column, higher) for o in others],
                    tolerance,
                    relative,
                )
                for label, column, tolerance, relative, higher in SPEED_MEASURES
            }
            memory = {
                label: agrees(
                    memory_claim,
                    results.value(variant, protocol, column),
                    [results.value(o, protocol, column) for o in others],
                    tolerance,
                    relative,
                )
                for label, column, tolerance, relative in MEMORY_MEASURES
            }
            values = [
                *(to_target(results, variant, protocol, column) for column in TO_TARGET),
                ci(results.interval(variant, protocol, "final_val_accuracy")),
                speed_claim,
                _verdict(speed),
                size(results.value(variant, protocol, "optimizer_state_bytes")),
                ci(results.interval(variant, protocol, "peak_memory_bytes"), "bytes"),
                memory_claim,
                _verdict(memory),
            ]
            rows[(f"{ROLE_NAMES[role]} ({variant})", protocol)] = dict(zip(columns, values, strict=True))
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(object).fillna("—")
    table.columns = pd.MultiIndex.from_tuples(columns)
    if len(table):
        table.index = pd.MultiIndex.from_tuples(table.index, names=["variant", "protocol"])
    return table


def _first_to_target(results: Results, variants: list[str], protocol: str, column: str) -> str | None:
    costs = pd.Series({x: cost(results, x, protocol, column) for x in variants}).dropna()
    costs = costs[costs < math.inf]
    if costs.empty:
        return None
    winners = list(costs.index[costs == costs.min()])
    return ", ".join(f"{v(x)}: {to_target(results, x, protocol, column)}" for x in winners)


def gd_text(results: Results) -> str:
    present = roles(results)
    if not present:
        return "This run of the study has none of the batch, stochastic and mini-batch variants."
    variants = list(present.values())
    target = results.target_text
    lines = []
    absent = [ROLE_NAMES[role] for role in PRIMER_CLAIMS if role not in present]
    if absent:
        lines.append(f"- **Not run here:** {', '.join(absent)}; the table judges the claims among the rest.")
    for protocol in results.protocols:
        firsts = [_first_to_target(results, variants, protocol, column) for column in TO_TARGET]
        first = (
            "none of them reached it in most seeds"
            if all(f is None for f in firsts)
            else "; ".join(
                f"in {unit} {f or 'none'}"
                for unit, f in zip(("epochs", "optimizer steps", "training seconds"), firsts, strict=True)
            )
        )
        lines.append(f"- **First to {target} validation accuracy, {protocol}** (median over seeds): {first}.")
        never = [x for x in variants if results.seed_count(x, protocol) and not results.reached(x, protocol)]
        if never:
            lines.append(
                f"  - Never reached {target} in {plural(results.epochs, 'epoch')}, in any seed: "
                f"{names(never)}."
            )
        finals = ", ".join(
            f"{v(x)} {ci(results.interval(x, protocol, 'final_val_accuracy'))}" for x in variants
        )
        lines.append(f"  - Validation accuracy after the last epoch: {finals}.")
    per_epoch = means(results, results.protocols[0], "seconds_per_epoch")[lambda s: s.index.isin(variants)]
    if len(per_epoch) > 1:
        slow, fast = per_epoch.index[0], per_epoch.index[-1]
        steps = results.settings["steps_per_epoch"]
        lines.append(
            f"- **Cost of an epoch:** {v(slow)} takes {ci(results.interval(slow, results.protocols[0], 'seconds_per_epoch'), 'secs')} "  # noqa: E501
            f"per epoch ({count(steps[slow])} steps), {per_epoch[slow] / per_epoch[fast]:.1f}× "
            f"{v(fast)}'s {ci(results.interval(fast, results.protocols[0], 'seconds_per_epoch'), 'secs')} "
            f"({count(steps[fast])} step{'' if steps[fast] == 1 else 's'})."
        )
    lines.append(
        _memory_line(results, variants, "peak_memory_bytes", "Peak memory above the level before training")
    )
    lines.append(_memory_line(results, variants, "optimizer_state_bytes", "Optimizer state"))
    table = tradeoffs_table(results)
    if len(present) < 2:
        lines.append("- **The primer's columns** cannot be judged with only one of the three variants.")
        return "\n".join(lines)
    for protocol in results.protocols:
        rows = table.xs(protocol, level="protocol")
        for aspect in ("Convergence speed", "Memory"):
            verdicts = rows[(aspect, "agrees")]
            judged = verdicts[~verdicts.isin(["n/a", "—"])]
            lines.append(
                f"- **The primer's {aspect.lower()} column, {protocol}:** of "
                f"{plural(len(judged), 'variant')} judged, it holds in full for {(judged == 'yes').sum()}, "
                f"in part for {judged.str.startswith('partly').sum()} and not at all for "
                f"{(judged == 'no').sum()}."
            )
    return "\n".join(lines)


def _memory_line(results: Results, variants: list[str], column: str, label: str) -> str:
    protocol = results.protocols[0]
    values = means(results, protocol, column)
    values = values[values.index.isin(variants)]
    if values.empty:
        return f"- **{label}:** not recorded."
    if values.max() - values.min() <= SAME * values.max():
        return f"- **{label}:** about the same for {names(values.index)} ({size(values.max())})."
    rest = ", ".join(f"{size(values[x])} for {v(x)}" for x in values.index[1:])
    return f"- **{label}:** most for {v(values.index[0])} ({size(values.iloc[0])}, against {rest})."


def epoch_cost_table(results: Results, variants: list[str]) -> pd.DataFrame | None:
    """Steps and seconds per epoch and per step: what one pass over the data costs, over all runs."""
    variants = [x for x in variants if x in results.settings.index]
    if not variants:
        return None
    rows = {}
    for variant in variants:
        runs = results.runs_of(variant)
        steps = results.settings.at[variant, "steps_per_epoch"]
        per_step = (
            runs["seconds_per_step"] if "seconds_per_step" in runs else runs["seconds_per_epoch"] / steps
        )
        rows[variant] = {
            "batch size": count(results.settings.at[variant, "batch_size"]),
            "steps per epoch": count(steps),
            "seconds per epoch": ci(Interval.of(runs["seconds_per_epoch"]), "secs"),
            "milliseconds per step": ci(Interval.of(1000 * per_step), "g"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
