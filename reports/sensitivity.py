"""Sensitivity: what the learning rate and the momentum change, read from the tuning trials and the sweep.

Learning rate: every variant's tuning tried the same number of rates over a log-spaced range, one seed,
a few epochs each; its final validation accuracy against the rate is the sensitivity curve (no second
sweep is trained). Momentum: SGD at one rate and batch size over a grid of momenta, plain and Nesterov,
trained with the study's seeds, compared seed by seed. Validation accuracy only: no test split here.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.results import (
    VERDICT_TEXT,
    Difference,
    Interval,
    Results,
    bands,
    ci,
    missing,
    names,
    pct,
    plural,
    rate,
    survivors,
    v,
)

PLATEAU = 0.01  # rates within one point of a variant's best validation accuracy form its plateau
NEAR_CHANCE = 1.5  # an accuracy at most 1.5 × chance (guessing) means the run learned nothing


@dataclass(frozen=True)
class Curve:
    """One variant's tuning trials, by learning rate."""

    variant: str
    trials: pd.DataFrame  # learning_rate, val_accuracy (NaN when diverged), diverged, chosen; sorted by rate
    default: float

    @property
    def scored(self) -> pd.DataFrame:
        return self.trials[~self.trials["diverged"] & self.trials["val_accuracy"].notna()]

    @property
    def best(self) -> pd.Series | None:
        scored = self.scored
        return None if scored.empty else scored.loc[scored["val_accuracy"].idxmax()]

    @property
    def chosen(self) -> float:
        chosen = self.trials.loc[self.trials["chosen"], "learning_rate"]
        if len(chosen):
            return float(chosen.iloc[0])
        return math.nan if self.best is None else float(self.best["learning_rate"])

    @property
    def plateau(self) -> tuple[float, float]:
        """The contiguous run of rates around the best whose accuracy is within PLATEAU of it."""
        best = self.best
        if best is None:
            return math.nan, math.nan
        rates = self.trials.reset_index(drop=True)
        good = (~rates["diverged"]) & (rates["val_accuracy"] >= best["val_accuracy"] - PLATEAU)
        i = int(rates.index[rates["learning_rate"] == best["learning_rate"]][0])
        low = high = i
        while low > 0 and good[low - 1]:
            low -= 1
        while high < len(rates) - 1 and good[high + 1]:
            high += 1
        return float(rates.at[low, "learning_rate"]), float(rates.at[high, "learning_rate"])

    @property
    def decades(self) -> float:
        low, high = self.plateau
        return math.nan if missing(low) else math.log10(high / low)

    @property
    def diverges_from(self) -> float:
        """The lowest rate at which a trial diverged; NaN when none did."""
        diverged = self.trials.loc[self.trials["diverged"], "learning_rate"]
        return float(diverged.min()) if len(diverged) else math.nan

    def fails_from(self, floor: float | None) -> float:
        """The lowest rate above the best that diverged or scored at most `floor` (near chance)."""
        best = self.best
        if best is None:
            return self.diverges_from
        above = self.trials[self.trials["learning_rate"] > best["learning_rate"]]
        failed = above["diverged"] | (above["val_accuracy"] <= floor if floor is not None else False)
        return float(above.loc[failed, "learning_rate"].min()) if failed.any() else math.nan

    @property
    def edge(self) -> str | None:
        chosen, rates = self.chosen, self.trials["learning_rate"]
        if missing(chosen) or len(rates) < 2:
            return None
        return "top" if chosen >= rates.max() else "bottom" if chosen <= rates.min() else None


def curves(results: Results) -> list[Curve]:
    trials = results.tuning.dropna(subset=["learning_rate"])
    order = [x for x in results.variants if x in set(trials["variant"])]
    order += [x for x in trials["variant"].dropna().unique() if x not in order]
    return [
        Curve(
            x,
            trials[trials["variant"] == x].sort_values("learning_rate"),
            results.learning_rate(x, "defaults"),
        )
        for x in order
    ]


def _decades(x: float) -> str:
    return f"{x:.2g} decade" + ("" if np.isclose(x, 1) else "s")


