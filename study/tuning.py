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

The study is also a queue that several workers (study/worker.py), on one machine or many, take trials
from at once; `search` is one such worker, which then collects every row. A grid's rates are enqueued
(WAITING) under a lock the database holds (`storage.exclusive`), each only when it has no waiting,
running or told trial: so each is enqueued once, however many workers reach the grid together, and
the fine grid, computed by every worker from the same told coarse trials, is the same grid for all.
A worker claims waiting trials (Optuna's WAITING to RUNNING is atomic: one claim wins) and trains
what it claimed as one stacked group: alone, the whole grid, as one process always did. While it
trains, a thread records a heartbeat for each of its trials; a trial silent for longer than the grace
period is failed by whichever worker notices (its worker was killed or cut off), and its rate, now
without a live trial, is enqueued again. A worker interrupted in its own process fails its trials at
once. Workers with nothing to claim wait, polling, until the grid is told. Which group trained a
rate changes its scores by float rounding at most (study/stacked.py), and the fine grid is computed
from the told coarse scores: so the workers choose the rate a single worker chooses, short of two
rates tied to within that rounding.
"""

import hashlib
import json
import math
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from study import storage
from study.params import Study
from study.stacked import train_group

optuna.logging.set_verbosity(optuna.logging.WARNING)

# How often a worker records that its trials are alive, and how long a running trial may stay silent
# before another worker fails it and trains its rate again: generous, for an XLA compilation or a busy
# machine can delay a heartbeat by seconds, and a live trial failed is a rate trained twice.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
POLL_SECONDS = 2  # how often a worker with nothing to claim looks again


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
    # Seed by seed, so that a stack holds one seed's rates, which read the same batches (study/stacked.py).
    members = [(rate, seed) for seed in study.tune.seeds for rate in rates]
    results = train_group(
        budget,
        variant_name,
        [seed for _, seed in members],
        train,
        validation,
        [rate for rate, _ in members],
        on_epoch=on_epoch,
    )
    records = {member: result.record for member, result in zip(members, results, strict=True)}
    return [_trial_row(rate, seed, records[rate, seed]) for rate in rates for seed in study.tune.seeds]


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


def search(
    study: Study,
    variant_name: str,
    storage_url,
    train,
    validation,
    on_epoch=None,
    *,
    workers: int = 1,
    heartbeat: int = HEARTBEAT_SECONDS,
    grace: int = GRACE_SECONDS,
    poll: float = POLL_SECONDS,
    on_claim=None,
) -> list[dict]:
    """The coarse grid, then the fine grid around its best, each rate scored on every tuning seed;
    return one row per (rate, seed) of both grids, each with its `stage`. Rates already told in the
    Optuna study at `storage_url` (a checked URL from study/storage.py, or its text) are not trained
    again, and rates other workers are training are waited for. `choose(rows)` then gives the rate the
    tuned protocol trains with.

    `workers`: how many workers share the grid; each claims at most 1/workers of a grid's rates at a
    time (1: the whole grid, as one group). `heartbeat`, `grace`, `poll`: in seconds, as HEARTBEAT_SECONDS,
    GRACE_SECONDS and POLL_SECONDS say.
    `on_claim(stage, rates)`: called with the rates this worker has just claimed, before it trains them."""
    low, high = study.variant(variant_name).search
    shared = _open(study, variant_name, storage_url, heartbeat, grace)

    def score(rates: list[float], stage: str) -> list[dict]:
        return _score_shared(
            shared, study, variant_name, stage, rates, train, validation, on_epoch, workers, poll, on_claim
        )

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


@dataclass
class _Shared:
    """One variant's Optuna study as the queue its workers share, and the storage that holds it."""

    record: optuna.Study
    rdb: optuna.storages.RDBStorage
    heartbeat: int


def _open(study: Study, variant_name: str, storage_url, heartbeat: int, grace: int) -> _Shared:
    rdb = storage.open_storage(storage_url, heartbeat=heartbeat, grace=grace)
    record = optuna.create_study(
        study_name=study_name(study, variant_name),
        storage=rdb,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # never asked: every trial's rate is enqueued
    )
    return _Shared(record, rdb, heartbeat)


def _score_shared(
    shared, study, variant_name, stage, rates, train, validation, on_epoch, workers, poll, on_claim
) -> list[dict]:
    """Each rate's per-seed rows, once every rate has a told trial: claim and train waiting ones (as one
    stacked group, at most 1/workers of the grid at a time), or wait for other workers' running ones."""
    limit = math.ceil(len(rates) / max(1, workers))
    while True:
        told = _settle(shared, stage, rates)
        if all(rate in told for rate in rates):
            return [{"stage": stage, **row} for rate in rates for row in told[rate].user_attrs["runs"]]
        claimed = _claim(shared, rates, limit)
        if claimed:
            if on_claim is not None:
                on_claim(stage, list(claimed))
            _train_claimed(shared, study, variant_name, claimed, train, validation, on_epoch)
        else:
            time.sleep(poll)


def _settle(shared: _Shared, stage: str, rates: list[float]) -> dict[float, optuna.trial.FrozenTrial]:
    """Fail the trials whose worker has fallen silent, then enqueue each rate of the grid that has no
    live (waiting, running or told) trial: under the database's lock, so that two workers never both
    enqueue one rate. Return the told trials by rate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(shared.record)
    with storage.exclusive(shared.rdb, f"optuna-enqueue:{shared.record.study_name}"):
        trials = shared.record.get_trials(deepcopy=False)
        live = {_rate(t) for t in trials if t.state in _LIVE}
        for rate in rates:
            if rate not in live:
                shared.record.enqueue_trial({"learning_rate": rate}, user_attrs={"stage": stage})
    return {_rate(t): t for t in trials if t.state in _TOLD}


def _claim(shared: _Shared, rates: list[float], limit: int) -> dict[float, int]:
    """Claim up to `limit` waiting trials of the grid, in the grid's order; {rate: trial id}. Each
    trial's heartbeat is recorded before its claim, so that a worker killed just after claiming leaves
    a trial that goes stale, never one that runs forever."""
    waiting = {_rate(t): t._trial_id for t in shared.record.get_trials(deepcopy=False, states=(_WAITING,))}
    claimed: dict[float, int] = {}
    for rate in rates:
        if len(claimed) == limit:
            break
        if rate not in waiting:
            continue
        trial_id = waiting[rate]
        shared.rdb.record_heartbeat(trial_id)
        try:
            if shared.rdb.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING):
                claimed[rate] = trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # told or failed between the look and the claim
    return claimed


def _train_claimed(shared, study, variant_name, claimed, train, validation, on_epoch) -> None:
    """Train the claimed rates as one stacked group and tell each trial. Interrupted (Ctrl-C, SIGTERM,
    an error), fail them at once, so that their rates go back to the queue without waiting for the
    grace period."""
    reach = _reach(study, variant_name)
    trials = {rate: optuna.Trial(shared.record, trial_id) for rate, trial_id in claimed.items()}
    with _heartbeats(shared, list(claimed.values())):
        try:
            for rate, trial in trials.items():
                trial.suggest_float("learning_rate", min(reach[0], rate), max(reach[1], rate), log=True)
            rates = list(trials)
            scored = score_rates(study, variant_name, rates, train, validation, on_epoch=on_epoch)
        except BaseException:
            for trial in trials.values():
                shared.record.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        for rate, trial in trials.items():
            _tell(shared.record, trial, [row for row in scored if row["learning_rate"] == rate])


@contextmanager
def _heartbeats(shared: _Shared, trial_ids: list[int]) -> Iterator[None]:
    """Record every `heartbeat` seconds that these trials' worker is alive, while the block runs."""
    stop = threading.Event()

    def beat():
        while not stop.wait(shared.heartbeat):
            for trial_id in trial_ids:
                # The database unreachable for a moment: a later beat may get through.
                with suppress(optuna.exceptions.StorageInternalError):
                    shared.rdb.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name="trial-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _tell(record: optuna.Study, trial: optuna.Trial, runs: list[dict]) -> None:
    """One trial per rate: its per-seed rows as a user attribute, its score (the mean over seeds) as
    its value; PRUNED when any seed diverged. A trial another worker failed meanwhile (its heartbeat
    stayed silent past the grace period) is left failed: its rate was enqueued again."""
    score = mean_scores(runs)[runs[0]["learning_rate"]]
    try:
        trial.set_user_attr("runs", runs)
        trial.set_user_attr("seeds", [run["seed"] for run in runs])
        trial.set_user_attr("diverged", any(run["diverged"] for run in runs))
        if score is None:
            record.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            record.tell(trial, score)
    except optuna.exceptions.UpdateFinishedTrialError:
        print(
            f"warning: trial {trial.number} (learning rate {runs[0]['learning_rate']:g}) was failed by "
            "another worker, which took this worker for dead; its result is dropped",
            file=sys.stderr,
        )


_WAITING = optuna.trial.TrialState.WAITING
_TOLD = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
_LIVE = (_WAITING, optuna.trial.TrialState.RUNNING, *_TOLD)


def _rate(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's learning rate: its parameter, or, before a worker has set it, the rate it was enqueued
    with."""
    return trial.params.get("learning_rate", trial.system_attrs.get("fixed_params", {}).get("learning_rate"))
