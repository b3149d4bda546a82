"""The report's section on the 2-D landscapes: where each variant ended, with its uncertainty.

Reads what stages/landscapes.py wrote: metrics/landscapes.csv (one row per function, variant and
start: `outcomes` here) and plots/landscapes/trajectories.csv (the first starts' paths, thinned:
`trajectories`). The functions themselves, their domains and minima, come from study/landscapes.py.
Nothing is known in advance about which variant does best: every sentence is computed from the rows.
"""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from scipy import stats

from reports.results import names, new_figure, pct, v
from study.landscapes import FUNCTIONS, Landscape

GRID_POINTS = 240
LEVELS = 14


def share_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per function and variant, in the rows' order: the share of starts that ended in a global minimum
    with its 95% Wilson interval, the share that diverged, and the median steps to tolerance over the
    starts that got there (NaN when none did)."""
    rows = []
    for (function, variant), runs in outcomes.groupby(["function", "variant"], sort=False):
        n, reached = len(runs), int(runs["reached_global"].astype(bool).sum())
        interval = stats.binomtest(reached, n).proportion_ci(confidence_level=0.95, method="wilson")
        rows.append(
            {
                "function": function,
                "variant": variant,
                "learning_rate": runs["learning_rate"].iloc[0],
                "n_starts": n,
                "reached_global": reached,
                "share_global": reached / n,
                "share_global_low": interval.low,
                "share_global_high": interval.high,
                "share_diverged": runs["diverged"].astype(bool).mean(),
                "median_steps_to_tolerance": runs["steps_to_tolerance"].astype(float).median(),
            }
        )
    return pd.DataFrame(rows)


def trajectories_figure(trajectories: pd.DataFrame, outcomes: pd.DataFrame):
    """One panel per function: its contours, global minima (stars), local minima (dots) and every
    variant's path from the same start, the first of those kept. None when no path was kept."""
    if trajectories.empty:
        return None
    functions = list(dict.fromkeys(trajectories["function"]))
    # Variants that took the same steps (plain SGD at any batch size: a function of two numbers has no
    # data to batch) are drawn once, under all their names.
    groups = _same_runs(outcomes, trajectories)
    # tab10 without its grey, which the contours would swallow.
    tab = [color for i, color in enumerate(sns.color_palette("tab10")) if i != 7]
    colors = tab[: len(groups)] if len(groups) <= len(tab) else sns.color_palette("husl", len(groups))
    palette = {group[0]: color for group, color in zip(groups, colors, strict=True)}
    ncols = min(2, len(functions))
    nrows = -(-len(functions) // ncols)
    figure, axes = new_figure(nrows, ncols, (5.6 * ncols, 4.6 * nrows + 0.8))
    for ax in axes.flat[len(functions) :]:
        ax.set_visible(False)
    for ax, function in zip(axes.flat, functions, strict=False):
        _contours(ax, FUNCTIONS[function])
        paths = trajectories[trajectories["function"] == function]
        first = paths["start"].min()
        paths = paths[paths["start"] == first].sort_values("step")
        ended = outcomes[(outcomes["function"] == function) & (outcomes["start"] == first)]
        for variant, color in palette.items():
            path = paths[paths["variant"] == variant]
            if path.empty:
                continue
            ax.plot(path["x"], path["y"], color=color, linewidth=1.6, alpha=0.85, zorder=3)
            diverged = ended.loc[ended["variant"] == variant, "diverged"].astype(bool).any()
            ax.plot(
                path["x"].iloc[-1],
                path["y"].iloc[-1],
                marker="X" if diverged else "o",
                markersize=8 if diverged else 5,
                color=color,
                markeredgecolor="black",
                markeredgewidth=0.6,
                zorder=4,
            )
        x0, y0 = paths["x"].iloc[0], paths["y"].iloc[0]
        ax.plot(x0, y0, "o", color="black", markeredgecolor="white", markersize=8, zorder=5)
        ax.set_title(f"{function}: start {first} at ({x0:.2f}, {y0:.2f})", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    handles = [Line2D([], [], color=palette[g[0]], linewidth=2, label=" = ".join(g)) for g in groups]
    handles += [
        _marker("o", "black", "white", 8, "start"),
        _marker("*", "gold", "black", 13, "global minimum"),
        _marker("o", "white", "black", 4, "local minimum"),
        _marker("X", "grey", "black", 7, "last finite point of a diverged path"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    return figure


def _marker(marker: str, color, edge, size: float, label: str) -> Line2D:
    return Line2D(
        [], [], linestyle="", marker=marker, color=color, markeredgecolor=edge, markersize=size, label=label
    )


def _view(landscape: Landscape) -> tuple[tuple[float, float], tuple[float, float]]:
    """What a panel shows: the starts' domain and every minimum, with a margin."""
    corners = list(zip(*landscape.domain, strict=True))  # (xmin, ymin), (xmax, ymax)
    points = np.array([*landscape.global_minima, *landscape.local_minima, *corners])
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.12 * (high - low)
    return (low[0] - margin[0], high[0] + margin[0]), (low[1] - margin[1], high[1] + margin[1])


def _contours(ax, landscape: Landscape) -> None:
    (xmin, xmax), (ymin, ymax) = _view(landscape)
    x, y = np.meshgrid(np.linspace(xmin, xmax, GRID_POINTS), np.linspace(ymin, ymax, GRID_POINTS))
    z = landscape.value(x, y)
    height = z - z.min()
    top = height.max()
    if top > 10 * np.median(height):  # a steep rim around a flat floor: space the levels by ratio
        levels = z.min() + np.concatenate([[0], np.geomspace(top * 1e-4, top, LEVELS)])
    else:
        levels = np.linspace(z.min(), z.max(), LEVELS + 1)
    ax.contourf(x, y, z, levels=levels, cmap="Greys", alpha=0.4, zorder=1)
    ax.contour(x, y, z, levels=levels, colors="grey", linewidths=0.4, zorder=2)
    if landscape.local_minima:
        lx, ly = zip(*landscape.local_minima, strict=True)
        ax.plot(lx, ly, "o", color="white", markeredgecolor="black", markersize=4, zorder=2.5)
    gx, gy = zip(*landscape.global_minima, strict=True)
    ax.plot(gx, gy, "*", color="gold", markeredgecolor="black", markersize=13, zorder=2.5)
    (dxmin, dxmax), (dymin, dymax) = landscape.domain
    # The domain the starts were drawn from, dotted.
    ax.add_patch(
        Rectangle((dxmin, dymin), dxmax - dxmin, dymax - dymin, fill=False, linestyle=":", linewidth=0.8)
    )
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def landscapes_text(outcomes: pd.DataFrame) -> str:
    """A few Markdown bullets computed from the rows: who ended in the global minimum most often where
    there are local minima, who was fastest where there are none, who diverged, who moved alike."""
    if outcomes.empty:
        return "The landscapes stage wrote no runs."
    table = share_table(outcomes)
    n = int(table["n_starts"].max())
    lines = []
    for function, rows in table.groupby("function", sort=False):
        landscape = FUNCTIONS.get(function)
        if landscape is not None and landscape.local_minima:
            lines.append(_escape_text(function, rows, n))
        else:
            lines.append(_speed_text(function, rows, outcomes[outcomes["function"] == function]))
    lines.append(_diverged_text(table))
    same = [group for group in _same_runs(outcomes) if len(group) > 1]
    if same:
        groups = "; ".join(names(group) for group in same)
        lines.append(f"- Ended at the same point from every start on every function: {groups}.")
    return "\n".join(lines)


def _who(chosen, every) -> str:
    """The chosen variants by name, or as the exception when they are most of them."""
    chosen, every = list(chosen), list(every)
    rest = [name for name in every if name not in chosen]
    if not rest:
        return "every variant"
    return f"every variant but {names(rest)}" if len(chosen) > len(every) / 2 else names(chosen)


def _escape_text(function: str, rows: pd.DataFrame, n: int) -> str:
    best = rows[rows["share_global"] == rows["share_global"].max()]
    worst = rows[rows["share_global"] == rows["share_global"].min()]
    b = best.iloc[0]
    text = (
        f"- **{function}** (with local minima): {_who(best['variant'], rows['variant'])} ended in the global "
        "minimum "
        f"from the most starts, {pct(b['share_global'], 1)} "
        f"[{pct(b['share_global_low'], 1)}, {pct(b['share_global_high'], 1)}] of {n}"
    )
    if len(worst) < len(rows):
        w = worst.iloc[0]
        text += f"; {_who(worst['variant'], rows['variant'])} from the fewest, {pct(w['share_global'], 1)}"
    else:
        text += ", as every variant did"
    return text + "."


def _speed_text(function: str, rows: pd.DataFrame, outcomes: pd.DataFrame) -> str:
    """The fastest by the steps until half the starts had settled within tolerance (starts that never
    did count as never), so that a variant that got there from a few easy starts does not win."""
    steps = outcomes["steps_to_tolerance"].astype(float).fillna(np.inf)
    half = steps.groupby(outcomes["variant"], sort=False).median()
    most = rows[rows["share_global"] == rows["share_global"].max()]
    share = pct(most["share_global"].iloc[0], 1)
    reach = f"{_who(most['variant'], rows['variant'])} reached a global minimum from the most starts, {share}"
    finite = half[np.isfinite(half)]
    if finite.empty:
        return f"- **{function}**: no variant settled within tolerance from half of the starts; {reach}."
    fastest = finite[finite == finite.min()]
    return (
        f"- **{function}**: {names(fastest.index)} {'was' if len(fastest) == 1 else 'were'} fastest: half "
        "of the starts settled within "
        f"tolerance of a global minimum after {finite.min():,.0f} steps ({len(finite)} of {len(half)} "
        f"variants got half of them there); {reach}."
    )


def _diverged_text(table: pd.DataFrame) -> str:
    diverged = table[table["share_diverged"] > 0]
    if diverged.empty:
        return "- No variant diverged from any start."
    parts = [
        f"{v(row.variant)} on {row.function} ({pct(row.share_diverged, 1)})"
        for row in diverged.sort_values("share_diverged", ascending=False).itertuples()
    ]
    return "- Diverged from some starts (share of starts): " + ", ".join(parts) + "; no other run did."


def _same_runs(outcomes: pd.DataFrame, trajectories: pd.DataFrame | None = None) -> list[list[str]]:
    """The variants grouped by what they did, in order: a group's variants ended at the same point from
    every start (and, given `trajectories`, took the same kept paths)."""
    runs: dict[tuple, list[str]] = {}
    for variant, rows in outcomes.sort_values(["function", "start"]).groupby("variant", sort=False):
        key = tuple(rows[["function", "start", "final_x", "final_y"]].astype(str).itertuples(index=False))
        if trajectories is not None:
            path = trajectories[trajectories["variant"] == variant].sort_values(["function", "start", "step"])
            key += tuple(path[["function", "start", "step", "x", "y"]].astype(str).itertuples(index=False))
        runs.setdefault(key, []).append(variant)
    return list(runs.values())
