"""The report: its stage end to end on a made-up study, and its sections on made-up tables.

The inputs are written here in the formats the stages write: metrics/runs.csv and summary.json through
study/analysis.py, metrics/batch_size.json through study/batch_sizes.py, and metrics/claims.json through
study/claims.py from these same tables, as compare computes it; the rest by hand, with the columns the
stages write. So the report is tested on what it reads and nothing else.
"""

import ast
import json
import math
import re
import shutil
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports import answers, batch_sizes, figures, findings, landscapes, momentum, results, tuning, verdicts
from stages import report
from study import analysis, claims, params
from study import answers as study_answers
from study import batch_sizes as study_batch_sizes
from study import landscapes as study_landscapes
from study.errors import StudyError

REPO = Path(__file__).resolve().parents[1]
STUDY = params.load(REPO / "params.yaml")
MIB = 2**20
EPOCHS = 3
TUNED_SEEDS, DEFAULT_SEEDS, TUNING_SEEDS = list(range(10)), list(range(5)), [100, 101]
LUCK = np.random.default_rng(0).normal(0, 0.002, len(TUNED_SEEDS))  # each seed's luck, shared (paired)
# Per variant: final validation accuracy (tuned, defaults), its best learning rate, steps per epoch,
# optimizer slots. `adagrad`'s best lies above its search range: its chosen rate is on the edge.
QUALITY = {
    "bgd": (0.90, 0.60, 0.316, 1),
    "sgd": (0.975, 0.97, 0.01, 50000),
    "mbgd": (0.975, 0.95, 0.316, 1563),
    "momentum": (0.976, 0.972, 0.0316, 1563),
    "nesterov": (0.976, 0.972, 0.0316, 1563),
    "adam": (0.977, 0.975, 0.001, 1563),
    "rmsprop": (0.976, 0.974, 0.001, 1563),
    "adagrad": (0.97, 0.93, 10.0, 1563),
    "mbgd_exponential": (0.974, 0.96, 0.316, 1563),
    "mbgd_cosine": (0.977, 0.965, 0.316, 1563),
}
SLOTS = {"sgd": 0, "adam": 2, "rmsprop": 1, "adagrad": 1}


def accuracy_at(final: float, epoch: int, seed: int) -> float:
    return round(final - 0.02 * (EPOCHS - epoch) + LUCK[seed], 5)