def _variant_line(curve: Curve, floor: float | None) -> str:
    best = curve.best
    if best is None:
        lowest = rate(curve.trials["learning_rate"].min())
        return f"- {v(curve.variant)}: every rate tried diverged ({lowest} and up)."
    parts = [f"best {pct(best['val_accuracy'])} at {rate(best['learning_rate'])}"]
    if not missing(curve.chosen) and not np.isclose(curve.chosen, best["learning_rate"]):
        parts[0] += f" (chosen: {rate(curve.chosen)})"
    if not missing(curve.default):
        parts.append(f"default {rate(curve.default)}")
    low, high = curve.plateau
    parts.append(
        f"within a point of the best from {rate(low)} to {rate(high)} ({_decades(curve.decades)})"
        if high > low
        else "no other rate within a point of it"
    )
    diverge, fail = curve.diverges_from, curve.fails_from(floor)
    if not missing(diverge):
        parts.append(f"diverged from {rate(diverge)}")
    if not missing(fail) and (missing(diverge) or fail < diverge):
        parts.append(f"near chance from {rate(fail)}")
    if missing(diverge) and missing(fail):
        parts.append("never diverged" + (" nor fell to near chance" if floor is not None else ""))
    lowest = curve.trials.iloc[0]
    if lowest["learning_rate"] < low:
        parts.append(f"at the lowest rate, {rate(lowest['learning_rate'])}: {pct(lowest['val_accuracy'])}")
    if curve.edge:
        parts.append(f"**the chosen rate is at the {curve.edge} of the range**: the best may lie beyond it")
    return f"- {v(curve.variant)}: " + "; ".join(parts) + "."


def learning_rate_text(results: Results) -> str:
    """High against low learning rates, per variant and overall, from the tuning trials."""
    found = curves(results)
    if not found:
        return "This run of the study has no tuning trials, so no learning-rate sensitivity to show."
    protocol, chance = results.tuning_protocol, results.chance
    floor = None if chance is None else NEAR_CHANCE * chance
    lines = [
        f"Final validation accuracy after {plural(protocol.get('epochs'), 'epoch')} (seed "
        f"{protocol.get('seed', '?')}) at each learning rate tuning tried. A *plateau* is the run of rates "
        f"within {100 * PLATEAU:g} point of a variant's best: the wider it is, the less the rate needs "
        "tuning."
        + (
            f" *Near chance* is an accuracy of at most {pct(floor, 0)} (guessing scores {pct(chance, 0)}): "
            "the run learned nothing, whether or not its loss stayed finite."
            if floor is not None
            else ""
        )
    ]
    lines += [_variant_line(curve, floor) for curve in found]
    lines.append(_too_high(found, floor))
    scored = [c for c in found if c.best is not None]
    if scored:
        lines.append(_too_low(scored, protocol))
        widths = {c.variant: c.decades for c in scored}
        wide, narrow = max(widths.values()), min(widths.values())
        if np.isclose(wide, narrow):
            lines.append(f"- **Plateau:** {_decades(wide)} wide for every variant.")
        else:
            widest = [x for x, w in widths.items() if np.isclose(w, wide)]
            narrowest = [x for x, w in widths.items() if np.isclose(w, narrow)]
            lines.append(
                f"- **Plateau:** widest ({_decades(wide)}) for {names(widest)}; narrowest ({_decades(narrow)}"
                + (": no other rate within a point of the best" if np.isclose(narrow, 0) else "")
                + f") for {names(narrowest)}."
            )
    compared = [c for c in found if not missing(c.chosen) and not missing(c.default)]
    if compared:
        higher = [c.variant for c in compared if c.chosen > c.default * (1 + 1e-9)]
        lower = [c.variant for c in compared if c.chosen < c.default * (1 - 1e-9)]
        same = len(compared) - len(higher) - len(lower)
        lines.append(
            f"- **Tuned against default rates:** tuning chose a higher rate than the default for "
            f"{len(higher)} of {plural(len(compared), 'variant')}"
            + (f" ({names(higher)})" if higher else "")
            + f", a lower one for {len(lower)}"
            + (f" ({names(lower)})" if lower else "")
            + f", the same for {same}."
        )
    return "\n".join(lines)


