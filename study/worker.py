"""One of several workers that tune a variant's learning-rate grid together, on one machine or many:
`python -m study.worker <variant> [--workers N]`, run from the study's folder with OPTUNA_STORAGE set.

Every worker runs the search the pipeline runs (study/tuning.py), on the Optuna study that
OPTUNA_STORAGE names: it claims waiting rates of the grid, trains them as one stacked group, tells
them, and waits for the other workers' rates before the fine grid. It writes nothing else: no file DVC
or git keeps. Then `dvc repro`, with the same OPTUNA_STORAGE, finds every trial told, trains nothing
for tuning and writes the variant's tuning results from them.

Each worker needs the same commit and the same prepared data (`dvc repro prepare`, or `dvc pull`):
the Optuna study's name is a digest of the params, the data and the trainer's code, so a worker on
other params fills another study, which the pipeline never reads.

`--workers N`: how many workers share the grid; each then claims about 1/N of a grid's rates at a
time (the default, 1, claims the whole grid: one group, as the pipeline trains it). `--heartbeat` and
`--grace`: seconds between a worker's signs of life, and how long a silent trial waits before another
worker takes it over (study/tuning.py's HEARTBEAT_SECONDS and GRACE_SECONDS).
"""

import argparse
import os
import signal
import sys
from pathlib import Path

from study import data, params, runtime, storage, tuning
from study.errors import StudyError, one_line


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m study.worker",
        description="Tune one variant's learning-rate grid together with other workers, in the Optuna "
        f"study that {storage.ENVIRONMENT} names; then `dvc repro` collects the trials.",
    )
    parser.add_argument("variant", help="the variant whose learning-rate grid to tune")
    parser.add_argument(
        "--workers", type=int, default=1, help="N workers share the grid: each claims 1/N at a time"
    )
    parser.add_argument(
        "--heartbeat", type=int, default=tuning.HEARTBEAT_SECONDS, help="seconds between signs of life"
    )
    parser.add_argument(
        "--grace", type=int, default=tuning.GRACE_SECONDS, help="seconds of silence before a trial is retried"
    )
    parser.add_argument(
        "--poll", type=float, default=tuning.POLL_SECONDS, help="seconds between looks while others train"
    )
    arguments = parser.parse_args(argv)
    for name in ("workers", "heartbeat", "grace", "poll"):
        if getattr(arguments, name) <= 0:
            raise StudyError(f"--{name} = {getattr(arguments, name)}: must be positive")
    if arguments.grace <= arguments.heartbeat:
        raise StudyError(
            f"--grace = {arguments.grace} must exceed --heartbeat = {arguments.heartbeat}: "
            "else a live worker's trials are taken for dead between two heartbeats"
        )
    return arguments


def main(argv: list[str]) -> None:
    arguments = parse(argv)
    study = params.load()
    name = arguments.variant
    study.variant(name)
    if not os.environ.get(storage.ENVIRONMENT, "").strip():  # the default SQLite file is this machine's
        raise StudyError(
            f"{storage.ENVIRONMENT} is not set: workers share their trials through it; set it to "
            "postgresql://user:password@host/database (or sqlite:///path/optuna.db for workers on one "
            "machine), and the same for `dvc repro`"
        )
    url = storage.resolve(Path("tuning") / name)  # checked before any data is loaded or anything trained
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)

    trained = []
    rows = tuning.search(
        study,
        name,
        url,
        train,
        validation,
        # A group's first epoch reports every run of the group.
        on_epoch=lambda epoch, runs, first: trained.append(len(runs)) if epoch == 1 else None,
        workers=arguments.workers,
        heartbeat=arguments.heartbeat,
        grace=arguments.grace,
        poll=arguments.poll,
        on_claim=lambda stage, claimed: print(
            f"{name}: training {stage} rates {', '.join(f'{rate:g}' for rate in claimed)} here", flush=True
        ),
    )
    rates = len({row["learning_rate"] for row in rows})
    print(
        f"{name}: all {rates} rates of its grid are told in {storage.shown(url)} "
        f"({sum(trained)} runs trained by this worker); `dvc repro` with the same "
        f"{storage.ENVIRONMENT} collects them"
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM as Ctrl-C: the worker then fails the trials it holds, which go back to the queue at once.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main(sys.argv[1:])
    except StudyError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: this worker's unfinished trials go back to the queue", file=sys.stderr)
        sys.exit(130)
