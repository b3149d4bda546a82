"""Tables, figures and findings for the report notebook (reports/template.ipynb).

Reads only what compare and evaluate wrote (metrics/summary.json, metrics/runs.csv, plots/curves.csv,
metrics/eval/). Every sentence here that states a finding is computed from those tables: nothing is
known in advance about which optimizer wins. A variant the study did not run is reported as absent,
never assumed. Figures are drawn on matplotlib's Agg canvas (no pyplot state, no display needed).

The sections group variants by their settings, not by their names: full-batch plain SGD is BGD, batch
size 1 is SGD, any other plain SGD is mini-batch (the first one is the baseline the others are compared
with); SGD with momentum, the adaptive optimizers and the scheduled variants form the other groups.
"""

import json
import math
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory
from ruamel.yaml import YAML

NOISE = 0.005  # accuracy differences under half a point are within seed-to-seed noise (one seed)
SAME = 0.05  # seconds or bytes within 5% of each other count as equal when ranking variants
KERAS_DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "rmsprop": 0.001, "adagrad": 0.001}
PRIMER_CLAIMS = {"bgd": ("slow", "high"), "sgd": ("fast", "low"), "mbgd": ("balanced", "balanced")}
ROLE_NAMES = {"bgd": "BGD", "sgd": "SGD", "mbgd": "MBGD"}
TO_TARGET = ["epochs_to_target", "steps_to_target", "seconds_to_target"]
LOGIT_TICKS = [0.01, 0.1, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999]


