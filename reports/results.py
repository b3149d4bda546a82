"""The study's tables as the report reads them, and numbers as words.

Reads only what compare and evaluate wrote: metrics/summary.json (per variant and protocol, each
metric's mean over seeds with its 95% interval), metrics/runs.csv (one row per run), plots/curves.csv,
metrics/pairwise.csv (paired differences in test accuracy), metrics/tuning.csv and tuning.json (the
learning rates tuning tried, and its protocol), metrics/momentum.csv and plots/momentum_curves.csv (the
momentum sweep) and metrics/eval/. Nothing is known in advance about which optimizer wins, and a variant,
protocol or section the study did not produce is reported as absent, never assumed.

The variants are grouped by their settings, not by their names: full-batch plain SGD is BGD, batch
size 1 is SGD, any other plain SGD is mini-batch (the first one is the baseline the others are compared
with); SGD with momentum, the adaptive optimizers and the scheduled variants form the other groups.
"""

import json
import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from ruamel.yaml import YAML

from study.statistics import describe, paired_difference

PROTOCOLS = ("defaults", "tuned")
TO_TARGET = ["epochs_to_target", "steps_to_target", "seconds_to_target"]
CURVE_MEASURES = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds", "steps"]
FLAGS = ["diverged", "nesterov", "op_determinism", "chosen"]
VERDICT_TEXT = {
    "better": "**better**",
    "worse": "**worse**",
    "within noise": "within noise",
    "one seed": "one seed, no interval",
    "unknown": "not comparable",
}
TEXT_COLUMNS = {
    "variant",
    "protocol",
    "optimizer",
    "schedule",
    "memory_kind",
    "device",
    "tensorflow",
    "keras",
}


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% interval; n is how many seeds had a value."""

    mean: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @classmethod
    def of(cls, values) -> "Interval":
        d = describe(v for v in values if not missing(v))
        return cls(*(math.nan if d[k] is None else d[k] for k in ("mean", "ci_low", "ci_high")), d["n_seeds"])

    @property
    def known(self) -> bool:
        return not missing(self.mean)

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not (missing(self.low) or missing(self.high))


@dataclass(frozen=True)
class Difference:
    """a − b, paired by seed: its mean, 95% interval, seeds compared, and share of seeds where a won."""

    mean: float
    low: float
    high: float
    n: int
    share: float = math.nan

    @classmethod
    def of(cls, a, b) -> "Difference":
        """From two per-seed sequences in the same seed order (study.statistics.paired_difference)."""
        d = paired_difference([None if missing(x) else x for x in a], [None if missing(y) else y for y in b])
        values = [math.nan if d[k] is None else d[k] for k in ("mean", "ci_low", "ci_high", "share_a_better")]
        return cls(values[0], values[1], values[2], d["n_seeds"], values[3])

    @property
    def verdict(self) -> str:
        """`better`, `worse`, `within noise` (the interval includes 0), `one seed` or `unknown`."""
        if missing(self.mean):
            return "unknown"
        if self.n < 2:
            return "one seed"
        if self.low <= 0 <= self.high:
            return "within noise"
        return "better" if self.mean > 0 else "worse"

    def text(self) -> str:
        """`+0.25 points [-0.10, 0.60], higher in 3 of 5 seeds`."""
        if missing(self.mean):
            return "not comparable"
        text = ci(Interval(self.mean, self.low, self.high, self.n), "points")
        if not missing(self.share) and self.n >= 1:
            text += f", higher in {round(self.share * self.n)} of {self.n} seeds"
        return text


class Results:
    """Every table of the study, cleaned: flags as booleans, numbers as floats (missing: NaN)."""

    def __init__(
        self,
        summary: dict,
        runs: pd.DataFrame,
        curves: pd.DataFrame,
        evaluations: dict[str, dict],
        target: float,
        pairwise: pd.DataFrame | None = None,
        tuning: pd.DataFrame | None = None,
        tuning_protocol: dict | None = None,
        momentum: pd.DataFrame | None = None,
        momentum_curves: pd.DataFrame | None = None,
    ):
        self.target = float(target)
        self.summary = _summary_frame(summary)
        self.runs = _clean(runs, ["variant", "protocol", "seed"])
        self.curves = _clean(curves, ["variant", "protocol", "seed", "epoch", *CURVE_MEASURES])
        self.evaluations = evaluations
        self.pairwise = _clean(pairwise, ["protocol", "variant_a", "variant_b", "mean", "within_noise"])
        self.tuning = _clean(tuning, ["variant", "learning_rate", "val_accuracy", "diverged", "chosen"])
        self.tuning_protocol = tuning_protocol or {}
        self.momentum = _clean(momentum, ["momentum", "nesterov", "seed", "final_val_accuracy", "diverged"])
        self.momentum_curves = _clean(
            momentum_curves, ["momentum", "nesterov", "seed", "epoch", "loss", "val_accuracy", "val_loss"]
        )
        for frame in (self.momentum, self.momentum_curves):
            frame["momentum"] = frame["momentum"].fillna(0.0)

        named = list(dict.fromkeys([*self.summary.index.get_level_values("variant"), *self.runs["variant"]]))
        self.variants: list[str] = [v for v in named if isinstance(v, str)]
        present = set(self.summary.index.get_level_values("protocol")) | set(self.runs["protocol"].dropna())
        self.protocols: list[str] = [p for p in PROTOCOLS if p in present] + sorted(present - set(PROTOCOLS))
        kept = survivors(self.curves, self.runs, ["variant", "protocol"])
        self.mean_curves = bands(kept, ["variant", "protocol", "epoch"], CURVE_MEASURES)
        self.settings = _settings(self.runs, self.variants)
        self.groups = _groups(self.settings)
        colors = sns.color_palette("tab10" if len(self.variants) <= 10 else "husl", len(self.variants))
        self.palette = dict(zip(self.variants, colors, strict=True))

    # --- what the study holds -------------------------------------------------------------------

    @property
    def baseline(self) -> str | None:
        """The plain mini-batch SGD variant the other groups are compared with."""
        return (self.groups["mbgd"] or [None])[0]

    @property
    def epochs(self) -> int:
        epochs = pd.concat([self.runs["epochs_run"], self.curves["epoch"]]).max() if len(self.runs) else 0
        return 0 if missing(epochs) else int(epochs)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.runs["seed"].dropna().unique())

    @property
    def chance(self) -> float | None:
        """The accuracy of guessing: one over the number of classes the evaluations score."""
        for protocols in self.evaluations.values():
            for scores in (protocols or {}).values():
                if isinstance(scores, dict) and scores.get("per_class_accuracy"):
                    return 1 / len(scores["per_class_accuracy"])
        return None

    @property
    def target_text(self) -> str:
        return f"{100 * self.target:g}%"

    def section(self, name: str) -> list[str]:
        """The variants a section plots: its group, and the baseline beside it when the group exists."""
        if name == "gd":
            return self.groups["bgd"] + self.groups["sgd"] + self.groups["mbgd"]
        members = self.groups[name]
        return ([self.baseline] if members and self.baseline else []) + members

    # --- one variant under one protocol ---------------------------------------------------------

    def value(self, variant: str, protocol: str, column: str) -> float:
        """A summary field: a metric's mean over seeds, or learning_rate, seeds, seeds_reaching_target."""
        key = (variant, protocol)
        if key not in self.summary.index or column not in self.summary.columns:
            return math.nan
        return self.summary.at[key, column]

    def interval(self, variant: str, protocol: str, metric: str) -> Interval:
        """A metric's mean over seeds with its 95% interval, as compare wrote it."""
        mean, low, high, n = (self.value(variant, protocol, metric + s) for s in ("", "_low", "_high", "_n"))
        return Interval(mean, low, high, _int(n))

    def learning_rate(self, variant: str, protocol: str) -> float:
        """The (initial) rate a variant ran at under a protocol; tuned: the rate its tuning chose."""
        rate = self.value(variant, protocol, "learning_rate")
        if missing(rate):
            rates = self.runs_of(variant, protocol)["learning_rate"].dropna()
            if protocol == "tuned" and rates.empty:
                trials = self.tuning[(self.tuning["variant"] == variant) & self.tuning["chosen"]]
                rates = trials["learning_rate"].dropna()
            rate = rates.iloc[0] if len(rates) else math.nan
        return rate

    def runs_of(self, variant: str, protocol: str | None = None) -> pd.DataFrame:
        mask = self.runs["variant"] == variant
        if protocol is not None:
            mask &= self.runs["protocol"] == protocol
        return self.runs[mask]

    def seed_count(self, variant: str, protocol: str) -> int:
        seeds = self.value(variant, protocol, "seeds")
        return len(self.runs_of(variant, protocol)) if missing(seeds) else int(seeds)

    def reached(self, variant: str, protocol: str) -> int:
        reached = self.value(variant, protocol, "seeds_reaching_target")
        if missing(reached):
            reached = self.runs_of(variant, protocol)["epochs_to_target"].notna().sum()
        return int(reached)

    def diverged(self, variant: str, protocol: str | None = None) -> pd.DataFrame:
        runs = self.runs_of(variant, protocol)
        return runs.loc[runs["diverged"], ["protocol", "seed", "diverged_epoch"]]

    def difference(self, protocol: str, a: str, b: str) -> Difference | None:
        """a − b in test accuracy, paired by seed, as compare wrote it; None where it did not."""
        table = self.pairwise
        for first, second, sign in ((a, b, 1), (b, a, -1)):
            rows = table[
                (table["protocol"] == protocol)
                & (table["variant_a"] == first)
                & (table["variant_b"] == second)
            ]
            if len(rows):
                row = rows.iloc[0]
                low, high = (row["ci_low"], row["ci_high"]) if sign > 0 else (-row["ci_high"], -row["ci_low"])
                share = row.get("share_a_better", math.nan) if sign > 0 else math.nan
                return Difference(sign * row["mean"], low, high, _int(row.get("n_seeds")), share)
        return None


