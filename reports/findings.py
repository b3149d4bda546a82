"""The report's prose about the study as a whole: its setup and tuning protocol, how far its evidence
goes, the summary, cost, test accuracy and divergences. Every finding is computed from the tables.

Nothing is known in advance about which optimizer wins. Means are over seeds, with 95% Student-t
intervals; two variants are compared seed by seed (compare's paired differences), and a difference whose
interval includes zero is called within noise. With one seed there are no intervals, and the text says so.
Comparisons between variants live in comparisons.py, the primer's GD table in tradeoffs.py, learning-rate
and momentum sensitivity in sensitivity.py.
"""

import pandas as pd
from scipy import stats

from reports.results import (
    Interval,
    Results,
    ci,
    count,
    missing,
    names,
    pct,
    plural,
    rate,
    secs,
    size,
    v,
)

PROTOCOL_TEXT = {
    "defaults": "*defaults*: every variant at its own learning rate from params.yaml (Keras' default "
    "unless params.yaml says otherwise)",
    "tuned": "*tuned*: every variant at the learning rate its tuning chose, with the same tuning budget "
    "for every variant",
}
METRIC_TEXT = {"val_accuracy": "final validation accuracy"}


# --- setup ----------------------------------------------------------------------------------------


def setup_text(results: Results) -> str:
    runs = results.runs

    def values(column) -> str:
        found = runs[column].dropna().astype(str).unique() if column in runs else []
        return "; ".join(found) or "not recorded"

    seeds = results.seeds
    determinism = {True: "on", False: "off"}
    return "\n".join(
        [
            f"- **Device:** {values('device')}",
            f"- **TensorFlow / Keras:** {values('tensorflow')} / {values('keras')}",
            f"- **Seeds:** {len(seeds)} ({', '.join(map(str, seeds))}), the same for every variant and "
            "protocol, so that variants can be compared seed by seed",
            "- **Op determinism:** "
            + (
                ", ".join(determinism[bool(d)] for d in runs["op_determinism"].dropna().unique())
                or "not recorded"
            ),
            f"- **Epochs:** {results.epochs} per run",
            f"- **Variants:** {len(results.variants)} ({names(results.variants)})",
            "- **Protocols:** " + "; ".join(PROTOCOL_TEXT.get(p, f"*{p}*") for p in results.protocols) + ".",
            f"- **Target:** {results.target_text} validation accuracy; time to target counts the epochs, "
            "optimizer steps and training seconds until a run first reaches it",
        ]
    )


def tuning_text(results: Results) -> str:
    """The tuning protocol, stated plainly: range, grid, epochs, seed, selection metric, test split unused."""
    protocol, trials = results.tuning_protocol, results.tuning
    if not protocol and trials.empty:
        return "This run of the study did not tune the learning rates: there is no tuned protocol."
    ranges = {variant: tuple(bounds) for variant, bounds in protocol.get("ranges", {}).items()}
    if ranges and len(set(ranges.values())) == 1:
        low, high = next(iter(ranges.values()))
        where = f"from {rate(low)} to {rate(high)} for every variant"
    else:
        where = "over each variant's own range (table below)"
    metric = protocol.get("metric", "val_accuracy")
    epochs, seed = plural(protocol.get("epochs"), "epoch"), protocol.get("seed", "?")
    text = (
        "**Tuning protocol: the same budget for every variant.** Each variant's learning rate was searched "
        f"{where}: {protocol.get('points', '?')} rates evenly spaced on a log scale, each trained for "
        f"{epochs} from seed {seed}, and the rate with the highest {METRIC_TEXT.get(metric, metric)} became "
        "the variant's rate in the tuned protocol. Tuning reads the training and validation splits only: "
        "the test split is never used to choose a rate, so the test accuracies below are not tuned on. A "
        "trial that diverged counts as a failure at its rate; it is not dropped."
    )
    if len(trials):
        tried = trials.groupby("variant", sort=False).size()
        text += f" {int(trials['diverged'].sum())} of {len(trials)} trials diverged."
        if "points" in protocol and (tried != protocol["points"]).any():
            text += (
                " Trials per variant differ from the grid: "
                + ", ".join(f"{v(name)} {n}" for name, n in tried.items())
                + "."
            )
    return text


