"""Comparisons between variants: both rankings, the paired differences, and each group of variants
(momentum, adaptive optimizers, schedules) against plain mini-batch SGD, under each protocol.

Two variants are compared seed by seed with compare's paired differences in test accuracy: a difference
whose 95% interval includes zero is within noise, and is never called a win.
"""

import math
from itertools import combinations

import pandas as pd
from scipy import stats

from reports.findings import diverged_cell, means, one_seed_only
from reports.results import VERDICT_TEXT, Results, ci, missing, names, ordinal, plural, rate, v

KERAS_DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "rmsprop": 0.001, "adagrad": 0.001}


def ranks(results: Results, protocol: str) -> pd.Series:
    accuracy = means(results, protocol)
    return accuracy.rank(ascending=False, method="min").astype(int)


def ranking_table(results: Results) -> pd.DataFrame:
    """Both rankings side by side: each variant's rank and mean test accuracy under each protocol."""
    ranked = {p: ranks(results, p) for p in results.protocols}
    order = sorted(
        results.variants,
        key=lambda x: tuple(ranked[p].get(x, math.inf) for p in reversed(results.protocols)),
    )
    rows = {}
    for variant in order:
        row = {}
        for protocol in results.protocols:
            position = ranked[protocol].get(variant)
            row[(protocol, "rank")] = "—" if position is None else ordinal(position)
            row[(protocol, "learning rate")] = rate(results.learning_rate(variant, protocol))
            row[(protocol, "test accuracy")] = ci(results.interval(variant, protocol, "test_accuracy"))
        if set(results.protocols) >= {"defaults", "tuned"}:
            before, after = ranked["defaults"].get(variant), ranked["tuned"].get(variant)
            row[("", "tuned against defaults")] = (
                "—"
                if before is None or after is None
                else "same place"
                if before == after
                else f"up {before - after}"
                if after < before
                else f"down {after - before}"
            )
        rows[variant] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table):
        table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table.rename_axis("variant")


def ranking_text(results: Results) -> str:
    """Whether the ranking by test accuracy changes once every variant is tuned, and whether that is real."""
    if not set(results.protocols) >= {"defaults", "tuned"}:
        return "Only one protocol was run here: there is no second ranking to compare."
    defaults, tuned = means(results, "defaults"), means(results, "tuned")
    common = [x for x in results.variants if x in defaults.index and x in tuned.index]
    if len(common) < 2:
        return "Fewer than two variants have a test accuracy under both protocols: no rankings to compare."
    constant = defaults[common].nunique() < 2 or tuned[common].nunique() < 2  # no order to correlate
    tau = math.nan if constant else stats.kendalltau(defaults[common], tuned[common]).statistic
    tau_text = "undefined (all tied)" if missing(tau) else f"{tau:.2f}"
    swaps = [
        (a, b) for a, b in combinations(common, 2) if (defaults[a] - defaults[b]) * (tuned[a] - tuned[b]) < 0
    ]
    if not swaps:
        return (
            f"**The ranking does not change once every variant is tuned:** the {len(common)} variants keep "
            f"their order (Kendall's τ = {tau_text}; 1 means the same order)."
        )
    before, after = ranks(results, "defaults"), ranks(results, "tuned")
    moved = sorted((x for x in common if before[x] != after[x]), key=lambda x: after[x])
    lines = [
        f"**The ranking changes once every variant is tuned:** Kendall's τ between the two orders is "
        f"{tau_text} (1: the same order, 0: unrelated, −1: reversed), and {len(swaps)} of "
        f"{len(common) * (len(common) - 1) // 2} pairs of variants swap places. Moved: "
        + ", ".join(f"{v(x)} {ordinal(before[x])} → {ordinal(after[x])}" for x in moved)
        + "."
    ]
    best_before, best_after = defaults[common].idxmax(), tuned[common].idxmax()
    lines.append(
        f"{v(best_before)} is best under both protocols."
        if best_before == best_after
        else f"Best with the defaults: {v(best_before)}; best tuned: {v(best_after)}."
    )
    real = [(a, b) for a, b in swaps if all(_beyond(results, p, a, b) for p in ("defaults", "tuned"))]
    if real:
        lines.append(
            f"Of these swaps, {len(real)} {'is' if len(real) == 1 else 'are'} beyond noise under both "
            "protocols (the first named was ahead with the defaults, behind once tuned): "
            + ", ".join(_swap(defaults, a, b) for a, b in real)
            + ". The rest involve a difference within noise under at least one protocol, so seed luck "
            "alone could explain them."
        )
    elif any(one_seed_only(results, p, a, b) for a, b in swaps for p in ("defaults", "tuned")):
        lines.append("With one seed, no swap can be told apart from seed luck.")
    else:
        lines.append(
            "None of these swaps is beyond noise under both protocols: each involves a difference whose "
            "paired 95% interval includes zero under at least one of them, so seed luck alone could "
            "explain it."
        )
    return " ".join(lines)


