"""The momentum sweep: its grid in effective steps, the stage's outputs, and groups that change no result.

The stage runs for real on fake MNIST (tests/workspace.py): momenta 0 and 0.9, effective steps 0.1 and
0.316, 2 epochs, three evaluation seeds of which the sweep takes the first two.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import data, params
from study.momentum_grid import (
    CURVE_COLUMNS,
    RUN_COLUMNS,
    Setting,
    group_variant,
    groups,
    settings,
)
from study.params import MomentumSweep
from study.stacked import train_group
from tests.workspace import finish, make_workspace, stage

SWEEP = MomentumSweep(
    momenta=[0.0, 0.5, 0.9, 0.99], effective_steps=[0.0316, 0.1, 0.316, 1.0], batch_size=32, seeds=3
)


def test_every_momentum_trains_at_every_effective_step_with_nesterov_only_above_zero():
    grid = settings(SWEEP)
    cells = {(s.momentum, s.nesterov, s.effective_step) for s in grid}
    steps = SWEEP.effective_steps
    assert cells == {(m, False, s) for m in SWEEP.momenta for s in steps} | {
        (m, True, s) for m in (0.5, 0.9, 0.99) for s in steps
    }
    assert len(grid) == len(cells) == 4 * 7
    assert {(0.0, False, s) for s in steps} <= cells  # every setting's plain-SGD twin
    assert len({s.name for s in grid}) == len(grid)


def test_a_setting_trains_at_its_effective_step_times_one_minus_momentum():
    for setting in settings(SWEEP):
        expected = setting.effective_step * (1 - setting.momentum)
        assert setting.learning_rate == pytest.approx(expected, rel=1e-3)
    assert Setting(0.99, False, 1.0).learning_rate == 0.01
    assert Setting(0.9, True, 0.316).learning_rate == 0.0316
    assert Setting(0.0, False, 0.0316).learning_rate == 0.0316
    assert Setting(0.9, True, 0.316).name == "m0.9-nesterov-s0.316"
    assert Setting(0.0, False, 1.0).name == "m0-plain-s1"


def test_one_group_per_momentum_and_nesterov_holding_every_step():
    by_group = groups(SWEEP)
    assert list(by_group) == [
        "m0-plain",
        "m0.5-plain",
        "m0.5-nesterov",
        "m0.9-plain",
        "m0.9-nesterov",
        "m0.99-plain",
        "m0.99-nesterov",
    ]
    for members in by_group.values():
        assert [s.effective_step for s in members] == SWEEP.effective_steps
        variant = group_variant(SWEEP, members)
        assert (variant.momentum, variant.nesterov, variant.batch_size) == (
            members[0].momentum,
            members[0].nesterov,
            32,
        )


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """The stage, run once for this module's tests."""
    folder = make_workspace(tmp_path_factory.mktemp("momentum"), seeds=(0, 1, 2), epochs=2)
    finish(stage(folder, "stages.momentum"))
    return folder


def read_record(folder: Path, setting: Setting, seed: int) -> dict:
    return json.loads(
        (folder / "sweeps" / "momentum" / setting.name / f"seed-{seed}" / "record.json").read_text()
    )


def test_the_stage_writes_a_record_and_a_row_per_setting_and_seed(swept):
    study = params.load(swept / "params.yaml")
    grid = settings(study.momentum_sweep)
    assert len(grid) == 6  # momenta 0 and 0.9 (plain and Nesterov) x steps 0.1 and 0.316
    wanted = {(s.name, seed) for s in grid for seed in (0, 1)}
    folders = {
        (p.parent.parent.name, p.parent.name) for p in (swept / "sweeps" / "momentum").glob("*/*/record.json")
    }
    assert folders == {(name, f"seed-{seed}") for name, seed in wanted}

    runs = pd.read_csv(swept / "metrics" / "momentum.csv")
    assert list(runs.columns) == RUN_COLUMNS
    keys = list(zip(runs.momentum, runs.nesterov, runs.effective_step, runs.seed, strict=True))
    assert sorted(keys) == sorted(
        (s.momentum, s.nesterov, s.effective_step, seed) for s in grid for seed in (0, 1)
    )

    curves = pd.read_csv(swept / "plots" / "momentum_curves.csv")
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == runs.epochs_run.sum()
    assert not list(swept.rglob(".*.tmp"))

    for setting in grid:
        for seed in (0, 1):
            record = read_record(swept, setting, seed)
            assert record["settings"]["learning_rate"] == setting.learning_rate
            assert (record["settings"]["momentum"], record["settings"]["nesterov"]) == (
                setting.momentum,
                setting.nesterov,
            )
            assert record["effective_step"] == setting.effective_step
            row = runs[(runs.momentum == setting.momentum) & (runs.nesterov == setting.nesterov)]
            row = row[(row.effective_step == setting.effective_step) & (row.seed == seed)].iloc[0]
            assert row.learning_rate == setting.learning_rate
            assert row.final_val_accuracy == pytest.approx(record["history"][-1]["val_accuracy"])
            assert row.loss_epoch1 == pytest.approx(record["history"][0]["loss"])


def test_the_sweep_trains_only_the_first_seeds_of_the_evaluation_seeds(swept):
    assert params.load(swept / "params.yaml").train.seeds == [0, 1, 2]
    assert set(pd.read_csv(swept / "metrics" / "momentum.csv").seed) == {0, 1}
    assert set(pd.read_csv(swept / "plots" / "momentum_curves.csv").seed) == {0, 1}
    assert not list((swept / "sweeps" / "momentum").glob("*/seed-2"))


def test_a_member_of_a_group_trains_as_its_setting_alone(swept):
    """The last member of its group (seed 1 at the larger step): a rate given to the wrong member, or a
    group that leaks into its members, would show here."""
    study = params.load(swept / "params.yaml")
    setting = Setting(0.9, True, 0.316)
    alone = study.model_copy(
        update={"variants": {setting.group: group_variant(study.momentum_sweep, [setting])}}
    )
    splits = [data.load_split(swept / "data" / "prepared", split) for split in ("train", "validation")]
    (result,) = train_group(alone, setting.group, [1], *splits, learning_rates=[setting.learning_rate])
    in_group = read_record(swept, setting, 1)
    assert in_group["group_size"] == 4
    # In its group, a seed's settings share each batch and each layer's product (study/stacked.py's
    # seed_stacks): the same math, summed in another order than alone.
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        np.testing.assert_allclose(
            [row[key] for row in in_group["history"]],
            [row[key] for row in result.record["history"]],
            rtol=1e-4,
            atol=1e-4,
        )
    assert in_group["diverged"] == result.record["diverged"]
