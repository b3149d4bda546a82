"""The study's tables as the report reads them, and numbers as words.

The report formats and draws what the stages wrote; it decides nothing. Every verdict, interval, answer,
`unstable` flag and on-the-edge flag it shows was written by a stage: compare (metrics/claims.json,
answers.json, summary.json, runs.csv, tuning.csv and tuning.json), evaluate (metrics/eval/), the
momentum sweep (metrics/momentum.csv), the batch-size sweep (metrics/batch_size.json, batch_tuning.csv,
plots/batch_size_curves.csv) and the landscapes (metrics/landscapes.csv and .json,
plots/landscapes/trajectories.csv). What the report works out itself is arithmetic for drawing: means
and ranges over seeds of curves, differences of curves to plain SGD's, counts of runs.

Nothing is known in advance about which optimizer wins, and a table a study did not produce (an empty
sweep, a variant without runs) is reported as absent, never assumed.
"""

import base64
import html
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

PROTOCOLS = ("tuned", "defaults")  # the tuned protocol is primary: it comes first everywhere
PROTOCOL_NAMES = {"tuned": "tuned", "defaults": "at Keras' defaults"}
FLAGS = ["diverged", "unstable", "nesterov", "op_determinism", "chosen"]
TEXT_COLUMNS = {
    "variant",
    "protocol",
    "optimizer",
    "schedule",
    "memory_kind",
    "device",
    "tensorflow",
    "keras",
    "stage",
    "function",
    "test",
    "stands_for",
    "setting",
    "batch_label",
    "on_edge",
}


@dataclass(frozen=True)
class Interval:
    """A mean with the 95% interval a stage wrote for it (study/statistics.py); n: how many values."""

    mean: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @classmethod
    def read(cls, fields: dict | None) -> "Interval":
        """From a `{mean, ci_low, ci_high, n_seeds}` entry of summary.json or batch_size.json."""
        fields = fields or {}
        values = [_float(fields.get(k)) for k in ("mean", "ci_low", "ci_high")]
        return cls(*values, int(fields.get("n_seeds") or 0))

    @property
    def known(self) -> bool:
        return not missing(self.mean)

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not (missing(self.low) or missing(self.high))


