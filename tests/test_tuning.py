"""The tuning protocol on tiny data: a coarse then a fine grid with the same trials for every variant,
every rate on every tuning seed (never an evaluation seed), scored by the mean over seeds, edges
flagged, the test split never read, and an interrupted search resumed without retraining."""

import csv
import json
import sys
import time

import optuna
import pytest

from study import data, params, storage, tuning
from study.errors import StudyError
from tests.workspace import get_params, make_workspace, set_params

TRIAL_COLUMNS = [
    "variant",
    "stage",
    "learning_rate",
    "seed",
    "val_accuracy",
    "val_accuracy_epoch1",
    "loss_epoch1",
    "loss",
    "diverged",
    "diverged_epoch",
    "mean_val_accuracy",
    "chosen",
]
BEST_KEYS = {
    "variant",
    "learning_rate",
    "val_accuracy",
    "on_edge",
    "all_diverged",
    "rates_tried",
    "searched",
    "search",
    "seeds",
    "epochs",
    "points",
    "refine",
    "refine_step",
}
# The workspace's budget: 3 coarse rates over [1e-4, 1] (two decades apart), 1 fine rate on each side.
COARSE = [1e-4, 0.01, 1.0]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.ENVIRONMENT, raising=False)
    folder = make_workspace(tmp_path, seeds=(0, 1))
    raw = get_params(folder)
    raw["variants"]["adam"]["search"] = [1.0e-4, 1.0]  # COARSE's range, whatever params.yaml says
    set_params(folder, raw)
    return folder


@pytest.fixture
def trained(monkeypatch):
    """Every group the tuning trains: (seeds, learning rates) per call of train_group."""
    groups = []
    real_train_group = tuning.train_group

    def spy(study, variant, seeds, train, validation, learning_rates, **kwargs):
        groups.append((list(seeds), list(learning_rates)))
        return real_train_group(study, variant, seeds, train, validation, learning_rates, **kwargs)

    monkeypatch.setattr(tuning, "train_group", spy)
    return groups


def run_tune_in_process(workspace, monkeypatch, variant: str) -> None:
    from stages import tune

    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "argv", ["stages.tune", variant])
    tune.main()


