"""The momentum sweep: SGD's momentum beta, plain and Nesterov, over a grid of effective steps.

Why the grid is in effective steps, not learning rates: once its velocity has built up, SGD with
momentum beta at rate eta moves like plain SGD at eta / (1 - beta). At one learning rate for every
beta, a momentum sweep is a step-size sweep in disguise (beta 0.99 at 0.01 steps like plain SGD at
1.0). So every momentum trains at eta = step x (1 - beta) for each `effective_steps` step: every
setting has a plain-SGD twin (beta 0) at the same effective step, and every momentum gets its own best
rate over the steps, so that an optimum in beta cannot be an optimum in step size relabelled.

Keras' momentum and Nesterov flag are one value per optimizer, so the settings that share them (one
momentum, plain or Nesterov, every effective step) train as one stacked group whose members are every
step x seed, each at its own learning rate (study/stacked.py). A member's result depends on its own
seed and rate only, never on the group. The sweep trains from the first `momentum_sweep.seeds` of
train.seeds and is scored on the validation split only; its times are the group's own clock (the sweep
compares accuracy, not cost).
"""

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from study.params import MomentumSweep, SGDVariant, Study
from study.stacked import train_group

RUN_COLUMNS = [
    "momentum",
    "nesterov",
    "effective_step",
    "learning_rate",
    "seed",
    "val_accuracy_epoch1",
    "final_val_accuracy",
    "loss_epoch1",
    "final_loss",
    "diverged",
    "diverged_epoch",
    "epochs_run",
]
CURVE_COLUMNS = [
    "momentum",
    "nesterov",
    "effective_step",
    "learning_rate",
    "seed",
    "epoch",
    "val_accuracy",
    "loss",
]


@dataclass(frozen=True)
class Setting:
    """One cell of the grid: a momentum, plain or Nesterov, at an effective step."""

    momentum: float
    nesterov: bool
    effective_step: float

    @property
    def learning_rate(self) -> float:
        """eta = step x (1 - beta), to 4 significant digits (as the tuning grids): 1 - 0.99 is not 0.01
        in binary, and a rate should read as the number it is."""
        return float(f"{self.effective_step * (1 - self.momentum):.4g}")

    @property
    def group(self) -> str:
        """The settings that share one optimizer (one momentum, plain or Nesterov), e.g. `m0.9-nesterov`."""
        return f"m{self.momentum:g}-{'nesterov' if self.nesterov else 'plain'}"

    @property
    def name(self) -> str:
        """e.g. `m0.9-nesterov-s0.316`: the folder of its records."""
        return f"{self.group}-s{self.effective_step:g}"


def settings(sweep: MomentumSweep) -> list[Setting]:
    """Every momentum x effective step, plain and, for momentum > 0, Nesterov: Nesterov's look-ahead
    needs a velocity to look ahead along (at beta 0 it is plain SGD)."""
    return [
        Setting(momentum, nesterov, step)
        for momentum in sweep.momenta
        for nesterov in ((False, True) if momentum > 0 else (False,))
        for step in sweep.effective_steps
    ]


def groups(sweep: MomentumSweep) -> dict[str, list[Setting]]:
    """The grid's settings by the optimizer they share, in the grid's order."""
    by_group: dict[str, list[Setting]] = {}
    for setting in settings(sweep):
        by_group.setdefault(setting.group, []).append(setting)
    return by_group


def group_variant(sweep: MomentumSweep, members: list[Setting]) -> SGDVariant:
    """The SGD variant a group's optimizer is built from; its members bring their own learning rates."""
    rates = [setting.learning_rate for setting in members]
    return SGDVariant(
        optimizer="sgd",
        batch_size=sweep.batch_size,
        learning_rate=rates[0],
        search=[min(rates), 10 * max(rates)],  # the schema asks for a range; nothing is tuned here
        momentum=members[0].momentum,
        nesterov=members[0].nesterov,
    )


def sweep_seeds(study: Study) -> list[int]:
    """The first `momentum_sweep.seeds` evaluation seeds: never a tuning seed, never more."""
    return study.train.seeds[: study.momentum_sweep.seeds]


def train_sweep(
    study: Study, train, validation, on_epoch: Callable[[int, list], None] | None = None
) -> list[dict]:
    """Train the whole grid, one stacked group per (momentum, nesterov); one record per setting and
    seed (seed by seed within a group): the run's record plus its setting, momentum, nesterov,
    effective_step."""
    by_group = groups(study.momentum_sweep)
    variants = {name: group_variant(study.momentum_sweep, members) for name, members in by_group.items()}
    sweep = study.model_copy(update={"variants": variants})
    seeds = sweep_seeds(study)
    records = []
    for name, members in by_group.items():
        # Seed by seed: one seed's settings read the same batches and train as one stack (study/stacked.py).
        runs = [(setting, seed) for seed in seeds for setting in members]
        results = train_group(
            sweep,
            name,
            [seed for _, seed in runs],
            train,
            validation,
            learning_rates=[setting.learning_rate for setting, _ in runs],
            on_epoch=on_epoch,
        )
        records += [
            result.record
            | {
                "setting": setting.name,
                "momentum": setting.momentum,
                "nesterov": setting.nesterov,
                "effective_step": setting.effective_step,
            }
            for (setting, _), result in zip(runs, results, strict=True)
        ]
    return records


def _setting_columns(record: dict) -> dict:
    return {
        "momentum": record["momentum"],
        "nesterov": record["nesterov"],
        "effective_step": record["effective_step"],
        "learning_rate": record["settings"]["learning_rate"],
        "seed": record["seed"],
    }


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per run: early progress (epoch 1) and where it ended. A diverged run's final scores are
    empty, and so are its epoch-1 scores when it diverged in the first epoch."""
    rows = [
        {
            **_setting_columns(r),
            "val_accuracy_epoch1": r["history"][0]["val_accuracy"],
            "final_val_accuracy": r["history"][-1]["val_accuracy"],
            "loss_epoch1": r["history"][0]["loss"],
            "final_loss": r["history"][-1]["loss"],
            "diverged": r["diverged"],
            "diverged_epoch": r["diverged_epoch"],
            "epochs_run": r["epochs_run"],
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS).astype({"diverged_epoch": "Int64"})


def curves_table(records: list[dict]) -> pd.DataFrame:
    """One row per run and epoch it ran: validation accuracy and training loss."""
    rows = [
        {
            **_setting_columns(r),
            "epoch": row["epoch"],
            "val_accuracy": row["val_accuracy"],
            "loss": row["loss"],
        }
        for r in records
        for row in r["history"]
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
