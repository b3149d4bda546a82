"""The batch-size sweep: plain SGD from one image per step to the whole training subset, each size at
its own tuned learning rate.

Reads what the batch_sweep stage wrote: metrics/batch_size.json (per size: its own rate and whether it
lies on the edge, the epochs and steps it trained, means over seeds with their 95% intervals, peak
memory's median and range over fresh processes, the analytic size), metrics/batch_tuning.csv (every
rate each size tried) and plots/batch_size_curves.csv (every validation score); and the budgets at
which the claims compared sizes, from metrics/claims.json.
"""

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from reports.results import Interval, ci, new_figure, plural, rate, size, styled

EDGE_WORDS = {"low": "lowest", "high": "highest"}


def sizes(batch: dict) -> list[tuple[str, dict]]:
    """(label, fields) per batch size, smallest first (the whole split last)."""
    labelled = [(key.removeprefix("batch-"), fields) for key, fields in (batch or {}).items()]
    return sorted(labelled, key=lambda item: (item[1].get("batch_size") or math.inf, item[0]))


def order(labels) -> list[str]:
    """Batch labels in numeric order, `full` last."""
    return sorted(set(labels), key=lambda x: (math.inf, x) if not str(x).isdigit() else (int(x), ""))


def batch_text(batch: dict, target: float | None) -> str:
    """What the sweep did and its budgets (the claims' comparisons are in the trade-off table, once)."""
    found = sizes(batch)
    if not found:
        return "This run of the study has no batch-size sweep."
    budgets = ", ".join(
        f"batch {label}: {plural(f.get('epochs'), 'epoch')} = {plural(f.get('steps'), 'step')} "
        f"({ci(Interval.read(f.get('train_seconds')), 'secs')} of training)"
        for label, f in found
    )
    text = (
        "Batch size and learning rate go together: at one rate for all, a sweep over sizes is partly a sweep "
        "over rates. So each size first tuned its own rate, with the same trials and tuning seeds as every "
        "other size, on the validation split, then trained at it. Full-batch descent takes one step per "
        "epoch, so it trains for more epochs than the others: enough steps for a per-step comparison to "
        f"mean something. What each size trained: {budgets}. Seconds are optimizer steps times what one "
        "step costs one run alone on this machine; peak memory was measured in fresh processes, one run "
        "each, and is shown as the median with its range beside the analytic size (weights, gradients, "
        "optimizer slots and one batch's activations, in float32)."
    )
    if target is not None:
        text += f" Steps and seconds to target: until validation accuracy first reaches {100 * target:g}%."
    return text + " The claims' comparisons of sizes at equal budgets: [the trade-off table](#tradeoffs)."


