"""The variants' figures, drawn on matplotlib's Agg canvas (no pyplot state, no display needed).

Learning curves are means over seeds with the range over seeds shaded; test accuracy is drawn with
the 95% intervals compare wrote (metrics/summary.json). Accuracy axes are linear, in percent, in
every figure of the report. A figure with nothing to show returns None, which the notebook skips.
"""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from reports.findings import per_class
from reports.results import PROTOCOL_NAMES, Tables, new_figure, pct

MARKERS = {"tuned": "D", "defaults": "o"}
FAR = 0.1  # a learning curve more than 10 points from plain SGD's is named, not drawn, in the difference
ZOOM = 0.05  # the test-accuracy figure shows the 5 points below the best; lower means are written


def _percent(axis) -> None:
    axis.set_major_formatter(PercentFormatter(1.0, decimals=None))


def _log(axis) -> None:
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def kept_curves(tables: Tables) -> pd.DataFrame:
    """The curves of the runs that did not diverge, where at least one run of their variant and protocol
    did not: a diverged run's last epoch means nothing, and its later epochs are missing."""
    curves, runs = tables.curves, tables.runs
    if curves.empty or runs.empty:
        return curves
    keys = ["variant", "protocol"]
    flags = runs[[*keys, "seed", "diverged"]].drop_duplicates([*keys, "seed"])
    flags = flags.assign(all_diverged=flags.groupby(keys)["diverged"].transform("all"))
    merged = curves.merge(flags, on=[*keys, "seed"], how="left")
    drop = merged["diverged"].eq(True) & merged["all_diverged"].eq(False)
    return curves[~drop.to_numpy()]


def learning_curves(tables: Tables) -> Figure | None:
    """A row per protocol: validation accuracy per epoch, its difference to plain mini-batch SGD's (the
    `plain` role compare wrote), so that curves lying on top of each other are told apart, and training
    loss per epoch. Means over seeds, shaded the range over seeds (diverged runs left out unless all did)."""
    data = kept_curves(tables)
    protocols = [p for p in tables.protocols if (data["protocol"] == p).any()]
    if data.empty or not protocols:
        return None
    baseline = (tables.answers.get("roles") or {}).get("plain")
    panels = [
        ("val_accuracy", "validation accuracy per epoch"),
        ("difference", f"minus {baseline}'s (plain SGD)"),
        ("loss", "training loss per epoch"),
    ]
    if baseline not in tables.variants:
        panels.pop(1)
    figure, axes = new_figure(len(protocols), len(panels), (14, 3.5 * len(protocols) + 0.8), sharex=True)
    for row, protocol in enumerate(protocols):
        here = data[data["protocol"] == protocol]
        plain = here[here["variant"] == baseline].groupby("epoch")["val_accuracy"].mean()
        gaps = _gaps(here, plain)
        near = gaps[gaps <= FAR]
        scale = max(float(near.max()) * 1.15 if len(near) else 0.0, 0.01)
        off = sorted(gaps[gaps > FAR].index)
        for col, (y, title) in enumerate(panels):
            ax = axes[row, col]
            for variant in tables.variants:
                runs = here[here["variant"] == variant]
                if runs.empty:
                    continue
                if y == "difference":
                    if variant in off:
                        continue
                    runs = runs.assign(difference=runs["val_accuracy"] - runs["epoch"].map(plain))
                by_epoch = runs.groupby("epoch")[y]
                color = tables.palette[variant]
                ax.plot(by_epoch.mean().index, by_epoch.mean(), "o-", color=color, markersize=3)
                ax.fill_between(by_epoch.mean().index, by_epoch.min(), by_epoch.max(), color=color,
                                alpha=0.12, linewidth=0)  # fmt: skip
            ax.set_title(f"{PROTOCOL_NAMES.get(protocol, protocol)}: {title}", fontsize=10)
            ax.grid(color="0.93")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if y == "val_accuracy":
                ax.axhline(tables.target, color="0.4", linestyle="--", linewidth=1)
                ax.set_ylabel(f"validation accuracy (dashed: {tables.target_text})")
                _percent(ax.yaxis)
            elif y == "difference":
                ax.set_ylim(-scale, scale)
                if off:
                    ax.set_title(f"{ax.get_title()}\n(off the scale: {', '.join(off)})", fontsize=10)
                ax.axhline(0, color="0.4", linewidth=1)
                ax.set_ylabel("difference (percentage points)")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:+.3g}"))
            else:
                ax.set_ylabel("training loss (log scale)")
            if row == len(protocols) - 1:
                ax.set_xlabel("epoch")
    for col, (y, _) in enumerate(panels):
        if y == "loss" and (data["loss"].dropna() > 0).all():
            for ax in axes[:, col]:
                ax.set_yscale("log")
                _log(ax.yaxis)
    handles = [Line2D([], [], color=tables.palette[x], marker="o", markersize=4) for x in tables.variants]
    figure.legend(handles, tables.variants, loc="outside right upper", title="variant (shaded: range)")
    figure.set_label(
        "Learning curves per protocol: validation accuracy per epoch, its difference in percentage points to "
        f"plain SGD ({baseline}), variants more than {100 * FAR:g} points away named off the scale, and "
        "training loss, one line per variant."
    )
    return figure