def outputs(workspace, variant: str) -> tuple[list[dict], dict]:
    with open(workspace / "tuning" / variant / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    return rows, json.loads((workspace / "tuning" / variant / "best.json").read_text())


def splits(workspace):
    folder = workspace / "data" / "prepared"
    return data.load_split(folder, "train"), data.load_split(folder, "validation")


def test_every_variant_gets_a_coarse_then_a_fine_grid_of_the_same_size(
    workspace, monkeypatch, trained, capsys
):
    """Both variants: 3 coarse rates, then 2 fine ones, each trained on both tuning seeds, each grid as
    one stacked group; `exploding` diverges everywhere, so it keeps its own rate and says so."""
    shared = workspace / "shared"
    shared.mkdir()
    monkeypatch.setenv(storage.ENVIRONMENT, f"sqlite:///{shared / 'optuna.db'}")
    real_load_split = data.load_split

    def guarded(folder, name):
        assert name != "test", "the tune stage read the test split"
        return real_load_split(folder, name)

    monkeypatch.setattr(data, "load_split", guarded)
    (workspace / "data" / "prepared" / "test.npz").unlink()  # and it does not need it either
    for variant in ("adam", "exploding"):
        run_tune_in_process(workspace, monkeypatch, variant)
    assert (
        "exploding: every learning rate diverged; the tuned protocol keeps 1000000.0"
        in capsys.readouterr().out
    )
    assert (shared / "optuna.db").exists()  # OPTUNA_STORAGE is where the trials went ...
    assert not (workspace / "tuning" / "adam" / "optuna.db").exists()  # ... not the default

    seeds = [100, 101]
    assert len(trained) == 4  # a coarse and a fine group per variant
    for group_seeds, rates in trained:
        per_seed = len(rates) // 2  # every rate on every tuning seed, seed by seed
        assert group_seeds == [seed for seed in seeds for _ in range(per_seed)]
        assert rates[:per_seed] == rates[per_seed:]

    adam, exploding = (outputs(workspace, v) for v in ("adam", "exploding"))
    for rows, best in (adam, exploding):
        assert list(rows[0]) == TRIAL_COLUMNS
        assert set(best) == BEST_KEYS
        assert [row["stage"] for row in rows] == ["coarse"] * 6 + ["fine"] * 4
        for rate in {row["learning_rate"] for row in rows}:
            assert sorted(int(row["seed"]) for row in rows if row["learning_rate"] == rate) == seeds
        assert {
            k: best[k] for k in ("seeds", "epochs", "points", "refine", "refine_step", "rates_tried")
        } == {
            "seeds": seeds,
            "epochs": 1,
            "points": 3,
            "refine": 1,
            "refine_step": 0.25,
            "rates_tried": 5,
        }
    assert adam[1]["search"] == [1.0e-4, 1.0] and exploding[1]["search"] == [1.0e9, 1.0e10]

    rows, best = adam
    assert [float(row["learning_rate"]) for row in rows[:6:2]] == COARSE
    coarse_scores = tuning.mean_scores(tuning_rows(rows, "coarse"))
    coarse_best = max(COARSE, key=coarse_scores.get)
    fine = sorted({float(row["learning_rate"]) for row in rows if row["stage"] == "fine"})
    assert len(fine) == 2 and fine == tuning.refine_grid(coarse_best, 1, 0.25, tried=COARSE)
    scores = tuning.mean_scores(tuning_rows(rows))
    for row in rows:  # the score is the mean over the tuning seeds
        assert float(row["mean_val_accuracy"]) == pytest.approx(scores[float(row["learning_rate"])])
    assert best["learning_rate"] == max(scores, key=scores.get)
    assert best["val_accuracy"] == pytest.approx(max(scores.values()))
    assert {row["chosen"] for row in rows if float(row["learning_rate"]) == best["learning_rate"]} == {"True"}
    assert best["searched"] == [min(scores), max(scores)]

    rows, best = exploding
    assert {row["diverged"] for row in rows} == {"True"} and {row["val_accuracy"] for row in rows} == {""}
    assert {row["chosen"] for row in rows} == {"False"}
    assert best["all_diverged"] is True and best["learning_rate"] == 1.0e6 and best["on_edge"] is None
    # Nothing to refine around: the fine grid goes below the lowest coarse rate, where divergence is rarer.
    assert min(float(row["learning_rate"]) for row in rows if row["stage"] == "fine") < 1.0e9
    record = optuna.load_study(
        study_name=tuning.study_name(params.load(workspace / "params.yaml"), "exploding"),
        storage=f"sqlite:///{shared / 'optuna.db'}",
    )
    assert {t.state for t in record.trials} == {optuna.trial.TrialState.PRUNED}
    assert all(t.user_attrs["diverged"] and t.user_attrs["seeds"] == seeds for t in record.trials)


def tuning_rows(csv_rows: list[dict], stage: str | None = None) -> list[dict]:
    """trials.csv's rows as the tuning module's rows (numbers; NaN for a diverged score)."""
    return [
        {"learning_rate": float(row["learning_rate"]), "val_accuracy": float(row["val_accuracy"] or "nan")}
        for row in csv_rows
        if stage is None or row["stage"] == stage
    ]


def test_an_interrupted_search_resumes_without_retraining_told_rates(workspace, monkeypatch, trained):
    study = params.load(workspace / "params.yaml")
    url = f"sqlite:///{workspace / 'optuna.db'}"
    train, validation = splits(workspace)
    real_score_rates = tuning.score_rates

    def interrupted_in_the_fine_grid(study, variant, rates, *args, **kwargs):
        if rates != COARSE:
            raise KeyboardInterrupt
        return real_score_rates(study, variant, rates, *args, **kwargs)

    monkeypatch.setattr(tuning, "score_rates", interrupted_in_the_fine_grid)
    with pytest.raises(KeyboardInterrupt):
        tuning.search(study, "adam", url, train, validation)
    monkeypatch.setattr(tuning, "score_rates", real_score_rates)
    record = optuna.load_study(study_name=tuning.study_name(study, "adam"), storage=url)
    failed = [t.number for t in record.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 2  # the fine grid's trials, claimed, then failed by the interrupted worker
    assert not [t for t in record.trials if t.state == optuna.trial.TrialState.RUNNING]

    trained.clear()
    rows = tuning.search(study, "adam", url, train, validation)
    fine = sorted({row["learning_rate"] for row in rows if row["stage"] == "fine"})
    assert len(trained) == 1 and sorted(set(trained[0][1])) == fine  # the coarse grid is not trained again
    assert len(rows) == 2 * (3 + 2)
    record = optuna.load_study(study_name=tuning.study_name(study, "adam"), storage=url)
    assert {record.trials[n].state for n in failed} == {optuna.trial.TrialState.FAIL}
    assert len([t for t in record.trials if t.state in tuning._TOLD]) == 3 + 2  # each rate told once

    trained.clear()
    assert tuning.search(study, "adam", url, train, validation) == rows  # a finished search is not redone
    assert trained == []

    other_seeds = study.model_copy(update={"tune": study.tune.model_copy(update={"seeds": [100, 102]})})
    monkeypatch.setattr(tuning, "score_rates", interrupted_in_the_fine_grid)
    with pytest.raises(KeyboardInterrupt):
        tuning.search(other_seeds, "adam", url, train, validation)
    assert trained == [([100] * 3 + [102] * 3, COARSE * 2)]  # a fresh search


def test_the_search_starts_afresh_when_its_budget_range_seeds_or_trainer_change(workspace, monkeypatch):
    study = params.load(workspace / "params.yaml")
    tune = study.tune.model_copy(update={"epochs": None})  # tuned at the training horizon
    study = study.model_copy(update={"tune": tune})
    name = tuning.study_name(study, "adam")
    changed = [
        study.model_copy(update={"tune": tune.model_copy(update={"seeds": [100, 102]})}),
        study.model_copy(update={"tune": tune.model_copy(update={"points": 4})}),
        study.model_copy(update={"tune": tune.model_copy(update={"refine_step": 0.5})}),
        study.model_copy(update={"train": study.train.model_copy(update={"epochs": 3}), "tune": tune}),
        study.model_copy(
            update={
                "variants": {
                    **study.variants,
                    "adam": study.variants["adam"].model_copy(update={"search": [1e-3, 1]}),
                }
            }
        ),
    ]
    names = {tuning.study_name(s, "adam") for s in changed}
    assert name not in names and len(names) == len(changed)
    # The rate the defaults protocol trains with is not part of the search.
    same = study.variants["adam"].model_copy(update={"learning_rate": 0.5})
    assert (
        tuning.study_name(study.model_copy(update={"variants": {**study.variants, "adam": same}}), "adam")
        == name
    )
    monkeypatch.setattr(tuning, "_code_digest", lambda: "another trainer")
    assert tuning.study_name(study, "adam") != name


def test_tune_epochs_null_means_the_training_horizon(workspace):
    raw = get_params(workspace)
    raw["tune"]["epochs"] = None
    raw["train"]["epochs"] = 4
    assert params.validate(raw).tune_epochs == 4


def test_tuning_seeds_that_are_also_evaluation_seeds_are_refused(workspace):
    raw = get_params(workspace)
    raw["tune"]["seeds"] = [0, 100]  # 0 is an evaluation seed (train.seeds = [0, 1])
    with pytest.raises(StudyError, match=r"tune\.seeds = \[0, 100\]: \[0\] also in train\.seeds"):
        params.validate(raw)


def rows_for(scores: dict[float, list[float | None]]) -> list[dict]:
    return [
        {"learning_rate": rate, "seed": seed, "val_accuracy": value}
        for rate, values in scores.items()
        for seed, value in zip((100, 101), values, strict=True)
    ]


def test_the_score_is_the_mean_over_seeds_and_a_rate_diverging_on_any_seed_is_never_chosen():
    rows = rows_for({0.01: [0.90, 0.94], 0.1: [0.95, 0.91], 1.0: [0.99, None]})
    assert tuning.mean_scores(rows) == {0.01: pytest.approx(0.92), 0.1: pytest.approx(0.93), 1.0: None}
    assert tuning.choose(rows) == {"learning_rate": 0.1, "val_accuracy": pytest.approx(0.93), "on_edge": None}
    tie = rows_for({0.01: [0.9, 0.9], 0.1: [0.9, 0.9], 1.0: [0.8, 0.8]})
    assert tuning.choose(tie)["learning_rate"] == 0.01  # the lower, safer rate wins a tie
    assert tuning.choose(rows_for({0.1: [None, 0.9]})) is None


def test_a_best_on_the_edge_of_the_rates_tried_is_flagged():
    assert tuning.choose(rows_for({1e-4: [0.9, 0.9], 1e-3: [0.8, 0.8], 0.01: [0.7, 0.7]}))["on_edge"] == "low"
    assert (
        tuning.choose(rows_for({1e-4: [0.7, 0.7], 1e-3: [0.8, 0.8], 0.01: [0.9, 0.9]}))["on_edge"] == "high"
    )


def test_the_stage_says_loudly_when_the_best_is_on_the_edge(workspace, monkeypatch, capsys):
    from stages import tune

    def lowest_best(study, variant, url, train, validation, on_epoch=None):
        rows = rows_for({1e-4: [0.9, 0.92], 1e-2: [0.8, 0.8], 1.0: [0.1, 0.1]})
        return [{"stage": "coarse", **trial_row(row)} for row in rows]

    monkeypatch.setattr(tune, "search", lowest_best)
    run_tune_in_process(workspace, monkeypatch, "adam")
    err = capsys.readouterr().err
    assert "warning: adam's best rate 0.0001 is the lowest tried" in err
    assert "widen variants.adam.search" in err
    rows, best = outputs(workspace, "adam")
    assert best["on_edge"] == "low" and best["searched"] == [1e-4, 1.0] and best["rates_tried"] == 3
    assert best["val_accuracy"] == pytest.approx(0.91)
    assert [row["chosen"] for row in rows] == ["True", "True"] + ["False"] * 4


def trial_row(row: dict) -> dict:
    return {
        **row,
        "val_accuracy_epoch1": row["val_accuracy"],
        "loss_epoch1": 1.0,
        "loss": 0.5,
        "diverged": False,
        "diverged_epoch": None,
    }


def test_the_fine_grid_is_a_quarter_decade_apart_around_the_best_and_reaches_past_an_edge():
    assert tuning.refine_grid(0.01, 2, 0.25) == [0.003162, 0.005623, 0.01778, 0.03162]
    assert tuning.refine_grid(1.0, 1, 0.25, tried=[1e-4, 0.01, 1.0]) == [0.5623, 1.778]
    assert tuning.refine_grid(0.1, 1, 1.0, tried=[0.01, 0.1, 1.0]) == []


def test_the_grid_is_log_spaced_over_the_range():
    assert tuning.grid(1.0e-4, 1.0, 9) == [1e-4, 3.162e-4, 1e-3, 3.162e-3, 0.01, 0.03162, 0.1, 0.3162, 1.0]


def test_only_a_trial_silent_past_the_grace_period_is_failed_and_its_rate_enqueued_again(workspace):
    """Workers share the study: a running trial whose worker still beats is left alone; one whose
    heartbeat fell silent past the grace period is failed, and its rate waits for another worker."""
    study = params.load(workspace / "params.yaml")
    shared = tuning._open(study, "adam", f"sqlite:///{workspace / 'optuna.db'}", heartbeat=1, grace=2)
    tuning._settle(shared, "coarse", COARSE)
    claimed = tuning._claim(shared, COARSE, limit=2)
    assert list(claimed) == COARSE[:2]  # in the grid's order, as many as asked
    alive, silent = claimed.values()
    with tuning._heartbeats(shared, [alive]):
        time.sleep(3.5)
        tuning._settle(shared, "coarse", COARSE)
    states = {t._trial_id: t.state for t in shared.record.trials}
    assert states[alive] == optuna.trial.TrialState.RUNNING
    assert states[silent] == optuna.trial.TrialState.FAIL
    waiting = shared.record.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.system_attrs["fixed_params"]["learning_rate"] for t in waiting) == [COARSE[1], COARSE[2]]
