"""The learning-rate tuning and what it shows about high and low rates.

Reads metrics/tuning.csv (one row per variant, grid stage, rate and tuning seed, with the rate's mean
over the tuning seeds, `chosen` and compare's `unstable` flag) and metrics/tuning.json (the protocol:
tuning seeds, horizon, grids, each variant's search range and chosen rate with its `on_edge`). Rates,
means and flags are shown as tune and compare wrote them; the report only lays them out.
"""

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory

from reports.results import Tables, missing, names, new_figure, pct, plural, rate, styled, v

EDGE_WORDS = {"low": "lowest", "high": "highest"}


def chosen(tables: Tables) -> dict[str, dict]:
    """Each variant's chosen rate, its mean validation accuracy and `on_edge`, as tuning.json holds them."""
    return tables.tuning_protocol.get("chosen") or {}


def in_study_order(tables: Tables, found) -> list[str]:
    """The variants in `found` in params.yaml's order (the runs'), any others after them."""
    found = list(dict.fromkeys(x for x in found if isinstance(x, str)))
    return [x for x in tables.variants if x in found] + [x for x in found if x not in tables.variants]


def protocol_text(tables: Tables) -> str:
    """The tuning protocol in words: grids, horizon, tuning seeds, the score; then any rate on the edge."""
    protocol, trials = tables.tuning_protocol, tables.tuning
    if not protocol and trials.empty:
        return "This run of the study did not tune the learning rates: there is no tuned protocol."
    ranges = {variant: tuple(bounds) for variant, bounds in (protocol.get("ranges") or {}).items()}
    if ranges and len(set(ranges.values())) == 1:
        low, high = next(iter(ranges.values()))
        where = f"from {rate(low)} to {rate(high)} for every variant"
    else:
        where = "over each variant's own search range (table below)"
    seeds = protocol.get("seeds") or sorted(int(s) for s in trials["seed"].dropna().unique())
    evaluation = tables.seeds("tuned")
    per_variant = trials.groupby("variant")["learning_rate"].nunique()
    text = (
        "**Tuning protocol: the same trials for every variant, on the validation split only.** Each "
        f"variant's (initial) learning rate was searched {where}: a coarse grid of "
        f"{protocol.get('points', '?')} rates evenly spaced on a log scale, then a fine grid of "
        f"{protocol.get('refine', '?')} rates on each side of the coarse best, "
        f"{protocol.get('refine_step', '?')} decades apart. Every rate trained for "
        f"**{plural(protocol.get('epochs'), 'epoch')}**, the horizon the tuned protocol trains for (a "
        f"schedule over its whole schedule), once from each **tuning seed ({', '.join(map(str, seeds))})**; "
        "tuning seeds are never evaluation seeds"
        + (f" ({', '.join(map(str, evaluation))})" if evaluation else "")
        + ". A rate's score is its mean final validation accuracy over the tuning seeds, and the best "
        "score becomes the variant's rate in the tuned protocol; a rate that diverged on any seed is never "
        "chosen. The test split is never used to choose."
    )
    if len(per_variant):
        counts = sorted(set(per_variant))
        text += f" Rates per variant: {', '.join(map(str, counts))}; trials (rates × seeds): {len(trials)}."
    edges = edge_text(tables)
    return f"{text}\n\n{edges}" if edges else text


def edge_text(tables: Tables) -> str | None:
    """A warning for every variant whose chosen rate is the lowest or highest it tried."""
    edges = {x: c for x, c in chosen(tables).items() if c.get("on_edge")}
    if not edges:
        return None
    parts = [
        f"{v(x)}'s best rate, {rate(c.get('learning_rate'))}, is the "
        f"{EDGE_WORDS.get(c['on_edge'], c['on_edge'])} it tried: its best may lie "
        f"{'below' if c['on_edge'] == 'low' else 'above'} the search"
        for x, c in edges.items()
    ]
    return "⚠ **Chosen on the edge of the rates tried:** " + "; ".join(parts) + "."


# --- high and low learning rates ---------------------------------------------------------------------


def per_rate(tables: Tables) -> pd.DataFrame:
    """Per variant, stage and rate: the mean over tuning seeds of final validation accuracy (tune's own
    score; empty when a seed diverged) and of validation accuracy after epoch 1, and how many seeds
    compare marked unstable."""
    trials = tables.tuning
    if trials.empty:
        return pd.DataFrame(
            columns=["variant", "stage", "learning_rate", "final", "epoch1", "unstable", "seeds", "chosen"]
        )
    return (
        trials.groupby(["variant", "stage", "learning_rate"], sort=False)
        .agg(
            final=("mean_val_accuracy", "first"),
            epoch1=("val_accuracy_epoch1", lambda s: s.mean() if s.notna().any() else math.nan),
            unstable=("unstable", "sum"),
            seeds=("seed", "size"),
            chosen=("chosen", "any"),
        )
        .reset_index()
        .sort_values(["variant", "learning_rate"], kind="stable")
    )


