"""The 2-D landscapes: what each optimizer did on functions whose minima are known.

Reads what the landscapes stage wrote: metrics/landscapes.csv (one row per function, test, optimizer,
setting and start: did it end in a global minimum, escape a local minimum's basin, how many barriers it
crossed, after how many steps it settled) and plots/landscapes/trajectories.csv (the first starts'
paths at each optimizer's own best rate, thinned). The functions themselves, their domains and minima,
come from study/landscapes.py. Shares of starts are the stage's own (metrics/landscapes.json); what
they decide is in the claims.
"""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from reports.results import new_figure, pct, rate, styled
from study.landscapes import FUNCTIONS, Landscape

GRID_POINTS = 240
LEVELS = 14
TEST_WORDS = {
    "reach": "reach: share of starts (uniform over the domain) ending in a global minimum",
    "escape": "escape: share of starts inside a local minimum's basin ending in a global minimum's basin",
    "settle": "settle: share of starts beside the saddle that settled in a minimum, and the median steps",
}
SETTING_WORDS = {
    "own best": "own best rate",
    "matched step": "plain SGD's effective step",
}


def landscapes_text(outcomes: pd.DataFrame) -> str:
    """What the tests are, on which functions, from how many starts, and at which rates."""
    if outcomes.empty:
        return "This run of the study has no landscapes."
    functions = list(dict.fromkeys(outcomes["function"]))
    starts = outcomes.groupby(["function", "test", "variant", "setting"])["start"].nunique()
    lines = [
        "MNIST shows no local minima to escape, so the claims about escaping them are tested on 2-D "
        "functions whose minima are known. The gradient there is exact, so batch size changes nothing: "
        "optimizers that differ only in batch size take identical steps, and run once, under the first "
        "variant's name (*stands for* lists the others). Each optimizer ran at every rate of one grid "
        "from tuning starts and keeps its own best rate per function; it is then judged from other starts "
        "(the same for every optimizer). SGD with momentum also runs at plain SGD's best effective step "
        "η/(1−β) (*matched step*), so that what it does better is momentum's, not a larger step's. "
        f"Starts per test: {int(starts.min())}"
        + (f" to {int(starts.max())}" if starts.max() != starts.min() else "")
        + ".",
        "",
    ]
    lines += [f"- **{f}**: {FUNCTIONS[f].description}." for f in functions if f in FUNCTIONS]
    tests = [TEST_WORDS[t] for t in dict.fromkeys(outcomes["test"]) if t in TEST_WORDS]
    lines += ["", "Tests: " + "; ".join(tests) + "."]
    return "\n".join(lines)


def _cell(found: dict | None, test: str) -> str:
    """One optimizer's result in one test, as the landscapes stage summarised its starts
    (metrics/landscapes.json): its share, the test's second number, the share that diverged, its rate."""
    if not found:
        return "—"
    if test == "escape":
        text = pct(found.get("share_escaped") or 0.0, 1)
        if found.get("median_barrier_crossings") is not None:
            text += f", median {found['median_barrier_crossings']:g} crossings"
    else:
        text = pct(found.get("share_global"), 1)
        if found.get("median_steps_to_tolerance") is not None:
            text += f", median {found['median_steps_to_tolerance']:,.0f} steps"
    if found.get("share_diverged"):
        text += f", {pct(found['share_diverged'], 0)} diverged"
    return text + f" (η {rate(found.get('learning_rate'))})"


def share_table(outcomes: pd.DataFrame, shares: dict):
    """Per optimizer and setting (own best rate, plain SGD's effective step) and per function and test:
    the share of starts that reached a global minimum (reach, settle) or escaped (escape), the median
    steps to settle or barrier crossings, the share that diverged, and the rate: the landscapes stage's
    own summary (`shares`, metrics/landscapes.json), never counted again here."""
    if outcomes.empty or not shares:
        return None
    columns = list(dict.fromkeys(zip(outcomes["function"], outcomes["test"], strict=True)))
    rows = []
    keys = ["variant", "stands_for", "setting"]
    for (variant, stands_for, setting), _ in outcomes.groupby(keys, sort=False, dropna=False):
        names = [n for n in str(stands_for or "").split() if n != variant]
        row = {
            "optimizer": variant + (f" (= {', '.join(names)})" if names else ""),
            "rate": SETTING_WORDS.get(setting, setting),
        }
        for function, test in columns:
            found = ((shares.get(function) or {}).get(test) or {}).get(variant) or {}
            row[f"{function}, {test}"] = _cell(found.get(setting), test)
        rows.append(row)
    return styled(pd.DataFrame(rows), "landscape-shares").hide(axis="index")


def trajectories_figure(trajectories: pd.DataFrame, outcomes: pd.DataFrame):
    """One panel per function and test: its contours, global minima (stars), local minima (dots) and
    every optimizer's path from the test's first kept start at its own best rate. None when no path was
    kept."""
    if trajectories.empty:
        return None
    panels = list(dict.fromkeys(zip(trajectories["function"], trajectories["test"], strict=True)))
    variants = list(dict.fromkeys(trajectories["variant"]))
    # tab10 without its grey, which the contours would swallow.
    tab = [color for i, color in enumerate(sns.color_palette("tab10")) if i != 7]
    colors = tab[: len(variants)] if len(variants) <= len(tab) else sns.color_palette("husl", len(variants))
    palette = dict(zip(variants, colors, strict=True))
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    figure, axes = new_figure(nrows, ncols, (5.6 * ncols, 4.6 * nrows + 0.8))
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (function, test) in zip(axes.flat, panels, strict=False):
        _contours(ax, FUNCTIONS[function])
        paths = trajectories[(trajectories["function"] == function) & (trajectories["test"] == test)]
        first = paths["start"].min()
        paths = paths[paths["start"] == first].sort_values("step")
        ended = outcomes[(outcomes["function"] == function) & (outcomes["test"] == test)
                         & (outcomes["start"] == first) & (outcomes["setting"] == "own best")]  # fmt: skip
        for variant, color in palette.items():
            path = paths[paths["variant"] == variant]
            if path.empty:
                continue
            ax.plot(path["x"], path["y"], color=color, linewidth=1.6, alpha=0.85, zorder=3)
            diverged = ended.loc[ended["variant"] == variant, "diverged"].astype(bool).any()
            ax.plot(path["x"].iloc[-1], path["y"].iloc[-1], marker="X" if diverged else "o",
                    markersize=8 if diverged else 5, color=color, markeredgecolor="black",
                    markeredgewidth=0.6, zorder=4)  # fmt: skip
        x0, y0 = paths["x"].iloc[0], paths["y"].iloc[0]
        ax.plot(x0, y0, "o", color="black", markeredgecolor="white", markersize=8, zorder=5)
        ax.set_title(f"{function}, {test} test: start {first:.0f} at ({x0:.2f}, {y0:.2f})", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    handles = [Line2D([], [], color=palette[x], linewidth=2, label=x) for x in variants]
    handles += [
        _marker("o", "black", "white", 8, "start"),
        _marker("*", "gold", "black", 13, "global minimum"),
        _marker("o", "white", "black", 4, "local minimum"),
        _marker("X", "grey", "black", 7, "last finite point of a diverged path"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    figure.suptitle("One start's path per optimizer, each at its own best rate")
    figure.set_label(
        "Landscapes: contour maps of each test function with its global and local minima, and one start's"
        " path per optimizer at its own best rate."
    )
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
