"""The batch-size sweep's vocabulary and tables: what each size costs on paper, and its records as tables.

No TensorFlow here: the compare stage and the report read these tables without loading it.

The sweep (stages/batch_sweep.py) leaves, per batch size, sweeps/batch_size/batch-<size>/:
- seed-<s>/record.json: one run at the size's own tuned rate, its validation scores at log-spaced
  steps and every epoch (`checkpoints`), its seconds and memory;
- tuning.json: every (rate, tuning seed) trial, coarse and fine, and the rate chosen;
- memory.json: each fresh process's peak memory (with its pid) and the analytic size.
From them: `batch_table` (one row per run, and every validation score), `tuning_table`,
`memory_table`, and `batch_summary` (per size, means with 95% intervals, for `dvc metrics`).
"""

import itertools
import json
import math
from pathlib import Path

import pandas as pd

from study import analysis
from study.statistics import describe

TO_TARGET = analysis.TO_TARGET
BYTES_PER_NUMBER = 4  # float32 weights, activations and gradients


def checkpoint_steps(total: int, per_decade: int) -> list[int]:
    """Log-spaced step counts up to `total`: 1, 2, 5, 10, 22, 46, 100, ... for 3 per decade."""
    steps, k = set(), 0
    while (step := round(10 ** (k / per_decade))) <= total:
        steps.add(step)
        k += 1
    return sorted(steps)


def analytic_memory_bytes(widths: list[int], batch_size: int, optimizer_slots: int = 0) -> int:
    """What one training step must hold at once, on paper, for a dense network of layer `widths`
    (the input's first: [784, 128, 10] for the primer's MLP), in float32 bytes:

    - the weights (every kernel and bias) and their gradients: 2 x weights;
    - the optimizer's slots, copies of the weights (plain SGD none, momentum one, Adam two);
    - one batch's activations: every layer's output for each image, the input included, kept for the
      backward pass; and their gradients, for every layer but the input (no gradient flows to images).

    It leaves out what does not grow with the run (the framework, the compiled program, the data set,
    loaded once before any run), so it is the part of the measured peak that batch size changes.
    """
    weights = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    activations = batch_size * (2 * sum(widths) - widths[0])
    return BYTES_PER_NUMBER * (weights * (2 + optimizer_slots) + activations)


def unstable(record: dict, chance_accuracy: float) -> bool:
    """The study's one rule for a run that failed observably (`analysis.unstable`), on a sweep record."""
    last = record["history"][-1]
    return analysis.unstable(record["diverged"], last["val_accuracy"], last["loss"], chance_accuracy)


def read_records(sweep_dir: Path) -> list[dict]:
    """Every run's record, by batch size (the whole split last) and seed."""
    records = [json.loads(path.read_text()) for path in sweep_dir.glob("*/seed-*/record.json")]
    return sorted(records, key=lambda r: (r["batch_size"], r["seed"]))