@dataclass
class Results:
    """The study's tables as the report reads them, with the variants grouped by their settings."""

    summary: pd.DataFrame  # one row per variant (column or index `variant`), in params.yaml's order
    runs: pd.DataFrame  # one row per variant and seed
    curves: pd.DataFrame  # one row per variant, seed and epoch
    evaluations: dict[str, dict]  # metrics/eval/<variant>.json by variant
    target: float  # the validation accuracy whose first crossing is "time to target"
    groups: dict[str, list[str]] = field(init=False)

    def __post_init__(self):
        summary = self.summary.set_index("variant") if "variant" in self.summary else self.summary
        self.summary = summary.apply(pd.to_numeric, errors="coerce")
        runs = self.runs.copy()
        for column in ("diverged", "nesterov", "op_determinism"):
            runs[column] = runs[column].map(_true)
        runs["momentum"] = pd.to_numeric(runs["momentum"], errors="coerce").fillna(0.0)
        self.runs = runs
        numbers = ["step", "seconds", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
        curves = self.curves.copy()
        curves[numbers] = curves[numbers].apply(pd.to_numeric, errors="coerce")
        self.curves = curves
        self.mean_curves = curves.groupby(["variant", "epoch"], sort=False)[numbers].mean().reset_index()
        self.settings = runs.drop_duplicates("variant").set_index("variant").reindex(self.variants)
        self.groups = _groups(self.settings)
        colors = sns.color_palette("tab10" if len(self.variants) <= 10 else "husl", len(self.variants))
        self.palette = dict(zip(self.variants, colors, strict=True))

    @property
    def variants(self) -> list[str]:
        return list(self.summary.index)

    @property
    def baseline(self) -> str | None:
        """The plain mini-batch SGD variant the other groups are compared with."""
        return (self.groups["mbgd"] or [None])[0]

    @property
    def epochs(self) -> int:
        return int(self.runs["epochs_run"].max())

    @property
    def target_text(self) -> str:
        return f"{100 * self.target:g}%"

    def section(self, name: str) -> list[str]:
        """The variants a section plots: its group, and the baseline beside it when the group exists."""
        if name == "gd":
            return self.groups["bgd"] + self.groups["sgd"] + self.groups["mbgd"]
        members = self.groups[name] if name != "learning_rate" else _higher_start(self)
        return ([self.baseline] if members and self.baseline else []) + members

    def value(self, variant: str, column: str) -> float:
        return self.summary.at[variant, column] if variant in self.summary.index else math.nan

    def diverged(self, variant: str) -> pd.DataFrame:
        runs = self.runs[(self.runs["variant"] == variant) & self.runs["diverged"]]
        return runs[["seed", "diverged_epoch"]]


def load(summary_path, runs_path, curves_path, eval_dir, target_accuracy=None, params_path="params.yaml"):
    """Read the tables compare and evaluate wrote; the target defaults to params.yaml's."""
    summary = pd.DataFrame.from_dict(json.loads(Path(summary_path).read_text()), orient="index")
    evaluations = {path.stem: json.loads(path.read_text()) for path in sorted(Path(eval_dir).glob("*.json"))}
    if target_accuracy is None:
        target_accuracy = YAML(typ="safe", pure=True).load(Path(params_path).read_text())["compare"][
            "target_accuracy"
        ]
    return Results(
        summary=summary.rename_axis("variant").reset_index(),
        runs=pd.read_csv(runs_path),
        curves=pd.read_csv(curves_path),
        evaluations=evaluations,
        target=float(target_accuracy),
    )


def _true(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")


def _groups(settings: pd.DataFrame) -> dict[str, list[str]]:
    sgd = settings["optimizer"].eq("sgd")
    momentum = settings["momentum"].gt(0)
    scheduled = settings["schedule"].notna()
    plain = sgd & ~momentum & ~scheduled
    full = settings["steps_per_epoch"].eq(1)

    def names(mask) -> list[str]:
        return list(settings.index[mask.fillna(False).astype(bool)])

    return {
        "bgd": names(plain & full),
        "sgd": names(plain & ~full & settings["batch_size"].eq(1)),
        "mbgd": names(plain & ~full & settings["batch_size"].gt(1)),
        "momentum": names(sgd & momentum & ~scheduled),
        "adaptive": names(~sgd & ~scheduled),
        "schedule": names(scheduled),
    }


def _higher_start(results: Results) -> list[str]:
    """SGD variants like the baseline (same batch size, no momentum) that start at a higher rate."""
    base = results.baseline
    if base is None:
        return []
    s = results.settings
    same = s["optimizer"].eq("sgd") & s["momentum"].eq(0) & s["batch_size"].eq(s.at[base, "batch_size"])
    return list(s.index[same & s["learning_rate"].gt(s.at[base, "learning_rate"])])


# --- numbers as words ---------------------------------------------------------------------------


def missing(value) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def pct(value, digits: int = 2) -> str:
    return "—" if missing(value) else f"{100 * value:.{digits}f}%"


def points(difference) -> str:
    return "—" if missing(difference) else f"{100 * difference:+.2f} points"


def size(n_bytes) -> str:
    if missing(n_bytes):
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def secs(seconds) -> str:
    if missing(seconds):
        return "—"
    return (
        f"{seconds:.0f} s" if seconds >= 100 else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"
    )


def count(n) -> str:
    return "—" if missing(n) else f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


def rate(lr) -> str:
    return "—" if missing(lr) else f"{lr:.3g}"


def _v(variant: str) -> str:
    return f"`{variant}`"


def _names(variants) -> str:
    variants = [_v(v) for v in variants]
    return variants[0] if len(variants) == 1 else ", ".join(variants[:-1]) + " and " + variants[-1]


def _to_target(results: Results, variant: str, column: str) -> str:
    """A time to target as text: `not reached`, or the mean over the seeds that got there."""
    value = results.value(variant, column)
    if missing(value):
        return "not reached"
    text = secs(value) if column == "seconds_to_target" else count(value)
    seeds, reached = results.value(variant, "seeds"), results.value(variant, "seeds_reaching_target")
    return text if reached == seeds else f"{text} ({reached:.0f} of {seeds:.0f} seeds)"


def _reached(results: Results, variant: str, baseline: str) -> str:
    """When `variant` first reached the target, beside when `baseline` did."""
    target, epochs = results.target_text, results.epochs
    mine, theirs = results.value(variant, "epochs_to_target"), results.value(baseline, "epochs_to_target")
    if missing(mine) and missing(theirs):
        return f"neither it nor {_v(baseline)} reached {target} in {epochs} epochs"
    text = (
        f"it did not reach {target} in {epochs} epochs"
        if missing(mine)
        else f"it reached {target} in epoch {count(mine)}"
    )
    return f"{text} ({_v(baseline)}: {'not reached' if missing(theirs) else f'epoch {count(theirs)}'})"


def _steps(n) -> str:
    return f"{count(n)} step" + ("" if n == 1 else "s")


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


def _figure(nrows: int, ncols: int, figsize, **kwargs):
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs).ravel()


def _log_if_wide(ax, values, axis: str = "x") -> None:
    values = pd.Series(values).dropna()
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


# --- setup and summary --------------------------------------------------------------------------


def setup_text(results: Results) -> str:
    runs = results.runs

    def values(column) -> str:
        found = runs[column].dropna().astype(str).unique() if column in runs else []
        return "; ".join(found) or "not recorded"

    seeds = sorted(runs["seed"].unique())
    seeds_text = ", ".join(map(str, seeds)) + (" (one run per variant)" if len(seeds) == 1 else "")
    determinism = {True: "on", False: "off"}
    return "\n".join(
        [
            f"- **Device:** {values('device')}",
            f"- **TensorFlow / Keras:** {values('tensorflow')} / {values('keras')}",
            f"- **Seeds:** {seeds_text}",
            "- **Op determinism:** " + ", ".join(determinism[d] for d in runs["op_determinism"].unique()),
            f"- **Epochs:** {results.epochs} per run",
            f"- **Variants:** {len(results.variants)} ({_names(results.variants)})",
            f"- **Target:** {results.target_text} validation accuracy; time to target counts the epochs, "
            "optimizer steps and training seconds until a run first reaches it",
        ]
    )


def evidence_text(results: Results) -> str:
    """What the evidence can carry: one seed per variant means no measured spread."""
    per_variant = results.runs.groupby("variant")["seed"].nunique()
    if per_variant.max() == 1:
        return (
            "**How far the evidence goes.** Each variant trained once, from a single seed, so the spread "
            "between seeds is not measured. Differences in accuracy under about half a point are within "
            "what a different seed alone can change, and are called ties below. A later version of the "
            "study adds seeds and confidence intervals."
        )
    low, high = per_variant.min(), per_variant.max()
    seeds = f"{low}" if low == high else f"{low} to {high}"
    spread = results.runs.groupby("variant")["test_accuracy"].std().dropna()
    widest = spread.idxmax() if len(spread) else None
    measured = (
        f" The widest seed-to-seed spread (standard deviation) of test accuracy is "
        f"{100 * spread.max():.2f} points ({_v(widest)})."
        if widest
        else ""
    )
    return (
        f"**How far the evidence goes.** Each variant trained from {seeds} seeds; curves and tables show "
        f"means over seeds.{measured} Differences under about half a point are called ties below; "
        "confidence intervals are not computed yet."
    )


def summary_table(results: Results) -> pd.DataFrame:
    rows = {}
    for variant in results.variants:
        s = results.settings.loc[variant]
        schedule = "" if missing(s["schedule"]) else f" ({s['schedule']})"
        momentum = (
            rate(s["momentum"]) + (", Nesterov" if s["nesterov"] else "") if s["optimizer"] == "sgd" else "—"
        )
        rows[variant] = {
            "optimizer": s["optimizer"],
            "batch size": count(s["batch_size"]) + (" (full)" if s["steps_per_epoch"] == 1 else ""),
            "learning rate": rate(s["learning_rate"]) + schedule,
            "momentum": momentum,
            "test accuracy": pct(results.value(variant, "test_accuracy")),
            "final val. accuracy": pct(results.value(variant, "final_val_accuracy")),
            f"epochs to {results.target_text}": _to_target(results, variant, "epochs_to_target"),
            f"seconds to {results.target_text}": _to_target(results, variant, "seconds_to_target"),
            "training time": secs(results.value(variant, "train_seconds")),
            "diverged": _diverged_cell(results, variant),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


def _diverged_cell(results: Results, variant: str) -> str:
    diverged = results.diverged(variant)
    if diverged.empty:
        return "no"
    epochs = ", ".join(f"{e:.0f}" for e in diverged["diverged_epoch"])
    seeds = (results.runs["variant"] == variant).sum()
    return f"epoch {epochs}" if seeds == 1 else f"{len(diverged)} of {seeds} seeds (epoch {epochs})"


def summary_text(results: Results) -> str:
    accuracy = results.summary["test_accuracy"].dropna()
    if accuracy.empty:
        return "No variant has a test accuracy."
    best = accuracy.idxmax()
    close = [v for v in accuracy.index if v != best and accuracy[best] - accuracy[v] < NOISE]
    lines = [f"- **Highest test accuracy:** {_v(best)} ({pct(accuracy[best])})"]
    if close:
        lines[0] += f"; within half a point of it: {_names(close)}"
    if len(accuracy) > 1:
        lines.append(f"- **Lowest test accuracy:** {_v(accuracy.idxmin())} ({pct(accuracy.min())})")
    seconds = results.summary["seconds_to_target"].dropna()
    if len(seconds):
        lines.append(
            f"- **First to {results.target_text} validation accuracy in training seconds:** "
            f"{_v(seconds.idxmin())} ({secs(seconds.min())})"
        )
    never = [v for v in results.variants if missing(results.value(v, "epochs_to_target"))]
    if never:
        lines.append(f"- **Never reached {results.target_text} in {results.epochs} epochs:** {_names(never)}")
    return "\n".join(lines)


# --- batch, stochastic and mini-batch gradient descent ------------------------------------------

SPEED_MEASURES = [  # (label, column, tolerance, relative, higher is faster)
    ("epochs", "epochs_to_target", 0.0, False, False),
    ("steps", "steps_to_target", 0.0, False, False),
    ("seconds", "seconds_to_target", SAME, True, False),
    ("final accuracy", "final_val_accuracy", NOISE, False, True),
]
MEMORY_MEASURES = [("state", "optimizer_state_bytes", SAME, True), ("peak", "peak_memory_bytes", SAME, True)]
CLAIM_POSITION = {"slow": "high", "fast": "low", "balanced": "balanced", "high": "high", "low": "low"}


def position(value: float, others: list[float], tolerance: float, relative: bool) -> str | None:
    """Where `value` stands among `others`: lowest, highest, between them, or tied; None if unknown."""
    if missing(value) or not others or any(missing(o) for o in others):
        return None

    def differs(a, b):
        if a == b:
            return False
        if math.isinf(a) or math.isinf(b):
            return True
        return abs(a - b) > tolerance * (max(abs(a), abs(b)) if relative else 1.0)

    below = [o for o in others if o < value and differs(o, value)]
    above = [o for o in others if o > value and differs(o, value)]
    if len(above) == len(others):
        return "low"
    if len(below) == len(others):
        return "high"
    if below and above:
        return "balanced"
    return "tied"


def agrees(claim: str, value: float, others: list[float], tolerance: float, relative: bool) -> bool | None:
    """Whether a primer claim (slow/fast/balanced, high/low/balanced) matches the measured position.

    Values are costs: lower is faster or smaller. None where the claim cannot be judged (a variant
    missing, or `balanced` with only one other variant to stand between).
    """
    where = position(value, others, tolerance, relative)
    if where is None or (CLAIM_POSITION[claim] == "balanced" and len(others) < 2):
        return None
    return where == CLAIM_POSITION[claim]


def _verdict(judgements: dict[str, bool | None]) -> str:
    known = {label: ok for label, ok in judgements.items() if ok is not None}
    if not known:
        return "n/a"
    yes = [label for label, ok in known.items() if ok]
    if len(yes) == len(known):
        return "yes"
    return "no" if not yes else "partly: " + ", ".join(yes)


def _role_variants(results: Results) -> dict[str, str]:
    return {role: results.groups[role][0] for role in PRIMER_CLAIMS if results.groups[role]}


def _cost(results: Results, variant: str, column: str, higher_is_better: bool = False) -> float:
    value = results.value(variant, column)
    if column in TO_TARGET and missing(value) and variant in results.summary.index:
        return math.inf  # never reached: slower than any run that did
    return -value if higher_is_better else value


def tradeoffs_table(results: Results) -> pd.DataFrame:
    """The primer's differences-and-tradeoffs table for BGD, SGD and MBGD, measured, with a verdict."""
    present = _role_variants(results)
    target = results.target_text
    speed_columns = [
        f"epochs to {target}",
        f"steps to {target}",
        f"seconds to {target}",
        "final val. accuracy",
    ]
    columns = [("Convergence speed", c) for c in [*speed_columns, "primer says", "agrees"]] + [
        ("Memory", c) for c in ["optimizer state", "peak above start", "primer says", "agrees"]
    ]
    rows = {}
    for role, (speed_claim, memory_claim) in PRIMER_CLAIMS.items():
        variant = present.get(role)
        if variant is None:
            rows[f"{ROLE_NAMES[role]} (not run)"] = {columns[4]: speed_claim, columns[8]: memory_claim}
            continue
        others = [v for r, v in present.items() if r != role]
        speed = {
            label: agrees(
                speed_claim,
                _cost(results, variant, column, higher),
                [_cost(results, o, column, higher) for o in others],
                tolerance,
                relative,
            )
            for label, column, tolerance, relative, higher in SPEED_MEASURES
        }
        memory = {
            label: agrees(
                memory_claim,
                results.value(variant, column),
                [results.value(o, column) for o in others],
                tolerance,
                relative,
            )
            for label, column, tolerance, relative in MEMORY_MEASURES
        }
        values = [
            *(_to_target(results, variant, column) for column in TO_TARGET),
            pct(results.value(variant, "final_val_accuracy")),
            speed_claim,
            _verdict(speed),
            size(results.value(variant, "optimizer_state_bytes")),
            size(results.value(variant, "peak_memory_bytes")),
            memory_claim,
            _verdict(memory),
        ]
        rows[f"{ROLE_NAMES[role]} ({variant})"] = dict(zip(columns, values, strict=True))
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns).astype(object).fillna("—")
    table.columns = pd.MultiIndex.from_tuples(columns)
    return table.rename_axis("variant")


def _first_to_target(results: Results, variants: list[str], column: str) -> str:
    values = results.summary.loc[variants, column].dropna()
    if values.empty:
        return "none reached it"
    winners = list(values.index[values == values.min()])
    value = secs(values.min()) if column == "seconds_to_target" else count(values.min())
    return f"{_names(winners)} ({value})"


def gd_text(results: Results) -> str:
    present = _role_variants(results)
    if not present:
        return "This run of the study has none of the batch, stochastic and mini-batch variants."
    variants = list(present.values())
    lines = []
    absent = [ROLE_NAMES[role] for role in PRIMER_CLAIMS if role not in present]
    if absent:
        lines.append(f"- **Not run here:** {', '.join(absent)}; the table judges the claims among the rest.")
    target = results.target_text
    lines.append(
        f"- **First to {target} validation accuracy:** in epochs {_first_to_target(results, variants, 'epochs_to_target')}; "  # noqa: E501
        f"in optimizer steps {_first_to_target(results, variants, 'steps_to_target')}; "
        f"in training seconds {_first_to_target(results, variants, 'seconds_to_target')}."
    )
    never = [v for v in variants if missing(results.value(v, "epochs_to_target"))]
    if never:
        lines.append(f"- **Never reached {target} in {results.epochs} epochs:** {_names(never)}.")
    finals = ", ".join(f"{_v(v)} {pct(results.value(v, 'final_val_accuracy'))}" for v in variants)
    lines.append(f"- **Validation accuracy after the last epoch:** {finals}.")
    per_epoch = results.summary.loc[variants, "seconds_per_epoch"].dropna()
    if len(per_epoch) > 1:
        lines.append(
            f"- **Cost of an epoch:** {_v(per_epoch.idxmax())} takes {secs(per_epoch.max())} per epoch "
            f"({_steps(results.settings.at[per_epoch.idxmax(), 'steps_per_epoch'])}), "
            f"{per_epoch.max() / per_epoch.min():.1f}× {_v(per_epoch.idxmin())}'s {secs(per_epoch.min())} "
            f"({_steps(results.settings.at[per_epoch.idxmin(), 'steps_per_epoch'])})."
        )
    lines.append(
        _memory_line(results, variants, "peak_memory_bytes", "Peak memory above the level before training")
    )
    lines.append(_memory_line(results, variants, "optimizer_state_bytes", "Optimizer state"))
    table = tradeoffs_table(results)
    for aspect in ("Convergence speed", "Memory"):
        verdicts = table[(aspect, "agrees")]
        judged = verdicts[~verdicts.isin(["n/a", "—"])]
        lines.append(
            f"- **The primer's {aspect.lower()} column:** of {_plural(len(judged), 'variant')} judged, it "
            f"holds in full for {(judged == 'yes').sum()}, in part for "
            f"{judged.str.startswith('partly').sum()} and not at all for {(judged == 'no').sum()}."
        )
    return "\n".join(lines)


def _memory_line(results: Results, variants: list[str], column: str, label: str) -> str:
    values = results.summary.loc[variants, column].dropna()
    if values.empty:
        return f"- **{label}:** not recorded."
    if values.max() - values.min() <= SAME * values.max():
        return f"- **{label}:** about the same for {_names(values.index)} ({size(values.max())})."
    rest = ", ".join(f"{size(values[v])} for {_v(v)}" for v in values.index if v != values.idxmax())
    return f"- **{label}:** most for {_v(values.idxmax())} ({size(values.max())}, against {rest})."


def epoch_cost_table(results: Results, variants: list[str]) -> pd.DataFrame | None:
    """Steps and seconds per epoch: what one pass over the training data costs each variant."""
    variants = [v for v in variants if v in results.summary.index]
    if not variants:
        return None
    rows = {}
    for variant in variants:
        steps = results.settings.at[variant, "steps_per_epoch"]
        per_epoch = results.value(variant, "seconds_per_epoch")
        rows[variant] = {
            "batch size": count(results.settings.at[variant, "batch_size"]),
            "steps per epoch": count(steps),
            "seconds per epoch": secs(per_epoch),
            "milliseconds per step": f"{1000 * per_epoch / steps:.3g}"
            if steps and not missing(per_epoch)
            else "—",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


# --- momentum, adaptive rates, schedules, learning rate --------------------------------------------


def versus(results: Results, variant: str, baseline: str) -> tuple[str, str]:
    """Compare two variants on test accuracy (ties within NOISE) and time to target.

    Returns the verdict (`better`, `worse`, `tie` or `unknown`) and a sentence with the numbers.
    """
    a, b = results.value(variant, "test_accuracy"), results.value(baseline, "test_accuracy")
    difference = a - b
    if missing(difference):
        verdict = "unknown"
    else:
        verdict = "tie" if abs(difference) < NOISE else "better" if difference > 0 else "worse"
    words = {"better": "better", "worse": "worse", "tie": "within seed noise", "unknown": "not comparable"}
    diverged = results.diverged(variant)
    note = "" if diverged.empty else f" Diverged: {_diverged_cell(results, variant)}."
    return verdict, (
        f"test accuracy {pct(a)} against {pct(b)} for {_v(baseline)} "
        f"({points(difference)}: {words[verdict]}); "
        f"{_reached(results, variant, baseline)}.{note}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _tally(verdicts: list[str], who: str, baseline: str) -> str:
    return (
        f"**In short:** of {_plural(len(verdicts), who)} against {_v(baseline)}: "
        f"{verdicts.count('better')} better by more than half a point of test accuracy, "
        f"{verdicts.count('worse')} worse by more than that, {verdicts.count('tie')} within seed noise."
    )


def _group_text(results: Results, group: str, absent: str, who: str, describe) -> str:
    members = results.groups[group]
    if not members:
        return absent
    base = results.baseline
    if base is None:
        return f"There is no plain mini-batch SGD variant to compare the {who}s with."
    lines, verdicts = [], []
    for variant in members:
        verdict, sentence = versus(results, variant, base)
        verdicts.append(verdict)
        lines.append(f"- {_v(variant)} ({describe(variant)}): {sentence}")
    return "\n".join([*lines, "", _tally(verdicts, who, base)])


def momentum_text(results: Results) -> str:
    s = results.settings

    def describe(v):
        return f"momentum {rate(s.at[v, 'momentum'])}" + (", Nesterov" if s.at[v, "nesterov"] else "")

    text = _group_text(
        results, "momentum", "This run of the study has no momentum variants.", "momentum variant", describe
    )
    for variant in [v for v in results.groups["momentum"] if s.at[v, "nesterov"]]:
        twins = [
            o
            for o in results.groups["momentum"]
            if not s.at[o, "nesterov"]
            and all(s.at[o, c] == s.at[variant, c] for c in ("momentum", "learning_rate", "batch_size"))
        ]
        if twins:
            _, sentence = versus(results, variant, twins[0])
            text += f"\n\n**Nesterov against classical momentum:** {_v(variant)}: {sentence}"
    return text


def adaptive_text(results: Results) -> str:
    s = results.settings

    def describe(v):
        default = KERAS_DEFAULT_LR.get(s.at[v, "optimizer"]) == s.at[v, "learning_rate"]
        return f"{s.at[v, 'optimizer']}, learning rate {rate(s.at[v, 'learning_rate'])}" + (
            ", Keras' default" if default else ""
        )

    text = _group_text(
        results,
        "adaptive",
        "This run of the study has no adaptive optimizers.",
        "adaptive optimizer",
        describe,
    )
    base = results.baseline
    if results.groups["adaptive"] and base is not None:
        compared = [base, *results.groups["adaptive"]]
        defaults = all(
            KERAS_DEFAULT_LR.get(s.at[v, "optimizer"]) == s.at[v, "learning_rate"] for v in compared
        )
        text += f"\n\nPlain SGD ({_v(base)}) runs at {rate(s.at[base, 'learning_rate'])}. " + (
            "Every optimizer here runs at its Keras default rate, so this compares them as shipped, "
            "not at a tuned or matched step size."
            if defaults
            else "Not every optimizer here runs at its Keras default rate (see the summary table)."
        )
    return text


def schedule_text(results: Results) -> str:
    s = results.settings
    base = results.baseline

    def describe(v):
        final = results.mean_curves.loc[results.mean_curves["variant"] == v, "learning_rate"].dropna()
        start = f"starts at {rate(s.at[v, 'learning_rate'])}"
        if base is not None:
            start += f", {s.at[v, 'learning_rate'] / s.at[base, 'learning_rate']:.3g}× {_v(base)}'s"
        return f"{s.at[v, 'schedule']}, {start}" + (f", ends at {rate(final.iloc[-1])}" if len(final) else "")

    text = _group_text(
        results, "schedule", "This run of the study has no learning-rate schedules.", "schedule", describe
    )
    if results.groups["schedule"] and base is not None:
        text += (
            "\n\nA schedule here changes two things at once: it starts higher than the constant rate and "
            "then decays, so a difference from the constant rate cannot be put down to the decay alone."
        )
    return text


def _lr_pairs(results: Results) -> list[tuple[str, str]]:
    """(higher, lower) pairs of variants that differ in their learning rate and nothing else."""
    s = results.settings
    keys = ["optimizer", "batch_size", "momentum", "nesterov", "schedule"]
    pairs = []
    for high in results.variants:
        for low in results.variants:
            same = all(
                s.at[high, k] == s.at[low, k] or (missing(s.at[high, k]) and missing(s.at[low, k]))
                for k in keys
            )
            if same and s.at[high, "learning_rate"] > s.at[low, "learning_rate"]:
                pairs.append((high, low))
    return pairs


def _val_loss_rises(results: Results, variant: str) -> list[int]:
    curve = results.mean_curves[results.mean_curves["variant"] == variant].dropna(subset=["val_loss"])
    rises = curve["val_loss"].diff() > 0
    return [int(e) for e in curve.loc[rises, "epoch"]]


def learning_rate_text(results: Results) -> str:
    base = results.baseline
    higher = _higher_start(results)
    pairs = _lr_pairs(results)
    if base is None or not higher:
        return "This run of the study has no SGD variant starting at a higher rate than plain mini-batch SGD."
    s = results.settings
    lines = []
    if pairs:
        lines.append(
            "Variants that differ only in their learning rate: "
            + "; ".join(
                f"{_v(h)} ({rate(s.at[h, 'learning_rate'])}) and {_v(lo)} ({rate(s.at[lo, 'learning_rate'])})"
                for h, lo in pairs
            )
            + ". These answer the question directly."
        )
    else:
        lines.append(
            "**Only a partial answer.** No two variants here differ in their learning rate alone. The "
            f"closest evidence is the scheduled SGD variants, which start higher than {_v(base)} "
            "and then decay, so the effect of the higher rate is mixed with the effect of the decay. "
            "A clean answer needs constant-rate variants at several rates."
        )
    first = results.mean_curves[results.mean_curves["epoch"] == 1].set_index("variant")
    for variant in higher:
        ratio = s.at[variant, "learning_rate"] / s.at[base, "learning_rate"]
        a, b = first["val_accuracy"].get(variant, math.nan), first["val_accuracy"].get(base, math.nan)
        rises = _val_loss_rises(results, variant)
        diverged = results.diverged(variant)
        unstable = (
            f"it diverged in epoch {diverged['diverged_epoch'].min():.0f}"
            if not diverged.empty
            else f"its validation loss rose after epoch {', '.join(str(e - 1) for e in rises)}"
            if rises
            else "its validation loss fell every epoch"
        )
        lines.append(
            f"- {_v(variant)} starts {ratio:.3g}× higher ({rate(s.at[variant, 'learning_rate'])}): after the "
            f"first epoch its validation accuracy was {pct(a)} against {pct(b)} for {_v(base)} "
            f"({points(a - b)}); "
            f"{unstable}; {_reached(results, variant, base)}."
        )
    base_rises = _val_loss_rises(results, base)
    lines.append(
        f"- {_v(base)} for reference: validation loss "
        + (
            f"rose after epoch {', '.join(str(e - 1) for e in base_rises)}."
            if base_rises
            else "fell every epoch."
        )
    )
    return "\n".join(lines)


# --- memory, time, test accuracy, divergence ----------------------------------------------------


def cost_text(results: Results) -> str:
    summary = results.summary
    lines = []
    state = summary["optimizer_state_bytes"].dropna()
    if len(state):
        tiers = state.groupby(state).groups
        lines.append(
            "- **Optimizer state:** "
            + "; ".join(f"{size(b)} for {_names(list(names))}" for b, names in sorted(tiers.items()))
            + "."
        )
    peak = summary["peak_memory_bytes"].dropna()
    if len(peak):
        kinds = set(results.runs["memory_kind"].dropna())
        kind = {"rss": "the training process's resident memory", "gpu": "GPU memory"}
        what = " and ".join(kind.get(k, k) for k in sorted(kinds)) or "memory"
        lines.append(
            f"- **Peak memory** ({what}, above its level just before training): highest for "
            f"{_v(peak.idxmax())} ({size(peak.max())}), lowest for {_v(peak.idxmin())} ({size(peak.min())}). "
            "It counts everything the process holds during training, not only the batch and the optimizer."
        )
    seconds = summary["train_seconds"].dropna()
    if len(seconds):
        lines.append(
            f"- **Training time** (optimizer steps only; validation is not counted): from "
            f"{secs(seconds.min())} for {_v(seconds.idxmin())} to {secs(seconds.max())} "
            f"for {_v(seconds.idxmax())}."
        )
    reached = summary["seconds_to_target"].dropna()
    if len(reached):
        lines.append(
            f"- **Fastest to {results.target_text}:** {_v(reached.idxmin())} in {secs(reached.min())}; "
            f"{len(reached)} of {len(summary)} variants got there within {results.epochs} epochs."
        )
    return "\n".join(lines) or "No memory or time was recorded."


def test_text(results: Results) -> str:
    lines = [summary_text(results).split("\n")[0]]
    per_class = _per_class(results)
    if not per_class.empty:
        median = per_class.median()  # the median: one failed variant does not decide which digit is hard
        lines.append(
            f"- **Per digit** (median over the variants): hardest {median.idxmin()} ({pct(median.min())}), "
            f"easiest {median.idxmax()} ({pct(median.max())})."
        )
    return "\n".join(lines)


def diverged_text(results: Results) -> str:
    diverged = results.runs[results.runs["diverged"]]
    if diverged.empty:
        return f"No run diverged: every training loss stayed finite for all {results.epochs} epochs."
    return "\n".join(
        f"- {_v(row.variant)}, seed {row.seed}: the training loss stopped being a finite number in epoch "
        f"{row.diverged_epoch:.0f}, and training stopped there; its test accuracy is "
        f"{pct(row.test_accuracy)}."
        for row in diverged.itertuples()
    )


# --- figures --------------------------------------------------------------------------------------


def _label(results: Results, variant: str) -> str:
    diverged = results.diverged(variant)
    return (
        variant if diverged.empty else f"{variant} (diverged, epoch {diverged['diverged_epoch'].min():.0f})"
    )


def learning_curves(results: Results, variants: list[str]) -> Figure | None:
    """Validation accuracy and training loss against epoch and against training seconds."""
    variants = [v for v in variants if v in results.variants]
    if not variants:
        return None
    data = results.mean_curves[results.mean_curves["variant"].isin(variants)].copy()
    data["label"] = data["variant"].map(lambda v: _label(results, v))
    order = [_label(results, v) for v in variants]
    palette = {_label(results, v): results.palette[v] for v in variants}
    figure, axes = _figure(2, 2, (11, 7.5))
    panels = [
        ("epoch", "val_accuracy", "Validation accuracy per epoch"),
        ("seconds", "val_accuracy", "Validation accuracy against training seconds"),
        ("epoch", "loss", "Training loss per epoch"),
        ("seconds", "loss", "Training loss against training seconds"),
    ]
    for ax, (x, y, title) in zip(axes, panels, strict=True):
        sns.lineplot(
            data=data,
            x=x,
            y=y,
            hue="label",
            hue_order=order,
            palette=palette,
            marker="o",
            ax=ax,
            legend=ax is axes[0],
        )
        ax.set_title(title)
        ax.set_xlabel("epoch" if x == "epoch" else "training seconds")
        if x == "seconds":
            _log_if_wide(ax, data["seconds"])
        if y == "val_accuracy":
            ax.axhline(results.target, color="0.4", linestyle="--", linewidth=1)
            stretch = data["val_accuracy"].min() < results.target - 0.2  # far apart: stretch the top
            if stretch:
                ax.set_yscale("logit", nonpositive="clip")
                ax.set_ylim(top=1 - (1 - max(data["val_accuracy"].max(), results.target)) / 2)
                ax.yaxis.set_major_locator(FixedLocator(LOGIT_TICKS))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
            ax.set_ylabel(
                f"validation accuracy{' (logit scale)' if stretch else ''}, dashed: {results.target_text}"
            )
        else:
            _log_if_wide(ax, data["loss"], axis="y")
            ax.set_ylabel("training loss")
        if x == "epoch":
            ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    figure.legend(handles, labels, loc="outside right upper", title="variant")
    return figure


def learning_rate_figure(results: Results, variants: list[str]) -> Figure | None:
    """The learning rate each variant had at each epoch's end, and its validation loss."""
    variants = [v for v in variants if v in results.variants]
    if not variants:
        return None
    start = pd.DataFrame(
        {
            "variant": variants,
            "epoch": 0,
            "learning_rate": [results.settings.at[v, "learning_rate"] for v in variants],
        }
    )
    rates = pd.concat([start, results.mean_curves[["variant", "epoch", "learning_rate"]]])
    rates = rates[rates["variant"].isin(variants)]
    losses = results.mean_curves[results.mean_curves["variant"].isin(variants)]
    figure, (left, right) = _figure(1, 2, (11, 4))
    common = {"hue": "variant", "hue_order": variants, "palette": results.palette, "marker": "o"}
    sns.lineplot(data=rates, x="epoch", y="learning_rate", ax=left, **common)
    sns.lineplot(data=losses, x="epoch", y="val_loss", ax=right, legend=False, **common)
    left.set(title="Learning rate (epoch 0: the starting rate)", ylabel="learning rate", ylim=(0, None))
    right.set(title="Validation loss per epoch", ylabel="validation loss")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return figure


def _dot_rows(ax, results: Results, variants: list[str], values: pd.Series, text) -> None:
    """One row per variant: a dot at its value with the value written beside it, or `not reached`."""
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for i, variant in enumerate(variants):
        value = values.get(variant, math.nan)
        if missing(value):
            ax.text(0.02, i, "not reached", transform=where, va="center", color="0.4", fontsize=9)
            continue
        ax.plot([value], [i], "o", color=results.palette[variant], markersize=8)
        ax.annotate(
            text(value), (value, i), xytext=(7, 0), textcoords="offset points", va="center", fontsize=9
        )
    ax.set_yticks(range(len(variants)), variants)
    ax.set_ylim(len(variants) - 0.5, -0.5)
    ax.grid(axis="y", color="0.9")
    ax.margins(x=0.25)


def time_to_target_figure(results: Results) -> Figure:
    """Epochs, optimizer steps and training seconds until each variant first reached the target."""
    variants = results.variants
    figure, axes = _figure(1, 3, (12, 0.45 * len(variants) + 1.5), sharey=True)
    units = [("epochs", count), ("optimizer steps", count), ("training seconds", secs)]
    for ax, column, (unit, text) in zip(axes, TO_TARGET, units, strict=True):
        values = results.summary[column]
        _dot_rows(ax, results, variants, values, text)
        if unit == "epochs":
            ax.set_xlim(0, results.epochs + 0.9)
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            _log_if_wide(ax, values)
        if ax.get_xscale() == "linear":
            ax.set_xlim(left=0)
        ax.set_xlabel(unit + (" (log scale)" if ax.get_xscale() == "log" else ""))
    figure.suptitle(f"Time to {results.target_text} validation accuracy")
    return figure


def memory_figure(results: Results) -> Figure:
    """Optimizer state and peak memory above the level before training, per variant."""
    variants = results.variants
    figure, axes = _figure(1, 2, (11, 0.45 * len(variants) + 1.5), sharey=True)
    for ax, column, title in zip(
        axes,
        ["optimizer_state_bytes", "peak_memory_bytes"],
        ["Optimizer state", "Peak memory above the level before training"],
        strict=True,
    ):
        values = results.summary[column]
        bars = ax.barh(range(len(variants)), values.fillna(0), color=[results.palette[v] for v in variants])
        ax.bar_label(bars, labels=[size(b) for b in values], padding=4, fontsize=9)
        ax.set_yticks(range(len(variants)), variants)
        ax.set_ylim(len(variants) - 0.5, -0.5)
        ax.set_xticks([])
        ax.margins(x=0.2)
        ax.set_title(title)
    return figure


def test_accuracy_figure(results: Results) -> Figure:
    """Test accuracy per variant, best first: the mean as a diamond, each seed as a dot."""
    means = results.summary["test_accuracy"].sort_values(ascending=False, na_position="last")
    variants = list(means.index)
    figure, (ax,) = _figure(1, 1, (9, 0.45 * len(variants) + 1.2))
    for i, variant in enumerate(variants):
        seeds = results.runs.loc[results.runs["variant"] == variant, "test_accuracy"]
        ax.plot(seeds, [i] * len(seeds), "o", color="0.55", markersize=4)
        if not missing(means[variant]):
            ax.plot([means[variant]], [i], "D", color=results.palette[variant], markersize=8)
            ax.annotate(
                pct(means[variant]),
                (means[variant], i),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
            )
    ax.set_yticks(range(len(variants)), variants)
    ax.set_ylim(len(variants) - 0.5, -0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.margins(x=0.15)
    one_seed = results.runs.groupby("variant")["seed"].nunique().max() == 1
    ax.set_xlabel(
        "test accuracy" + (" (one seed per variant)" if one_seed else " (diamond: mean; dots: seeds)")
    )
    ax.grid(axis="x", color="0.9")
    return figure


def _per_class(results: Results) -> pd.DataFrame:
    rows = {
        v: results.evaluations[v]["per_class_accuracy"] for v in results.variants if v in results.evaluations
    }
    return pd.DataFrame.from_dict(rows, orient="index").apply(pd.to_numeric, errors="coerce")


def per_class_figure(results: Results) -> Figure | None:
    """Test accuracy per digit and variant (mean over seeds)."""
    table = _per_class(results)
    if table.empty:
        return None
    # Colors span the upper 90% of the cells, so that a variant that failed does not wash out the rest;
    # the cells below that share the darkest color (their numbers are written in them).
    floor = table.stack().quantile(0.1)
    figure, (ax,) = _figure(1, 1, (10, 0.45 * len(table) + 1.5))
    sns.heatmap(
        100 * table,
        annot=True,
        fmt=".1f",
        cmap="viridis",
        vmin=100 * floor,
        vmax=100,
        cbar_kws={"label": "test accuracy (%)", "extend": "min" if table.min().min() < floor else "neither"},
        ax=ax,
    )
    ax.set(xlabel="digit", ylabel="", title="Test accuracy per digit (%)")
    return figure