def _beyond(results: Results, protocol: str, a: str, b: str) -> bool:
    d = results.difference(protocol, a, b)
    return d is not None and d.verdict in ("better", "worse")


def _swap(defaults: pd.Series, a: str, b: str) -> str:
    high, low = (a, b) if defaults[a] > defaults[b] else (b, a)
    return f"{v(high)} / {v(low)}"


def pairwise_text(results: Results) -> str:
    """Per protocol: how many differences are beyond noise, ties with the best, and who beats whom."""
    if results.pairwise.empty:
        return "compare wrote no paired differences for this study."
    lines = []
    for protocol in results.protocols:
        order = list(means(results, protocol).index)
        pairs = {(a, b): results.difference(protocol, a, b) for a, b in combinations(order, 2)}
        pairs = {key: d for key, d in pairs.items() if d is not None and d.verdict != "unknown"}
        if not pairs:
            lines.append(f"- **{protocol}:** no pair of variants could be compared.")
            continue
        verdicts = [d.verdict for d in pairs.values()]
        if all(x == "one seed" for x in verdicts):
            lines.append(
                f"- **{protocol}:** one seed per variant: the heatmap shows each difference, but none can be "
                "told apart from seed noise."
            )
            continue
        beyond = sum(x in ("better", "worse") for x in verdicts)
        lines.append(
            f"- **{protocol}:** {beyond} of {plural(len(pairs), 'pair')} of variants differ beyond noise; "
            f"{verdicts.count('within noise')} are within noise."
        )
        best = order[0]
        ties = [
            (b, pairs[(best, b)])
            for b in order[1:]
            if (best, b) in pairs and pairs[(best, b)].verdict == "within noise"
        ]
        if ties:
            lines.append(
                f"  - The best, {v(best)}, is within noise of "
                + "; ".join(f"{v(b)} ({d.text()})" for b, d in ties)
                + "."
            )
        for a in order:
            below = [b for b in order if (a, b) in pairs and pairs[(a, b)].verdict == "better"]
            below += [b for b in order if (b, a) in pairs and pairs[(b, a)].verdict == "worse"]
            if below:
                lines.append(f"  - {v(a)} is above {names(below)}, beyond noise.")
    return "\n".join(lines)


# --- a group of variants against plain mini-batch SGD ------------------------------------------------


def versus(results: Results, variant: str, baseline: str, protocol: str) -> tuple[str, str]:
    """One variant against the baseline under one protocol: the verdict and a sentence with the numbers."""
    difference = results.difference(protocol, variant, baseline)
    verdict = difference.verdict if difference else "unknown"
    mine, theirs = results.learning_rate(variant, protocol), results.learning_rate(baseline, protocol)
    rates = f"rate {rate(mine)}" + ("" if mine == theirs else f" against {rate(theirs)}")
    diverged = results.diverged(variant, protocol)
    note = "" if diverged.empty else f"; diverged in {diverged_cell(results, variant, protocol)}"
    return verdict, (
        f"{protocol} ({rates}): test accuracy {ci(results.interval(variant, protocol, 'test_accuracy'))} "
        f"against {ci(results.interval(baseline, protocol, 'test_accuracy'))} for {v(baseline)}: "
        f"{difference.text() if difference else 'not comparable'}, {VERDICT_TEXT[verdict]}; "
        f"{_reached(results, variant, baseline, protocol)}{note}."
    )


def _reached(results: Results, variant: str, baseline: str, protocol: str) -> str:
    target = results.target_text

    def when(name):
        reached, seeds = results.reached(name, protocol), results.seed_count(name, protocol)
        epochs = results.interval(name, protocol, "epochs_to_target")
        return f"{reached}/{seeds} seeds" + (f", epoch {ci(epochs, 'count')}" if reached else "")

    return f"reached {target} in {when(variant)} ({v(baseline)}: {when(baseline)})"