class Tables:
    """Every table the report reads, cleaned: flags as booleans, numbers as floats (missing: NaN)."""

    def __init__(
        self,
        claims: list[dict],
        summary: dict,
        runs: pd.DataFrame,
        curves: pd.DataFrame,
        evaluations: dict[str, dict],
        compare: dict,
        tuning: pd.DataFrame | None = None,
        tuning_protocol: dict | None = None,
        momentum: pd.DataFrame | None = None,
        batch: dict | None = None,
        batch_tuning: pd.DataFrame | None = None,
        batch_curves: pd.DataFrame | None = None,
        landscapes: pd.DataFrame | None = None,
        trajectories: pd.DataFrame | None = None,
        answers: dict | None = None,
        landscape_shares: dict | None = None,
    ):
        self.claims = claims
        self.landscape_shares = landscape_shares or {}  # the landscapes stage's summary of its starts
        self.answers = answers or {}  # compare's answers to the primer's questions, and the variants' roles
        self.compare = compare
        self.target = float(compare["target_accuracy"])
        self.summary = summary or {}
        self.runs = clean(runs, ["variant", "protocol", "seed", "learning_rate", "diverged", "unstable"])
        self.curves = clean(
            curves, ["variant", "protocol", "seed", "epoch", "loss", "val_accuracy", "seconds"]
        )
        self.evaluations = evaluations
        self.tuning = clean(
            tuning, ["variant", "stage", "learning_rate", "seed", "val_accuracy", "val_accuracy_epoch1",
                     "mean_val_accuracy", "diverged", "unstable", "chosen"]
        )  # fmt: skip
        self.tuning_protocol = tuning_protocol or {}
        self.momentum = clean(
            momentum, ["momentum", "nesterov", "effective_step", "learning_rate", "seed",
                       "val_accuracy_epoch1", "final_val_accuracy", "diverged"]
        )  # fmt: skip
        self.batch = batch or {}
        self.batch_tuning = clean(
            batch_tuning, ["batch_label", "batch_size", "stage", "learning_rate", "seed", "mean_val_accuracy",
                           "diverged", "chosen"]
        )  # fmt: skip
        self.batch_curves = clean(
            batch_curves, ["batch_label", "batch_size", "seed", "step", "epoch", "seconds", "val_accuracy"]
        )
        self.landscapes = clean(
            landscapes, ["function", "test", "variant", "stands_for", "setting", "learning_rate", "start",
                         "reached_global", "escaped", "barrier_crossings", "steps_to_tolerance", "diverged"]
        )  # fmt: skip
        self.trajectories = clean(trajectories, ["function", "test", "variant", "start", "step", "x", "y"])

        named = list(dict.fromkeys([*self.summary, *self.runs["variant"].dropna()]))
        self.variants: list[str] = [v for v in named if isinstance(v, str)]
        present = {p for fields in self.summary.values() for p in (fields or {})} | set(
            self.runs["protocol"].dropna()
        )
        self.protocols: list[str] = [p for p in PROTOCOLS if p in present] + sorted(present - set(PROTOCOLS))
        colors = sns.color_palette("tab10" if len(self.variants) <= 10 else "husl", len(self.variants))
        self.palette = dict(zip(self.variants, colors, strict=True))

    @property
    def target_text(self) -> str:
        return f"{100 * self.target:g}%"

    @property
    def epochs(self) -> int:
        epochs = self.runs["epochs_run"].max() if "epochs_run" in self.runs else math.nan
        return 0 if missing(epochs) else int(epochs)

    @property
    def chance(self) -> float | None:
        """The accuracy of guessing: one over the number of classes the evaluations score."""
        for protocols in self.evaluations.values():
            for scores in (protocols or {}).values():
                if isinstance(scores, dict) and scores.get("per_class_accuracy"):
                    return 1 / len(scores["per_class_accuracy"])
        return None

    def fields(self, variant: str, protocol: str) -> dict:
        return (self.summary.get(variant) or {}).get(protocol) or {}

    def interval(self, variant: str, protocol: str, metric: str) -> Interval:
        """A metric's mean over seeds with its 95% interval, as compare wrote it in summary.json."""
        return Interval.read(self.fields(variant, protocol).get(metric))

    def runs_of(self, variant: str, protocol: str | None = None) -> pd.DataFrame:
        mask = self.runs["variant"] == variant
        if protocol is not None:
            mask &= self.runs["protocol"] == protocol
        return self.runs[mask]

    def learning_rate(self, variant: str, protocol: str) -> float:
        """The (initial) rate a variant trained at under a protocol; tuned: the rate its tuning chose."""
        rate = _float(self.fields(variant, protocol).get("learning_rate"))
        if missing(rate):
            rates = self.runs_of(variant, protocol)["learning_rate"].dropna()
            rate = rates.iloc[0] if len(rates) else math.nan
        return rate

    def seeds(self, protocol: str) -> list[int]:
        runs = self.runs[self.runs["protocol"] == protocol]
        return sorted(int(s) for s in runs["seed"].dropna().unique())


def load(
    claims_path,
    summary_path,
    runs_path,
    curves_path,
    eval_dir,
    tuning_path=None,
    tuning_protocol_path=None,
    momentum_path=None,
    batch_summary_path=None,
    batch_tuning_path=None,
    batch_curves_path=None,
    landscapes_path=None,
    trajectories_path=None,
    compare=None,
    params_path="params.yaml",
    answers_path=None,
    landscape_shares_path=None,
) -> Tables:
    """Read what the stages wrote. `compare` (how claims are judged, the target accuracy) defaults to
    params.yaml's; a table whose path is None is absent from this study, and its section says so."""
    if compare is None:
        compare = params_value("compare", params_path=params_path)

    def table(path):
        return None if path is None else pd.read_csv(path)

    def document(path):
        return None if path is None else json.loads(Path(path).read_text())

    return Tables(
        claims=document(claims_path),
        summary=document(summary_path),
        runs=pd.read_csv(runs_path),
        curves=pd.read_csv(curves_path),
        evaluations={path.stem: document(path) for path in sorted(Path(eval_dir).glob("*.json"))},
        compare=compare,
        tuning=table(tuning_path),
        tuning_protocol=document(tuning_protocol_path),
        momentum=table(momentum_path),
        batch=document(batch_summary_path),
        batch_tuning=table(batch_tuning_path),
        batch_curves=table(batch_curves_path),
        landscapes=table(landscapes_path),
        trajectories=table(trajectories_path),
        answers=document(answers_path),
        landscape_shares=document(landscape_shares_path),
    )


def params_value(*keys: str, params_path="params.yaml"):
    """A value of params.yaml, for a notebook run without the stage's parameters."""
    value = YAML(typ="safe", pure=True).load(Path(params_path).read_text())
    for key in keys:
        value = value[key]
    return value


