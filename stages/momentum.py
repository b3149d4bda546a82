"""Sweep SGD's momentum, plain and Nesterov, against step size on validation: `python -m stages.momentum`.

Momentum beta at learning rate eta moves, once its velocity builds, like plain SGD at the effective
step eta / (1 - beta). So the grid (params.yaml's `momentum_sweep`, study/momentum_grid.py) is
momenta x effective steps, every cell at eta = step x (1 - beta): each momentum has a plain-SGD twin
(beta 0) at the same effective step, and its own best rate over the steps. Every cell trains
train.epochs epochs at `momentum_sweep.batch_size` from the first `momentum_sweep.seeds` of
train.seeds, one stacked group per (momentum, nesterov). Writes
sweeps/momentum/<setting>/seed-<s>/record.json (e.g. setting `m0.9-nesterov-s0.316`),
metrics/momentum.csv (one row per run: epoch-1 and final validation accuracy and training loss,
divergence) and plots/momentum_curves.csv (validation accuracy and loss per epoch).
"""

from tqdm import tqdm

from study import data, params, runtime
from study.atomic import atomic_dir, write_csv, write_json
from study.errors import run_stage
from study.momentum_grid import curves_table, runs_table, settings, train_sweep


def main() -> None:
    study = params.load()
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    sweep = study.momentum_sweep

    cells = len(settings(sweep))
    total = cells * sweep.seeds * study.train.epochs
    with (
        tqdm(total=total, desc=f"momentum sweep ({cells} settings)", unit="epoch") as progress,
        atomic_dir("sweeps/momentum") as out,
    ):
        records = train_sweep(
            study, train, validation, on_epoch=lambda _, rows, __: progress.update(len(rows))
        )
        for record in records:
            write_json(out / record["setting"] / f"seed-{record['seed']}" / "record.json", record)
        # Inside the block: the records are put in place only once both tables are complete.
        write_csv("metrics/momentum.csv", runs_table(records))
        write_csv("plots/momentum_curves.csv", curves_table(records))


if __name__ == "__main__":
    run_stage(main)