def variants_table(results: Results) -> pd.DataFrame:
    """Each variant's settings, its default rate, the range tuning searched and the rate it chose."""
    ranges = results.tuning_protocol.get("ranges", {})
    rows = {}
    for variant in results.variants:
        s = results.settings.loc[variant]
        default, tuned = results.learning_rate(variant, "defaults"), results.learning_rate(variant, "tuned")
        low_high = ranges.get(variant)
        rows[variant] = {
            "optimizer": s["optimizer"] if isinstance(s["optimizer"], str) else "—",
            "batch size": count(s["batch_size"]) + (" (full)" if s["steps_per_epoch"] == 1 else ""),
            "momentum": (rate(s["momentum"]) + (", Nesterov" if s["nesterov"] else ""))
            if s["optimizer"] == "sgd"
            else "—",
            "schedule": s["schedule"] if isinstance(s["schedule"], str) and s["schedule"] else "—",
            "default rate": rate(default),
            "tuning range": f"{rate(low_high[0])} to {rate(low_high[1])}" if low_high else "—",
            "tuned rate": rate(tuned),
            "tuned ÷ default": "—" if missing(tuned) or missing(default) else f"{tuned / default:.3g}×",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


def evidence_text(results: Results) -> str:
    """What the evidence can carry: how many seeds, which intervals, how differences are judged."""
    per_run = results.runs.groupby(["variant", "protocol"])["seed"].nunique()
    if per_run.empty:
        return "**How far the evidence goes.** No runs were recorded."
    low, high = int(per_run.min()), int(per_run.max())
    tuning = results.tuning_protocol
    tuned_note = (
        f" Tuning used one seed and {plural(tuning.get('epochs'), 'epoch')} per learning rate, so the "
        "sensitivity curves carry no intervals, and between two rates that score alike the choice is itself "
        "noisy."
        if tuning
        else ""
    )
    if high == 1:
        return (
            "**How far the evidence goes.** Each variant trained once per protocol, from a single seed, so "
            "the spread between seeds is not measured: no interval can be given, and no difference between "
            "two variants can be told apart from what another seed alone would change." + tuned_note
        )
    seeds = f"{low}" if low == high else f"{low} to {high}"
    t = stats.t.ppf(0.975, high - 1)
    spread = results.runs.groupby(["variant", "protocol"])["test_accuracy"].std().dropna()
    widest = (
        f" The widest seed-to-seed spread of test accuracy (standard deviation) is {100 * spread.max():.2f} "
        f"points ({v(spread.idxmax()[0])}, {spread.idxmax()[1]})."
        if len(spread)
        else ""
    )
    return (
        f"**How far the evidence goes.** Every variant trained from the same {seeds} seeds under each "
        f"protocol ({len(results.runs)} runs). Means are shown with 95% Student-t confidence intervals over "
        f"the seeds, written `mean [low, high]`: with {high} seeds the interval is the mean ± {t:.2f} "
        "standard errors. Two variants are compared seed by "
        "seed (a paired comparison: each seed's initial weights and data order are shared, so their luck "
        "cancels): the mean difference in test accuracy with its 95% interval. A difference whose interval "
        f"includes zero is called *within noise*.{widest}{tuned_note}"
    )


# --- summary ------------------------------------------------------------------------------


def diverged_cell(results: Results, variant: str, protocol: str) -> str:
    diverged = results.diverged(variant, protocol)
    if diverged.empty:
        return "no"
    epochs = ", ".join(f"{e:.0f}" for e in diverged["diverged_epoch"].dropna())
    return f"{len(diverged)}/{results.seed_count(variant, protocol)} seeds (epoch {epochs or '?'})"


def to_target(results: Results, variant: str, protocol: str, column: str) -> str:
    """A time to target: its mean [interval] over the seeds that reached it, or `not reached`."""
    interval = results.interval(variant, protocol, column)
    if not interval.known:
        return "not reached"
    text = ci(interval, "secs" if column == "seconds_to_target" else "count")
    reached, seeds = results.reached(variant, protocol), results.seed_count(variant, protocol)
    return text if reached >= seeds else f"{text} ({reached}/{seeds} seeds)"


def summary_table(results: Results) -> pd.DataFrame:
    """One row per variant and protocol: means over seeds with their 95% intervals."""
    target = results.target_text
    rows = {}
    for variant in results.variants:
        for protocol in results.protocols:
            seeds = results.seed_count(variant, protocol)
            if seeds == 0:
                continue
            rows[(variant, protocol)] = {
                "learning rate": rate(results.learning_rate(variant, protocol)),
                "test accuracy": ci(results.interval(variant, protocol, "test_accuracy")),
                "final val. accuracy": ci(results.interval(variant, protocol, "final_val_accuracy")),
                f"reached {target}": f"{results.reached(variant, protocol)}/{seeds}",
                f"epochs to {target}": to_target(results, variant, protocol, "epochs_to_target"),
                f"seconds to {target}": to_target(results, variant, protocol, "seconds_to_target"),
                "training time": ci(results.interval(variant, protocol, "train_seconds"), "secs"),
                "diverged": diverged_cell(results, variant, protocol),
            }
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table):
        table.index = pd.MultiIndex.from_tuples(table.index, names=["variant", "protocol"])
    return table