def _gaps(curves: pd.DataFrame, plain: pd.Series) -> pd.Series:
    """Per variant, the largest distance of its mean validation accuracy from plain SGD's, over epochs."""
    means = curves.groupby(["variant", "epoch"])["val_accuracy"].mean()
    differences = means - means.index.get_level_values("epoch").map(plain).to_numpy(dtype=float)
    return differences.abs().groupby(level="variant").max().dropna()


def test_accuracy_figure(tables: Tables) -> Figure | None:
    """Test accuracy per variant and protocol: compare's mean and 95% interval, and every seed (grey)."""
    first = tables.protocols[0] if tables.protocols else None
    order = sorted(
        tables.variants, key=lambda x: -np.nan_to_num(tables.interval(x, first, "test_accuracy").mean, nan=-1)
    )
    if not order or first is None:
        return None
    figure, axes = new_figure(1, 1, (10, 0.5 * len(order) + 1.9))
    ax = axes[0, 0]
    means = [tables.interval(x, p, "test_accuracy").mean for x in order for p in tables.protocols]
    top = max((m for m in means if not np.isnan(m)), default=1.0)
    left, right = top - ZOOM, min(1.0, top + 0.1 * ZOOM)  # the leaders apart; the others marked off-scale
    offsets = np.linspace(-0.18, 0.18, len(tables.protocols)) if len(tables.protocols) > 1 else [0.0]
    for i, variant in enumerate(order):
        color = tables.palette[variant]
        for offset, protocol in zip(offsets, tables.protocols, strict=True):
            y = i + offset
            seeds = tables.runs_of(variant, protocol)["test_accuracy"].dropna()
            ax.plot(seeds, [y] * len(seeds), ".", color="0.6", markersize=3, zorder=0)
            interval = tables.interval(variant, protocol, "test_accuracy")
            if not interval.known:
                continue
            if interval.has_interval:
                ax.plot([interval.low, interval.high], [y, y], color=color, linewidth=2, alpha=0.6)
            filled = color if protocol == "tuned" else "white"
            if interval.mean < left:
                ax.annotate(f"◀ {pct(interval.mean)}", (left, y), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=8, color=color)  # fmt: skip
                continue
            ax.plot([interval.mean], [y], MARKERS.get(protocol, "s"), color=color, markerfacecolor=filled)
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(left, right)
    ax.grid(axis="x", color="0.93")
    _percent(ax.xaxis)
    ax.set_xlabel(
        "test accuracy (mark: mean over seeds; bar: 95% interval; grey dots: seeds; ◀ off the scale)"
    )
    figure.set_label(
        "Test accuracy of every variant under each protocol, ordered by the tuned protocol: mean over seeds "
        "with its 95% interval; variants more than 5 points below the best are written as numbers at the "
        "left edge."
    )
    ax.set_title(f"Test accuracy, ordered by the {PROTOCOL_NAMES.get(first, first)} protocol")
    handles = [
        Line2D([], [], color="0.3", marker=MARKERS.get(p, "s"), linestyle="",
               markerfacecolor="0.3" if p == "tuned" else "white")
        for p in tables.protocols
    ]  # fmt: skip
    figure.legend(handles, [PROTOCOL_NAMES.get(p, p) for p in tables.protocols], loc="outside lower center",
                  ncols=len(handles))  # fmt: skip
    return figure


def per_class_figure(tables: Tables) -> Figure | None:
    """Test accuracy per digit and variant (mean over seeds, as evaluate wrote it), a panel per protocol."""
    found = {p: per_class(tables, p) for p in tables.protocols}
    found = {p: t for p, t in found.items() if not t.empty}
    if not found:
        return None
    # Colours span the upper 90% of the cells, so that a variant that failed does not wash out the rest.
    cells = pd.concat([t.stack() for t in found.values()])
    floor = cells.quantile(0.1)
    rows = max(len(t) for t in found.values())
    figure, axes = new_figure(1, len(found), (7 * len(found), 0.45 * rows + 1.6), sharey=True)
    for ax, (protocol, table) in zip(axes[0], found.items(), strict=True):
        sns.heatmap(
            100 * table, annot=True, fmt=".1f", cmap="viridis", vmin=100 * floor, vmax=100, ax=ax,
            cbar=ax is axes[0, -1],
            cbar_kws={"label": "test accuracy (%)", "extend": "min" if cells.min() < floor else "neither"},
        )  # fmt: skip
        title = f"{PROTOCOL_NAMES.get(protocol, protocol)}: test accuracy per digit (%)"
        ax.set(xlabel="digit", ylabel="", title=title)
    figure.set_label(
        "Test accuracy per digit, one row per variant and a panel per protocol, mean over seeds."
    )
    return figure
