"""How runs are compared: from run records and test scores to the study's tables. Never trains.

Long-form pandas tables, each read by the report and by `dvc metrics` / `dvc plots`:
- runs: one row per (variant, protocol, seed) run with its final metrics;
- curves: one row per (variant, protocol, seed, epoch), the learning curves;
- summary: per variant and protocol, each metric's mean over seeds with its 95% interval;
- pairwise: per protocol and ordered pair of variants, the paired difference in test accuracy, decided
  by the claims' rule (study/statistics.py's `decide`, a predicted higher);
- tuning: every learning rate each variant's tuning tried; momentum: the momentum sweep's runs;
- batch size: the batch-size sweep's runs and their validation scores at log-spaced steps.
"""

import json
import math
from itertools import permutations
from pathlib import Path

import pandas as pd

from study.params import PROTOCOLS
from study.statistics import decide, describe

CLASSES = 10  # MNIST's digits, as study/model.py (which imports Keras: compare should not)
NOT_REACHED = "not reached"
TO_TARGET = ["epochs_to_target", "steps_to_target", "seconds_to_target"]
SUMMARY_METRICS = [
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "test_loss",
    *TO_TARGET,
    "train_seconds",
    "seconds_per_epoch",
    "optimizer_state_bytes",
    "peak_memory_bytes",
]


def read_records(runs_dir: Path, variants: list[str], train) -> list[dict]:
    """Every run record: per variant, each protocol's own seeds (`Train.protocol_seeds`)."""
    return [
        json.loads((runs_dir / variant / protocol / f"seed-{seed}" / "record.json").read_text())
        for variant in variants
        for protocol in PROTOCOLS
        for seed in train.protocol_seeds(protocol)
    ]


def unstable(diverged: bool, final_val_accuracy, final_loss, chance: float) -> bool:
    """A run that failed in a way one can observe: it diverged (a NaN or infinite loss), it ended below
    `chance` validation accuracy, or its final training loss is above a uniform guess's (log of the
    number of classes, about where an untrained network starts): it overshot rather than learned."""
    if diverged or final_val_accuracy is None or pd.isna(final_val_accuracy):
        return True
    return bool(final_val_accuracy < chance or (final_loss is not None and final_loss > math.log(CLASSES)))


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
    return dict.fromkeys(TO_TARGET)


def run_row(record: dict, target: float, chance: float = 0.2) -> dict:
    """A run's settings and final metrics, from its record alone (no test split)."""
    settings = record["settings"]
    schedule = settings.get("schedule")
    val_accuracies = [row["val_accuracy"] for row in record["history"] if row["val_accuracy"] is not None]
    return {
        "variant": record["variant"],
        "protocol": record.get("protocol"),
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
        "val_accuracy_epoch1": record["history"][0]["val_accuracy"],
        "unstable": unstable(
            record["diverged"], record["history"][-1]["val_accuracy"], record["history"][-1]["loss"], chance
        ),
        "best_val_accuracy": max(val_accuracies, default=None),
        **time_to_target(record, target),
        "train_seconds": record["train_seconds"],
        "seconds_per_epoch": record["train_seconds"] / max(record["epochs_run"], 1),
        "seconds_per_step": record.get("seconds_per_step"),
        "steps_per_epoch": record["steps_per_epoch"],
        "optimizer_state_bytes": record["optimizer_state_bytes"],
        "peak_memory_bytes": record.get("peak_memory_bytes"),
        "memory_kind": record.get("memory_kind"),
    }


def runs_table(
    records: list[dict], evaluations: dict[str, dict], target: float, chance: float
) -> pd.DataFrame:
    rows = []
    for record in records:
        test = evaluations[record["variant"]][record["protocol"]]["seeds"][str(record["seed"])]
        environment = record.get("environment", {})
        rows.append(
            {
                **run_row(record, target, chance),
                "test_accuracy": test["test_accuracy"],
                "test_loss": test["test_loss"],
                "device": environment.get("device"),
                "tensorflow": environment.get("tensorflow"),
                "keras": environment.get("keras"),
                "op_determinism": environment.get("op_determinism"),
            }
        )
    return pd.DataFrame(rows)


def curves_table(records: list[dict]) -> pd.DataFrame:
    keys = ("variant", "protocol", "seed", "momentum", "nesterov")
    rows = [{**{k: r[k] for k in keys if k in r}, **row} for r in records for row in r["history"]]
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame) -> dict:
    """{variant: {protocol: {metric: {mean, std, ci_low, ci_high, n_seeds}, learning_rate, ...}}}."""
    result: dict = {}
    for (variant, protocol), group in runs.groupby(["variant", "protocol"], sort=False):
        stats = {metric: describe(_values(group[metric])) for metric in SUMMARY_METRICS}
        result.setdefault(variant, {})[protocol] = {
            **stats,
            "learning_rate": float(group["learning_rate"].iloc[0]),
            "batch_size": int(group["batch_size"].iloc[0]),
            "seeds": len(group),
            "seeds_reaching_target": int(group["epochs_to_target"].notna().sum()),
            "seeds_diverged": int(group["diverged"].sum()),
        }
    return result


def summary_table(summary_json: dict) -> pd.DataFrame:
    """The summary in long form for people and spreadsheets: one row per variant, protocol, metric."""
    return pd.DataFrame(
        [
            {"variant": variant, "protocol": protocol, "metric": metric, **values}
            for variant, protocols in summary_json.items()
            for protocol, metrics in protocols.items()
            for metric, values in metrics.items()
            if isinstance(values, dict)
        ]
    )


def pairwise(runs: pd.DataFrame, margin: float, alpha: float, metric: str = "test_accuracy") -> pd.DataFrame:
    """Every ordered pair of variants, per protocol: a − b paired by seed, decided as a claim's test that
    predicts a higher (`supported`: a higher; `contradicted`: a lower; `no detectable effect`: within
    ±margin; `inconclusive`), at error rate `alpha`."""
    rows = []
    for protocol, group in runs.groupby("protocol", sort=False):
        by_seed = group.pivot(index="seed", columns="variant", values=metric)
        for a, b in permutations(group["variant"].unique(), 2):
            pairs = [
                (x, y)
                for x, y in zip(_values(by_seed[a]), _values(by_seed[b]), strict=True)
                if x is not None and y is not None
            ]
            differences = [x - y for x, y in pairs]
            rows.append(
                {
                    "protocol": protocol,
                    "variant_a": a,
                    "variant_b": b,
                    "metric": metric,
                    **decide(differences, True, margin, alpha),
                    "share_a_better": sum(d > 0 for d in differences) / len(differences) if pairs else None,
                }
            )
    return pd.DataFrame(rows)


def tuning_table(tuning_dir: Path, variants: list[str], chance: float) -> pd.DataFrame:
    """Every trial of every variant's tuning (one row per rate and tuning seed), marked unstable or not."""
    table = pd.concat(
        [pd.read_csv(tuning_dir / variant / "trials.csv") for variant in variants], ignore_index=True
    )
    table["unstable"] = [
        unstable(bool(row.diverged), row.val_accuracy, row.loss, chance) for row in table.itertuples()
    ]
    return table


def _values(column: pd.Series) -> list:
    return [None if pd.isna(v) else float(v) for v in column]


def with_not_reached(table: pd.DataFrame) -> pd.DataFrame:
    """The table for people to read: a target never reached says so instead of an empty cell."""
    readable = table.astype({column: object for column in TO_TARGET})
    return readable.fillna({column: NOT_REACHED for column in TO_TARGET})