def _too_high(found: list[Curve], floor: float | None) -> str:
    """Which variants diverged, or fell to near chance, above their best rate, and from where."""
    diverging = [c for c in found if not missing(c.diverges_from)]
    text = "- **Too high:** " + (
        f"{len(diverging)} of {plural(len(found), 'variant')} diverged within the range ("
        + ", ".join(f"{v(c.variant)} from {rate(c.diverges_from)}" for c in diverging)
        + ")"
        if diverging
        else "no trial diverged (a loss that stopped being finite)"
    )
    if floor is not None:
        near = [
            c
            for c in found
            if not missing(c.fails_from(floor))
            and (missing(c.diverges_from) or c.fails_from(floor) < c.diverges_from)
        ]
        if near:
            where = ", ".join(f"{rate(c.fails_from(floor))} for {v(c.variant)}" for c in near)
            text += f"; accuracy fell to near chance without diverging from {where}"
        steady = [c.variant for c in found if missing(c.fails_from(floor))]
        if steady:
            who = "every variant" if len(steady) == len(found) else names(steady)
            text += f"; {who} neither diverged nor fell to near chance up to the top of the range"
    scored = [c for c in found if c.best is not None]
    past = [c.variant for c in scored if (c.scored["learning_rate"] > c.plateau[1]).any()]
    if past:
        who = "every variant" if len(past) == len(found) else names(past)
        text += f"; accuracy fell off its plateau at higher rates for {who}"
    return text + "."


def _too_low(scored: list[Curve], protocol: dict) -> str:
    lowest = [(c, c.trials.iloc[0]) for c in scored]
    rates = ", ".join(sorted({rate(t["learning_rate"]) for _, t in lowest}))
    below = [c.best["val_accuracy"] - t["val_accuracy"] for c, t in lowest if not missing(t["val_accuracy"])]
    text = f"- **Too low:** at the lowest rate each variant tried ({rates})"
    if below:
        text += (
            f", validation accuracy is {100 * min(below):.2f} to {100 * max(below):.2f} points below the "
            f"variant's best after {plural(protocol.get('epochs'), 'epoch')}: slow rather than unstable"
        )
    diverged = [c.variant for c, t in lowest if t["diverged"]]
    if diverged:
        text += f"; it diverged even there for {names(diverged)}"
    return text + "."


# --- momentum -------------------------------------------------------------------------------------


def momentum_configs(results: Results) -> pd.DataFrame:
    """Per (momentum, nesterov): final validation accuracy's mean and interval over seeds, and divergences."""
    rows = []
    sweep = results.momentum
    for (momentum, nesterov), group in sweep.groupby(["momentum", "nesterov"], sort=True):
        interval = Interval.of(group["final_val_accuracy"].where(~group["diverged"]))
        rows.append(
            {"momentum": momentum, "nesterov": bool(nesterov), "mean": interval.mean, "low": interval.low,
             "high": interval.high, "n": interval.n, "runs": len(group),
             "diverged": int(group["diverged"].sum())}
        )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["momentum", "nesterov", "mean", "low", "high", "n", "runs", "diverged"]
    )


def momentum_bands(results: Results) -> pd.DataFrame:
    """The sweep's learning curves: per momentum, Nesterov or not, and epoch, the mean over seeds."""
    kept = survivors(results.momentum_curves, results.momentum, ["momentum", "nesterov"])
    return bands(kept, ["momentum", "nesterov", "epoch"], ["loss", "val_accuracy", "val_loss"])


def paired(results: Results, a: tuple[float, bool], b: tuple[float, bool]) -> Difference:
    """Final validation accuracy of sweep configuration a − b, seed by seed (a diverged run left out)."""
    sweep = results.momentum.assign(
        value=results.momentum["final_val_accuracy"].where(~results.momentum["diverged"])
    )

    def by_seed(config):
        rows = sweep[(sweep["momentum"] == config[0]) & (sweep["nesterov"] == config[1])]
        return rows.groupby("seed")["value"].mean()

    both = pd.concat([by_seed(a), by_seed(b)], axis=1, keys=["a", "b"])
    return Difference.of(list(both["a"]), list(both["b"]))


def _config(momentum: float, nesterov: bool) -> str:
    return f"{rate(momentum)} ({'Nesterov' if nesterov else 'plain'})"