def means(results: Results, protocol: str, metric: str = "test_accuracy") -> pd.Series:
    """Each variant's mean under a protocol, highest first; variants without one left out."""
    values = pd.Series({variant: results.value(variant, protocol, metric) for variant in results.variants})
    return values.dropna().sort_values(ascending=False, kind="stable")


def ties_with(results: Results, protocol: str, best: str, others) -> list[str]:
    return [
        other
        for other in others
        if other != best and (d := results.difference(protocol, best, other)) and d.verdict == "within noise"
    ]


def summary_text(results: Results) -> str:
    lines = []
    for protocol in results.protocols:
        accuracy = means(results, protocol)
        if accuracy.empty:
            lines.append(f"- **{protocol}:** no variant has a test accuracy.")
            continue
        best = accuracy.index[0]
        line = (
            f"- **Highest mean test accuracy, {protocol}:** {v(best)} "
            f"({ci(results.interval(best, protocol, 'test_accuracy'))})"
        )
        ties = ties_with(results, protocol, best, accuracy.index)
        if ties:
            line += f"; within noise of it: {names(ties)}"
        elif len(accuracy) > 1 and one_seed_only(results, protocol, best, accuracy.index[1]):
            line += " (one seed: no interval to tell a tie)"
        elif len(accuracy) > 1:
            line += "; beyond noise above every other variant"
        lines.append(line + ".")
        if len(accuracy) > 1:
            worst = accuracy.index[-1]
            lowest = ci(results.interval(worst, protocol, "test_accuracy"))
            lines.append(f"- **Lowest, {protocol}:** {v(worst)} ({lowest}).")
        seconds = means(results, protocol, "seconds_to_target")
        if len(seconds):
            fastest = seconds.index[-1]
            lines.append(
                f"- **First to {results.target_text} validation accuracy in training seconds, {protocol}:** "
                f"{v(fastest)}, {to_target(results, fastest, protocol, 'seconds_to_target')}."
            )
        never = [
            x
            for x in results.variants
            if results.seed_count(x, protocol) and not results.reached(x, protocol)
        ]
        if never:
            lines.append(
                f"- **Never reached {results.target_text} in {plural(results.epochs, 'epoch')}, in any seed, "
                f"{protocol}:** "
                f"{names(never)}."
            )
    return "\n".join(lines) or "No variant has a test accuracy."


def one_seed_only(results: Results, protocol: str, a: str, b: str) -> bool:
    d = results.difference(protocol, a, b)
    return d is not None and d.verdict == "one seed"


# --- memory, time, test accuracy, divergence --------------------------------------------------------