def batch_table(sweep_dir: Path, target: float, chance_accuracy: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep's runs (one row each) and every validation score they took (checkpoints and epoch ends).

    Epochs, steps and seconds to `target` are read from all the scores, not only the epochs' ends.
    """
    runs, curves = [], []
    for r in read_records(sweep_dir):
        scores = r["checkpoints"]
        reached = next((row for row in scores if row["val_accuracy"] >= target), None)
        to_target = [reached[k] if reached else None for k in ("epoch", "step", "seconds")]
        history = r["history"]
        runs.append(
            {
                "batch_label": r["batch_label"],
                "batch_size": r["batch_size"],
                "learning_rate": r["settings"]["learning_rate"],
                "on_edge": r["tuning"]["on_edge"],
                "seed": r["seed"],
                "n_train": r["n_train"],
                "epochs_run": r["epochs_run"],
                "steps_run": history[-1]["steps"],
                "final_val_accuracy": history[-1]["val_accuracy"],
                "val_accuracy_epoch1": history[0]["val_accuracy"],
                "best_val_accuracy": max((row["val_accuracy"] for row in scores), default=None),
                **dict(zip(TO_TARGET, to_target, strict=True)),
                "target_accuracy": target,
                "train_seconds": r["train_seconds"],
                "seconds_per_step": r["seconds_per_step"],
                "peak_memory_bytes": r["peak_memory_bytes"],
                "memory_kind": r["memory_kind"],
                "analytic_memory_bytes": r["analytic_memory_bytes"],
                "diverged": r["diverged"],
                "diverged_epoch": r["diverged_epoch"],
                "unstable": unstable(r, chance_accuracy),
            }
        )
        curves += [
            {
                "batch_label": r["batch_label"],
                "batch_size": r["batch_size"],
                "learning_rate": r["settings"]["learning_rate"],
                "seed": r["seed"],
                **row,
            }
            for row in scores
        ]
    return pd.DataFrame(runs), pd.DataFrame(curves)


def _per_size(sweep_dir: Path, name: str) -> list[dict]:
    """Each batch size's `name` file (tuning.json, memory.json), smallest size first."""
    found = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{name}")]
    return sorted(found, key=lambda f: f["batch_size"])


def tuning_table(sweep_dir: Path) -> pd.DataFrame:
    """Every tuning trial: one row per batch size, stage (coarse, fine), learning rate and tuning seed,
    with the rate's mean over tuning seeds and whether it was chosen."""
    rows = []
    for size in _per_size(sweep_dir, "tuning.json"):
        chosen = size["chosen"]
        for trial in size["trials"]:
            rows.append(
                {
                    "batch_label": size["batch_label"],
                    "batch_size": size["batch_size"],
                    "epochs": size["epochs"],  # the tuning horizon: the size's own
                    **trial,
                    "chosen": trial["learning_rate"] == chosen["learning_rate"],
                    "on_edge": chosen["on_edge"],
                }
            )
    return pd.DataFrame(rows)


def memory_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per batch size and repeat: the peak memory of one run alone in a fresh process (its pid),
    beside the size's analytic memory."""
    rows = [
        {
            "batch_label": size["batch_label"],
            "batch_size": size["batch_size"],
            **repeat,
            "analytic_memory_bytes": size["analytic_memory_bytes"],
        }
        for size in _per_size(sweep_dir, "memory.json")
        for repeat in size["repeats"]
    ]
    return pd.DataFrame(rows)


def batch_summary(runs: pd.DataFrame, memory: pd.DataFrame) -> dict:
    """Per batch size: its own rate and budget, each metric's mean over seeds with its 95% interval, and
    its peak memory's median and range over the fresh processes (for `dvc metrics`)."""
    metrics = [
        "final_val_accuracy",
        "val_accuracy_epoch1",
        *TO_TARGET,
        "train_seconds",
        "seconds_per_step",
    ]
    summary = {}
    for label, group in runs.groupby("batch_label", sort=False):
        peaks = memory.loc[memory["batch_label"] == label, "peak_memory_bytes"]
        summary[f"batch-{label}"] = {
            "batch_size": int(group["batch_size"].iloc[0]),
            "learning_rate": float(group["learning_rate"].iloc[0]),
            "on_edge": _text(group["on_edge"].iloc[0]),
            "n_train": int(group["n_train"].iloc[0]),
            "epochs": int(group["epochs_run"].max()),
            "steps": int(group["steps_run"].max()),
            **{metric: describe(_values(group[metric])) for metric in metrics},
            "peak_memory_bytes": {
                "median": _number(peaks.median()),
                "low": _number(peaks.min()),
                "high": _number(peaks.max()),
                "repeats": len(peaks),
            },
            "analytic_memory_bytes": int(group["analytic_memory_bytes"].iloc[0]),
            "seeds": len(group),
            "seeds_reaching_target": int(group["steps_to_target"].notna().sum()),
            "seeds_unstable": int(group["unstable"].sum()),
            "seeds_diverged": int(group["diverged"].sum()),
        }
    return summary


def _values(column: pd.Series) -> list:
    return [None if pd.isna(v) else float(v) for v in column]


def _text(value) -> str | None:
    return None if pd.isna(value) else str(value)


def _number(value) -> float | None:
    return None if pd.isna(value) or not math.isfinite(value) else float(value)