def early_progress_table(tables: Tables):
    """Validation accuracy after one epoch at each rate of the coarse grid (mean over tuning seeds), a
    variant per row; a rate at which compare marked some seed unstable says so."""
    rates = per_rate(tables)
    coarse = rates[rates["stage"] == "coarse"]
    if coarse.empty:
        return None
    cells = coarse.assign(
        cell=[
            pct(row.epoch1, 1) + (f" ⚠ unstable {row.unstable:.0f}/{row.seeds:.0f}" if row.unstable else "")
            for row in coarse.itertuples()
        ]
    )
    table = cells.pivot(index="variant", columns="learning_rate", values="cell")
    order = in_study_order(tables, table.index)
    table = table.reindex(order).fillna("—")
    table.columns = [f"rate {rate(c)}" for c in table.columns]
    return styled(table.rename_axis("variant"), "early-progress").map(
        lambda text: "color: #cf222e" if "unstable" in str(text) else ""
    )


def unstable_text(tables: Tables) -> str:
    """What `unstable` means (compare's rule), and the rates at which tuning runs were unstable."""
    threshold = tables.compare.get("unstable_accuracy")
    rule = (
        "*Unstable* is compare's mark for a run that failed observably (study/analysis.py): its loss turned "
        "NaN or infinite (diverged), it ended below "
        + (pct(float(threshold), 0) if threshold is not None else "the chance threshold")
        + " validation accuracy, or its final training loss is above a uniform guess's."
    )
    rates = per_rate(tables)
    unstable = rates[rates["unstable"] > 0]
    if rates.empty:
        return rule
    if unstable.empty:
        return rule + " No tuning run was unstable at any rate tried."
    order = in_study_order(tables, rates["variant"])
    parts = [
        f"{v(variant)} at "
        + ", ".join(
            f"{rate(r.learning_rate)} ({r.unstable:.0f}/{r.seeds:.0f} seeds)"
            for r in unstable[unstable["variant"] == variant].itertuples()
        )
        for variant in order
        if variant in set(unstable["variant"])
    ]
    stable = [x for x in order if x not in set(unstable["variant"])]
    text = rule + " Unstable in tuning: " + "; ".join(parts) + "."
    if stable:
        text += f" Stable at every rate tried: {names(stable)}."
    return text


def learning_rate_figure(tables: Tables) -> Figure | None:
    """Per variant, against the rate tried: mean final validation accuracy (solid; circles coarse,
    diamonds fine, star the chosen rate), mean validation accuracy after epoch 1 (dashed), unstable
    rates (red ×) and the default rate (dotted)."""
    rates = per_rate(tables)
    if rates.empty:
        return None
    order = in_study_order(tables, rates["variant"])
    ncols = min(5, len(order))
    nrows = math.ceil(len(order) / ncols)
    figure, axes = new_figure(nrows, ncols, (3.1 * ncols + 0.5, 2.7 * nrows + 0.9), sharex=True, sharey=True)
    for ax in axes.ravel()[len(order) :]:
        ax.set_visible(False)
    for ax, variant in zip(axes.ravel(), order, strict=False):
        own = rates[rates["variant"] == variant].sort_values("learning_rate")
        color = tables.palette.get(variant, "C0")
        ax.plot(own["learning_rate"], own["final"], "-", color=color)
        ax.plot(own["learning_rate"], own["epoch1"], "--", color=color, alpha=0.7)
        for stage, marker in (("coarse", "o"), ("fine", "D")):
            points = own[own["stage"] == stage]
            ax.plot(points["learning_rate"], points["final"], marker, color=color, markersize=4, linestyle="")
        best = own[own["chosen"]]
        ax.plot(best["learning_rate"], best["final"], "*", color="black", markersize=12, zorder=5)
        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        bad = own[own["unstable"] > 0]
        ax.plot(bad["learning_rate"], [0.04] * len(bad), "x", color="#cf222e", markersize=7,
                markeredgewidth=2, transform=bottom)  # fmt: skip
        default = tables.learning_rate(variant, "defaults")
        if not missing(default):
            ax.axvline(default, color="0.4", linestyle=":", linewidth=1.2)
        edge = chosen(tables).get(variant, {}).get("on_edge")
        ax.set_title(variant + (f"  ⚠ on the {edge} edge" if edge else ""), fontsize=10,
                     color="#cf222e" if edge else "black")  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(color="0.93")
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    for ax in axes[:, 0]:
        ax.set_ylabel("validation accuracy")
    for ax in axes[-1, :]:
        ax.set_xlabel("learning rate (log scale)")
    handles = [
        Line2D([], [], color="0.3", marker="o", markersize=4),
        Line2D([], [], color="0.3", marker="D", markersize=4, linestyle=""),
        Line2D([], [], color="0.3", linestyle="--"),
        Line2D([], [], color="black", marker="*", linestyle="", markersize=11),
        Line2D([], [], color="#cf222e", marker="x", linestyle="", markeredgewidth=2),
        Line2D([], [], color="0.4", linestyle=":"),
    ]
    labels = [
        "final (coarse grid)",
        "final (fine grid)",
        "after epoch 1",
        "chosen (tuned protocol)",
        "unstable on some seed",
        "Keras' default rate",
    ]
    figure.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=9)
    figure.suptitle("Validation accuracy against the learning rate tried (mean over the tuning seeds)")
    figure.set_label(
        "Learning-rate grid: mean validation accuracy over the tuning seeds against every learning rate "
        "tried, one panel per variant, the chosen rate starred and unstable rates crossed."
    )
    return figure
