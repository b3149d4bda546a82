"""The report's figures, drawn on matplotlib's Agg canvas (no pyplot state, no display needed).

Every figure shows means over seeds with their 95% intervals (a shaded band on a curve, a bar through
a dot), and marks what diverged or never reached the target rather than leaving it out. A figure with
nothing to show returns None, which the notebook skips.
"""

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory

from reports import sensitivity
from reports.findings import means, per_class
from reports.results import TO_TARGET, Interval, Results, ci, missing, new_figure, rate, size, unit_style

LOGIT_TICKS = [0.01, 0.1, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999]
MARKERS = {"defaults": "o", "tuned": "D"}
BAND_ALPHA = 0.2


def _marker(protocol: str) -> str:
    return MARKERS.get(protocol, "s")


def _log_if_wide(ax, values, axis: str = "x") -> None:
    values = pd.Series(values, dtype=float).replace([np.inf, -np.inf], np.nan).dropna()
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        _plain_log_labels(ax.xaxis if axis == "x" else ax.yaxis)


def _plain_log_labels(which) -> None:
    """Log-axis labels as plain numbers (0.01, 1, 100), none on the minor ticks."""
    which.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    which.set_minor_formatter(NullFormatter())


def _accuracy_axis(ax, values, target: float, axis: str = "y") -> bool:
    """Percent ticks; a logit scale when some values lie far below the target, so that the top, where
    the variants differ, is not squashed."""
    values = pd.Series(values, dtype=float).dropna()
    stretch = bool(len(values)) and values.min() < target - 0.2
    which = ax.yaxis if axis == "y" else ax.xaxis
    if stretch:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("logit", nonpositive="clip")
        top = 1 - (1 - min(max(values.max(), target), 0.9995)) / 2
        (ax.set_ylim if axis == "y" else ax.set_xlim)(max(values.min() * 0.8, 0.005), top)
        which.set_major_locator(FixedLocator(LOGIT_TICKS))
        which.set_minor_formatter(NullFormatter())
    which.set_major_formatter(PercentFormatter(1.0, decimals=None))
    return stretch


def _band(ax, x, mean, low, high, color, label=None, **kwargs) -> None:
    """A mean curve with its 95% interval shaded; accuracy bands are clipped to (0, 1)."""
    x, mean = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
    ax.plot(x, mean, color=color, label=label, marker="o", markersize=3.5, **kwargs)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=BAND_ALPHA, linewidth=0)


def _diverged_label(results: Results, variant: str) -> str:
    parts = []
    for protocol in results.protocols:
        diverged = results.diverged(variant, protocol)
        if len(diverged):
            parts.append(f"{protocol} {len(diverged)}/{results.seed_count(variant, protocol)}")
    return variant if not parts else f"{variant} (diverged: {', '.join(parts)}; left out)"


