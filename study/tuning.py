"""Equal-budget learning-rate tuning on the validation split, at the training horizon, recorded in an
Optuna study.

Every variant gets the same trials (params.yaml's `tune`): a coarse grid of `points` rates log-spaced
over its own search range, then a fine grid of `refine` rates on each side of the coarse best,
`refine_step` decades apart. Each grid trains as one stacked group (study/stacked.py), every rate once
per tuning seed, for `Study.tune_epochs` epochs: the horizon it is then trained for, so that a schedule
is tuned over its whole schedule. A rate's score is its mean final validation accuracy over the tuning
seeds, which never judge: they are disjoint from the evaluation seeds (the schema refuses an overlap).
The test split never reaches this module: `search` takes the training and validation splits only.

The Optuna study is the record of trials: one trial per learning rate, its per-seed results in user
attributes. Its storage (study/storage.py: SQLite by default, or a database several machines share)
keeps every told trial, so an interrupted search resumes with the rates it has not scored. A rate
that diverged on any seed is told as PRUNED (stopped early) with `diverged` set: recorded, not
dropped, and never chosen.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import optuna

from study import storage
from study.params import Study
from study.stacked import train_group

optuna.logging.set_verbosity(optuna.logging.WARNING)


def grid(low: float, high: float, points: int) -> list[float]:
    """`points` learning rates evenly spaced on a log scale from low to high, to 4 significant digits."""
    return [float(f"{rate:.4g}") for rate in np.geomspace(low, high, points)]


def refine_grid(best: float, refine: int, step: float, tried=()) -> list[float]:
    """The fine grid around the coarse best: `refine` rates on each side, `step` decades apart, to 4
    significant digits, leaving out rates already tried. Around a best on the edge of the coarse grid
    the outer side reaches past the search range: the search widens by refine x step decades."""
    seen = {float(f"{rate:.4g}") for rate in tried}
    rates = [float(f"{best * 10 ** (k * step):.4g}") for k in range(-refine, refine + 1) if k != 0]
    return [rate for rate in rates if rate not in seen]


def score_rates(
    study: Study, variant_name: str, rates: list[float], train, validation, on_epoch=None
) -> list[dict]:
    """Train every rate once per tuning seed as one stacked group, at the tuning horizon
    (`Study.tune_epochs`); one row per (rate, seed): its final and first-epoch validation accuracy,
    its first and final training loss, and whether it diverged. Never sees the test split."""
    budget = study.model_copy(update={"train": study.train.model_copy(update={"epochs": study.tune_epochs})})
    members = [(rate, seed) for rate in rates for seed in study.tune.seeds]
    results = train_group(
        budget,
        variant_name,
        [seed for _, seed in members],
        train,
        validation,
        [rate for rate, _ in members],
        on_epoch=on_epoch,
    )
    return [
        _trial_row(rate, seed, result.record) for (rate, seed), result in zip(members, results, strict=True)
    ]


def _trial_row(rate: float, seed: int, record: dict) -> dict:
    history = record["history"]
    return {
        "learning_rate": rate,
        "seed": seed,
        "val_accuracy": None if record["diverged"] else history[-1]["val_accuracy"],
        "val_accuracy_epoch1": history[0]["val_accuracy"],
        "loss_epoch1": history[0]["loss"],
        "loss": None if record["diverged"] else history[-1]["loss"],
        "diverged": record["diverged"],
        "diverged_epoch": record["diverged_epoch"],
    }


def mean_scores(rows: list[dict]) -> dict[float, float | None]:
    """Each rate's score: its mean final validation accuracy over the tuning seeds (None when any seed
    diverged: a rate that diverges on some seeds is never chosen)."""
    by_rate: dict[float, list] = {}
    for row in rows:
        by_rate.setdefault(row["learning_rate"], []).append(row["val_accuracy"])
    return {
        rate: None if any(v is None for v in values) else float(np.mean(values))
        for rate, values in sorted(by_rate.items())
    }


def choose(rows: list[dict]) -> dict | None:
    """The rate with the best mean score (the lower rate wins a tie: it is the safer one), and whether
    it lies on the edge of the rates tried (`on_edge`: "low", "high" or None); None when every rate
    diverged."""
    scores = mean_scores(rows)
    scored = {rate: score for rate, score in scores.items() if score is not None}
    if not scored:
        return None
    rate = max(scored, key=lambda r: (scored[r], -r))
    tried = sorted(scores)
    edge = "low" if rate == tried[0] else "high" if rate == tried[-1] else None
    return {"learning_rate": rate, "val_accuracy": scored[rate], "on_edge": edge}


# The code a trial's score depends on: a changed trainer must not reuse scores from the old one.
TRAINER_SOURCES = ("tuning.py", "stacked.py", "model.py", "variants.py", "data.py")


def study_name(study: Study, variant_name: str) -> str:
    """One Optuna study per variant, budget, data and trainer code: a changed range, tuning seed list,
    horizon, grid or trainer starts a fresh search; only an interrupted run of the same search resumes.
    Nothing about where the trials are kept is part of it (a database URL may hold a password)."""
    budget = {
        "variant": study.variant(variant_name).model_dump(exclude={"learning_rate"}),
        "tune": study.tune.model_dump() | {"epochs": study.tune_epochs},
        "model": study.model.model_dump(),
        "data": {"arrays": study.data.expected.array_sha256, "prepare": study.prepare.model_dump()},
        "n_train": study.n_train,
        "train": study.train.model_dump(include={"jit_compile", "deterministic"}),
        "code": _code_digest(),
    }
    digest = hashlib.sha256(json.dumps(budget, sort_keys=True).encode()).hexdigest()[:12]
    return f"{variant_name}-{digest}"


def _code_digest() -> str:
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in TRAINER_SOURCES)).hexdigest()[:12]


def search(study: Study, variant_name: str, storage_url, train, validation, on_epoch=None) -> list[dict]:
    """The coarse grid, then the fine grid around its best, each rate scored on every tuning seed;
    return one row per (rate, seed) of both grids, each with its `stage`. Rates already told in the
    Optuna study at `storage_url` (a checked URL from study/storage.py, or its text) are not trained
    again. `choose(rows)` then gives the rate the tuned protocol trains with."""
    low, high = study.variant(variant_name).search
    record = optuna.create_study(
        study_name=study_name(study, variant_name),
        storage=storage.open_storage(storage_url),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # never asked: every trial's rate is enqueued
    )
    _fail_abandoned(record)

    def score(rates: list[float], stage: str) -> list[dict]:
        return _score_untold(record, study, variant_name, stage, rates, train, validation, on_epoch)

    return coarse_then_fine(study.tune, low, high, score)


def coarse_then_fine(tune, low: float, high: float, score) -> list[dict]:
    """The grid rule every search follows (tune's points, refine and refine_step): the coarse grid over
    [low, high], then the fine grid around its best. `score(rates, stage)` trains or recalls the rates
    and returns one row per (rate, seed); the rows of both grids come back, coarse first."""
    coarse = grid(low, high, tune.points)
    rows = score(coarse, "coarse")
    fine = refine_grid(_centre(rows), tune.refine, tune.refine_step, tried=coarse)
    return rows + (score(fine, "fine") if fine else [])


def _centre(coarse_rows: list[dict]) -> float:
    """Where the fine grid goes: the coarse best; when every coarse rate diverged, the lowest rate, so
    that the fine grid widens the search downwards, where divergence is least likely, with the same
    number of trials as every other variant."""
    chosen = choose(coarse_rows)
    return chosen["learning_rate"] if chosen else min(row["learning_rate"] for row in coarse_rows)


def _reach(study: Study, variant_name: str) -> tuple[float, float]:
    """The rates a search can try: the search range, widened by the fine grid's reach on each side
    (around a best on the edge of the coarse grid it reaches past the range)."""
    low, high = study.variant(variant_name).search
    widen = 10 ** (study.tune.refine * study.tune.refine_step)
    return low / widen, high * widen


def _score_untold(record, study, variant_name, stage, rates, train, validation, on_epoch) -> list[dict]:
    """Each rate's per-seed rows: from its told trial, else trained now (all untold rates as one
    stacked group) and told."""
    told = told_trials(record)
    todo = [rate for rate in rates if rate not in told]
    if todo:
        trials = {rate: _ask(record, rate, stage, _reach(study, variant_name)) for rate in todo}
        scored = score_rates(study, variant_name, todo, train, validation, on_epoch=on_epoch)
        for rate, trial in trials.items():
            _tell(record, trial, [row for row in scored if row["learning_rate"] == rate])
        told = told_trials(record)
    return [{"stage": stage, **row} for rate in rates for row in told[rate].user_attrs["runs"]]


def _ask(record: optuna.Study, rate: float, stage: str, reach: tuple[float, float]) -> optuna.Trial:
    record.enqueue_trial({"learning_rate": rate})
    trial = record.ask()
    trial.suggest_float("learning_rate", min(reach[0], rate), max(reach[1], rate), log=True)
    trial.set_user_attr("stage", stage)
    return trial


def _tell(record: optuna.Study, trial: optuna.Trial, runs: list[dict]) -> None:
    """One trial per rate: its per-seed rows as a user attribute, its score (the mean over seeds) as
    its value; PRUNED when any seed diverged."""
    trial.set_user_attr("runs", runs)
    trial.set_user_attr("seeds", [run["seed"] for run in runs])
    trial.set_user_attr("diverged", any(run["diverged"] for run in runs))
    score = mean_scores(runs)[runs[0]["learning_rate"]]
    if score is None:
        record.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        record.tell(trial, score)


def _fail_abandoned(record: optuna.Study) -> None:
    """Trials left RUNNING by an interrupted search were never scored: mark them failed, ask again."""
    for trial in record.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            record.tell(trial.number, state=optuna.trial.TrialState.FAIL)


_TOLD = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def told_trials(record: optuna.Study) -> dict[float, optuna.trial.FrozenTrial]:
    """Each learning rate's latest told trial."""
    return {t.params["learning_rate"]: t for t in record.trials if t.state in _TOLD}
