"""The momentum sweep: momentum β against the effective step η/(1−β), plain and Nesterov.

Reads metrics/momentum.csv (one row per run: momentum, nesterov, effective_step, learning_rate, seed,
validation accuracy after epoch 1 and at the end, divergence), as the momentum stage wrote it. Means
and ranges over seeds are drawn, nothing is judged: the claims table says what the sweep decided.
"""

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory

from reports.results import new_figure, pct, plural, rate, styled

MEASURES = {"final_val_accuracy": "final validation accuracy", "val_accuracy_epoch1": "after epoch 1"}


def cells(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per momentum, Nesterov or not, and effective step: its learning rate, the mean, lowest and highest
    over seeds of each measure (diverged runs left out), and how many runs diverged."""
    rows = []
    for (momentum, nesterov, step), runs in sweep.groupby(["momentum", "nesterov", "effective_step"]):
        kept = runs[~runs["diverged"]]
        row = {"momentum": momentum, "nesterov": bool(nesterov), "effective_step": step,
               "learning_rate": runs["learning_rate"].iloc[0], "runs": len(runs),
               "diverged": int(runs["diverged"].sum())}  # fmt: skip
        for column in MEASURES:
            values = kept[column].dropna()
            row |= {
                column: values.mean() if len(values) else math.nan,
                f"{column}_low": values.min() if len(values) else math.nan,
                f"{column}_high": values.max() if len(values) else math.nan,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def _name(momentum: float, nesterov: bool) -> str:
    return f"β {momentum:g}" + (", Nesterov" if nesterov else "")


def sweep_text(sweep: pd.DataFrame) -> str:
    if sweep.empty:
        return "This run of the study has no momentum sweep."
    momenta = sorted(sweep["momentum"].unique())
    steps = sorted(sweep["effective_step"].unique())
    seeds = sorted(int(s) for s in sweep["seed"].dropna().unique())
    epochs = sweep["epochs_run"].max() if "epochs_run" in sweep else math.nan
    diverged = sweep[sweep["diverged"]]
    text = (
        "Once its velocity has built up, SGD with momentum β at learning rate η moves like plain SGD at the "
        "effective step η/(1−β): at one learning rate for every β, a momentum sweep would be a step-size "
        f"sweep in disguise. So the sweep trains every momentum ({', '.join(f'{m:g}' for m in momenta)}), "
        "plain and with Nesterov's look-ahead (for β > 0), at every effective step "
        f"({', '.join(f'{s:g}' for s in steps)}), each at η = step × (1−β), from "
        f"{plural(len(seeds), 'seed')} ({', '.join(map(str, seeds))})"
        + ("" if math.isnan(epochs) else f" for {plural(int(epochs), 'epoch')}")
        + ", scored on the validation split. In the figure, points above one effective step compare "
        "momenta at the same step; each line's peak is that momentum at its own best rate."
    )
    if len(diverged):
        by = diverged.groupby(["momentum", "nesterov", "effective_step"]).size()
        text += (
            " Diverged (left out of the means): "
            + ", ".join(
                f"{_name(m, n)} at step {s:g} ({k} of {len(sweep[(sweep['momentum'] == m) & (sweep['nesterov'] == n) & (sweep['effective_step'] == s)])})"  # noqa: E501
                for (m, n, s), k in by.items()
            )
            + "."
        )
    return text


def sweep_table(sweep: pd.DataFrame):
    """Final validation accuracy and accuracy after epoch 1 (means over seeds) per momentum and effective
    step, with the learning rate η each cell trained at."""
    found = cells(sweep)
    if found.empty:
        return None
    found["cell"] = [
        f"{pct(r.final_val_accuracy)} / {pct(r.val_accuracy_epoch1)} (η {rate(r.learning_rate)})"
        + (f", {r.diverged} of {r.runs} diverged" if r.diverged else "")
        for r in found.itertuples()
    ]
    found["setting"] = [_name(m, n) for m, n in zip(found["momentum"], found["nesterov"], strict=True)]
    order = list(dict.fromkeys(found.sort_values(["nesterov", "momentum"])["setting"]))
    table = found.pivot(index="setting", columns="effective_step", values="cell").reindex(order)
    table.columns = [f"effective step {s:g}" for s in table.columns]
    return styled(table.fillna("—").rename_axis("final / after epoch 1 (η)"), "momentum-sweep")


def sweep_figure(sweep: pd.DataFrame) -> Figure | None:
    """Validation accuracy against the effective step, a line per momentum: final (top) and after epoch
    1 (bottom), plain (left) and Nesterov (right); points are means over seeds, bars their range."""
    found = cells(sweep)
    if found.empty:
        return None
    momenta = sorted(found["momentum"].unique())
    colors = dict(zip(momenta, sns.color_palette("viridis", len(momenta)), strict=True))
    kinds = [k for k in (False, True) if (found["nesterov"] == k).any()]
    figure, axes = new_figure(2, len(kinds), (6.2 * len(kinds), 7.4), sharex=True, sharey="row")
    for col, nesterov in enumerate(kinds):
        for row, (column, words) in enumerate(MEASURES.items()):
            ax = axes[row, col]
            if nesterov:  # β 0 has no Nesterov form: plain SGD is drawn as the reference
                reference = found[(found["momentum"] == 0) & ~found["nesterov"]].sort_values("effective_step")
                ax.plot(reference["effective_step"], reference[column], "--", color="0.5",
                        label="β 0 (plain SGD)")  # fmt: skip
            for momentum, line in found[found["nesterov"] == nesterov].groupby("momentum"):
                line = line.sort_values("effective_step")
                color = colors[momentum]
                ax.plot(line["effective_step"], line[column], "o-", color=color, markersize=4)
                ax.vlines(line["effective_step"], line[f"{column}_low"], line[f"{column}_high"], color=color,
                          linewidth=2, alpha=0.5)  # fmt: skip
                bottom = blended_transform_factory(ax.transData, ax.transAxes)
                bad = line[line["diverged"] > 0]
                ax.plot(bad["effective_step"], [0.04] * len(bad), "x", color=color, markersize=7,
                        markeredgewidth=2, transform=bottom)  # fmt: skip
            ax.set_title(f"{'Nesterov' if nesterov else 'plain'} momentum: {words}", fontsize=10)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
            ax.grid(color="0.93")
            if row == 1:
                ax.set_xlabel("effective step η/(1−β) (log scale)")
            if col == 0:
                ax.set_ylabel(f"validation accuracy, {words}")
    handles = [Line2D([], [], color=colors[m], marker="o", markersize=4) for m in momenta]
    handles.append(Line2D([], [], color="0.5", linestyle="--"))
    labels = [f"β {m:g}" for m in momenta] + ["β 0 (plain), beside Nesterov"]
    handles.append(Line2D([], [], color="0.3", marker="x", linestyle="", markeredgewidth=2))
    labels.append("some seed diverged")
    figure.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=9)
    figure.suptitle("Momentum sweep: mean over seeds, bar: range over seeds")
    figure.set_label(
        "Momentum sweep: final validation accuracy and accuracy after epoch 1 against the effective step "
        "η/(1−β), one line per momentum, plain momentum and Nesterov's in separate panels; bars show the "
        "range over seeds."
    )
    return figure
