"""How runs are compared: from run records and test scores to the study's tables. Never trains.

Three tables, all long-form pandas frames:
- runs: one row per (variant, seed) run with its final metrics; the record later comparisons read;
- curves: one row per (variant, seed, epoch), the learning curves;
- summary: one row per variant, the mean over its seeds (and how many seeds reached the target).
"""

import json
from pathlib import Path

import pandas as pd

NOT_REACHED = "not reached"


def read_records(runs_dir: Path, variants: list[str], seeds: list[int]) -> list[dict]:
    return [
        json.loads((runs_dir / variant / f"seed-{seed}" / "record.json").read_text())
        for variant in variants
        for seed in seeds
    ]


def read_evaluations(eval_dir: Path, variants: list[str]) -> dict[str, dict]:
    return {variant: json.loads((eval_dir / f"{variant}.json").read_text()) for variant in variants}


def time_to_target(record: dict, target: float) -> dict:
    """Epochs, optimizer steps and training seconds until validation accuracy first reaches `target`.

    Measured at epoch ends, where validation is scored: None where the run never got there.
    """
    for row in record["history"]:
        if row["val_accuracy"] is not None and row["val_accuracy"] >= target:
            return {
                "epochs_to_target": row["epoch"],
                "steps_to_target": row["epoch"] * record["steps_per_epoch"],
                "seconds_to_target": row["seconds"],
            }
    return {"epochs_to_target": None, "steps_to_target": None, "seconds_to_target": None}


def runs_table(records: list[dict], evaluations: dict[str, dict], target: float) -> pd.DataFrame:
    rows = []
    for record in records:
        settings = record["settings"]
        schedule = settings.get("schedule")
        val_accuracies = [row["val_accuracy"] for row in record["history"] if row["val_accuracy"] is not None]
        test = evaluations[record["variant"]]["seeds"][str(record["seed"])]
        environment = record.get("environment", {})
        rows.append(
            {
                "variant": record["variant"],
                "seed": record["seed"],
                "optimizer": settings["optimizer"],
                "batch_size": record["batch_size"],
                "learning_rate": settings["learning_rate"],
                "momentum": settings.get("momentum"),
                "nesterov": settings.get("nesterov"),
                "schedule": schedule["name"] if schedule else None,
                "epochs_run": record["epochs_run"],
                "diverged": record["diverged"],
                "diverged_epoch": record["diverged_epoch"],
                "final_val_accuracy": record["history"][-1]["val_accuracy"],
                "best_val_accuracy": max(val_accuracies, default=None),
                "test_accuracy": test["test_accuracy"],
                "test_loss": test["test_loss"],
                **time_to_target(record, target),
                "train_seconds": record["train_seconds"],
                "seconds_per_epoch": record["train_seconds"] / max(record["epochs_run"], 1),
                "steps_per_epoch": record["steps_per_epoch"],
                "optimizer_state_bytes": record["optimizer_state_bytes"],
                "peak_memory_bytes": record["peak_memory_bytes"],
                "memory_kind": record["memory_kind"],
                "device": environment.get("device"),
                "tensorflow": environment.get("tensorflow"),
                "keras": environment.get("keras"),
                "op_determinism": environment.get("op_determinism"),
            }
        )
    return pd.DataFrame(rows)


def curves_table(records: list[dict]) -> pd.DataFrame:
    rows = [
        {"variant": r["variant"], "seed": r["seed"], "step": row["epoch"] * r["steps_per_epoch"], **row}
        for r in records
        for row in r["history"]
    ]
    return pd.DataFrame(rows)


SUMMARY_MEANS = [
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "test_loss",
    "train_seconds",
    "seconds_per_epoch",
    "optimizer_state_bytes",
    "peak_memory_bytes",
]
TO_TARGET = ["epochs_to_target", "steps_to_target", "seconds_to_target"]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: means over seeds; time to target over the seeds that reached it."""
    grouped = runs.groupby("variant", sort=False)
    summary = grouped[SUMMARY_MEANS].mean()
    summary[TO_TARGET] = grouped[TO_TARGET].mean()
    summary["seeds"] = grouped.size()
    summary["seeds_reaching_target"] = grouped["epochs_to_target"].count()
    summary["seeds_diverged"] = grouped["diverged"].sum()
    summary["batch_size"] = grouped["batch_size"].first()
    summary["learning_rate"] = grouped["learning_rate"].first()
    return summary.reset_index()


def with_not_reached(table: pd.DataFrame) -> pd.DataFrame:
    """The table for people to read: a target never reached says so instead of an empty cell."""
    readable = table.astype({column: object for column in TO_TARGET})
    return readable.fillna({column: NOT_REACHED for column in TO_TARGET})


def summary_json(summary: pd.DataFrame) -> dict:
    """Keyed by variant for `dvc metrics show/diff`; a target never reached is null."""
    table = summary.set_index("variant").astype(object)
    table = table.where(pd.notna(table), None)
    return {variant: _plain(row) for variant, row in table.to_dict(orient="index").items()}


def _plain(row: dict) -> dict:
    return {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}
