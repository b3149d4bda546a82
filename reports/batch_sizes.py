"""The batch-size sweep in the report: learning curves per epoch, step and second, and the primer's
table of tradeoffs filled with the sweep's numbers.

Reads metrics/batch_size.csv (one row per run) and plots/batch_size_curves.csv (every validation
score: log-spaced steps and epoch ends), as compare wrote them.
"""

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from reports.results import Interval, ci, new_figure, secs
from study.claims import at_budget, size_roles

# The primer's words for the three classic variants, by study.claims.size_roles' parts: (speed, memory).
PRIMER_WORDS = {"stochastic": ("fast", "low"), "mini": ("balanced", "balanced"), "full": ("slow", "high")}
ROLE_NAMES = {"stochastic": "stochastic", "mini": "mini-batch", "full": "batch"}


def _order(labels) -> list[str]:
    return sorted(set(labels), key=lambda x: math.inf if x == "full" else int(x))


def read_runs(path) -> pd.DataFrame:
    runs = pd.read_csv(path, dtype={"batch_label": str})
    for column in ("epochs_to_target", "steps_to_target", "seconds_to_target"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")  # "not reached" -> NaN
    return runs


def read_curves(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"batch_label": str})


def tradeoffs_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per batch size, means over seeds with 95% intervals, beside the primer's words where it has any."""
    labels = _order(runs["batch_label"])
    target = runs["target_accuracy"].iloc[0]
    role_of = {label: role for role, label in size_roles(labels).items()}
    rows = {}
    for label in labels:
        r = runs[runs["batch_label"] == label]
        first_epoch = curves[(curves["batch_label"] == label) & np.isclose(curves["epoch"], 1.0)]
        role = role_of.get(label)
        speed, memory = PRIMER_WORDS.get(role, ("", ""))
        reached = int(r["steps_to_target"].notna().sum())
        name = f"{label} ({ROLE_NAMES[role]})" if role else label
        rows[name] = {
            "primer: speed": speed or "—",
            "val. accuracy after 1 epoch": ci(Interval.of(first_epoch["val_accuracy"])),
            f"final val. accuracy ({int(r['epochs_run'].max())} epochs)": ci(
                Interval.of(r["final_val_accuracy"])
            ),
            f"steps to {100 * target:.0f}%": _reached(r["steps_to_target"], reached, len(r), "count"),
            f"seconds to {100 * target:.0f}%": _reached(r["seconds_to_target"], reached, len(r), "secs"),
            "seconds per epoch": secs(r["seconds_per_epoch"].mean()),
            "primer: memory": memory or "—",
            "peak memory above start": ci(Interval.of(r["peak_memory_bytes"]), "bytes"),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "batch size"
    return table


def _reached(values: pd.Series, reached: int, seeds: int, kind: str) -> str:
    if reached == 0:
        return f"not reached (0/{seeds})"
    text = ci(Interval.of(values), kind)
    return text if reached == seeds else f"{text} ({reached}/{seeds} seeds)"


def curves_figure(curves: pd.DataFrame) -> Figure | None:
    """Validation accuracy against epochs, optimizer steps and seconds (log axes), a line per batch size."""
    if curves.empty:
        return None
    labels = _order(curves["batch_label"])
    colors = dict(zip(labels, sns.color_palette("viridis", len(labels)), strict=True))
    figure, axes = new_figure(1, 3, (15, 4.2), sharey=True)
    panels = [
        ("epoch", "epochs (passes over the training split)"),
        ("step", "optimizer steps"),
        ("seconds", "seconds of training (one run alone)"),
    ]
    for ax, (column, title) in zip(axes[0], panels, strict=True):
        for label in labels:
            rows = curves[curves["batch_label"] == label].dropna(subset=["val_accuracy"])
            grouped = rows.groupby("step")
            x = grouped[column].mean()
            stats = [Interval.of(group["val_accuracy"]) for _, group in grouped]
            mean = [s.mean for s in stats]
            ax.plot(x, mean, marker="o", markersize=3, color=colors[label], label=f"batch {label}")
            low = [s.low if s.has_interval else s.mean for s in stats]
            high = [s.high if s.has_interval else s.mean for s in stats]
            ax.fill_between(x, low, high, color=colors[label], alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("validation accuracy")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    figure.suptitle("Mini-batch SGD at one learning rate: mean over seeds, 95% band")
    return figure


def batch_text(runs: pd.DataFrame, curves: pd.DataFrame, found: list[dict]) -> str:
    """What the sweep shows, in words computed from it, and what the claims table made of it."""
    labels = _order(runs["batch_label"])
    first = {
        label: curves[(curves["batch_label"] == label) & np.isclose(curves["epoch"], 1.0)][
            "val_accuracy"
        ].mean()
        for label in labels
    }
    per_epoch_best = max(first, key=first.get)
    seconds = runs.groupby("batch_label")["seconds_to_target"].median().dropna()
    speed = runs.groupby("batch_label")["seconds_per_step"].median()
    target = runs["target_accuracy"].iloc[0]
    lines = [
        f"After one pass over the data, batch {per_epoch_best} is furthest ahead "
        f"({100 * first[per_epoch_best]:.1f}% on validation, against {100 * first['full']:.1f}% for the "
        "whole split, which has taken a single step by then)."
        if "full" in first
        else "",
        f"A step costs {1e6 * speed.min():.0f} µs at batch {speed.idxmin()} and "
        f"{1e3 * speed.max():.0f} ms at batch {speed.idxmax()} (one run alone on this machine).",
        _per_step_text(curves, [x for x in labels if x != "full"]),
    ]
    if len(seconds):
        fastest = seconds.idxmin()
        lines.append(
            f"In wall-clock terms, batch {fastest} reaches {100 * target:.0f}% validation accuracy first "
            f"(median {secs(seconds.min())}); "
            + (
                "batch sizes that never got there in the study's epochs: "
                + ", ".join(x for x in labels if x not in seconds.index)
                + "."
                if len(seconds) < len(labels)
                else "every batch size got there."
            )
        )
    claim = next((c for c in found if c["id"] == "batch_tradeoffs"), None)
    if claim:
        lines.append(f"The claims table's verdict on the primer's tradeoffs: **{claim['verdict']}**.")
    return "\n\n".join(line for line in lines if line)


def _per_step_text(curves: pd.DataFrame, labels: list[str]) -> str:
    """Each batch size's validation accuracy at the most steps every one of them took (the whole split,
    with one step per epoch, is left out: its few steps would set the budget)."""
    if len(labels) < 2:
        return ""
    totals = [curves[curves["batch_label"] == x]["step"].max() for x in labels]
    budget = min(totals)
    at = {}
    for label in labels:
        rows = curves[curves["batch_label"] == label]
        values = [
            at_budget(seed_rows.sort_values("step"), "step", budget) for _, seed_rows in rows.groupby("seed")
        ]
        at[label] = Interval.of([x for x in values if x is not None])
    parts = ", ".join(f"batch {label} {ci(at[label])}" for label in labels)
    return (
        f"Per optimizer step, after {budget:,.0f} steps (the most that every batch size but the whole "
        f"split took), validation accuracy: {parts}."
    )