def made_up_runs(chosen: dict, failed=()) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every variant's runs (tuned: 10 seeds at the rate tuning chose, defaults: 5) as compare's runs
    table, their learning curves and evaluate's scores. One tuned `sgd` run diverges in epoch 2, and
    every run of a `failed` variant in epoch 1."""
    rows, curves, evaluations = [], [], {}
    for variant, (tuned, default, _, steps) in QUALITY.items():
        settings = STUDY.variants[variant]
        for protocol, final, seeds in (("tuned", tuned, TUNED_SEEDS), ("defaults", default, DEFAULT_SEEDS)):
            rate = chosen[variant]["learning_rate"] if protocol == "tuned" else settings.learning_rate
            for seed in seeds:
                diverged = (variant == "sgd" and protocol == "tuned" and seed == 3) or variant in failed
                accuracies = [accuracy_at(final, e, seed) for e in range(1, EPOCHS + 1)]
                history = [*accuracies[:1], None] if diverged else accuracies
                history = [None] if variant in failed else history
                per_epoch = steps * 2e-4
                for epoch, value in enumerate(history, start=1):
                    curves.append(
                        {
                            "variant": variant,
                            "protocol": protocol,
                            "seed": seed,
                            "epoch": epoch,
                            "loss": None if value is None else 1 - value,
                            "accuracy": value,
                            "val_loss": None if value is None else 1.05 - value,
                            "val_accuracy": value,
                            "learning_rate": rate,
                            "seconds": epoch * per_epoch,
                            "steps": epoch * steps,
                        }
                    )
                reached = next((e for e, a in enumerate(history, start=1) if a and a >= 0.97), None)
                test = 0.098 if diverged else accuracies[-1] + 0.001
                rows.append(
                    {
                        "variant": variant,
                        "protocol": protocol,
                        "seed": seed,
                        "optimizer": settings.optimizer,
                        "batch_size": 50000 if settings.batch_size == "full" else settings.batch_size,
                        "learning_rate": rate,
                        "momentum": getattr(settings, "momentum", None),
                        "nesterov": getattr(settings, "nesterov", None),
                        "schedule": settings.schedule.name if getattr(settings, "schedule", None) else None,
                        "epochs_run": len(history),
                        "diverged": diverged,
                        "diverged_epoch": len(history) if diverged else None,
                        "final_val_accuracy": history[-1],
                        "val_accuracy_epoch1": history[0],
                        "unstable": diverged,
                        "best_val_accuracy": max((a for a in history if a), default=None),
                        "epochs_to_target": reached,
                        "steps_to_target": reached and reached * steps,
                        "seconds_to_target": reached and reached * per_epoch,
                        "train_seconds": len(history) * per_epoch,
                        "seconds_per_epoch": per_epoch,
                        "seconds_per_step": 2e-4,
                        "steps_per_epoch": steps,
                        "optimizer_state_bytes": 407_080
                        * SLOTS.get(settings.optimizer, 0)
                        * (1 if settings.optimizer != "sgd" or getattr(settings, "momentum", 0) else 0),
                        "peak_memory_bytes": 60 * MIB + 1000 * seed,
                        "memory_kind": "rss",
                        "test_accuracy": test,
                        "test_loss": 1 - test,
                        "device": "CPU: test",
                        "tensorflow": "2.x",
                        "keras": "3.x",
                        "op_determinism": True,
                    }
                )
        for protocol, group in pd.DataFrame(rows).query("variant == @variant").groupby("protocol"):
            per_class = {str(d): min(1.0, group["test_accuracy"].mean() + (d - 5) / 200) for d in range(10)}
            evaluations.setdefault(variant, {})[protocol] = {
                "test_accuracy": group["test_accuracy"].mean(),
                "per_class_accuracy": per_class,
                "seeds": {
                    str(s): {"test_accuracy": a}
                    for s, a in zip(group["seed"], group["test_accuracy"], strict=True)
                },
            }
    return pd.DataFrame(rows), pd.DataFrame(curves), evaluations


def tuning_trials(variant: str, best: float, rates: list[float], stage: str, failed: bool) -> list[dict]:
    """One row per rate and tuning seed: accuracy falls off with the log distance from `best`, and a
    rate 30 times past it ends at chance (unstable); a `failed` variant diverges at every rate."""
    found = []
    for r in rates:
        at_chance = r > 30 * best
        for seed in TUNING_SEEDS:
            final = 0.098 if at_chance else 0.975 - 0.03 * math.log10(r / best) ** 2 + 0.001 * (seed - 100)
            if failed:
                nothing = dict.fromkeys(["val_accuracy", "val_accuracy_epoch1", "loss_epoch1", "loss"])
                found.append(
                    {"variant": variant, "stage": stage, "learning_rate": r, "seed": seed, **nothing,
                     "diverged": True, "diverged_epoch": 1, "unstable": True}
                )  # fmt: skip
                continue
            found.append(
                {
                    "variant": variant,
                    "stage": stage,
                    "learning_rate": r,
                    "seed": seed,
                    "val_accuracy": final,
                    "val_accuracy_epoch1": 0.1 if at_chance else final - 0.02,
                    "loss_epoch1": 0.5,
                    "loss": 3.0 if at_chance else 1 - final,
                    "diverged": False,
                    "diverged_epoch": None,
                    "unstable": at_chance,
                }
            )
    return found


def made_up_tuning(failed=()) -> tuple[pd.DataFrame, dict]:
    """Every variant's coarse grid (5 rates over its search range) and fine grid (2 rates each side of the
    coarse best, a quarter decade apart), each rate from both tuning seeds, as the tune stages and
    compare write them. A `failed` variant diverges at every rate: nothing is chosen, its default stays."""
    rows, chosen = [], {}
    for variant, (_, _, best, _) in QUALITY.items():
        low, high = 1e-4, 1.0  # the made-up grids' range, whatever params.yaml searches
        coarse = [float(f"{r:.4g}") for r in np.geomspace(low, high, 5)]

        found = tuning_trials(variant, best, coarse, "coarse", variant in failed)
        means = pd.DataFrame(found).groupby("learning_rate")["val_accuracy"].mean()
        centre = coarse[0] if variant in failed else means.idxmax()  # as tune: the lowest when all diverged
        fine = [float(f"{centre * 10 ** (k * 0.25):.4g}") for k in (-2, -1, 1, 2)]
        found += tuning_trials(variant, best, [r for r in fine if r not in coarse], "fine", variant in failed)
        table = pd.DataFrame(found)
        means = table.groupby("learning_rate")["val_accuracy"].mean()
        if variant in failed:
            pick = None
            chosen[variant] = {"learning_rate": STUDY.variants[variant].learning_rate, "val_accuracy": None,
                               "on_edge": None}  # fmt: skip
        else:
            pick = means.idxmax()
            edge = "low" if pick == means.index.min() else "high" if pick == means.index.max() else None
            chosen[variant] = {"learning_rate": pick, "val_accuracy": means[pick], "on_edge": edge}
        rows += table.assign(
            mean_val_accuracy=table["learning_rate"].map(means), chosen=table["learning_rate"] == pick
        ).to_dict("records")
    protocol = {
        "seeds": TUNING_SEEDS,
        "epochs": EPOCHS,
        "points": 5,
        "refine": 2,
        "refine_step": 0.25,
        "metric": "mean final val_accuracy over the tuning seeds",
        "ranges": {name: [1e-4, 1.0] for name in STUDY.variants},
        "chosen": chosen,
    }
    return pd.DataFrame(rows), protocol


def made_up_momentum() -> pd.DataFrame:
    """The momentum sweep: accuracy depends on the effective step alone (best at 0.316); momentum 0.99 at
    step 1 diverges on seed 2."""
    rows = []
    for beta in (0.0, 0.5, 0.9, 0.99):
        for nesterov in (False, True) if beta > 0 else (False,):
            for step in (0.0316, 0.1, 0.316, 1.0):
                for seed in range(3):
                    diverged = beta == 0.99 and step == 1.0 and seed == 2
                    final = 0.975 - 0.02 * abs(math.log10(step / 0.316)) + LUCK[seed]
                    rows.append(
                        {
                            "momentum": beta,
                            "nesterov": nesterov,
                            "effective_step": step,
                            "learning_rate": float(f"{step * (1 - beta):.4g}"),
                            "seed": seed,
                            "val_accuracy_epoch1": None if diverged else final - 0.03,
                            "final_val_accuracy": None if diverged else final,
                            "loss_epoch1": 0.4,
                            "final_loss": None if diverged else 1 - final,
                            "diverged": diverged,
                            "diverged_epoch": 1 if diverged else None,
                            "epochs_run": 1 if diverged else EPOCHS,
                        }
                    )
    return pd.DataFrame(rows)


BATCH = {  # label: (size, own rate, steps per epoch, seconds per step, median peak memory)
    "1": (1, 0.01, 10000, 3e-5, 70 * MIB),
    "8": (8, 0.0316, 1250, 5e-5, 72 * MIB),
    "32": (32, 0.1, 313, 1e-4, 75 * MIB),
    "256": (256, 0.316, 40, 6e-4, 90 * MIB),
    "full": (10000, 1.0, 1, 0.02, 200 * MIB),
}


def made_up_batch_sweep() -> tuple[pd.DataFrame, ...]:
    """Each batch size at its own rate: runs (3 seeds), validation scores at log-spaced steps, tuning
    trials and peak memory from three fresh processes."""
    runs, curves, trials, memory = [], [], [], []
    for label, (size, own, per_epoch, per_step, peak) in BATCH.items():
        epochs = 100 if label == "full" else EPOCHS
        total = epochs * per_epoch
        steps = sorted({round(10 ** (k / 3)) for k in range(40) if round(10 ** (k / 3)) <= total} | {total})
        for seed in range(3):
            scores = [
                {
                    "step": s,
                    "epoch": round(s / per_epoch, 6),
                    "seconds": round(s * per_step, 6),
                    "val_loss": 1.0,
                    "val_accuracy": min(0.97, 0.1 + 0.2 * math.log10(1 + s)) + LUCK[seed],
                }
                for s in steps
            ]
            curves += [
                {"batch_label": label, "batch_size": size, "learning_rate": own, "seed": seed} | s
                for s in scores
            ]
            reached = next((s for s in scores if s["val_accuracy"] >= 0.9), None)
            runs.append(
                {
                    "batch_label": label,
                    "batch_size": size,
                    "learning_rate": own,
                    "on_edge": "high" if label == "full" else None,
                    "seed": seed,
                    "n_train": 10000,
                    "epochs_run": epochs,
                    "steps_run": total,
                    "final_val_accuracy": scores[-1]["val_accuracy"],
                    "val_accuracy_epoch1": next(s for s in scores if s["epoch"] >= 1)["val_accuracy"],
                    "best_val_accuracy": max(s["val_accuracy"] for s in scores),
                    "epochs_to_target": reached and reached["epoch"],
                    "steps_to_target": reached and reached["step"],
                    "seconds_to_target": reached and reached["seconds"],
                    "target_accuracy": 0.9,
                    "train_seconds": total * per_step,
                    "seconds_per_step": per_step,
                    "peak_memory_bytes": peak,
                    "memory_kind": "rss",
                    "analytic_memory_bytes": 407_080 * 2 + size * 1_800 * 4,
                    "diverged": False,
                    "diverged_epoch": None,
                    "unstable": False,
                }
            )
        for r in (own / 10, own, own * 10):
            for seed in TUNING_SEEDS:
                score = 0.95 if r == own else 0.9
                trials.append(
                    {
                        "batch_label": label,
                        "batch_size": size,
                        "stage": "coarse",
                        "learning_rate": r,
                        "seed": seed,
                        "val_accuracy": score,
                        "mean_val_accuracy": score,
                        "chosen": r == own,
                        "on_edge": "high" if label == "full" else None,
                    }
                )
        memory += [
            {
                "batch_label": label,
                "batch_size": size,
                "repeat": i,
                "pid": 1000 + i,
                "peak_memory_bytes": peak + (i - 1) * MIB,
                "memory_kind": "rss",
                "analytic_memory_bytes": 407_080 * 2 + size * 1_800 * 4,
            }
            for i in range(3)
        ]
    return pd.DataFrame(runs), pd.DataFrame(curves), pd.DataFrame(trials), pd.DataFrame(memory)


def made_up_landscapes() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two functions, each optimizer from 20 starts per test; momentum escapes from half the shallow
    basin's starts at its own best rate and from none at plain SGD's effective step."""
    optimizers = {"bgd": "bgd sgd mbgd", "momentum": "momentum", "nesterov": "nesterov", "adam": "adam"}
    rows, paths = [], []
    for function, tests in (("two_wells", ("reach", "escape")), ("saddle", ("settle",))):
        for test in tests:
            for variant, stands_for in optimizers.items():
                settings = (
                    ("own best", "matched step") if variant in ("momentum", "nesterov") else ("own best",)
                )
                for setting in settings:
                    rate = 0.1 if setting == "own best" else 0.01
                    for start in range(20):
                        escaped = variant == "momentum" and setting == "own best" and start % 2 == 0
                        reached = (test != "escape" and start < 15) or escaped
                        rows.append(
                            {
                                "function": function,
                                "test": test,
                                "variant": variant,
                                "stands_for": stands_for,
                                "setting": setting,
                                "learning_rate": rate,
                                "start": start,
                                "reached_global": reached,
                                "escaped": escaped if test == "escape" else None,
                                "barrier_crossings": int(escaped) if test == "escape" else None,
                                "steps_to_tolerance": 40 + start if reached else None,
                                "final_value": 0.0,
                                "diverged": False,
                                "x0": -1.5 + 0.1 * start,
                                "y0": 0.02,
                                "final_x": 0.0,
                                "final_y": 1.0,
                            }
                        )
                    if setting == "own best":
                        paths += [
                            {
                                "function": function,
                                "test": test,
                                "variant": variant,
                                "start": 0,
                                "step": k,
                                "x": -1.5 + 0.15 * k,
                                "y": 0.02 + 0.09 * k,
                            }
                            for k in range(11)
                        ]
    return pd.DataFrame(rows), pd.DataFrame(paths)