def clean(frame: pd.DataFrame | None, required: list[str]) -> pd.DataFrame:
    """A copy with every required column present, flags as booleans, words as words and other columns
    as floats ("not reached" and other words in a number column: NaN)."""
    frame = pd.DataFrame() if frame is None else frame.copy()
    for column in required:
        if column not in frame:
            frame[column] = pd.Series(dtype=object if column in TEXT_COLUMNS else float)
    for column in frame.columns:
        if column in FLAGS:
            frame[column] = frame[column].map(_true).astype(bool)
        elif column in TEXT_COLUMNS:
            frame[column] = frame[column].map(lambda v: None if missing(v) else str(v)).astype(object)
        elif column == "escaped":  # empty outside the escape test
            frame[column] = frame[column].map(lambda v: math.nan if missing(v) else float(_true(v)))
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def _true(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def _float(value) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


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
    if kind == "secs":  # what a step costs is micro- or milliseconds, a run's seconds or minutes
        magnitude = abs(value)
        if magnitude >= 0.1 or magnitude == 0:
            return 1.0, 0 if magnitude >= 100 else 1 if magnitude >= 1 else 2, " s"
        return (1e3, 1, " ms") if magnitude >= 1e-3 else (1e6, 1, " µs")
    if kind == "bytes":
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return 1 / scale, 1, f" {unit}"
        return 1.0, 0, " B"
    return 1.0, 0 if abs(value) >= 100 else 1, ""


def ci(interval: Interval, kind: str = "pct") -> str:
    """A mean with its 95% interval: `97.14% [96.90, 97.38]`; the mean alone without an interval."""
    if interval is None or not interval.known:
        return "—"
    scale, digits, unit = unit_style(kind, interval.mean)
    if kind == "count" and all(
        missing(v) or float(v).is_integer() for v in (interval.mean, interval.low, interval.high)
    ):
        digits = 0
    text = f"{interval.mean * scale:,.{digits}f}{unit}"
    if interval.has_interval and interval.low != interval.high:
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
    """`1 epoch`, `5 epochs`, `1,000 steps`; `? epochs` when the number was not recorded."""
    return f"{'?' if n is None else f'{n:,}'} {word}" + ("" if n == 1 else "s")


# --- display ------------------------------------------------------------------------------------


def show(*items) -> None:
    """Display Markdown strings, tables and figures in order in the notebook; None is skipped. A figure
    is an <img> with its alt text (`alt_text`), the PNG inside the page."""
    from IPython.display import HTML, Markdown, display

    for item in items:
        if isinstance(item, str):
            display(Markdown(item))
        elif isinstance(item, Figure):
            buffer = BytesIO()
            item.savefig(buffer, format="png", dpi=100)
            data = base64.b64encode(buffer.getvalue()).decode("ascii")
            alt = html.escape(alt_text(item), quote=True)
            display(HTML(f'<img alt="{alt}" src="data:image/png;base64,{data}" style="max-width: 100%">'))
        elif item is not None:
            display(item)


def alt_text(figure: Figure) -> str:
    """What a figure shows, for a reader who cannot see it: its label (`figure.set_label`), else its
    panels' titles and axis labels."""
    if figure.get_label():
        return figure.get_label()
    panels = [
        ", ".join(x for x in (ax.get_title(), ax.get_ylabel(), ax.get_xlabel()) if x)
        for ax in figure.axes
        if ax.get_visible()
    ]
    return "Figure: " + "; ".join(dict.fromkeys(p for p in panels if p))


def new_figure(nrows: int, ncols: int, figsize, **kwargs):
    """A figure on matplotlib's Agg canvas (no pyplot state) and its axes as a 2-D array."""
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs)


def styled(table: pd.DataFrame, uuid: str, colors: dict | None = None, columns=()):
    """A table as HTML that keeps its line breaks, left-aligned, with a fixed id (the same study gives
    the same page); cells of `columns` whose text starts with a key of `colors` take its colour."""

    def color(text) -> str:
        for word, value in (colors or {}).items():
            if isinstance(text, str) and text.startswith(word):
                return f"color: {value}; font-weight: bold"
        return ""

    style = (
        table.style.set_uuid(uuid)
        .set_properties(**{"text-align": "left", "vertical-align": "top"})
        .set_table_styles([{"selector": "th", "props": [("text-align", "left"), ("vertical-align", "top")]}])
    )
    present = [c for c in columns if c in table.columns]
    return style.map(color, subset=present) if present else style
