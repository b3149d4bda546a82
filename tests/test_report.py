"""The report: its stage end to end on small synthetic results, and its findings on made-up tables.

The inputs are written here directly, in the formats compare and evaluate write (metrics/runs.csv,
plots/curves.csv, metrics/summary.json with study.statistics' intervals, metrics/pairwise.csv,
metrics/tuning.csv and tuning.json, metrics/momentum.csv, plots/momentum_curves.csv, metrics/eval/),
so that the report is tested on exactly what it reads and nothing else.
"""

import inspect
import json
import shutil
import warnings
from dataclasses import dataclass
from io import BytesIO
from itertools import permutations
from pathlib import Path

import pandas as pd
import pytest

from reports import comparisons, figures, findings, sensitivity, tradeoffs
from reports import results as results_module
from stages import report
from study import claims
from study.errors import StudyError
from study.statistics import describe, paired_difference

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
METRICS = [
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "test_loss",
    "epochs_to_target",
    "steps_to_target",
    "seconds_to_target",
    "train_seconds",
    "seconds_per_epoch",
    "optimizer_state_bytes",
    "peak_memory_bytes",
]
# Each variant's settings as runs.csv records them, its default and tuned rates, and its costs.
VARIANTS = {
    name: {"optimizer": "sgd", "batch_size": 32, "momentum": 0.0, "nesterov": False, "schedule": None,
           "steps_per_epoch": 1563, "defaults": 0.01, "tuned": 0.1, "seconds_per_step": 2e-4, "state": 0,
           "peak": 300 * MIB} | settings
    for name, settings in {
        "bgd": {"batch_size": 50000, "steps_per_epoch": 1, "tuned": 1.0, "seconds_per_step": 0.1,
                "peak": 600 * MIB},
        "sgd": {"batch_size": 1, "steps_per_epoch": 50000, "seconds_per_step": 3e-5, "peak": 200 * MIB},
        "mbgd": {},
        "momentum": {"momentum": 0.9, "state": 400_000},
        "nesterov": {"momentum": 0.9, "nesterov": True, "state": 400_000},
        "adam": {"optimizer": "adam", "defaults": 0.001, "tuned": 0.003, "state": 800_000},
        "rmsprop": {"optimizer": "rmsprop", "defaults": 0.001, "tuned": 0.001, "state": 400_000},
        "adagrad": {"optimizer": "adagrad", "defaults": 0.001, "tuned": 0.03, "state": 400_000},
        "mbgd_exponential": {"schedule": "exponential", "defaults": 0.05, "tuned": 0.3},
        "mbgd_cosine": {"schedule": "cosine", "defaults": 0.05, "tuned": 0.3},
    }.items()
}  # fmt: skip


@dataclass
class Run:
    """One run: its validation accuracy after each epoch; a diverged run stops in `diverged_epoch`."""

    variant: str
    protocol: str
    seed: int
    accuracies: list[float]
    diverged_epoch: int | None = None
    test: float | None = None  # the test accuracy; by default a little above the last validation one


