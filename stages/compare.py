"""Put every variant side by side: `python -m stages.compare`.

Reads the run records and test scores; writes metrics/summary.json (per variant, for `dvc metrics`),
metrics/summary.csv (the same table), metrics/runs.csv (one row per variant and seed) and
plots/curves.csv (every learning curve, for the overlay plots declared in dvc.yaml).
"""

from pathlib import Path

from study import analysis, params
from study.atomic import atomic_file, write_json
from study.errors import StudyError, run_stage


def main() -> None:
    study = params.load()
    variants, seeds = list(study.variants), study.train.seeds
    try:
        records = analysis.read_records(Path("runs"), variants, seeds)
        evaluations = analysis.read_evaluations(Path("metrics/eval"), variants)
    except FileNotFoundError as missing:
        raise StudyError(
            f"{missing.filename} is missing: run `dvc repro` to train and evaluate first"
        ) from None

    runs = analysis.runs_table(records, evaluations, study.compare.target_accuracy)
    summary = analysis.summary_table(runs)
    write_csv("metrics/runs.csv", runs)
    write_csv("metrics/summary.csv", analysis.with_not_reached(summary))
    write_json("metrics/summary.json", analysis.summary_json(summary))
    write_csv("plots/curves.csv", analysis.curves_table(records))
    print(summary[["variant", "test_accuracy", "epochs_to_target", "train_seconds"]].to_string(index=False))


def write_csv(path: str, table) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)


if __name__ == "__main__":
    run_stage(main)
