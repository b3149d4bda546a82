"""Equal-budget tuning on tiny data: budget, the test split, divergence, resuming, the protocol."""

import json
import sys

import optuna
import pytest

from study import data, params, tuning
from tests.workspace import finish, make_workspace, stage


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path)


def run_tune_in_process(workspace, monkeypatch, variant: str) -> None:
    from stages import tune

    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "argv", ["stages.tune", variant])
    tune.main()


def test_tuning_never_reads_the_test_split(workspace, monkeypatch):
    real_load_split = data.load_split

    def guarded(folder, name):
        assert name != "test", "the tune stage read the test split"
        return real_load_split(folder, name)

    monkeypatch.setattr(data, "load_split", guarded)
    (workspace / "data" / "prepared" / "test.npz").unlink()  # and it does not need it either
    run_tune_in_process(workspace, monkeypatch, "adam")
    assert (workspace / "tuning" / "adam" / "best.json").exists()


def test_every_variant_gets_the_same_budget(workspace):
    for variant in ("adam", "exploding"):
        finish(stage(workspace, "stages.tune", variant))
    adam, exploding = (
        json.loads((workspace / "tuning" / v / "best.json").read_text()) for v in ("adam", "exploding")
    )
    budget = ("points", "epochs", "seed")
    assert (
        {k: adam[k] for k in budget}
        == {k: exploding[k] for k in budget}
        == {"points": 3, "epochs": 1, "seed": 0}
    )
    for variant in ("adam", "exploding"):
        trials = (workspace / "tuning" / variant / "trials.csv").read_text().splitlines()
        assert len(trials) == 1 + 3
    assert adam["search"] == [1.0e-4, 1.0]
    assert adam["learning_rate"] in tuning.grid(1.0e-4, 1.0, 3)


def test_diverged_trials_are_recorded_as_diverged_not_dropped(workspace):
    finish(stage(workspace, "stages.tune", "exploding"))
    rows = (workspace / "tuning" / "exploding" / "trials.csv").read_text().splitlines()
    header = rows[0].split(",")
    diverged = [row.split(",")[header.index("diverged")] for row in rows[1:]]
    assert diverged == ["True", "True", "True"]
    best = json.loads((workspace / "tuning" / "exploding" / "best.json").read_text())
    assert best["all_diverged"] is True and best["learning_rate"] == 1.0e6  # falls back to its default
    record = optuna.load_study(
        study_name=tuning.study_name(params.load(workspace / "params.yaml"), "exploding"),
        storage=f"sqlite:///{workspace / 'tuning' / 'exploding' / 'optuna.db'}",
    )
    assert {t.state for t in record.trials} == {optuna.trial.TrialState.PRUNED}
    assert all(t.user_attrs["diverged"] for t in record.trials)


def test_an_interrupted_search_resumes_without_redoing_finished_trials(workspace, monkeypatch):
    study = params.load(workspace / "params.yaml")
    storage = f"sqlite:///{workspace / 'optuna.db'}"
    rates = tuning.grid(1.0e-4, 1.0, 3)  # 0.0001, 0.01, 1.0
    record = optuna.create_study(
        study_name=tuning.study_name(study, "adam"), storage=storage, direction="maximize"
    )
    # What an interrupted search left: one rate scored, one asked but never told.
    record.enqueue_trial({"learning_rate": rates[1]})
    finished = record.ask()
    finished.suggest_float("learning_rate", 1e-4, 1.0, log=True)
    finished.set_user_attr("diverged", False)
    finished.set_user_attr("diverged_epoch", None)
    record.tell(finished, 0.5)
    record.enqueue_trial({"learning_rate": rates[2]})
    record.ask().suggest_float("learning_rate", 1e-4, 1.0, log=True)  # left RUNNING

    trained = []
    real_train_group = tuning.train_group

    def spy(study, variant, seeds, train, validation, learning_rates, **kwargs):
        trained.extend(learning_rates)
        return real_train_group(study, variant, seeds, train, validation, learning_rates, **kwargs)

    monkeypatch.setattr(tuning, "train_group", spy)
    train = data.load_split(workspace / "data" / "prepared", "train")
    validation = data.load_split(workspace / "data" / "prepared", "validation")
    trials = tuning.search(study, "adam", storage, train, validation)
    assert sorted(trained) == [rates[0], rates[2]]  # the scored rate is not trained again
    assert [t["learning_rate"] for t in trials] == rates
    assert trials[1]["val_accuracy"] == 0.5

    trained.clear()
    tuning.search(study, "adam", storage, train, validation)
    assert trained == []  # a finished search is not redone


def test_best_prefers_accuracy_then_the_lower_rate_and_skips_diverged():
    trials = [
        {"learning_rate": 0.1, "val_accuracy": 0.9, "diverged": False},
        {"learning_rate": 0.01, "val_accuracy": 0.9, "diverged": False},
        {"learning_rate": 1.0, "val_accuracy": None, "diverged": True},
    ]
    assert tuning.best(trials) == {"learning_rate": 0.01, "val_accuracy": 0.9}
    assert tuning.best([trials[2]]) is None


def test_the_grid_is_log_spaced_over_the_range():
    assert tuning.grid(1.0e-4, 1.0, 9) == [1e-4, 3.162e-4, 1e-3, 3.162e-3, 0.01, 0.03162, 0.1, 0.3162, 1.0]