def load(
    summary_path,
    runs_path,
    curves_path,
    eval_dir,
    target_accuracy=None,
    pairwise_path=None,
    tuning_path=None,
    tuning_protocol_path=None,
    momentum_path=None,
    momentum_curves_path=None,
    params_path="params.yaml",
) -> Results:
    """Read the tables compare and evaluate wrote; the target defaults to params.yaml's.

    A table whose path is None is absent from this study, and its section says so.
    """
    if target_accuracy is None:
        raw = YAML(typ="safe", pure=True).load(Path(params_path).read_text())
        target_accuracy = raw["compare"]["target_accuracy"]

    def table(path):
        return None if path is None else pd.read_csv(path)

    def document(path):
        return None if path is None else json.loads(Path(path).read_text())

    return Results(
        summary=document(summary_path),
        runs=pd.read_csv(runs_path),
        curves=pd.read_csv(curves_path),
        evaluations={path.stem: document(path) for path in sorted(Path(eval_dir).glob("*.json"))},
        target=target_accuracy,
        pairwise=table(pairwise_path),
        tuning=table(tuning_path),
        tuning_protocol=document(tuning_protocol_path),
        momentum=table(momentum_path),
        momentum_curves=table(momentum_curves_path),
    )


def survivors(curves: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The curves of the runs that did not diverge, where at least one of their group did not.

    A diverged run's last epoch is meaningless and its later epochs are missing: averaged in, it would
    pull one epoch down and vanish from the next. Where every seed of a group diverged, all are kept.
    """
    if curves.empty or "diverged" not in runs:
        return curves
    flags = runs[[*keys, "seed", "diverged"]].drop_duplicates([*keys, "seed"])
    flags = flags.assign(all_diverged=flags.groupby(keys, dropna=False)["diverged"].transform("all"))
    merged = curves.merge(flags, on=[*keys, "seed"], how="left")
    drop = merged["diverged"].eq(True) & merged["all_diverged"].eq(False)
    return curves[~drop.to_numpy()]


def bands(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group of `keys`: each column's mean over seeds with its 95% interval (`<column>_low/_high`)."""
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        for column in columns:
            interval = Interval.of(group[column])
            row |= {column: interval.mean, f"{column}_low": interval.low, f"{column}_high": interval.high}
            row[f"{column}_n"] = interval.n
        rows.append(row)
    extra = [f"{c}{s}" for c in columns for s in ("", "_low", "_high", "_n")]
    return pd.DataFrame(rows, columns=[*keys, *extra])


# --- reading the tables ------------------------------------------------------------------------


def _summary_frame(raw: dict) -> pd.DataFrame:
    """summary.json as one row per (variant, protocol): `<metric>` (the mean), `_low`, `_high`, `_n`."""
    rows = []
    for variant, protocols in (raw or {}).items():
        for protocol, fields in (protocols or {}).items():
            if not isinstance(fields, dict):  # not {protocol: {metric: ...}}: nothing this report can read
                continue
            row = {"variant": variant, "protocol": protocol}
            for name, value in (fields or {}).items():
                if isinstance(value, dict):
                    row |= {
                        name: value.get("mean"),
                        f"{name}_std": value.get("std"),
                        f"{name}_low": value.get("ci_low"),
                        f"{name}_high": value.get("ci_high"),
                        f"{name}_n": value.get("n_seeds"),
                    }
                else:
                    row[name] = value
            rows.append(row)
    frame = pd.DataFrame(rows, columns=["variant", "protocol"] if not rows else None)
    numbers = [c for c in frame.columns if c not in ("variant", "protocol")]
    frame[numbers] = frame[numbers].apply(pd.to_numeric, errors="coerce").astype(float)
    return frame.set_index(["variant", "protocol"])


def _clean(frame: pd.DataFrame | None, required: list[str]) -> pd.DataFrame:
    """A copy with every required column present, flags as booleans and other numbers as floats."""
    frame = pd.DataFrame() if frame is None else frame.copy()
    for column in required:
        if column not in frame:
            frame[column] = pd.Series(dtype=object if column in TEXT_COLUMNS else float)
    for column in frame.columns:
        if column in FLAGS:
            frame[column] = frame[column].map(_true).astype(bool)
        elif column in ("variant_a", "variant_b") or column in TEXT_COLUMNS:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif column == "within_noise":
            frame[column] = frame[column].map(lambda v: math.nan if missing(v) else _true(v))
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def _true(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def _int(value) -> int:
    return 0 if missing(value) else int(value)


def _settings(runs: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Each variant's settings, from its runs (the defaults protocol first)."""
    order = runs.assign(_tuned=runs["protocol"] != "defaults").sort_values("_tuned", kind="stable")
    columns = [
        "optimizer",
        "batch_size",
        "learning_rate",
        "momentum",
        "nesterov",
        "schedule",
        "steps_per_epoch",
    ]
    for column in columns:
        if column not in order:
            order[column] = math.nan
    settings = order.drop_duplicates("variant").set_index("variant")[columns].reindex(variants)
    settings["momentum"] = settings["momentum"].fillna(0.0)
    settings["nesterov"] = settings["nesterov"].fillna(False).astype(bool)
    return settings


def _groups(settings: pd.DataFrame) -> dict[str, list[str]]:
    sgd = settings["optimizer"].eq("sgd")
    momentum = settings["momentum"].gt(0)
    scheduled = settings["schedule"].notna() & settings["schedule"].ne("")
    plain = sgd & ~momentum & ~scheduled
    full = settings["steps_per_epoch"].eq(1)
    known = settings["optimizer"].notna()

    def names(mask) -> list[str]:
        return list(settings.index[(mask & known).fillna(False).astype(bool)])

    return {
        "bgd": names(plain & full),
        "sgd": names(plain & ~full & settings["batch_size"].eq(1)),
        "mbgd": names(plain & ~full & settings["batch_size"].gt(1)),
        "momentum": names(sgd & momentum & ~scheduled),
        "adaptive": names(~sgd & ~scheduled),
        "schedule": names(scheduled),
    }


# --- numbers as words ---------------------------------------------------------------------------


def missing(value) -> bool:
    if value is None or isinstance(value, str):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def pct(value, digits: int = 2) -> str:
    return "—" if missing(value) else f"{100 * value:.{digits}f}%"


def size(n_bytes) -> str:
    if missing(n_bytes):
        return "—"
    scale, digits, unit = unit_style("bytes", n_bytes)
    return f"{n_bytes * scale:.{digits}f}{unit}"


def secs(seconds) -> str:
    if missing(seconds):
        return "—"
    scale, digits, unit = unit_style("secs", seconds)
    return f"{seconds * scale:.{digits}f}{unit}"


def count(n) -> str:
    return "—" if missing(n) else f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def rate(lr) -> str:
    return "—" if missing(lr) else f"{lr:.3g}"


def unit_style(kind: str, value: float) -> tuple[float, int, str]:
    """(scale, decimals, unit) to write `value` as `kind`; an interval's bounds use the same."""
    if kind in ("pct", "points"):
        return 100.0, 2, "%" if kind == "pct" else " points"
    if kind == "secs":
        return 1.0, 0 if value >= 100 else 1 if value >= 1 else 2, " s"
    if kind == "bytes":
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return 1 / scale, 1, f" {unit}"
        return 1.0, 0, " B"
    return 1.0, 0 if abs(value) >= 100 else 1, ""


def ci(interval: Interval, kind: str = "pct") -> str:
    """A mean with its 95% interval: `97.14% [96.90, 97.38]`; the mean alone from one seed."""
    if interval is None or not interval.known:
        return "—"
    if kind == "g":  # three significant digits, whatever the size
        bounds = f" [{interval.low:.3g}, {interval.high:.3g}]" if interval.has_interval else ""
        return f"{interval.mean:.3g}" + (bounds if interval.low != interval.high else "")
    scale, digits, unit = unit_style(kind, interval.mean)
    if kind == "count" and all(
        missing(v) or float(v).is_integer() for v in (interval.mean, interval.low, interval.high)
    ):
        digits = 0
    sign = "+" if kind == "points" else ""
    text = f"{interval.mean * scale:{sign},.{digits}f}{unit}"
    if interval.has_interval and (interval.low != interval.high or kind == "points"):
        low, high = interval.low, interval.high
        if kind == "pct":  # an interval is shown within what the quantity can be
            low, high = max(low, 0.0), min(high, 1.0)
        elif kind in ("secs", "bytes", "count"):
            low = max(low, 0.0)
        text += f" [{low * scale:,.{digits}f}, {high * scale:,.{digits}f}]"
    return text


def v(variant: str) -> str:
    return f"`{variant}`"


def names(variants) -> str:
    quoted = [v(name) for name in variants]
    if not quoted:
        return "none"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def plural(n: int | None, word: str) -> str:
    """`1 epoch`, `5 epochs`; `? epochs` when the number was not recorded."""
    return f"{'?' if n is None else n} {word}" + ("" if n == 1 else "s")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- display ------------------------------------------------------------------------------------


def show(*items) -> None:
    """Display Markdown strings, tables and figures in order in the notebook; None is skipped."""
    from IPython.display import Image, Markdown, display

    for item in items:
        if isinstance(item, str):
            display(Markdown(item))
        elif isinstance(item, Figure):
            buffer = BytesIO()
            item.savefig(buffer, format="png", dpi=100)
            display(Image(data=buffer.getvalue(), format="png"))
        elif item is not None:
            display(item)


def new_figure(nrows: int, ncols: int, figsize, **kwargs):
    """A figure on matplotlib's Agg canvas (no pyplot state) and its axes as a flat array."""
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs)
