"""The study's headline, the one thing declared under dvc.yaml's `metrics:`: what `dvc metrics show`,
`dvc metrics diff` and `dvc exp show` print. compare writes it from the tables it has just decided.

DVC prints one row per metrics file and one column per key (the union over files), so the headline is
a folder of small files that share their keys, one row each:
- metrics/headline/<variant>.json: `tuned` and `defaults`, the variant's mean test accuracy over the
  seeds under each protocol, `tuned_ci` and `defaults_ci`, the half-width of that mean's 95% interval
  (Student's t, study/statistics.py: the interval is the mean ± the half-width), and `tuned_rate`, the
  learning rate its tuning chose;
- metrics/headline/verdicts/<claim>.json: `tuned` and `defaults`, the claim's verdict under each.
So the default study's 10 variants and 8 claims print 19 lines of about 120 characters, where one file
of the same 66 values would print one line of some 700. Accuracies are rounded to a hundredth of a
point and rates to 4 significant digits: what a reader compares, and what `dvc metrics diff` shows.
"""

import json
import math
from pathlib import Path

from study.atomic import atomic_dir
from study.params import PROTOCOLS

VERDICTS = "verdicts"  # the claims' sub-folder: after the variants when DVC sorts the paths


def variant_row(protocols: dict) -> dict:
    """One variant's row from its summary (analysis.summary): {protocol, protocol_ci, tuned_rate}."""
    row: dict = {}
    for protocol in PROTOCOLS:
        if protocol not in protocols:
            continue
        accuracy = protocols[protocol]["test_accuracy"]
        row[protocol] = _rounded(accuracy["mean"], 4)
        row[f"{protocol}_ci"] = _half_width(accuracy)
    if "tuned" in protocols:
        row["tuned_rate"] = _significant(protocols["tuned"]["learning_rate"], 4)
    return row


def rows(summary: dict, verdicts: dict) -> dict[str, dict]:
    """{file name inside metrics/headline/: its values}, from compare's summary and verdict table."""
    return {
        **{f"{variant}.json": variant_row(protocols) for variant, protocols in summary.items()},
        **{f"{VERDICTS}/{claim}.json": dict(by_protocol) for claim, by_protocol in verdicts.items()},
    }


def write(folder: str | Path, summary: dict, verdicts: dict) -> None:
    """The headline folder, replaced whole: a variant or claim that is gone leaves no file behind."""
    with atomic_dir(folder) as tmp:
        for name, values in rows(summary, verdicts).items():
            path = tmp / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n")


def _half_width(stats: dict) -> float | None:
    if stats["ci_low"] is None or stats["ci_high"] is None:
        return None
    return _rounded((stats["ci_high"] - stats["ci_low"]) / 2, 4)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _significant(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