def momentum_sweep_text(results: Results) -> str:
    """The best momentum, Nesterov against plain at each momentum, and whether the highest one hurts."""
    configs = momentum_configs(results)
    if configs.empty:
        return "This run of the study has no momentum sweep."
    sweep = results.momentum
    momenta = sorted(configs["momentum"].unique())
    rates = ", ".join(rate(r) for r in sweep["learning_rate"].dropna().unique()) or "?"
    batches = ", ".join(f"{b:.0f}" for b in sweep["batch_size"].dropna().unique()) or "?"
    seeds = sorted(int(s) for s in sweep["seed"].dropna().unique())
    lines = [
        f"SGD at learning rate {rates}, batch {batches}, with momentum "
        f"{', '.join(rate(m) for m in momenta)}, plain and Nesterov (Nesterov only above 0), "
        f"{plural(len(seeds), 'seed')} each; scored on the validation split (final validation accuracy), "
        "never on the test split."
    ]
    scored = configs.dropna(subset=["mean"])
    if scored.empty:
        return "\n".join([*lines, "- Every run of the sweep diverged."])
    best = scored.loc[scored["mean"].idxmax()]
    best_key = (best["momentum"], best["nesterov"])
    ties, below = [], []
    for row in scored.itertuples():
        if (row.momentum, row.nesterov) == best_key:
            continue
        verdict = paired(results, best_key, (row.momentum, row.nesterov)).verdict
        (ties if verdict in ("within noise", "one seed") else below).append(
            _config(row.momentum, row.nesterov)
        )
    text = (
        f"- **Best momentum:** {_config(*best_key)}, "
        f"{ci(Interval(best['mean'], best['low'], best['high'], int(best['n'])))}"
    )
    if len(seeds) < 2:
        text += " (one seed: no interval to tell ties)"
    elif ties:
        text += f"; within noise of it: {', '.join(ties)}"
    else:
        text += "; beyond noise above every other setting"
    lines.append(text + ".")

    verdicts = {}
    nesterov_lines = []
    for momentum in [m for m in momenta if m > 0]:
        keys = {(k, n) for k, n in zip(configs["momentum"], configs["nesterov"], strict=True)}
        if (momentum, True) in keys and (momentum, False) in keys:
            difference = paired(results, (momentum, True), (momentum, False))
            verdicts[momentum] = difference.verdict
            nesterov_lines.append(
                f"  - at {rate(momentum)}: {difference.text()}, {VERDICT_TEXT[difference.verdict]}"
                + _diverged_note(configs, momentum)
            )
    if verdicts:
        summary = "; ".join(
            f"{word} at {', '.join(rate(m) for m, x in verdicts.items() if x == verdict)}"
            for verdict, word in (("better", "better beyond noise"), ("worse", "worse beyond noise"),
                                  ("within noise", "within noise"), ("one seed", "from one seed only"),
                                  ("unknown", "not comparable"))
            if verdict in verdicts.values()
        )  # fmt: skip
        lines.append(f"- **Nesterov against plain momentum** (Nesterov − plain, paired by seed): {summary}.")
        lines += nesterov_lines

    highest = momenta[-1]
    lower = scored[scored["momentum"] < highest]
    if highest > 0 and len(lower):
        parts = []
        for nesterov in (False, True):
            mine = configs[(configs["momentum"] == highest) & (configs["nesterov"] == nesterov)]
            same_kind = lower[lower["nesterov"] == nesterov] if nesterov else lower[~lower["nesterov"]]
            if mine.empty or same_kind.empty:
                continue
            reference = same_kind.loc[same_kind["mean"].idxmax()]
            row = mine.iloc[0]
            difference = paired(results, (highest, nesterov), (reference["momentum"], nesterov))
            hurts = {"worse": "yes, beyond noise", "within noise": "not beyond noise",
                     "better": "no: it is better", "one seed": "one seed, no interval",
                     "unknown": "cannot tell"}[difference.verdict]  # fmt: skip
            diverged = f"; diverged in {row['diverged']} of {row['runs']} seeds" if row["diverged"] else ""
            parts.append(
                f"{'Nesterov' if nesterov else 'plain'}: {ci(Interval(row['mean'], row['low'], row['high'], int(row['n'])))} "  # noqa: E501
                f"against {pct(reference['mean'])} at {rate(reference['momentum'])}, {difference.text()}: "
                f"{hurts}{diverged}"
            )
        if parts:
            lines.append(f"- **Does the highest momentum, {rate(highest)}, hurt?** " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _diverged_note(configs: pd.DataFrame, momentum: float) -> str:
    rows = configs[(configs["momentum"] == momentum) & (configs["diverged"] > 0)]
    if rows.empty:
        return ""
    return (
        " (diverged: "
        + ", ".join(
            f"{'Nesterov' if r.nesterov else 'plain'} {r.diverged} of {r.runs} seeds"
            for r in rows.itertuples()
        )
        + ")"
    )