def learning_curves(results: Results, variants: list[str]) -> Figure | None:
    """Validation accuracy per epoch and per training second, and training loss, per protocol.

    Lines are means over seeds, bands their 95% intervals; runs that diverged are left out (the legend
    counts them) unless every seed did.
    """
    variants = [x for x in variants if x in results.variants]
    data = results.mean_curves[results.mean_curves["variant"].isin(variants)]
    protocols = [p for p in results.protocols if p in set(data["protocol"])]
    if data.empty or not protocols:
        return None
    panels = [
        ("epoch", "val_accuracy", "validation accuracy per epoch"),
        ("seconds", "val_accuracy", "validation accuracy against training seconds"),
        ("epoch", "loss", "training loss per epoch"),
    ]
    figure, axes = new_figure(len(protocols), 3, (14, 3.4 * len(protocols) + 0.6), sharex="col", sharey="col")
    for row, protocol in enumerate(protocols):
        for col, (x, y, title) in enumerate(panels):
            ax = axes[row, col]
            for variant in variants:
                curve = data[(data["variant"] == variant) & (data["protocol"] == protocol)].sort_values(
                    "epoch"
                )
                if len(curve):
                    low, high = curve[f"{y}_low"], curve[f"{y}_high"]
                    if y == "val_accuracy":
                        low, high = low.clip(1e-5, 1 - 1e-5), high.clip(1e-5, 1 - 1e-5)
                    _band(ax, curve[x], curve[y], low, high, results.palette[variant])
            ax.set_title(f"{protocol}: {title}", fontsize=10)
            if row == len(protocols) - 1:
                ax.set_xlabel("epoch" if x == "epoch" else "training seconds (mean over seeds)")
            if x == "epoch":
                ax.xaxis.get_major_locator().set_params(integer=True)
    for col, (x, y, _) in enumerate(panels):
        ax = axes[0, col]
        if x == "seconds":
            _log_if_wide(ax, data["seconds"])
        if y == "val_accuracy":
            stretch = _accuracy_axis(
                ax, pd.concat([data["val_accuracy"], data["val_accuracy_low"]]), results.target
            )
            for row in range(len(protocols)):
                axes[row, col].axhline(results.target, color="0.4", linestyle="--", linewidth=1)
                axes[row, col].set_ylabel(
                    f"validation accuracy{' (logit)' if stretch else ''}, dashed: {results.target_text}"
                )
        else:
            _log_if_wide(ax, data["loss"], axis="y")
            for row in range(len(protocols)):
                axes[row, col].set_ylabel("training loss")
    handles = [Line2D([], [], color=results.palette[x], marker="o", markersize=4) for x in variants]
    figure.legend(
        handles,
        [_diverged_label(results, x) for x in variants],
        loc="outside right upper",
        title="variant (band: 95% CI)",
    )
    return figure


def schedule_figure(results: Results, variants: list[str]) -> Figure | None:
    """The learning rate each variant had at each epoch's end (epoch 0: its initial rate), and its
    validation loss, per protocol (solid: defaults, dashed: tuned)."""
    variants = [x for x in variants if x in results.variants]
    curves = results.mean_curves[results.mean_curves["variant"].isin(variants)]
    if curves.empty:
        return None
    figure, axes = new_figure(1, 2, (12, 4))
    left, right = axes[0]
    styles = dict(zip(results.protocols, ["-", "--", ":", "-."], strict=False))
    _log_if_wide(left, curves["learning_rate"], axis="y")
    log = left.get_yscale() == "log"  # then a rate of 0 (a cosine's end) cannot be drawn, and is left out
    for variant in variants:
        for protocol in results.protocols:
            curve = curves[(curves["variant"] == variant) & (curves["protocol"] == protocol)].sort_values(
                "epoch"
            )
            if curve.empty:
                continue
            style = {
                "color": results.palette[variant],
                "linestyle": styles[protocol],
                "marker": "o",
                "markersize": 3.5,
            }
            rates = pd.Series(
                [results.learning_rate(variant, protocol), *curve["learning_rate"]], dtype=float
            )
            left.plot([0, *curve["epoch"]], rates.where(rates > 0) if log else rates, **style)
            right.plot(curve["epoch"], curve["val_loss"], **style)
    title = "Learning rate (epoch 0: the initial rate" + ("; 0 not drawn on a log scale)" if log else ")")
    left.set(title=title, ylabel="learning rate", xlabel="epoch")
    if not log:
        left.set_ylim(bottom=0)
    right.set(title="Validation loss per epoch (mean over seeds)", ylabel="validation loss", xlabel="epoch")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles = [Line2D([], [], color=results.palette[x]) for x in variants]
    handles += [Line2D([], [], color="0.3", linestyle=styles[p]) for p in results.protocols]
    figure.legend(handles, [*variants, *results.protocols], loc="outside right upper")
    return figure


