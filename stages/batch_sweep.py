"""Sweep mini-batch SGD's batch size, from one image to the whole split: `python -m stages.batch_sweep`.

Each batch size in params.yaml's `batch_sweep` trains once per seed in train.seeds (one stacked group
per batch size), for train.epochs epochs at one learning rate, so that the primer's batch, stochastic
and mini-batch gradient descent differ in the batch alone. Validation is scored at log-spaced step
counts as well as after every epoch (`checkpoint_steps`): the runs can then be compared at equal
epochs, equal optimizer steps and equal seconds. Seconds and memory are what one run costs on its
own (`measure_solo`), as in the train stage, each measured in a fresh process: memory that an
earlier measurement freed would otherwise be reused unseen, and read as none. Writes one record per run in
sweeps/batch_size/batch-<size>/seed-<s>/record.json, and from them metrics/batch_size.csv (one row per
run: final accuracy, epochs, steps and seconds to `target_accuracy`, time and memory),
metrics/batch_size.json (per batch size, means with 95% intervals, for `dvc metrics`) and
plots/batch_size_curves.csv (every validation score, for `dvc plots`).
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from study import analysis, data, params, runtime
from study.atomic import atomic_dir, write_csv, write_json
from study.errors import run_stage
from study.params import SGDVariant
from study.stacked import measure_solo, train_group


def settings(sweep) -> dict[str, SGDVariant]:
    """One plain SGD variant per batch size, named e.g. `batch-32` or `batch-full`."""
    return {
        f"batch-{size}": SGDVariant(
            optimizer="sgd",
            batch_size=size,
            learning_rate=sweep.learning_rate,
            search=[sweep.learning_rate, sweep.learning_rate * 10],
        )
        for size in sweep.batch_sizes
    }


def checkpoint_steps(total: int, per_decade: int) -> list[int]:
    """Log-spaced step counts up to `total`: 1, 2, 5, 10, 20, 50, ... for 3 per decade."""
    steps, k = set(), 0
    while (step := round(10 ** (k / per_decade))) <= total:
        steps.add(step)
        k += 1
    return sorted(steps)


def solo_in_fresh_process(sweep, name: str) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_solo, sweep, name).result()


def _solo(sweep, name: str) -> dict:
    runtime.setup_device()
    return measure_solo(sweep, name, data.load_split("data/prepared", "train"))


def main() -> None:
    study = params.load()
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    grid = settings(study.batch_sweep)
    sweep = study.model_copy(update={"variants": grid})
    seeds, epochs = study.train.seeds, study.train.epochs

    total = len(grid) * len(seeds) * epochs
    with (
        tqdm(total=total, desc=f"batch-size sweep ({len(grid)} sizes)", unit="epoch") as progress,
        atomic_dir("sweeps/batch_size") as out,
    ):
        for name, variant in grid.items():
            solo = solo_in_fresh_process(sweep, name)
            steps = epochs * sweep.steps_per_epoch(name)
            results = train_group(
                sweep,
                name,
                seeds,
                train,
                validation,
                on_epoch=lambda _, rows: progress.update(len(rows)),
                seconds_per_step=solo["seconds_per_step"],
                checkpoints=checkpoint_steps(steps, study.batch_sweep.points_per_decade),
            )
            for result in results:
                record = result.record | {
                    "batch_label": str(variant.batch_size),
                    "seconds_per_step": solo["seconds_per_step"],
                    "peak_memory_bytes": solo["peak_memory_bytes"],
                    "memory_kind": solo["memory_kind"],
                }
                write_json(out / name / f"seed-{result.seed}" / "record.json", record)
            progress.set_postfix_str(f"{name}: {solo['seconds_per_step'] * 1e6:.0f} µs a step alone")

    runs, curves = analysis.batch_table(Path("sweeps/batch_size"), study.batch_sweep.target_accuracy)
    write_csv("metrics/batch_size.csv", analysis.with_not_reached(runs))
    write_json("metrics/batch_size.json", analysis.batch_summary(runs))
    write_csv("plots/batch_size_curves.csv", curves)


if __name__ == "__main__":
    run_stage(main)