def cost_text(results: Results) -> str:
    lines = []
    protocol = results.protocols[0] if results.protocols else "defaults"
    state = pd.Series(
        {x: results.value(x, protocol, "optimizer_state_bytes") for x in results.variants}
    ).dropna()
    if len(state):
        tiers = state.groupby(state).groups
        lines.append(
            "- **Optimizer state** (the same under both protocols): "
            + "; ".join(f"{size(b)} for {names(list(group))}" for b, group in sorted(tiers.items()))
            + "."
        )
    peak = means(results, protocol, "peak_memory_bytes")
    if len(peak):
        kinds = set(results.runs["memory_kind"].dropna())
        kind = {"rss": "the training process's resident memory", "gpu": "GPU memory"}
        what = " and ".join(kind.get(k, k) for k in sorted(kinds)) or "memory"
        high, low = peak.index[0], peak.index[-1]
        if peak.max() <= peak.min() * 1.05:
            lines.append(
                f"- **Peak memory** ({what}, above its level just before training): about "
                f"{size(peak.max())} for every variant."
            )
        else:
            lines.append(
                f"- **Peak memory** ({what}, above its level just before training, {protocol}): highest for "
                f"{v(high)} ({ci(results.interval(high, protocol, 'peak_memory_bytes'), 'bytes')}), lowest "
                f"for {v(low)} ({ci(results.interval(low, protocol, 'peak_memory_bytes'), 'bytes')}). It "
                "counts everything the process holds during training, not only the batch and the optimizer."
            )
    for protocol in results.protocols:
        seconds = means(results, protocol, "train_seconds")
        if len(seconds) and seconds.max() <= seconds.min() * 1.05:
            lines.append(f"- **Training time, {protocol}:** about {secs(seconds.max())} for every variant.")
        elif len(seconds):
            slow, fast = seconds.index[0], seconds.index[-1]
            lines.append(
                f"- **Training time, {protocol}** (optimizer steps only; validation is not counted): from "
                f"{ci(results.interval(fast, protocol, 'train_seconds'), 'secs')} for {v(fast)} to "
                f"{ci(results.interval(slow, protocol, 'train_seconds'), 'secs')} for {v(slow)}."
            )
        reached = means(results, protocol, "seconds_to_target")
        if len(reached):
            fastest = reached.index[-1]
            lines.append(
                f"- **Fastest to {results.target_text}, {protocol}:** {v(fastest)} in "
                f"{to_target(results, fastest, protocol, 'seconds_to_target')}; {len(reached)} of "
                f"{len(means(results, protocol))} variants got there in at least one seed."
            )
    return "\n".join(lines) or "No memory or time was recorded."


def per_class(results: Results, protocol: str) -> pd.DataFrame:
    rows = {
        x: results.evaluations[x][protocol]["per_class_accuracy"]
        for x in results.variants
        if isinstance(results.evaluations.get(x, {}).get(protocol), dict)
        and "per_class_accuracy" in results.evaluations[x][protocol]
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.apply(pd.to_numeric, errors="coerce").astype(float) if len(table) else table


def test_text(results: Results) -> str:
    lines = [line for line in summary_text(results).split("\n") if "Highest" in line or "Lowest" in line]
    for protocol in results.protocols:
        table = per_class(results, protocol)
        if not table.empty:
            median = table.median()  # the median: one failed variant does not decide which digit is hard
            lines.append(
                f"- **Per digit, {protocol}** (median over the variants): hardest {median.idxmin()} "
                f"({pct(median.min())}), easiest {median.idxmax()} ({pct(median.max())})."
            )
    return "\n".join(lines) or "No test accuracy was recorded."


def diverged_text(results: Results) -> str:
    lines = []
    diverged = results.runs[results.runs["diverged"]]
    for (variant, protocol), group in diverged.groupby(["variant", "protocol"], sort=False):
        seeds = ", ".join(f"{s:.0f}" for s in group["seed"])
        epochs = ", ".join(f"{e:.0f}" for e in group["diverged_epoch"].dropna()) or "?"
        lines.append(
            f"- {v(variant)}, {protocol} (rate {rate(results.learning_rate(variant, protocol))}): "
            f"{len(group)} of {results.seed_count(variant, protocol)} seeds (seed {seeds}); the training "
            f"loss stopped being a finite number in epoch {epochs}, and training stopped there; test "
            f"accuracy of those runs {ci(Interval.of(group['test_accuracy']))}."
        )
    if not lines:
        lines.append(
            f"No training run diverged: every loss stayed finite for all {plural(results.epochs, 'epoch')}."
        )
    trials = results.tuning[results.tuning["diverged"]]
    if len(trials):
        by_variant = trials.groupby("variant", sort=False)["learning_rate"].min()
        lines.append(
            f"- **Tuning:** {len(trials)} of {len(results.tuning)} trials diverged, at rates from "
            + ", ".join(f"{rate(r)} for {v(x)}" for x, r in by_variant.items())
            + " (see the learning-rate section)."
        )
    sweep = results.momentum[results.momentum["diverged"]]
    if len(sweep):
        configs = sweep.groupby(["momentum", "nesterov"]).size()
        lines.append(
            f"- **Momentum sweep:** {len(sweep)} of {len(results.momentum)} runs diverged: "
            + ", ".join(
                f"momentum {rate(m)}{' Nesterov' if n else ''} ({k} of "
                f"{((results.momentum['momentum'] == m) & (results.momentum['nesterov'] == n)).sum()} seeds)"
                for (m, n), k in configs.items()
            )
            + "."
        )
    return "\n".join(lines)