def _interval_rows(ax, results: Results, variants: list[str], metric: str, kind: str) -> None:
    """One row per variant, one mark per protocol: the mean, a bar for its 95% interval, the text."""
    protocols = results.protocols
    offsets = np.linspace(-0.18, 0.18, len(protocols)) if len(protocols) > 1 else [0.0]
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for i, variant in enumerate(variants):
        for offset, protocol in zip(offsets, protocols, strict=True):
            y = i + offset
            interval = results.interval(variant, protocol, metric)
            if not interval.known:
                if results.seed_count(variant, protocol):
                    ax.text(
                        0.01,
                        y,
                        f"{protocol}: {'not reached' if metric in TO_TARGET else 'no value'}",
                        transform=where,
                        va="center",
                        fontsize=8,
                        color="0.4",
                    )
                continue
            color = results.palette[variant]
            if interval.has_interval:
                ax.plot([interval.low, interval.high], [y, y], color=color, linewidth=2, alpha=0.6)
            filled = protocol != "defaults"
            ax.plot([interval.mean], [y], _marker(protocol), color=color, markersize=6,
                    markerfacecolor=color if filled else "white")  # fmt: skip
            text = ci(Interval(interval.mean, n=1), kind)
            reached, seeds = results.reached(variant, protocol), results.seed_count(variant, protocol)
            if metric in TO_TARGET and reached < seeds:
                text += f" ({reached}/{seeds})"
            right = interval.high if interval.has_interval else interval.mean
            ax.annotate(text, (right, y), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(variants)), variants)
    ax.set_ylim(len(variants) - 0.5, -0.5)
    ax.grid(axis="y", color="0.92")
    ax.margins(x=0.2)


def _protocol_legend(figure, results: Results) -> None:
    handles = [
        Line2D(
            [],
            [],
            color="0.3",
            marker=_marker(p),
            linestyle="",
            markerfacecolor="white" if p == "defaults" else "0.3",
        )
        for p in results.protocols
    ]
    figure.legend(
        handles,
        results.protocols,
        loc="outside lower center",
        ncols=len(handles),
        title="protocol (bar: 95% CI)",
    )


def test_accuracy_figure(results: Results) -> Figure | None:
    """Test accuracy per variant under each protocol: the mean, its 95% interval, and every seed."""
    last = results.protocols[-1] if results.protocols else None
    order = sorted(
        results.variants, key=lambda x: -np.nan_to_num(results.value(x, last, "test_accuracy"), nan=-1)
    )
    if not order:
        return None
    figure, axes = new_figure(1, 1, (10, 0.5 * len(order) + 1.8))
    ax = axes[0, 0]
    _interval_rows(ax, results, order, "test_accuracy", "pct")
    offsets = np.linspace(-0.18, 0.18, len(results.protocols)) if len(results.protocols) > 1 else [0.0]
    for i, variant in enumerate(order):
        for offset, protocol in zip(offsets, results.protocols, strict=True):
            seeds = results.runs_of(variant, protocol)["test_accuracy"].dropna()
            ax.plot(seeds, [i + offset] * len(seeds), ".", color="0.55", markersize=3, zorder=0)
    _accuracy_axis(ax, results.runs["test_accuracy"], results.target, axis="x")
    ax.set_xlabel("test accuracy (mark: mean over seeds; bar: 95% CI; grey dots: seeds)")
    ax.set_title(f"Test accuracy, ordered by the {last} protocol")
    _protocol_legend(figure, results)
    return figure


def pairwise_figure(results: Results) -> Figure | None:
    """Mean paired difference in test accuracy (row − column, points) per protocol, rows and columns
    ordered by that protocol's mean; hatched grey cells: the 95% interval includes 0 (within noise)."""
    protocols = [p for p in results.protocols if (results.pairwise["protocol"] == p).any()]
    compared = set(results.pairwise["variant_a"])
    orders = {p: [x for x in means(results, p).index if x in compared] for p in protocols}
    orders = {p: order for p, order in orders.items() if len(order) >= 2}
    if not orders:
        return None
    n = max(len(order) for order in orders.values())
    figure, axes = new_figure(len(orders), 1, (0.8 * n + 3.5, (0.55 * n + 1.4) * len(orders)))
    for ax, (protocol, order) in zip(axes[:, 0], orders.items(), strict=True):
        values, within = _difference_matrix(results, protocol, order)
        scale = max(float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0, 1.0)
        norm = SymLogNorm(linthresh=0.5, vmin=-scale, vmax=scale)
        sns.heatmap(pd.DataFrame(values, index=order, columns=order), mask=np.isnan(values) | within,
                    cmap="RdBu", norm=norm, vmin=-scale, vmax=scale, ax=ax, linewidths=0.5, linecolor="white",
                    cbar_kws={"label": "row − column (points)"})  # fmt: skip
        ticks = [t for t in (-100, -10, -1, 0, 1, 10, 100) if abs(t) <= scale]
        ax.collections[0].colorbar.set_ticks(ticks, labels=[f"{t:+g}" if t else "0" for t in ticks])
        ax.set_facecolor("0.94")
        for i, j in zip(*np.where(np.isfinite(values)), strict=True):
            strong = not within[i, j] and abs(norm(values[i, j]) - 0.5) > 0.35
            color = "0.45" if within[i, j] else "white" if strong else "black"
            ax.text(
                j + 0.5, i + 0.5, f"{values[i, j]:+.2f}", ha="center", va="center", fontsize=7, color=color
            )
            if within[i, j]:
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="0.8", linewidth=0))
        ax.set_title(
            f"{protocol}: test accuracy of row − column, paired by seed (points); "
            "hatched: within noise (95% CI includes 0)",
            fontsize=10,
        )
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="x", rotation=45)
    return figure


