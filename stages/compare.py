"""Compare every variant, with its uncertainty, and test the primer's claims: `python -m stages.compare`.

Reads the run records, test scores, tuning trials, the momentum sweep, the batch-size sweep's tables
and the landscapes' outcomes; writes
metrics/summary.json (per variant and protocol, each metric's mean over seeds with its 95% interval,
for `dvc metrics`), metrics/summary.csv (the same, long form), metrics/runs.csv (one row per run),
metrics/pairwise.csv (paired differences in test accuracy), metrics/tuning.csv and tuning.json (every
learning rate tried and the tuning protocol), metrics/momentum.csv, the learning curves in
plots/curves.csv and plots/momentum_curves.csv, and the claims: metrics/claims.json (each claim with
its verdict and the numbers that decided it, study/claims.py) and metrics/verdicts.json (the
verdicts alone, for `dvc metrics diff` and `dvc exp show`).
"""

from pathlib import Path

import pandas as pd

from study import analysis, claims, params
from study.atomic import write_csv, write_json
from study.errors import StudyError, run_stage


def main() -> None:
    study = params.load()
    variants, seeds, target = list(study.variants), study.train.seeds, study.compare.target_accuracy
    try:
        records = analysis.read_records(Path("runs"), variants, seeds)
        evaluations = analysis.read_evaluations(Path("metrics/eval"), variants)
        tuning = analysis.tuning_table(Path("tuning"), variants)
        momentum_runs, momentum_curves = analysis.momentum_table(Path("sweeps/momentum"), target)
        batch_runs = pd.read_csv("metrics/batch_size.csv", dtype={"batch_label": str})
        batch_curves = pd.read_csv("plots/batch_size_curves.csv", dtype={"batch_label": str})
        landscapes = pd.read_csv("metrics/landscapes.csv")
    except FileNotFoundError as missing:
        raise StudyError(
            f"{missing.filename} is missing: run `dvc repro` to train and evaluate first"
        ) from None

    runs = analysis.runs_table(records, evaluations, target)
    summary = analysis.summary(runs)
    write_csv("metrics/runs.csv", analysis.with_not_reached(runs))
    write_json("metrics/summary.json", summary)
    write_csv("metrics/summary.csv", analysis.summary_table(summary))
    write_csv("metrics/pairwise.csv", analysis.pairwise(runs))
    write_csv("metrics/tuning.csv", tuning)
    write_json(
        "metrics/tuning.json",
        {
            **study.tune.model_dump(exclude={"storage"}),
            "metric": "val_accuracy",
            "ranges": {name: variant.search for name, variant in study.variants.items()},
        },
    )
    write_csv("metrics/momentum.csv", momentum_runs)
    curves = analysis.curves_table(records)
    write_csv("plots/curves.csv", curves)
    write_csv("plots/momentum_curves.csv", momentum_curves)

    evidence = claims.Evidence(
        runs=runs,
        curves=curves,
        batch_runs=batch_runs,
        batch_curves=batch_curves,
        momentum_runs=momentum_runs,
        tuning=tuning,
        landscapes=landscapes,
    )
    verdicts = claims.evaluate(evidence)
    write_json("metrics/claims.json", verdicts)
    write_json("metrics/verdicts.json", {c["id"]: c["verdict"] for c in verdicts})
    print(analysis.summary_table(summary).query("metric == 'test_accuracy'").round(4).to_string(index=False))
    for claim in verdicts:
        print(f"{claim['id']:>18}: {claim['verdict']}")


if __name__ == "__main__":
    run_stage(main)