def landscape_shares(outcomes: pd.DataFrame) -> dict:
    """metrics/landscapes.json as the landscapes stage writes it: its own summary of each set of starts."""
    fields = list(study_landscapes.Outcome.__dataclass_fields__)
    shares: dict = {}
    for (function, test, variant, setting), group in outcomes.groupby(
        ["function", "test", "variant", "setting"], sort=False
    ):
        results = [
            study_landscapes.Outcome(**{f: None if pd.isna(row[f]) else row[f] for f in fields})
            for row in group.to_dict("records")
        ]
        found = study_landscapes.summary(results) | {"learning_rate": float(group["learning_rate"].iloc[0])}
        shares.setdefault(function, {}).setdefault(test, {}).setdefault(variant, {})[setting] = found
    return shares


def write_study(folder: Path, failed=()) -> dict:
    """Every table the report reads, written into `folder`; returns the report's parameters. Every run
    and tuning trial of a `failed` variant diverges."""
    trials, tuning_protocol = made_up_tuning(failed)
    runs, curves, evaluations = made_up_runs(tuning_protocol["chosen"], failed)
    sweep = made_up_momentum()
    batch_runs, batch_curves, batch_trials, batch_memory = made_up_batch_sweep()
    outcomes, paths = made_up_landscapes()
    for sub in ("metrics/eval", "plots/landscapes", "reports"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    analysis.with_not_reached(runs).to_csv(folder / "metrics/runs.csv", index=False)
    (folder / "metrics/summary.json").write_text(json.dumps(analysis.summary(runs)))
    curves.to_csv(folder / "plots/curves.csv", index=False)
    for variant, scores in evaluations.items():
        (folder / "metrics/eval" / f"{variant}.json").write_text(json.dumps(scores))
    trials.to_csv(folder / "metrics/tuning.csv", index=False)
    (folder / "metrics/tuning.json").write_text(json.dumps(tuning_protocol))
    sweep.to_csv(folder / "metrics/momentum.csv", index=False)
    summary = study_batch_sizes.batch_summary(batch_runs, batch_memory)
    (folder / "metrics/batch_size.json").write_text(json.dumps(summary))
    batch_trials.to_csv(folder / "metrics/batch_tuning.csv", index=False)
    batch_curves.to_csv(folder / "plots/batch_size_curves.csv", index=False)
    outcomes.to_csv(folder / "metrics/landscapes.csv", index=False)
    (folder / "metrics/landscapes.json").write_text(json.dumps(landscape_shares(outcomes)))
    paths.to_csv(folder / "plots/landscapes/trajectories.csv", index=False)
    evidence = claims.Evidence(
        variants=STUDY.variants,
        runs=runs,
        tuning=trials,
        momentum_runs=sweep,
        batch_runs=batch_runs.assign(batch_label=batch_runs["batch_label"].astype(str)),
        batch_curves=batch_curves,
        batch_memory=batch_memory,
        landscapes=outcomes,
    )
    rules = claims.Rules.from_params(STUDY.compare)
    judged = claims.evaluate(evidence, rules)
    # numpy scalars as plain numbers: a batch test's step budget is one (an integer column's maximum).
    (folder / "metrics/claims.json").write_text(json.dumps(judged, default=lambda x: x.item()))
    pairwise = analysis.pairwise(runs, rules.margins["accuracy"], 1 - rules.confidence)
    found = study_answers.build(
        judged, analysis.summary(runs), pairwise, STUDY.variants, sorted(set(batch_runs["batch_label"]))
    )
    (folder / "metrics/answers.json").write_text(json.dumps(found, default=lambda x: x.item()))
    return {name: str(folder / path) for name, path in report.INPUTS.items()}


def tables_of(folder: Path, failed=(), **replaced) -> results.Tables:
    """The report's tables from a made-up study in `folder`; `replaced` swaps a path for None (absent)."""
    paths = write_study(folder, failed) | replaced
    return results.load(**paths, compare=STUDY.compare.model_dump())


@pytest.fixture(scope="module")
def made_up(tmp_path_factory) -> results.Tables:
    return tables_of(tmp_path_factory.mktemp("study"))


# --- the stage, end to end --------------------------------------------------------------------------

REPORT_FILES = ("template.ipynb", "standalone.html.j2")
# What the report imports from study/ (the package's __init__ quiets TensorFlow with study/quiet.py).
STUDY_MODULES = ("__init__.py", "quiet.py", "landscapes.py")
HEADINGS = [
    "Answers to the primer's questions",
    "The primer's trade-off table, measured",
    "The claims and their verdicts",
    "Evidence: each claim's tests",
    "Setup and tuning",
    "Test accuracy and learning curves",
    "Momentum and step size",
    "Batch size, each at its own learning rate",
    "Landscapes: escaping local minima",
    "High versus low learning rate",
    "Memory and time cost",
    "Test accuracy per digit",
    "Unstable runs",
    "Reproducing this report",
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding the report's code, params.yaml and a made-up study's tables."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    (tmp_path / "study").mkdir()
    for path in [*(REPO / "reports").glob("*.py"), *(REPO / "reports" / name for name in REPORT_FILES)]:
        shutil.copy(path, tmp_path / "reports" / path.name)
    for name in STUDY_MODULES:
        shutil.copy(REPO / "study" / name, tmp_path / "study" / name)
    write_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_stage_writes_the_notebook_and_a_self_contained_page(project):
    report.main()

    notebook = json.loads((project / "reports/study.ipynb").read_text())
    outputs = [o for cell in notebook["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] in ("error", "stream")]  # no errors, no warnings
    html = (project / "reports/study.html").read_text()
    assert '<img src="http' not in html
    assert "<script src=" not in html  # opens offline: no require.js or MathJax from a CDN
    assert "<title>How optimizers train a small network on MNIST</title>" in html
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) >= 7 and all('src="data:image/png;base64,' in image for image in images)
    alts = [re.search(r'alt="([^"]*)"', image) for image in images]
    assert all(alt and len(alt.group(1)) > 20 for alt in alts)  # every figure says what it shows
    assert "No description has been provided" not in html
    positions = [html.rindex(f">{heading}<") for heading in HEADINGS]  # the heading, not its contents entry
    assert positions == sorted(positions)  # the answers first, then the claims, then the evidence
    contents = html.index(">Contents<")
    assert contents < positions[0]
    for target in re.findall(r'<a href="#([^"]+)"', html[contents : positions[0]]):
        assert f'id="{target}"' in html  # every entry of the contents leads somewhere
    assert html.index("seed/000_a766fd6a87b39245.txt") < positions[0]  # the primer named at the top
    assert "Built from commit" in html[: positions[0]]
    found = json.loads((project / "metrics/claims.json").read_text())
    for claim in found:
        assert claim["claim"] in html
    assert html.count("<details><summary>") == len(found)  # each claim's tests folded under its verdicts
    for question in study_answers.QUESTIONS.values():
        assert html.index(question) < positions[1]  # every question answered in the opening section
    assert "verdict at Keras' defaults" in html  # each claim's second verdict, labelled
    assert "implied: the primer does not assert it" in html  # Nesterov and schedules
    assert "adagrad</code>'s best rate, 3.16, is the highest it tried" in html  # on the edge
    assert "tuning seeds are never evaluation seeds" in html
    assert "plain SGD's effective step" in html
    assert "figures.learning_curves(" not in html  # the code is hidden: the page reads as a document


def test_a_missing_input_is_a_one_line_error(project):
    (project / "metrics/batch_size.json").unlink()
    with pytest.raises(StudyError, match=r"metrics/batch_size.json is missing: run `dvc repro`") as error:
        report.main()
    assert "\n" not in str(error.value)
    assert not (project / "reports/study.html").exists()


def test_a_failing_cell_is_a_one_line_error_naming_it(project):
    template = json.loads((project / "reports/template.ipynb").read_text())
    template["cells"].insert(
        3,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "boom",
            "metadata": {},
            "outputs": [],
            "source": "raise ValueError('no such variant: sgd\\nsecond line')",
        },
    )
    (project / "reports/template.ipynb").write_text(json.dumps(template))
    with pytest.raises(StudyError, match=r"failed in cell \d+: ValueError: no such variant: sgd$") as error:
        report.main()
    assert "\n" not in str(error.value)


# --- the report decides nothing ---------------------------------------------------------------------

DECIDING_MODULES = {"scipy", "statistics", "study.statistics", "study.verdicts", "study.claims",
                    "study.analysis", "study.answers"}  # fmt: skip
# Calls that would work out a spread, an interval or a test: the report reads these, never computes them.
INTERVAL_CALLS = {"std", "sem", "var", "ppf", "interval", "ttest_rel", "ttest_ind", "ttest_1samp", "describe",
                  "decide", "paired_difference", "minimum_detectable_effect"}  # fmt: skip


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def interval_calls(path: Path) -> list[str]:
    """Calls named in INTERVAL_CALLS; `tables.interval(...)` reads what compare wrote and is allowed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        reads = isinstance(function, ast.Attribute) and getattr(function.value, "id", "") == "tables"
        if name in INTERVAL_CALLS and not reads:
            found.append(f"{name} (line {node.lineno})")
    return found


def test_no_report_module_computes_a_statistic_or_a_verdict():
    modules = [*(REPO / "reports").glob("*.py"), REPO / "stages/report.py"]
    for path in modules:
        deciding = {m for m in imports(path) if m.split(".")[0] == "scipy" or m in DECIDING_MODULES}
        assert not deciding, f"{path.name} imports {deciding}"
        assert not interval_calls(path), f"{path.name} computes {interval_calls(path)}"
    template = json.loads((REPO / "reports/template.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in template["cells"] if c["cell_type"] == "code")
    assert not re.search(r"\b(scipy|statistics|study\.)", code)


def test_the_interval_scan_finds_a_computed_interval(tmp_path):
    computing = tmp_path / "computing.py"
    computing.write_text("import numpy as np\nspread = np.std([1, 2])\nlow = frame.sem()\n")
    assert interval_calls(computing) == ["std (line 2)", "sem (line 3)"]


NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def renderings(value) -> set[str]:
    """Every way the report may write a number compare wrote: as a percentage or in points (2 decimals),
    to 3 significant figures, whole, with 1 decimal, in KiB or MiB, as a ratio (2 decimals)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return set()
    v = abs(float(value))
    found = {f"{100 * v:.2f}", f"{v:.3g}", f"{v:g}", f"{v:.2f}", f"{v:.1f}", f"{v:.0f}", f"{v:.2g}"}
    found |= {f"{v / 2**20:.1f}", f"{v / 2**10:.1f}", f"{100 * v:g}"}
    return {x.replace(",", "") for x in found}


def numbers_in(document) -> set[str]:
    """Every rendering of every number in a JSON document, and the numbers its strings quote."""
    if isinstance(document, dict):
        return set().union(*(numbers_in(v) for v in document.values())) if document else set()
    if isinstance(document, list):
        return set().union(*(numbers_in(v) for v in document)) if document else set()
    if isinstance(document, str):
        return {n.replace(",", "") for n in NUMBER.findall(document)}
    return renderings(document)


def numbers_shown(*items) -> list[str]:
    """Every number written in Markdown strings and in the cells and headers of styled tables."""
    texts = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, verdicts.Collapsed):  # its page text: HTML without its tags and styles
            page = re.sub(r"<style.*?</style>", " ", item._repr_html_(), flags=re.S)
            texts.append(re.sub(r"<[^>]+>|&#\d+;|&\w+;", " ", page))
        else:
            texts += [str(x) for x in [*item.data.columns, *item.data.to_numpy().ravel()]]
    return [n.replace(",", "") for text in texts for n in NUMBER.findall(text)]


def test_every_number_the_answers_and_claims_show_is_one_compare_wrote(tmp_path):
    """The opening (answers, trade-off table) and the claims (overview, every claim's tests) from made-up
    compare tables: each number shown is one of those tables' numbers, rounded for people."""
    tables = tables_of(tmp_path)
    written = set()
    for name in ("answers.json", "claims.json"):
        written |= numbers_in(json.loads((tmp_path / "metrics" / name).read_text()))
    ordinals = {str(n) for n in range(1, len(tables.claims) + 1)}  # the claims' numbers in the table
    shown = numbers_shown(
        answers.answers_text(tables),
        answers.tradeoff_table(tables),
        verdicts.overview_table(tables.claims),
        *verdicts.sections(tables.claims),
    )
    assert len(shown) > 200  # the check has something to check
    invented = sorted({n for n in shown if n not in written | ordinals})
    assert not invented, f"numbers compare never wrote: {invented[:20]}"


def test_the_answers_word_what_compare_decided():
    found = {
        "roles": {"plain": "base", "adaptive": ["fancy"], "scheduled": []},
        "best": {
            "tuned": {
                "best": "fancy",
                "test_accuracy": {"mean": 0.9812, "ci_low": 0.9801, "ci_high": 0.9823, "n_seeds": 4},
                "learning_rate": 0.00316,
                "runner_up": "base",
                "runner_up_test_accuracy": 0.9755,
                "difference": {"mean": 0.0057, "ci_low": 0.0011, "ci_high": 0.0103, "margin": 0.003,
                               "outcome": "inconclusive"},
            }
        },
        "tradeoffs": [],
        "answers": [
            {
                "id": "adaptive",
                "question": "Does fancy beat base?",
                "claim": "Fancy converges faster.",
                "protocols": {
                    "defaults": {
                        "verdict": "contradicted",
                        "tests": 3,
                        "headline": {"test": "fancy vs base", "measure": "validation accuracy after epoch 1",
                                     "kind": "accuracy", "a": "fancy", "b": "base", "mean": 0.049,
                                     "ci_low": 0.041, "ci_high": 0.057, "margin": 0.003,
                                     "outcome": "supported"},
                        "others": {"contradicted": 2},
                    }
                },
            }
        ],
    }  # fmt: skip
    compare = {"target_accuracy": 0.97}
    tables = results.Tables([], {}, pd.DataFrame(), pd.DataFrame(), {}, compare, answers=found)
    text = answers.answers_text(tables)
    assert (
        "**Which optimizer reaches the highest test accuracy?** At each variant's own best rate (tuned): "
        "`fancy`, 98.12% [98.01%, 98.23%] at rate 0.00316; against the runner-up `base` (plain mini-batch "
        "SGD) (97.55%): +0.57 points [+0.11, +1.03] (margin ±0.30), **inconclusive**." in text
    )  # compare's outcome, though a rule of thumb would call +0.57 points a win
    assert (
        "**Does fancy beat base?** At Keras' defaults: **contradicted**. `fancy` − `base` (plain mini-batch "
        "SGD), validation accuracy after epoch 1: +4.90 points [+4.10, +5.70] (margin ±0.30), supported. "
        "Its 2 other tests: 2 contradicted." in text
    )
    assert "At each variant's own best rate" not in text.split("Does fancy")[1]  # no tuned tests: not said


def made_up_claims() -> list[dict]:
    """Claims whose verdicts disagree with any rule one might apply to their numbers: a report that
    re-decided would show something else."""
    wide = {
        "measure": "test accuracy",
        "a": "x",
        "b": "y",
        "a_mean": 0.99,
        "b_mean": 0.90,
        "mean": 0.09,
        "n": 10,
        "ci_low": 0.08,
        "ci_high": 0.10,
        "tost_low": 0.085,
        "tost_high": 0.095,
        "margin": 0.003,
        "alpha": 0.05,
        "mde": 0.004,
    }
    return [
        {
            "id": "odd",
            "claim": "A clear lead that compare called contradicted.",
            "source": "primer",
            "verdicts": {
                "tuned": {"verdict": "contradicted", "conditions": None, "tests": 1, "alpha_per_test": 0.05},
                "defaults": {"verdict": "not tested", "conditions": None, "tests": 0, "alpha_per_test": None},
            },
            "tests": [
                wide | {"test": "x vs y, test accuracy", "protocol": "tuned", "outcome": "contradicted"}
            ],
            "notes": ["a note compare wrote"],
        },
        {
            "id": "split",
            "claim": "A claim whose tests disagree.",
            "source": "implied",
            "verdicts": {
                "tuned": {
                    "verdict": "mixed",
                    "conditions": "holds: per epoch | fails: per second",
                    "tests": 2,
                    "alpha_per_test": 0.025,
                },
                "defaults": {
                    "verdict": "no detectable effect",
                    "conditions": None,
                    "tests": 1,
                    "alpha_per_test": 0.05,
                },
            },
            "tests": [
                wide | {"test": "per epoch", "protocol": "tuned", "outcome": "supported"},
                wide | {"test": "per second", "protocol": "tuned", "outcome": "contradicted"},
                wide | {"test": "at defaults", "protocol": "defaults", "outcome": "no detectable effect"},
            ],
            "notes": [],
        },
    ]


def test_the_report_shows_exactly_the_verdicts_compare_wrote():
    found = made_up_claims()
    overview = verdicts.overview_table(found).data
    assert list(overview["#"]) == [1, 2]
    assert list(overview["verdict, tuned (primary)"]) == ["contradicted", "mixed"]
    assert list(overview["verdict at Keras' defaults"]) == ["not tested", "no detectable effect"]
    assert list(overview["whose"]) == [
        "the primer's",
        "implied: the primer does not assert it; the study adds it",
    ]
    first, second = verdicts.claim_text(1, found[0]), verdicts.claim_text(2, found[1])
    assert (
        "**Tuned (each at its own best rate; primary):** **contradicted**; 1 test, each at α = 0.05." in first
    )
    assert "**At Keras' defaults:** **not tested**." in first and "*a note compare wrote*" in first
    assert "**mixed**; 2 tests, each at α = 0.025." in second  # which went which way: the table's column
    tests = verdicts.tests_table(found[1], 2).data
    assert list(tests["outcome"]) == ["supported", "contradicted", "no detectable effect"]
    assert list(tests["protocol"]) == ["tuned", "tuned", "at Keras' defaults"]
    html = verdicts.overview_table(found).to_html()
    assert html.count(">contradicted<") == 1 and html.count(">mixed<") == 1


def test_each_kind_of_test_reads_in_its_own_unit():
    accuracy = {
        "test": "momentum vs mbgd",
        "measure": "validation accuracy after epoch 1",
        "a_mean": 0.9512,
        "b_mean": 0.9401,
        "mean": 0.0111,
        "ci_low": 0.0051,
        "ci_high": 0.0171,
        "tost_low": 0.006,
        "tost_high": 0.016,
        "margin": 0.003,
        "mde": 0.0042,
        "n": 10,
        "outcome": "supported",
        "a_learning_rate": 0.0316,
        "b_learning_rate": 0.316,
        "a_effective_step": 0.316,
        "b_effective_step": 0.316,
    }
    steps = {
        "test": "momentum vs bgd on saddle",
        "measure": "steps until settled within tolerance",
        "a_mean": 40.0,
        "b_mean": 120.0,
        "mean": -80.0,
        "ci_low": -95.0,
        "ci_high": -65.0,
        "margin": 12.0,
        "tost_low": -92.0,
        "tost_high": -68.0,
        "mde": 20.0,
        "n": 200,
        "outcome": "supported",
    }
    memory = {
        "test": "batch full vs batch 1, peak memory",
        "measure": "peak memory of one run alone",
        "a_mean": 200 * MIB,
        "b_mean": 70 * MIB,
        "ratio": 2.86,
        "ratio_low": 2.8,
        "ratio_high": 2.9,
        "factor": 1.5,
        "repeats": 3,
        "outcome": "supported",
    }
    count = {
        "test": "the highest rate overshoots",
        "measure": "variants unstable at their highest rate",
        "a_mean": 3.0,
        "b_mean": None,
        "count": 3,
        "of": 10,
        "outcome": "supported",
    }
    budget = accuracy | {"step_budget": 100.0, "a_learning_rate": 0.1, "b_learning_rate": 0.1}
    budget = {k: v for k, v in budget.items() if "effective" not in k}
    rows = verdicts.tests_table({"tests": [accuracy, steps, memory, count, budget]}, 0).data
    assert list(rows["a / b"][:3]) == ["95.12% / 94.01%", "40 / 120", "200.0 MiB / 70.0 MiB"]
    assert list(rows["a − b [interval at 1 − α]"][:4]) == [
        "+1.11 points [+0.51, +1.71]",
        "-80 steps [-95, -65]",
        "ratio 2.86× (2.80× to 2.90× between repeats)",
        "3 of 10",
    ]
    assert list(rows["margin ± [equivalence interval]"][:3]) == [
        "±0.30 [+0.60, +1.60]",
        "±12 [-92, -68]",
        "factor 1.5×",
    ]
    assert "MDE" not in rows  # it stays in claims.json: the table shows what decided the outcome
    assert rows["held equal"][0] == "rate 0.0316 / 0.316; effective step 0.316 (both)"
    assert rows["held equal"][4] == "rate 0.1 (both); budget 100 steps"


# --- the sections, on made-up tables -------------------------------------------------------------


def test_tuning_states_its_protocol_and_flags_the_edge(made_up):
    text = tuning.protocol_text(made_up)
    assert "trained for **3 epochs**, the horizon the tuned protocol trains for" in text
    assert "once from each **tuning seed (100, 101)**" in text
    assert "tuning seeds are never evaluation seeds (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)" in text
    assert "⚠ **Chosen on the edge of the rates tried:** `adagrad`'s best rate, 3.16, is the highest" in text
    assert "`adam`" not in text.split("edge of the rates tried")[1]  # adam's best lies inside its range


def test_the_learning_rate_section_shows_early_progress_and_unstable_rates(made_up):
    table = tuning.early_progress_table(made_up).data
    assert list(table.columns) == ["rate 0.0001", "rate 0.001", "rate 0.01", "rate 0.1", "rate 1"]
    assert table.loc["adam", "rate 1"] == "10.0% ⚠ unstable 2/2"  # 1000 times adam's best: at chance
    assert table.loc["adam", "rate 0.001"] == "95.5%"  # adam's best rate: fastest early
    text = tuning.unstable_text(made_up)
    assert "ended below 20% validation accuracy" in text
    assert (
        "`sgd` at 1 (2/2 seeds); `momentum` at 1 (2/2 seeds); `nesterov` at 1 (2/2 seeds); `adam` at 0.1"
        in text
    )
    assert (
        "Stable at every rate tried: `bgd`, `mbgd`, `adagrad`, `mbgd_exponential` and `mbgd_cosine`." in text
    )
    tuning.learning_rate_figure(made_up).savefig(BytesIO(), format="png")


def test_momentum_is_shown_over_the_effective_step(made_up):
    table = momentum.sweep_table(made_up.momentum).data
    assert list(table.columns) == [f"effective step {s}" for s in ("0.0316", "0.1", "0.316", "1")]
    assert list(table.index) == [
        "β 0",
        "β 0.5",
        "β 0.9",
        "β 0.99",
        "β 0.5, Nesterov",
        "β 0.9, Nesterov",
        "β 0.99, Nesterov",
    ]
    assert table.loc["β 0.9", "effective step 0.316"].endswith("(η 0.0316)")
    assert "1 of 3 diverged" in table.loc["β 0.99", "effective step 1"]
    text = momentum.sweep_text(made_up.momentum)
    assert "η = step × (1−β)" in text and "β 0.99 at step 1 (1 of 3)" in text
    figure = momentum.sweep_figure(made_up.momentum)
    assert [ax.get_xscale() for ax in figure.axes] == ["log"] * 4
    figure.savefig(BytesIO(), format="png")


def test_every_batch_size_shows_its_own_rate_budget_and_memory(made_up):
    table = batch_sizes.batch_table(made_up.batch).data
    assert list(table.index) == ["1", "8", "32", "256", "full"]
    assert list(table["own learning rate"]) == ["0.01", "0.0316", "0.1", "0.316", "1 ⚠ the highest tried"]
    assert list(table["epochs"]) == [3, 3, 3, 3, 100]
    assert table.loc["full", "optimizer steps"] == "100"
    assert (
        table.loc["full", "peak memory, one run alone in a fresh process: median [range] (repeats)"]
        == "200.0 MiB [199.0 MiB to 201.0 MiB] (3)"
    )
    assert table.loc["1", "analytic size"] == "802.1 KiB"
    text = batch_sizes.batch_text(made_up.batch, 0.9)
    assert "batch 1: 3 epochs = 30,000 steps" in text and "batch full: 100 epochs = 100 steps" in text
    assert "(#tradeoffs)" in text  # the claims' budgets are said once, in the trade-off table
    assert "reaches 90%" in text
    for figure in (
        batch_sizes.curves_figure(made_up.batch_curves),
        batch_sizes.tuning_figure(made_up.batch_tuning),
    ):
        figure.savefig(BytesIO(), format="png")


def test_landscapes_show_each_test_at_own_best_and_matched_step(made_up):
    table = landscapes.share_table(made_up.landscapes, made_up.landscape_shares).data
    table = table.set_index(["optimizer", "rate"])
    assert list(table.columns) == ["two_wells, reach", "two_wells, escape", "saddle, settle"]
    assert (
        table.loc[("momentum", "own best rate"), "two_wells, escape"] == "50.0%, median 0.5 crossings (η 0.1)"
    )
    assert table.loc[("momentum", "plain SGD's effective step"), "two_wells, escape"].startswith("0.0%")
    assert table.loc[("bgd (= sgd, mbgd)", "own best rate"), "saddle, settle"].startswith(
        "75.0%, median 47 steps"
    )
    assert ("adam", "plain SGD's effective step") not in table.index
    figure = landscapes.trajectories_figure(made_up.trajectories, made_up.landscapes)
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 3
    figure.savefig(BytesIO(), format="png")


def test_the_variant_tables_and_figures_read_compare_numbers(made_up):
    summary = findings.summary_table(made_up).data.set_index(["variant", "protocol"])
    assert list(summary.index.get_level_values("protocol")[:2]) == ["tuned", "at Keras' defaults"]
    assert summary.loc[("bgd", "tuned"), "learning rate"] == "0.316"
    assert summary.loc[("bgd", "tuned"), "epochs to 97%"] == "not reached"
    interval = made_up.interval("adam", "tuned", "test_accuracy")
    assert summary.loc[("adam", "tuned"), "test accuracy"] == results.ci(interval)
    variants = findings.variants_table(made_up).data
    assert variants.loc["adagrad", "tuned rate"] == "3.16 ⚠ on the high edge"
    assert "Evaluation seeds" in findings.setup_text(made_up) and "tuned: 10 (0, 1, 2" in findings.setup_text(
        made_up
    )
    assert "`sgd`, tuned (rate 0.01): 1 of 10 seeds unstable (seed 3); 1 diverged" in findings.unstable_text(
        made_up
    )
    costs = findings.cost_table(made_up).data.set_index(["variant", "protocol"])
    assert costs.loc[("adam", "tuned"), "optimizer state"] == "795.1 KiB"
    assert "whole split" in " ".join(costs.columns)  # which memory this is: the training stage's
    for figure in (
        figures.learning_curves(made_up),
        figures.test_accuracy_figure(made_up),
        figures.per_class_figure(made_up),
    ):
        figure.savefig(BytesIO(), format="png")


def test_sections_without_their_tables_say_so_in_one_line(tmp_path):
    absent = dict.fromkeys(
        [
            "tuning_path",
            "tuning_protocol_path",
            "momentum_path",
            "batch_summary_path",
            "batch_tuning_path",
            "batch_curves_path",
            "landscapes_path",
            "landscape_shares_path",
            "trajectories_path",
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be printed into the report
        tables = tables_of(tmp_path, **absent)
        texts = [
            tuning.protocol_text(tables),
            tuning.unstable_text(tables),
            momentum.sweep_text(tables.momentum),
            batch_sizes.batch_text(tables.batch, 0.9),
            landscapes.landscapes_text(tables.landscapes),
        ]
        nothing = [
            tuning.early_progress_table(tables),
            tuning.learning_rate_figure(tables),
            momentum.sweep_table(tables.momentum),
            momentum.sweep_figure(tables.momentum),
            batch_sizes.batch_table(tables.batch),
            batch_sizes.curves_figure(tables.batch_curves),
            batch_sizes.tuning_figure(tables.batch_tuning),
            landscapes.share_table(tables.landscapes, tables.landscape_shares),
            landscapes.trajectories_figure(tables.trajectories, tables.landscapes),
        ]
    assert all(text and "\n" not in text for text in texts)
    assert all(item is None for item in nothing)


def made_up_target() -> str:
    return f"{100 * STUDY.compare.target_accuracy:g}%"


def test_a_variant_whose_every_run_diverged_still_reads(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be printed into the report
        tables = tables_of(tmp_path, failed=("adagrad",))
        summary = findings.summary_table(tables).data.set_index(["variant", "protocol"])
        summary = summary.loc[("adagrad", "tuned")]
        texts = [tuning.protocol_text(tables), tuning.unstable_text(tables), findings.unstable_text(tables)]
        items = [
            tuning.early_progress_table(tables),
            findings.cost_table(tables),
            findings.variants_table(tables),
            *verdicts.sections(tables.claims),
        ]
        for figure in (
            tuning.learning_rate_figure(tables),
            figures.learning_curves(tables),
            figures.test_accuracy_figure(tables),
            figures.per_class_figure(tables),
        ):
            figure.savefig(BytesIO(), format="png")
    assert (summary["test accuracy"], summary[f"epochs to {made_up_target()}"]) == ("9.80%", "not reached")
    assert "`adagrad`, tuned (rate 0.001): 10 of 10 seeds unstable" in texts[2]
    assert all(item is not None for item in items)


def test_the_rule_is_stated_with_the_params_numbers():
    margins = {"accuracy": 0.005, "share": 0.1, "steps": 0.2}
    text = verdicts.rule_text({"confidence": 0.9, "margins": margins, "memory_factor": 2.0})
    assert "each at α = 0.1/*k*, so the chance that any of them is wrong by chance is at most 0.1" in text
    assert "±0.5 points of accuracy, ±10 points of a share of landscape starts, ±20% of" in text
    assert "at least 2×" in text