def batch_table(batch: dict):
    """Per batch size: its own rate, its budget, accuracy, time to target, cost and memory."""
    found = sizes(batch)
    if not found:
        return None
    rows = {}
    for label, f in found:
        memory = f.get("peak_memory_bytes") or {}
        edge = f.get("on_edge")
        seeds, reached = f.get("seeds", 0), f.get("seeds_reaching_target", 0)
        rows[label] = {
            "own learning rate": rate(f.get("learning_rate"))
            + (f" ⚠ the {EDGE_WORDS.get(edge, edge)} tried" if edge else ""),
            "epochs": f.get("epochs", "—"),
            "optimizer steps": f"{f['steps']:,}" if f.get("steps") is not None else "—",
            "training seconds": ci(Interval.read(f.get("train_seconds")), "secs"),
            "val. accuracy after epoch 1": ci(Interval.read(f.get("val_accuracy_epoch1"))),
            "final val. accuracy": ci(Interval.read(f.get("final_val_accuracy"))),
            "steps to target": _reached(Interval.read(f.get("steps_to_target")), "count", reached, seeds),
            "seconds to target": _reached(Interval.read(f.get("seconds_to_target")), "secs", reached, seeds),
            "seconds per step": ci(Interval.read(f.get("seconds_per_step")), "secs"),
            "peak memory, one run alone in a fresh process: median [range] (repeats)": (
                f"{size(memory.get('median'))} [{size(memory.get('low'))} to {size(memory.get('high'))}] "
                f"({memory.get('repeats', '?')})"
                if memory
                else "—"
            ),
            "analytic size": size(f.get("analytic_memory_bytes")),
            "unstable seeds": f"{f.get('seeds_unstable', 0)} of {seeds}",
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("batch size")
    return styled(table, "batch-sizes").map(lambda text: "color: #cf222e" if "⚠" in str(text) else "")


def _reached(interval: Interval, kind: str, reached: int, seeds: int) -> str:
    if reached == 0:
        return f"not reached (0 of {seeds})"
    text = ci(interval, kind)
    return text if reached >= seeds else f"{text} ({reached} of {seeds} seeds)"


def _log_x(ax) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _colors(labels: list[str]) -> dict:
    return dict(zip(labels, sns.color_palette("colorblind", len(labels)), strict=True))


def tuning_figure(trials: pd.DataFrame) -> Figure | None:
    """Each size's tuning: mean final validation accuracy over the tuning seeds against the rate tried,
    the chosen rate starred."""
    if trials.empty:
        return None
    labels = order(trials["batch_label"].dropna())
    colors = _colors(labels)
    figure, axes = new_figure(1, 1, (8, 4))
    ax = axes[0, 0]
    for label in labels:
        own = trials[trials["batch_label"] == label]
        means = own.groupby("learning_rate")["mean_val_accuracy"].first().sort_index()
        ax.plot(means.index, means, "o-", color=colors[label], markersize=4, label=f"batch {label}")
        best = own[own["chosen"]].groupby("learning_rate")["mean_val_accuracy"].first()
        ax.plot(best.index, best, "*", color=colors[label], markeredgecolor="black", markersize=14, zorder=5)
    _log_x(ax)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax.set(xlabel="learning rate (log scale)", ylabel="final validation accuracy (mean over tuning seeds)",
           title="Each batch size's own learning rate (star: chosen)")  # fmt: skip
    ax.grid(color="0.93")
    ax.legend(fontsize=8, loc="best")
    figure.set_label(
        "Batch-size tuning: final validation accuracy against the learning rate tried, one line per batch"
        " size, a star at each size's chosen rate."
    )
    return figure


def curves_figure(curves: pd.DataFrame) -> Figure | None:
    """Validation accuracy against epochs, optimizer steps and seconds (log axes), a line per batch size
    at its own rate: the mean over seeds, shaded its range."""
    if curves.empty:
        return None
    labels = order(curves["batch_label"].dropna())
    colors = _colors(labels)
    figure, axes = new_figure(1, 3, (15, 4.4), sharey=True)
    panels = [
        ("epoch", "epochs (passes over the training subset)"),
        ("step", "optimizer steps"),
        ("seconds", "seconds of training (one run alone)"),
    ]
    for ax, (column, title) in zip(axes[0], panels, strict=True):
        for label in labels:
            rows = curves[curves["batch_label"] == label].dropna(subset=["val_accuracy"])
            grouped = rows.groupby("step")
            x = grouped[column].mean()
            own = f"batch {label}" + (f" (rate {rate(rows['learning_rate'].iloc[0])})" if len(rows) else "")
            accuracy = grouped["val_accuracy"]
            ax.plot(x, accuracy.mean(), marker="o", markersize=3, color=colors[label], label=own)
            ax.fill_between(x, accuracy.min(), accuracy.max(), color=colors[label], alpha=0.2, linewidth=0)
        _log_x(ax)
        ax.set_xlabel(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    axes[0, 0].set_ylabel("validation accuracy")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    figure.suptitle("Plain SGD, each batch size at its own tuned rate: mean over seeds, shaded: their range")
    figure.set_label(
        "Batch-size sweep: validation accuracy against epochs, optimizer steps and seconds of training, "
        "one line per batch size at its own tuned rate, shaded the range over seeds."
    )
    return figure