def tally(verdicts: list[str]) -> str:
    parts = [
        f"{verdicts.count('better')} better beyond noise",
        f"{verdicts.count('worse')} worse beyond noise",
        f"{verdicts.count('within noise')} within noise",
    ]
    for other in ("one seed", "unknown"):
        if verdicts.count(other):
            parts.append(f"{verdicts.count(other)} {VERDICT_TEXT[other]}")
    return ", ".join(parts)


def group_text(results: Results, group: str, absent: str, who: str, describe) -> str:
    members = results.groups[group]
    if not members:
        return absent
    base = results.baseline
    if base is None:
        return f"There is no plain mini-batch SGD variant to compare the {who}s with."
    lines, verdicts = [], {p: [] for p in results.protocols}
    for variant in members:
        lines.append(f"- {v(variant)} ({describe(variant)}):")
        for protocol in results.protocols:
            verdict, sentence = versus(results, variant, base, protocol)
            verdicts[protocol].append(verdict)
            lines.append(f"  - {sentence}")
    summary = "; ".join(f"{p}: {tally(x)}" for p, x in verdicts.items())
    return "\n".join(
        [*lines, "", f"**In short,** of {plural(len(members), who)} against {v(base)}: {summary}."]
    )


def momentum_text(results: Results) -> str:
    s = results.settings

    def describe(x):
        return f"momentum {rate(s.at[x, 'momentum'])}" + (", Nesterov" if s.at[x, "nesterov"] else "")

    text = group_text(
        results, "momentum", "This run of the study has no momentum variants.", "momentum variant", describe
    )
    for variant in [x for x in results.groups["momentum"] if s.at[x, "nesterov"]]:
        twins = [
            o
            for o in results.groups["momentum"]
            if not s.at[o, "nesterov"]
            and all(s.at[o, c] == s.at[variant, c] for c in ("momentum", "learning_rate", "batch_size"))
        ]
        if twins:
            sentences = [versus(results, variant, twins[0], p)[1] for p in results.protocols]
            text += f"\n\n**Nesterov against classical momentum, {v(variant)}:**\n" + "\n".join(
                f"- {sentence}" for sentence in sentences
            )
    return text


def adaptive_text(results: Results) -> str:
    s = results.settings

    def describe(x):
        default = KERAS_DEFAULT_LR.get(s.at[x, "optimizer"]) == results.learning_rate(x, "defaults")
        return str(s.at[x, "optimizer"]) + (", Keras' default rate" if default else "")

    text = group_text(
        results,
        "adaptive",
        "This run of the study has no adaptive optimizers.",
        "adaptive optimizer",
        describe,
    )
    base = results.baseline
    if results.groups["adaptive"] and base is not None:
        compared = [base, *results.groups["adaptive"]]
        defaults = all(
            KERAS_DEFAULT_LR.get(s.at[x, "optimizer"]) == results.learning_rate(x, "defaults")
            for x in compared
        )
        text += "\n\n" + (
            "With the defaults, every optimizer here runs at its Keras default rate: that compares them as "
            "shipped, not at a matched step size."
            if defaults
            else "With the defaults, not every optimizer here runs at its Keras default rate (see the setup)."
        )
        if "tuned" in results.protocols:
            text += (
                " Tuned, each runs at the rate its own tuning chose with the same budget: "
                + ", ".join(f"{v(x)} {rate(results.learning_rate(x, 'tuned'))}" for x in compared)
                + "."
            )
    return text


def schedule_text(results: Results) -> str:
    base = results.baseline

    def describe(x):
        parts = []
        for protocol in results.protocols:
            curve = results.mean_curves[
                (results.mean_curves["variant"] == x) & (results.mean_curves["protocol"] == protocol)
            ]["learning_rate"].dropna()
            start = results.learning_rate(x, protocol)
            parts.append(f"{protocol}: {rate(start)}" + (f" → {rate(curve.iloc[-1])}" if len(curve) else ""))
        return f"{results.settings.at[x, 'schedule']}; " + ", ".join(parts)

    text = group_text(
        results, "schedule", "This run of the study has no learning-rate schedules.", "schedule", describe
    )
    if results.groups["schedule"] and base is not None:
        text += (
            "\n\nWith the defaults, a schedule here changes two things at once: it starts at a different "
            f"rate from {v(base)}'s constant one and then decays, so a difference cannot be put down to the "
            "decay alone."
        )
        if "tuned" in results.protocols:
            text += (
                " Tuned, the schedule's starting rate and the constant rate are each the best of the same "
                "search, so that comparison is closer to decay against no decay, each at its best rate."
            )
    return text