def write_study(folder: Path, runs: list[Run], tuning=None, momentum=None, target=0.97) -> dict:
    """Write every table the report reads into `folder`; returns the report's parameters.

    `tuning`: (variant, learning_rate, val_accuracy or None when diverged, chosen) tuples;
    `momentum`: (momentum, nesterov, seed, accuracies per epoch, diverged epoch or None) tuples.
    """
    run_rows, curve_rows = [], []
    for run in runs:
        s = VARIANTS[run.variant]
        rate = s[run.protocol]
        diverged = run.diverged_epoch is not None
        per_epoch = s["steps_per_epoch"] * s["seconds_per_step"]
        for epoch, accuracy in enumerate(run.accuracies, start=1):
            loss = None if epoch == run.diverged_epoch else 1.0 - accuracy
            curve_rows.append(
                {"variant": run.variant, "protocol": run.protocol, "seed": run.seed, "epoch": epoch,
                 "steps": epoch * s["steps_per_epoch"], "loss": loss, "accuracy": accuracy,
                 "val_loss": None if loss is None else loss + 0.05, "val_accuracy": accuracy,
                 "learning_rate": rate * (0.5 ** epoch if s["schedule"] else 1.0),
                 "seconds": round(epoch * per_epoch, 6)}
            )  # fmt: skip
        reached = next((e for e, a in enumerate(run.accuracies, start=1) if a >= target), None)
        test = run.test if run.test is not None else min(1.0, run.accuracies[-1] + 0.001)
        run_rows.append(
            {"variant": run.variant, "protocol": run.protocol, "seed": run.seed, "optimizer": s["optimizer"],
             "batch_size": s["batch_size"], "learning_rate": rate,
             "momentum": s["momentum"] if s["optimizer"] == "sgd" else None,
             "nesterov": s["nesterov"] if s["optimizer"] == "sgd" else None, "schedule": s["schedule"],
             "epochs_run": len(run.accuracies), "diverged": diverged, "diverged_epoch": run.diverged_epoch,
             "final_val_accuracy": run.accuracies[-1], "best_val_accuracy": max(run.accuracies),
             "test_accuracy": test, "test_loss": None if diverged else 1.0 - test,
             "epochs_to_target": reached, "steps_to_target": reached and reached * s["steps_per_epoch"],
             "seconds_to_target": reached and round(reached * per_epoch, 6),
             "train_seconds": len(run.accuracies) * per_epoch, "seconds_per_epoch": per_epoch,
             "seconds_per_step": s["seconds_per_step"], "steps_per_epoch": s["steps_per_epoch"],
             "optimizer_state_bytes": s["state"], "peak_memory_bytes": s["peak"] + 1000 * run.seed,
             "memory_kind": "rss", "device": "CPU: test", "tensorflow": "2.x", "keras": "3.x",
             "op_determinism": True}
        )  # fmt: skip
    table = pd.DataFrame(run_rows)
    (folder / "metrics" / "eval").mkdir(parents=True, exist_ok=True)
    (folder / "plots").mkdir(exist_ok=True)
    table.to_csv(folder / "metrics/runs.csv", index=False)
    pd.DataFrame(curve_rows).to_csv(folder / "plots/curves.csv", index=False)

    summary, evaluations, pairs = {}, {}, []
    for (variant, protocol), group in table.groupby(["variant", "protocol"], sort=False):
        summary.setdefault(variant, {})[protocol] = {
            **{metric: describe(_values(group[metric])) for metric in METRICS},
            "learning_rate": VARIANTS[variant][protocol],
            "seeds": len(group),
            "seeds_reaching_target": int(group["epochs_to_target"].notna().sum()),
            "seeds_diverged": int(group["diverged"].sum()),
        }
        seeds = {
            str(row.seed): {"test_accuracy": row.test_accuracy, "test_loss": _values([row.test_loss])[0],
                            "per_class_accuracy": _per_class(row.test_accuracy)}
            for row in group.itertuples()
        }  # fmt: skip
        evaluations.setdefault(variant, {})[protocol] = {
            "test_accuracy": group["test_accuracy"].mean(),
            "test_loss": None if group["test_loss"].isna().any() else group["test_loss"].mean(),
            "per_class_accuracy": _per_class(group["test_accuracy"].mean()),
            "seeds": seeds,
        }
    for protocol, group in table.groupby("protocol", sort=False):
        by_seed = group.pivot(index="seed", columns="variant", values="test_accuracy")
        for a, b in permutations(group["variant"].unique(), 2):
            difference = paired_difference(_values(by_seed[a]), _values(by_seed[b]))
            pairs.append({"protocol": protocol, "variant_a": a, "variant_b": b, **difference})
    (folder / "metrics/summary.json").write_text(json.dumps(summary, indent=2))
    for variant, scores in evaluations.items():
        (folder / "metrics/eval" / f"{variant}.json").write_text(json.dumps(scores))
    pairwise_columns = ["protocol", "variant_a", "variant_b", "n_seeds", "mean", "std", "ci_low", "ci_high",
                        "share_a_better", "within_noise"]  # fmt: skip
    pd.DataFrame(pairs, columns=pairwise_columns).to_csv(folder / "metrics/pairwise.csv", index=False)

    tuning = tuning or []
    pd.DataFrame(
        [{"variant": t[0], "learning_rate": t[1], "val_accuracy": t[2], "diverged": t[2] is None,
          "diverged_epoch": 1 if t[2] is None else None, "chosen": t[3]} for t in tuning],
        columns=["variant", "learning_rate", "val_accuracy", "diverged", "diverged_epoch", "chosen"],
    ).to_csv(folder / "metrics/tuning.csv", index=False)  # fmt: skip
    ranges = {t[0]: [1e-4, 1.0] for t in tuning}
    points = max([sum(t[0] == variant for t in tuning) for variant in ranges], default=0)
    protocol = {"points": points, "epochs": 2, "seed": 0, "metric": "val_accuracy", "ranges": ranges}
    (folder / "metrics/tuning.json").write_text(json.dumps(protocol))

    momentum_rows, momentum_curves = [], []
    for m, nesterov, seed, accuracies, diverged_epoch in momentum or []:
        momentum_rows.append(
            {"momentum": m, "nesterov": nesterov, "seed": seed, "learning_rate": 0.01, "batch_size": 32,
             "final_val_accuracy": accuracies[-1], "best_val_accuracy": max(accuracies),
             "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch}
        )  # fmt: skip
        for epoch, accuracy in enumerate(accuracies, start=1):
            loss = None if epoch == diverged_epoch else 1.0 - accuracy
            momentum_curves.append(
                {"momentum": m, "nesterov": nesterov, "seed": seed, "epoch": epoch, "loss": loss,
                 "val_accuracy": accuracy, "val_loss": None if loss is None else loss + 0.05}
            )  # fmt: skip
    momentum_columns = ["momentum", "nesterov", "seed", "learning_rate", "batch_size", "final_val_accuracy",
                        "best_val_accuracy", "diverged", "diverged_epoch"]  # fmt: skip
    pd.DataFrame(momentum_rows, columns=momentum_columns).to_csv(folder / "metrics/momentum.csv", index=False)
    curve_columns = ["momentum", "nesterov", "seed", "epoch", "loss", "val_accuracy", "val_loss"]
    pd.DataFrame(momentum_curves, columns=curve_columns).to_csv(
        folder / "plots/momentum_curves.csv", index=False
    )
    write_sweep_landscapes_and_claims(folder, table, pd.DataFrame(curve_rows))
    return {name: str(folder / path) for name, path in report.INPUTS.items()}


BATCH_SIZES = {  # label: (accuracy after one epoch, steps per epoch, seconds per step, peak memory)
    "1": (0.95, 3000, 3e-5, 70 * MIB),
    "32": (0.90, 94, 2e-4, 80 * MIB),
    "full": (0.15, 1, 0.1, 190 * MIB),
}


def write_sweep_and_landscape_tables(folder: Path) -> tuple[pd.DataFrame, ...]:
    """The batch-size sweep (3 sizes, 3 seeds, 2 epochs) and two landscapes, as compare and the
    landscapes stage write them."""
    batch_runs, batch_curves = [], []
    for label, (first, per_epoch, per_step, peak) in BATCH_SIZES.items():
        for seed in range(3):
            steps = sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, per_epoch, 2 * per_epoch} - {0})
            steps = [x for x in steps if x <= 2 * per_epoch]
            for step in steps:
                epoch = step / per_epoch
                batch_curves.append(
                    {"batch_label": label, "batch_size": per_epoch, "seed": seed, "step": step,
                     "epoch": epoch, "seconds": step * per_step, "val_loss": 1.0,
                     "val_accuracy": min(0.99, 0.1 + (first - 0.1) * min(epoch, 1) + 0.02 * max(epoch - 1, 0)
                                         + seed / 1000)}
                )  # fmt: skip
            final = batch_curves[-1]["val_accuracy"]
            reached = next((c for c in batch_curves[-len(steps) :] if c["val_accuracy"] >= 0.9), None)
            batch_runs.append(
                {"batch_label": label, "seed": seed, "final_val_accuracy": final, "epochs_run": 2,
                 "epochs_to_target": reached and reached["epoch"],
                 "steps_to_target": reached and reached["step"],
                 "seconds_to_target": reached and reached["seconds"],
                 "seconds_per_epoch": per_epoch * per_step, "seconds_per_step": per_step,
                 "peak_memory_bytes": peak + seed, "target_accuracy": 0.9}
            )  # fmt: skip
    batch_runs, batch_curves = pd.DataFrame(batch_runs), pd.DataFrame(batch_curves)
    batch_runs.to_csv(folder / "metrics/batch_size.csv", index=False)
    batch_curves.to_csv(folder / "plots/batch_size_curves.csv", index=False)

    outcomes, paths = [], []
    for function, minimum in (("two_wells", (-1.04, 0.0)), ("saddle", (0.0, 1.0))):
        for variant in ("mbgd", "momentum", "adam"):
            for start in range(10):
                x0, y0 = -2 + 0.4 * start, 0.5
                reached = start < 5 or (variant == "momentum" and start % 2 == 0)
                end = minimum if reached else (0.96, 0.0)
                outcomes.append(
                    {"function": function, "variant": variant, "start": start, "x0": x0, "y0": y0,
                     "final_x": end[0], "final_y": end[1], "final_value": 0.0, "reached_global": reached,
                     "steps_to_tolerance": 20 + start if reached else None, "diverged": False,
                     "learning_rate": 0.1}
                )  # fmt: skip
                if start == 0:
                    paths += [
                        {"function": function, "variant": variant, "start": 0, "step": k,
                         "x": x0 + (end[0] - x0) * k / 10, "y": y0 + (end[1] - y0) * k / 10}
                        for k in range(11)
                    ]  # fmt: skip
    outcomes = pd.DataFrame(outcomes)
    outcomes.to_csv(folder / "metrics/landscapes.csv", index=False)
    (folder / "plots/landscapes").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(paths).to_csv(folder / "plots/landscapes/trajectories.csv", index=False)
    return batch_runs, batch_curves, outcomes


