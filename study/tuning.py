"""Equal-budget learning-rate tuning on the validation split, recorded in an Optuna study.

Every variant gets the same budget: the same number of learning rates, log-spaced over its search
range, the same epochs per trial and the same seed, scored on validation accuracy after the last
epoch. The grid is asked of Optuna all at once and trained as one stacked group (study/stacked.py).
The test split never reaches this module: `search` takes the training and validation splits only.

Optuna's storage (SQLite by default, or any URL such as PostgreSQL's, shared by several machines)
keeps every told trial, so an interrupted search resumes with the learning rates it has not scored
yet. A diverged trial is told as PRUNED (stopped early) with `diverged` set: recorded, not dropped,
and never chosen.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import optuna

from study.params import Study
from study.stacked import train_group

optuna.logging.set_verbosity(optuna.logging.WARNING)


def grid(low: float, high: float, points: int) -> list[float]:
    """`points` learning rates evenly spaced on a log scale from low to high, to 4 significant digits."""
    return [float(f"{rate:.4g}") for rate in np.geomspace(low, high, points)]


# The code a trial's score depends on: a changed trainer must not reuse scores from the old one.
TRAINER_SOURCES = ("tuning.py", "stacked.py", "model.py", "variants.py", "data.py")


def study_name(study: Study, variant_name: str) -> str:
    """One Optuna study per variant, budget and trainer code: a changed range, budget or trainer
    starts a fresh search; only an interrupted run of the same search resumes."""
    budget = {
        "variant": study.variant(variant_name).model_dump(exclude={"learning_rate"}),
        "tune": study.tune.model_dump(exclude={"storage"}),
        "model": study.model.model_dump(),
        "n_train": study.n_train,
        "train": study.train.model_dump(include={"jit_compile", "deterministic"}),
        "code": _code_digest(),
    }
    digest = hashlib.sha256(json.dumps(budget, sort_keys=True).encode()).hexdigest()[:12]
    return f"{variant_name}-{digest}"


def _code_digest() -> str:
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in TRAINER_SOURCES)).hexdigest()[:12]


def search(study: Study, variant_name: str, storage: str, train, validation, on_epoch=None) -> list[dict]:
    """Score every learning rate of the variant's grid not scored yet; return all trials of the grid."""
    low, high = study.variant(variant_name).search
    rates = grid(low, high, study.tune.points)
    record = optuna.create_study(
        study_name=study_name(study, variant_name),
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.GridSampler({"learning_rate": rates}, seed=study.tune.seed),
    )
    _fail_abandoned(record)
    done = {t.params["learning_rate"] for t in record.trials if t.state in _TOLD}
    todo = [rate for rate in rates if rate not in done]
    if todo:
        trials = []
        for rate in todo:
            record.enqueue_trial({"learning_rate": rate})
            trial = record.ask()
            trial.suggest_float("learning_rate", low, high, log=True)
            trials.append(trial)
        budget = study.model_copy(
            update={"train": study.train.model_copy(update={"epochs": study.tune.epochs})}
        )
        seeds = [study.tune.seed] * len(todo)
        results = train_group(budget, variant_name, seeds, train, validation, todo, on_epoch=on_epoch)
        for trial, result in zip(trials, results, strict=True):
            _tell(record, trial, result.record)
    return trial_table(record, rates)


def _tell(record: optuna.Study, trial: optuna.Trial, run: dict) -> None:
    curve = [row["val_accuracy"] for row in run["history"]]
    trial.set_user_attr("val_accuracy_per_epoch", curve)
    trial.set_user_attr("diverged", run["diverged"])
    trial.set_user_attr("diverged_epoch", run["diverged_epoch"])
    if run["diverged"]:
        record.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        record.tell(trial, curve[-1])


def _fail_abandoned(record: optuna.Study) -> None:
    """Trials left RUNNING by an interrupted search were never scored: mark them failed, ask again."""
    for trial in record.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            record.tell(trial.number, state=optuna.trial.TrialState.FAIL)


_TOLD = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def trial_table(record: optuna.Study, rates: list[float]) -> list[dict]:
    """One row per learning rate of the grid, from its latest told trial."""
    latest = {t.params["learning_rate"]: t for t in record.trials if t.state in _TOLD}
    return [
        {
            "learning_rate": rate,
            "val_accuracy": latest[rate].value,
            "diverged": latest[rate].user_attrs["diverged"],
            "diverged_epoch": latest[rate].user_attrs["diverged_epoch"],
            "trial": latest[rate].number,
        }
        for rate in rates
    ]


def best(trials: list[dict]) -> dict | None:
    """The learning rate with the highest validation accuracy (the lower rate wins a tie: it is the
    safer one); None when every rate diverged."""
    scored = [t for t in trials if not t["diverged"] and t["val_accuracy"] is not None]
    if not scored:
        return None
    top = max(scored, key=lambda t: (t["val_accuracy"], -t["learning_rate"]))
    return {"learning_rate": top["learning_rate"], "val_accuracy": top["val_accuracy"]}
