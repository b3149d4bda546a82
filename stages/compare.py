"""Compare every variant, with its uncertainty, and test the primer's claims: `python -m stages.compare`.

Reads the run records, test scores, tuning trials, and the tables the momentum sweep, the batch-size
sweep and the landscapes wrote; writes
metrics/summary.json (per variant and protocol, each metric's mean over seeds with its 95% interval),
metrics/summary.csv (the same, long form), metrics/runs.csv (one row per run),
metrics/pairwise.csv (paired differences in test accuracy, decided as the claims are),
metrics/tuning.csv and tuning.json (every learning rate tried on every tuning seed, and the tuning
protocol), plots/curves.csv, and the claims:
metrics/claims.json (each claim with its verdict per protocol and the numbers that decided it,
study/claims.py), metrics/answers.json (the primer's questions answered from them, study/answers.py:
what the report opens with), metrics/verdicts.json (the verdicts alone), and metrics/headline/, the
only metrics dvc.yaml declares (study/headline.py): what `dvc metrics show`, `dvc metrics diff` and
`dvc exp show` print.
"""

import json
from pathlib import Path

import pandas as pd

from study import analysis, answers, claims, headline, params
from study.atomic import write_csv, write_json
from study.errors import StudyError, run_stage


def main() -> None:
    study = params.load()
    variants, target = list(study.variants), study.compare.target_accuracy
    chance = study.compare.unstable_accuracy
    try:
        records = analysis.read_records(Path("runs"), variants, study.train)
        evaluations = analysis.read_evaluations(Path("metrics/eval"), variants)
        tuning = analysis.tuning_table(Path("tuning"), variants, chance)
        chosen = {v: json.loads((Path("tuning") / v / "best.json").read_text()) for v in variants}
        momentum_runs = pd.read_csv("metrics/momentum.csv")
        batch_runs = pd.read_csv("metrics/batch_size.csv", dtype={"batch_label": str})
        batch_curves = pd.read_csv("plots/batch_size_curves.csv", dtype={"batch_label": str})
        batch_memory = pd.read_csv("metrics/batch_memory.csv", dtype={"batch_label": str})
        landscapes = pd.read_csv("metrics/landscapes.csv")
    except FileNotFoundError as missing:
        raise StudyError(
            f"{missing.filename} is missing: run `dvc repro` to train and evaluate first"
        ) from None

    runs = analysis.runs_table(records, evaluations, target, chance)
    summary = analysis.summary(runs)
    write_csv("metrics/runs.csv", analysis.with_not_reached(runs))
    write_json("metrics/summary.json", summary)
    write_csv("metrics/summary.csv", analysis.summary_table(summary))
    rules = claims.Rules.from_params(study.compare)
    pairwise = analysis.pairwise(runs, rules.margins["accuracy"], 1 - rules.confidence)
    write_csv("metrics/pairwise.csv", pairwise)
    write_csv("metrics/tuning.csv", tuning)
    write_json(
        "metrics/tuning.json",
        {
            **study.tune.model_dump(),
            "epochs": study.tune_epochs,
            "metric": "mean final val_accuracy over the tuning seeds",
            "ranges": {name: variant.search for name, variant in study.variants.items()},
            "chosen": {
                name: {k: best.get(k) for k in ("learning_rate", "val_accuracy", "on_edge")}
                for name, best in chosen.items()
            },
        },
    )
    curves = analysis.curves_table(records)
    write_csv("plots/curves.csv", curves)

    evidence = claims.Evidence(
        variants=study.variants,
        runs=runs,
        tuning=tuning,
        momentum_runs=momentum_runs,
        batch_runs=batch_runs,
        batch_curves=batch_curves,
        batch_memory=batch_memory,
        landscapes=landscapes,
    )
    judged = claims.evaluate(evidence, rules)
    write_json("metrics/claims.json", judged)
    batch_labels = sorted(set(batch_runs["batch_label"]))
    write_json("metrics/answers.json", answers.build(judged, summary, pairwise, study.variants, batch_labels))
    write_json("metrics/verdicts.json", claims.verdict_table(judged))
    headline.write("metrics/headline", summary, claims.verdict_table(judged))  # all `dvc metrics` shows
    print(analysis.summary_table(summary).query("metric == 'test_accuracy'").round(4).to_string(index=False))
    for claim in judged:
        tuned, defaults = claim["verdicts"]["tuned"]["verdict"], claim["verdicts"]["defaults"]["verdict"]
        print(f"{claim['id']:>18}: {tuned} (at Keras' defaults: {defaults})")


if __name__ == "__main__":
    run_stage(main)