def _difference_matrix(results: Results, protocol: str, order: list[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(order)
    values, within = np.full((n, n), np.nan), np.zeros((n, n), dtype=bool)
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            d = results.difference(protocol, a, b) if a != b else None
            if d is not None and not missing(d.mean):
                values[i, j] = 100 * d.mean
                within[i, j] = d.verdict in ("within noise", "one seed")
    return values, within


def sensitivity_figure(results: Results) -> Figure | None:
    """Final validation accuracy against the learning rate tried, per variant, from the tuning trials.

    Circles: trials; ×: diverged (drawn at the bottom); star: the rate chosen for the tuned protocol;
    dotted line: the default rate.
    """
    found = sensitivity.curves(results)
    if not found:
        return None
    ncols = min(5, len(found))
    nrows = math.ceil(len(found) / ncols)
    figure, axes = new_figure(nrows, ncols, (3.1 * ncols + 0.5, 2.8 * nrows + 0.8), sharex=True, sharey=True)
    scored = results.tuning.loc[~results.tuning["diverged"], "val_accuracy"].dropna()
    for ax in axes.ravel()[len(found) :]:
        ax.set_visible(False)
    for ax, curve in zip(axes.ravel(), found, strict=False):
        color = results.palette.get(curve.variant, "C0")
        points = curve.scored
        ax.plot(points["learning_rate"], points["val_accuracy"], "o-", color=color, markersize=4)
        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        diverged = curve.trials[curve.trials["diverged"]]
        ax.plot(diverged["learning_rate"], [0.04] * len(diverged), "x", color="firebrick", markersize=7,
                markeredgewidth=2, transform=bottom)  # fmt: skip
        chosen = (
            curve.trials[np.isclose(curve.trials["learning_rate"], curve.chosen)]
            if not missing(curve.chosen)
            else []
        )
        if len(chosen) and not missing(chosen["val_accuracy"].iloc[0]):
            ax.plot(
                chosen["learning_rate"], chosen["val_accuracy"], "*", color="black", markersize=13, zorder=5
            )
        if not missing(curve.default):
            ax.axvline(curve.default, color="0.4", linestyle=":", linewidth=1.2)
        low, high = curve.plateau
        if not missing(low):
            ax.axvspan(low, high, color=color, alpha=0.12, linewidth=0)
        ax.set_title(curve.variant, fontsize=10)
        ax.set_xscale("log")
        _plain_log_labels(ax.xaxis)
        ax.grid(color="0.93")
    _accuracy_axis(axes[0, 0], scored, results.target)
    if results.chance is not None:
        for ax in axes.ravel()[: len(found)]:
            ax.axhline(results.chance, color="0.6", linestyle="--", linewidth=1)
    for ax in axes[:, 0]:
        ax.set_ylabel("final validation accuracy")
    for ax in axes[-1, :]:
        ax.set_xlabel("learning rate (log scale)")
    handles = [
        Line2D([], [], color="0.3", marker="o", markersize=4),
        Line2D([], [], color="firebrick", marker="x", linestyle="", markeredgewidth=2),
        Line2D([], [], color="black", marker="*", linestyle="", markersize=11),
        Line2D([], [], color="0.4", linestyle=":"),
        Line2D([], [], color="0.6", linewidth=6, alpha=0.4),
    ]
    labels = [
        "trial",
        "diverged",
        "chosen (tuned protocol)",
        "default rate",
        f"plateau (within {100 * sensitivity.PLATEAU:g} point)",
    ]
    if results.chance is not None:
        handles.append(Line2D([], [], color="0.6", linestyle="--"))
        labels.append(f"chance ({100 * results.chance:g}%)")
    figure.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    return figure


def momentum_figure(results: Results) -> Figure | None:
    """Final validation accuracy against momentum, plain and Nesterov: mean, 95% interval and seeds."""
    configs = sensitivity.momentum_configs(results)
    if configs.empty:
        return None
    momenta = sorted(configs["momentum"].unique())
    position = {m: i for i, m in enumerate(momenta)}
    figure, axes = new_figure(1, 1, (8, 4))
    ax = axes[0, 0]
    sweep = results.momentum
    colors = {False: "C0", True: "C3"}
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for nesterov, offset in ((False, -0.08), (True, 0.08)):
        rows = configs[configs["nesterov"] == nesterov]
        if rows.empty:
            continue
        x = [position[m] + offset for m in rows["momentum"]]
        color = colors[nesterov]
        ax.plot(x, rows["mean"], "o-", color=color, label="Nesterov" if nesterov else "plain", markersize=6)
        ax.vlines(x, rows["low"], rows["high"], color=color, linewidth=2, alpha=0.6)
        runs = sweep[sweep["nesterov"] == nesterov]
        fine = runs[~runs["diverged"]]
        ax.plot([position[m] + offset * 2 for m in fine["momentum"]], fine["final_val_accuracy"], ".",
                color="0.55", markersize=4, zorder=0)  # fmt: skip
        bad = runs[runs["diverged"]]
        ax.plot([position[m] + offset for m in bad["momentum"]], [0.04] * len(bad), "x", color="firebrick",
                markersize=7, markeredgewidth=2, transform=bottom)  # fmt: skip
    _accuracy_axis(ax, pd.concat([configs["low"], configs["mean"]]), results.target)
    ax.set_xticks(range(len(momenta)), [rate(m) for m in momenta])
    ax.set(xlabel="momentum", ylabel="final validation accuracy",
           title="Momentum sweep: mean over seeds, bar: 95% CI, dots: seeds, ×: diverged")  # fmt: skip
    ax.grid(axis="y", color="0.93")
    ax.legend(loc="best")
    return figure


def momentum_curves_figure(results: Results) -> Figure | None:
    """Learning curves per momentum (mean over seeds, 95% band), plain and Nesterov."""
    curves = results.momentum_curves
    if curves.empty:
        return None
    data = sensitivity.momentum_bands(results)
    momenta = sorted(data["momentum"].unique())
    colors = dict(zip(momenta, sns.color_palette("viridis", len(momenta)), strict=True))
    kinds = [k for k in (False, True) if (data["nesterov"] == k).any()]
    figure, axes = new_figure(len(kinds), 2, (12, 3.4 * len(kinds) + 0.6), sharex=True, sharey="col")
    for row, nesterov in enumerate(kinds):
        for col, (y, title) in enumerate(
            (("val_accuracy", "validation accuracy"), ("loss", "training loss"))
        ):
            ax = axes[row, col]
            # momentum 0 has no Nesterov form: the plain curve is drawn in both rows as the reference
            shown = data[(data["nesterov"] == nesterov) | ((data["momentum"] == 0) & ~data["nesterov"])]
            for momentum, curve in shown.groupby("momentum"):
                curve = curve.sort_values("epoch")
                low, high = curve[f"{y}_low"], curve[f"{y}_high"]
                if y == "val_accuracy":
                    low, high = low.clip(1e-5, 1 - 1e-5), high.clip(1e-5, 1 - 1e-5)
                _band(ax, curve["epoch"], curve[y], low, high, colors[momentum])
            ax.set_title(f"{'Nesterov' if nesterov else 'plain'} momentum: {title} per epoch", fontsize=10)
            ax.set_xlabel("epoch" if row == len(kinds) - 1 else "")
            ax.set_ylabel(title)
            ax.xaxis.get_major_locator().set_params(integer=True)
    _accuracy_axis(axes[0, 0], pd.concat([data["val_accuracy"], data["val_accuracy_low"]]), results.target)
    _log_if_wide(axes[0, 1], data["loss"], axis="y")
    handles = [Line2D([], [], color=colors[m], marker="o", markersize=4) for m in momenta]
    figure.legend(handles, [rate(m) for m in momenta], loc="outside right upper", title="momentum")
    return figure


def time_to_target_figure(results: Results) -> Figure | None:
    """Epochs, optimizer steps and training seconds until each variant first reached the target."""
    variants = results.variants
    if not variants:
        return None
    figure, axes = new_figure(1, 3, (14, 0.5 * len(variants) + 2), sharey=True)
    units = [("epochs", "count"), ("optimizer steps", "count"), ("training seconds", "secs")]
    for ax, column, (unit, kind) in zip(axes[0], TO_TARGET, units, strict=True):
        _interval_rows(ax, results, variants, column, kind)
        values = results.summary[column] if column in results.summary else pd.Series(dtype=float)
        if unit == "epochs":
            ax.set_xlim(0, results.epochs + 1.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            _log_if_wide(ax, values)
        if ax.get_xscale() == "linear" and unit != "epochs":
            ax.set_xlim(left=0)
        ax.set_xlabel(unit + (" (log scale)" if ax.get_xscale() == "log" else ""))
    figure.suptitle(
        f"Time to {results.target_text} validation accuracy: mean over the seeds that reached it "
        "(n/N: how many seeds did)"
    )
    _protocol_legend(figure, results)
    return figure


def memory_figure(results: Results) -> Figure | None:
    """Optimizer state per variant, and peak memory above the level before training per protocol."""
    variants = results.variants
    if not variants:
        return None
    figure, axes = new_figure(1, 2, (12, 0.5 * len(variants) + 2), sharey=True)
    left, right = axes[0]
    protocol = results.protocols[0]
    state = pd.Series([results.value(x, protocol, "optimizer_state_bytes") for x in variants])
    bars = left.barh(range(len(variants)), state.fillna(0), color=[results.palette[x] for x in variants])
    left.bar_label(bars, labels=[size(b) for b in state], padding=4, fontsize=9)
    left.set_yticks(range(len(variants)), variants)
    left.set_ylim(len(variants) - 0.5, -0.5)
    left.set_xticks([])
    left.margins(x=0.25)
    left.set_title("Optimizer state")
    _interval_rows(right, results, variants, "peak_memory_bytes", "bytes")
    _byte_ticks(right)
    right.set_title("Peak memory above the level before training")
    _protocol_legend(figure, results)
    return figure


def _byte_ticks(ax) -> None:
    """Round ticks in the unit that suits the axis's range (KiB, MiB, GiB)."""
    low, high = ax.get_xlim()
    scale, _, unit = unit_style("bytes", max(abs(low), abs(high)))
    ticks = MaxNLocator(nbins=5).tick_values(low * scale, high * scale)
    ax.set_xticks(ticks / scale, [f"{t:g}{unit}" for t in ticks])
    ax.set_xlim(low, high)


def per_class_figure(results: Results) -> Figure | None:
    """Test accuracy per digit and variant (mean over seeds), one panel per protocol."""
    tables = {p: per_class(results, p) for p in results.protocols}
    tables = {p: t for p, t in tables.items() if not t.empty}
    if not tables:
        return None
    # Colors span the upper 90% of the cells, so that a variant that failed does not wash out the rest;
    # the cells below that share the darkest color (their numbers are written in them).
    cells = pd.concat([t.stack() for t in tables.values()])
    floor = cells.quantile(0.1)
    rows = max(len(t) for t in tables.values())
    figure, axes = new_figure(1, len(tables), (7 * len(tables), 0.45 * rows + 1.6), sharey=True)
    for ax, (protocol, table) in zip(axes[0], tables.items(), strict=True):
        sns.heatmap(
            100 * table, annot=True, fmt=".1f", cmap="viridis", vmin=100 * floor, vmax=100, ax=ax,
            cbar=ax is axes[0, -1],
            cbar_kws={"label": "test accuracy (%)", "extend": "min" if cells.min() < floor else "neither"},
        )  # fmt: skip
        ax.set(xlabel="digit", ylabel="", title=f"{protocol}: test accuracy per digit (%)")
    return figure
