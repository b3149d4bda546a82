"""Sweep SGD's momentum, plain and Nesterov, on the validation split: `python -m stages.momentum`.

Each setting of params.yaml's `momentum_sweep` trains once per seed in train.seeds (one stacked
group per setting: Keras' momentum is one number per optimizer), for train.epochs epochs at one
learning rate and batch size. Nesterov's look-ahead needs momentum, so it is swept for momentum > 0
only. Writes one record per run in sweeps/momentum/<setting>/seed-<s>/record.json. Times here are
the group's own clock: the sweep compares accuracy, not cost.
"""

from tqdm import tqdm

from study import data, params, runtime
from study.atomic import atomic_dir, write_json
from study.errors import run_stage
from study.params import SGDVariant
from study.stacked import train_group


def settings(sweep) -> dict[str, SGDVariant]:
    """One SGD variant per (momentum, nesterov) of the sweep, named e.g. `m0.9-nesterov`."""
    grid = {}
    for momentum in sweep.momenta:
        for nesterov in (False, True) if momentum > 0 else (False,):
            name = f"m{momentum:g}-{'nesterov' if nesterov else 'plain'}"
            grid[name] = SGDVariant(
                optimizer="sgd",
                batch_size=sweep.batch_size,
                learning_rate=sweep.learning_rate,
                search=[sweep.learning_rate, sweep.learning_rate * 10],
                momentum=momentum,
                nesterov=nesterov,
            )
    return grid


def main() -> None:
    study = params.load()
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    grid = settings(study.momentum_sweep)
    sweep = study.model_copy(update={"variants": grid})
    seeds = study.train.seeds

    total = len(grid) * len(seeds) * study.train.epochs
    with (
        tqdm(total=total, desc=f"momentum sweep ({len(grid)} settings)", unit="epoch") as progress,
        atomic_dir("sweeps/momentum") as out,
    ):
        for name, variant in grid.items():
            results = train_group(
                sweep, name, seeds, train, validation, on_epoch=lambda _, rows: progress.update(len(rows))
            )
            for result in results:
                record = result.record | {"momentum": variant.momentum, "nesterov": variant.nesterov}
                write_json(out / name / f"seed-{result.seed}" / "record.json", record)


if __name__ == "__main__":
    run_stage(main)