def write_sweep_landscapes_and_claims(folder: Path, runs: pd.DataFrame, curves: pd.DataFrame) -> None:
    """The sweep and landscape tables, and metrics/claims.json computed from all the tables by
    study/claims.py, as compare computes it."""
    batch_runs, batch_curves, outcomes = write_sweep_and_landscape_tables(folder)
    evidence = claims.Evidence(
        runs=runs,
        curves=curves,
        batch_runs=batch_runs.assign(batch_label=batch_runs["batch_label"].astype(str)),
        batch_curves=batch_curves,
        momentum_runs=pd.read_csv(folder / "metrics/momentum.csv"),
        tuning=pd.read_csv(folder / "metrics/tuning.csv"),
        landscapes=outcomes,
    )
    (folder / "metrics/claims.json").write_text(json.dumps(claims.evaluate(evidence)))


def _values(series) -> list:
    return [None if pd.isna(x) else float(x) for x in series]


def _per_class(accuracy: float) -> dict[str, float]:
    return {str(d): min(1.0, accuracy + (d - 5) / 200) for d in range(10)}


def ramp(final: float, epochs: int = 3) -> list[float]:
    """Validation accuracies that climb to `final` in the last epoch."""
    return [round(final - 0.02 * (epochs - e), 4) for e in range(1, epochs + 1)]


def runs_of(finals: dict[str, dict[str, list[float]]]) -> list[Run]:
    """{variant: {protocol: [final accuracy per seed]}} as runs with seeds 0, 1, ..."""
    return [
        Run(variant, protocol, seed, ramp(final))
        for variant, protocols in finals.items()
        for protocol, per_seed in protocols.items()
        for seed, final in enumerate(per_seed)
    ]


def results_from(folder: Path, runs: list[Run], tuning=None, momentum=None) -> results_module.Results:
    inputs = write_study(folder, runs, tuning, momentum)
    accepted = inspect.signature(results_module.load).parameters
    return results_module.load(**{k: v for k, v in inputs.items() if k in accepted}, target_accuracy=0.97)


# --- the stage, end to end ------------------------------------------------------------------------

TUNING = [  # three rates per variant, the highest diverged for adam
    *(("mbgd", r, a, r == 0.1) for r, a in ((0.001, 0.80), (0.1, 0.975), (1.0, 0.90))),
    *(("momentum", r, a, r == 0.1) for r, a in ((0.001, 0.90), (0.1, 0.978), (1.0, 0.95))),
    *(("adam", r, a, r == 0.003) for r, a in ((0.0003, 0.95), (0.003, 0.974), (0.03, None))),
]
SWEEP = [  # momentum 0, and 0.9 plain and Nesterov, three seeds; one run at 0.9 plain diverges
    *((0.0, False, seed, ramp(0.93 + seed / 1000), None) for seed in range(3)),
    *((0.9, False, seed, ramp(0.96 + seed / 1000), None) for seed in range(2)),
    (0.9, False, 2, [0.9, 0.1], 2),
    *((0.9, True, seed, ramp(0.965 + seed / 1000), None) for seed in range(3)),
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with three variants under two protocols, three seeds: adam diverges once, tuned."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    (tmp_path / "study").mkdir()
    for path in [*(REPO / "reports").glob("*.py"), *(REPO / "reports" / name for name in REPORT_FILES)]:
        shutil.copy(path, tmp_path / "reports" / path.name)
    for name in STUDY_MODULES:
        shutil.copy(REPO / "study" / name, tmp_path / "study" / name)
    runs = runs_of(
        {
            "mbgd": {"defaults": [0.93, 0.932, 0.931], "tuned": [0.975, 0.976, 0.974]},
            "momentum": {"defaults": [0.968, 0.97, 0.969], "tuned": [0.979, 0.98, 0.978]},
            "adam": {"defaults": [0.972, 0.973, 0.974], "tuned": [0.976, 0.975]},
        }
    )
    runs.append(Run("adam", "tuned", 2, [0.95, 0.098], diverged_epoch=2))
    write_study(tmp_path, runs, TUNING, SWEEP)
    monkeypatch.chdir(tmp_path)
    return tmp_path


REPORT_FILES = ("template.ipynb", "standalone.html.j2")
STUDY_MODULES = (  # what the report imports from study/
    "__init__.py",
    "statistics.py",
    "claims.py",
    "landscapes.py",
)
HEADINGS = [
    "The primer's claims, tested",
    "Setup",
    "Summary",
    "Does the ranking survive tuning?",
    "Which differences are beyond noise?",
    "Gradient-descent variants: batch, stochastic, mini-batch",
    "Batch size, measured",
    "Momentum and Nesterov",
    "Adaptive learning rates: Adam, RMSProp, Adagrad",
    "Learning-rate schedules",
    "High versus low learning rate",
    "Optimal momentum",
    "Landscapes: what MNIST cannot show",
    "Memory and time cost",
    "Test accuracy and per-class accuracy",
    "Diverged runs",
    "Reproducing this report",
]


def test_report_stage_writes_the_notebook_and_a_self_contained_page(project):
    report.main()

    notebook = json.loads((project / "reports/study.ipynb").read_text())
    outputs = [o for cell in notebook["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] in ("error", "stream")]  # no errors, no warnings
    html = (project / "reports/study.html").read_text()
    assert '<img src="http' not in html
    assert "<script src=" not in html  # opens offline: no require.js or MathJax from a CDN
    assert html.count("data:image/png;base64,") >= 10
    for heading in HEADINGS:
        assert f">{heading}<" in html
    assert "adam</code>, tuned (rate 0.003): 1 of 3 seeds (seed 2)" in html
    assert "The ranking changes once every variant is tuned" in html  # adam 1st → 3rd
    assert "Kendall" in html and "[" in html  # rankings compared, intervals shown
    assert "no learning-rate schedules" in html
    assert "Best momentum:</strong> 0.9 (Nesterov)" in html
    assert "figures.learning_curves(" not in html  # the code is hidden: the page reads as a document


def test_a_missing_input_is_a_one_line_error(project):
    (project / "metrics/pairwise.csv").unlink()
    with pytest.raises(StudyError, match=r"metrics/pairwise.csv is missing: run `dvc repro`") as error:
        report.main()
    assert "\n" not in str(error.value)
    assert not (project / "reports/study.html").exists()


def test_a_failing_cell_is_a_one_line_error_naming_it(project):
    template = json.loads((project / "reports/template.ipynb").read_text())
    template["cells"].insert(
        3,
        {"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {}, "outputs": [],
         "source": "raise ValueError('no such variant: sgd\\nsecond line')"},
    )  # fmt: skip
    (project / "reports/template.ipynb").write_text(json.dumps(template))
    with pytest.raises(StudyError, match=r"failed in cell \d+: ValueError: no such variant: sgd$") as error:
        report.main()
    assert "\n" not in str(error.value)


# --- findings on made-up tables -------------------------------------------------------------------


def test_the_ranking_sentence_follows_the_data(tmp_path):
    same = runs_of(
        {
            "mbgd": {"defaults": [0.90, 0.91, 0.92], "tuned": [0.95, 0.951, 0.952]},
            "adam": {"defaults": [0.97, 0.971, 0.972], "tuned": [0.98, 0.981, 0.982]},
            "rmsprop": {"defaults": [0.95, 0.951, 0.953], "tuned": [0.97, 0.971, 0.973]},
        }
    )
    text = comparisons.ranking_text(results_from(tmp_path, same))
    assert text.startswith("**The ranking does not change once every variant is tuned:**")
    assert "Kendall's τ = 1.00" in text

    flipped = runs_of(
        {
            "mbgd": {"defaults": [0.90, 0.91, 0.92], "tuned": [0.985, 0.986, 0.988]},
            "adam": {"defaults": [0.97, 0.971, 0.972], "tuned": [0.95, 0.951, 0.952]},
            "rmsprop": {"defaults": [0.95, 0.951, 0.953], "tuned": [0.97, 0.971, 0.973]},
        }
    )
    results = results_from(tmp_path, flipped)
    text = comparisons.ranking_text(results)
    assert text.startswith("**The ranking changes once every variant is tuned:**")
    assert "Kendall's τ between the two orders is -1.00" in text
    assert "`mbgd` 3rd → 1st" in text and "`adam` 1st → 3rd" in text
    assert "Best with the defaults: `adam`; best tuned: `mbgd`." in text
    assert "3 are beyond noise under both protocols" in text
    table = comparisons.ranking_table(results)
    assert table.loc["mbgd", ("", "tuned against defaults")] == "up 2"
    assert table.loc["adam", ("defaults", "test accuracy")].startswith("97.20% [")


def test_a_difference_within_noise_is_called_so(tmp_path):
    runs = runs_of(
        {
            "mbgd": {"defaults": [0.950, 0.960, 0.955]},
            "momentum": {"defaults": [0.958, 0.952, 0.957]},  # higher in 2 of 3 seeds, by little
            "adam": {"defaults": [0.975, 0.976, 0.978]},  # beyond noise above both
        }
    )
    results = results_from(tmp_path, runs)
    verdict, sentence = comparisons.versus(results, "momentum", "mbgd", "defaults")
    assert verdict == "within noise"
    assert "higher in 2 of 3 seeds, within noise" in sentence
    assert comparisons.versus(results, "adam", "mbgd", "defaults")[0] == "better"
    text = comparisons.pairwise_text(results)
    assert "- **defaults:** 2 of 3 pairs of variants differ beyond noise; 1 are within noise." in text
    assert "`adam` is above `momentum` and `mbgd`, beyond noise." in text
    assert "within noise of it" not in findings.summary_text(results)  # adam is alone at the top


def test_one_seed_means_no_intervals_and_says_so(tmp_path):
    runs = runs_of(
        {"mbgd": {"defaults": [0.95], "tuned": [0.97]}, "adam": {"defaults": [0.97], "tuned": [0.96]}}
    )
    results = results_from(tmp_path, runs)
    assert "single seed" in findings.evidence_text(results)
    assert comparisons.versus(results, "adam", "mbgd", "defaults")[0] == "one seed"
    assert "With one seed, no swap can be told apart from seed luck." in comparisons.ranking_text(results)
    assert findings.summary_table(results).loc[("adam", "defaults"), "test accuracy"] == "97.10%"


def test_nesterov_and_high_momentum_verdicts_follow_the_sweep(tmp_path):
    runs = runs_of({"mbgd": {"defaults": [0.93, 0.94, 0.935]}})

    def sweep(nesterov_gain):
        rows = []
        for seed in range(3):
            rows += [
                (0.0, False, seed, ramp(0.93 + seed / 500), None),
                (0.9, False, seed, ramp(0.96 + seed / 500), None),
                (0.9, True, seed, ramp(0.96 + seed / 500 + nesterov_gain[seed]), None),
                (0.99, False, seed, ramp(0.90 + seed / 500), None),
                (0.99, True, seed, ramp(0.90 + seed / 500), None),
            ]
        return rows

    text = sensitivity.momentum_sweep_text(
        results_from(tmp_path, runs, momentum=sweep([0.004, 0.005, 0.006]))
    )
    assert "- **Best momentum:** 0.9 (Nesterov), 96.70% [" in text
    assert "beyond noise above every other setting" in text
    assert (
        "**Nesterov against plain momentum** (Nesterov − plain, paired by seed): better beyond noise at 0.9;"
        in text
    )
    assert "within noise at 0.99" in text
    assert "**Does the highest momentum, 0.99, hurt?** plain: 90.20% [" in text
    assert "against 96.20% at 0.9, -6.00 points [" in text and "yes, beyond noise" in text

    text = sensitivity.momentum_sweep_text(
        results_from(tmp_path, runs, momentum=sweep([0.004, -0.004, 0.001]))
    )
    assert "(Nesterov − plain, paired by seed): within noise at 0.9, 0.99." in text
    assert "within noise of it: 0.9 (plain)" in text


def test_the_learning_rate_answer_reads_the_tuning_trials(tmp_path):
    runs = runs_of({v: {"defaults": [0.93, 0.94]} for v in ("mbgd", "adam", "sgd")})
    trials = [
        *(("mbgd", r, a, r == 1.0) for r, a in ((0.01, 0.90), (0.1, 0.965), (1.0, 0.97))),
        *(("adam", r, a, r == 0.01) for r, a in ((0.001, 0.97), (0.01, 0.975), (0.1, None))),
        *(("sgd", r, a, r == 0.1) for r, a in ((0.01, 0.95), (0.1, 0.96), (1.0, 0.11))),  # finite, but chance
    ]
    results = results_from(tmp_path, runs, tuning=trials)
    text = sensitivity.learning_rate_text(results)
    assert (
        "- `mbgd`: best 97.00% at 1; default 0.01; within a point of the best from 0.1 to 1 (1 decade)"
        in text
    )
    assert "**the chosen rate is at the top of the range**" in text
    assert (
        "- `adam`: best 97.50% at 0.01; default 0.001; within a point of the best from 0.001 to 0.01" in text
    )
    assert "diverged from 0.1" in text
    too_high = "**Too high:** 1 of 3 variants diverged within the range (`adam` from 0.1); accuracy fell to "
    assert too_high + "near chance without diverging from 1 for `sgd`; `mbgd` neither diverged nor" in text
    assert "tuning chose a higher rate than the default for 3 of 3 variants" in text
    tuning = findings.tuning_text(results)
    assert "3 rates evenly spaced on a log scale, each trained for 2 epochs from seed 0" in tuning
    assert "highest final validation accuracy" in tuning and "the test split is never used" in tuning
    assert "1 of 9 trials diverged" in tuning
    assert findings.variants_table(results).loc["mbgd", "tuned rate"] == "1"


PRIMER_LIKE = {  # final accuracy per seed, defaults protocol, that agree with the primer's speed claims
    "bgd": {"defaults": [0.80, 0.81, 0.805]},
    "sgd": {"defaults": [0.99, 0.991, 0.992]},
    "mbgd": {"defaults": [0.975, 0.976, 0.974]},
}


def test_tradeoffs_agree_with_the_primer_when_the_numbers_do(tmp_path):
    results = results_from(tmp_path, runs_of(PRIMER_LIKE))
    table = tradeoffs.tradeoffs_table(results)
    speed = table[("Convergence speed", "agrees")]
    memory = table[("Memory", "agrees")]
    # bgd never gets there: slowest in all four. sgd is first in epochs, not in steps or seconds.
    assert speed[("BGD (bgd)", "defaults")] == "yes"
    assert speed[("SGD (sgd)", "defaults")] == "partly: epochs, final accuracy"
    assert table.loc[("SGD (sgd)", "defaults"), ("Convergence speed", "steps to 97%")] == "100,000"
    assert list(memory) == ["partly: peak"] * 3  # plain SGD keeps no state: all tie there
    text = tradeoffs.gd_text(results)
    assert "in epochs `sgd`: 2" in text and "Never reached 97% in 3 epochs, in any seed: `bgd`." in text


def test_tradeoffs_verdicts_flip_when_the_numbers_flip(tmp_path):
    flipped = {"bgd": PRIMER_LIKE["sgd"], "sgd": PRIMER_LIKE["bgd"], "mbgd": PRIMER_LIKE["mbgd"]}
    table = tradeoffs.tradeoffs_table(results_from(tmp_path, runs_of(flipped)))
    for row in ("BGD (bgd)", "SGD (sgd)"):  # bgd now gets there first, sgd never does
        assert table.loc[(row, "defaults"), ("Convergence speed", "agrees")] == "no"


@pytest.mark.parametrize(
    ("claim", "value", "others", "expected"),
    [
        ("slow", 5, [1, 2], True),
        ("slow", 1, [2, 5], False),
        ("fast", float("inf"), [2, 3], False),  # never reached the target: slowest
        ("slow", float("inf"), [float("inf"), 3], False),  # two never reached it: a tie
        ("balanced", 2, [1, 5], True),
        ("balanced", 2, [1], None),  # nothing to be between
        ("high", 100, [98, 99], False),  # within 5%: a tie
        ("low", None, [1, 2], None),
    ],
)
def test_a_claim_agrees_only_with_a_clear_ranking(claim, value, others, expected):
    assert tradeoffs.agrees(claim, value, others, tradeoffs.SAME, relative=True) is expected


def test_sections_whose_variants_are_absent_say_so_in_one_line(tmp_path):
    results = results_from(
        tmp_path, runs_of({"adam": {"defaults": [0.96, 0.97]}, "rmsprop": {"defaults": [0.97, 0.96]}})
    )
    for text in (
        tradeoffs.gd_text(results),
        comparisons.momentum_text(results),
        comparisons.schedule_text(results),
        comparisons.adaptive_text(results),
        findings.tuning_text(results),
        comparisons.ranking_text(results),
        sensitivity.learning_rate_text(results),
        sensitivity.momentum_sweep_text(results),
    ):
        assert "\n" not in text
    for figure in (
        figures.learning_curves(results, results.section("momentum")),
        figures.sensitivity_figure(results),
        figures.momentum_figure(results),
        figures.momentum_curves_figure(results),
    ):
        assert figure is None
    assert tradeoffs.tradeoffs_table(results)[("Convergence speed", "agrees")].eq("—").all()
    assert findings.diverged_text(results).startswith("No training run diverged")


def test_every_figure_draws_with_all_variants_and_missing_values(tmp_path):
    runs = [
        Run(variant, protocol, seed, ramp(0.9 + i / 200 + seed / 1000))
        for i, variant in enumerate(VARIANTS)
        for protocol in ("defaults", "tuned")
        for seed in range(2)
    ]
    runs[4] = Run("sgd", "defaults", 0, [0.9, 0.2], diverged_epoch=2)
    trials = [
        (variant, r, None if r == 1.0 else 0.9, r == 0.1) for variant in VARIANTS for r in (0.01, 0.1, 1.0)
    ]
    sweep = [
        (m, n, s, ramp(0.95), 2 if m == 0.99 else None)
        for m in (0.0, 0.9, 0.99)
        for n in (False, True)
        for s in (0, 1)
        if m or not n
    ]
    results = results_from(tmp_path, runs, trials, sweep)
    drawn = [
        figures.learning_curves(results, results.variants),
        figures.schedule_figure(results, results.section("schedule")),
        figures.test_accuracy_figure(results),
        figures.pairwise_figure(results),
        figures.sensitivity_figure(results),
        figures.momentum_figure(results),
        figures.momentum_curves_figure(results),
        figures.time_to_target_figure(results),
        figures.memory_figure(results),
        figures.per_class_figure(results),
    ]
    for figure in drawn:
        figure.savefig(BytesIO(), format="png")
    assert "sgd (diverged: defaults 1/2; left out)" in [t.get_text() for t in drawn[0].legends[0].get_texts()]
    assert (
        "- `sgd`, defaults (rate 0.01): 1 of 2 seeds (seed 0); the training loss"
        in findings.diverged_text(results)
    )
    summary = findings.summary_table(results)
    assert summary.loc[("sgd", "defaults"), "diverged"] == "1/2 seeds (epoch 2)"
    assert summary.loc[("bgd", "tuned"), "reached 97%"] == "0/2"
    assert summary.loc[("bgd", "tuned"), "epochs to 97%"] == "not reached"


def test_nothing_breaks_when_everything_that_can_be_missing_is(tmp_path):
    nan = float("nan")
    runs = [
        *runs_of(
            {"mbgd": {"defaults": [0.95, 0.96]}, "adam": {"defaults": [0.97, 0.975]}}
        ),  # adam: no tuned runs
        Run("mbgd", "tuned", 0, [0.5, 0.1], diverged_epoch=2, test=nan),  # every tuned seed diverged
        Run("mbgd", "tuned", 1, [0.1], diverged_epoch=1, test=nan),
    ]
    trials = [("adam", r, None, False) for r in (0.01, 0.1)] + [
        ("mbgd", 0.01, 0.9, True),
        ("mbgd", 0.1, None, False),
    ]
    sweep = [(m, n, s, [nan] if m == 0.99 else ramp(0.95), 1 if m == 0.99 else None)
             for m in (0.0, 0.99) for n in (False, True) for s in (0, 1) if m or not n]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be printed into the report
        results = results_from(tmp_path, runs, trials, sweep)
        texts = [
            f(results)
            for f in (
                findings.setup_text, findings.tuning_text, findings.evidence_text, findings.summary_text,
                findings.cost_text, findings.test_text, findings.diverged_text, comparisons.ranking_text,
                comparisons.pairwise_text, comparisons.adaptive_text, tradeoffs.gd_text,
                sensitivity.learning_rate_text, sensitivity.momentum_sweep_text,
            )
        ]  # fmt: skip
        tables = [
            f(results)
            for f in (findings.variants_table, findings.summary_table, comparisons.ranking_table,
                      tradeoffs.tradeoffs_table)
        ] + [tradeoffs.epoch_cost_table(results, results.section("gd"))]  # fmt: skip
        drawn = [
            f(results)
            for f in (
                figures.test_accuracy_figure, figures.pairwise_figure, figures.sensitivity_figure,
                figures.momentum_figure, figures.momentum_curves_figure, figures.time_to_target_figure,
                figures.memory_figure, figures.per_class_figure,
            )
        ] + [figures.learning_curves(results, results.variants)]  # fmt: skip
        for figure in drawn:
            if figure is not None:
                figure.savefig(BytesIO(), format="png")
    assert all(texts) and all(t is not None for t in tables)
    assert "- `adam`: every rate tried diverged (0.01 and up)." in texts[-2]
    assert "- `mbgd`, tuned (rate 0.1): 2 of 2 seeds (seed 0, 1)" in texts[6]
    assert "Fewer than two variants have a test accuracy under both protocols" in texts[7]
    assert findings.summary_table(results).loc[("mbgd", "tuned"), "test accuracy"] == "—"
