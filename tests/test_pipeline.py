"""The real pipeline, end to end: `dvc repro` in a temporary git repository on tiny params.

Three variants on a small learnable MNIST-format file (made here, so no download is needed): two that
train normally and one whose huge learning rate diverges, which the study must survive and show.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from study.verdicts import VERDICTS
from tests.fake_mnist import make_fake_mnist
from tests.workspace import EXPLODING

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "stages", "study", "reports", ".dvc/plots", ".dvcignore", ".gitignore"]
pytestmark = pytest.mark.slow
VARIANTS = ("mbgd", "adam", "exploding")


def tiny_params(mirror: Path, expected: dict) -> dict:
    yaml = YAML(typ="safe", pure=True)
    raw = yaml.load((ROOT / "params.yaml").read_text())
    raw["data"]["sources"] = [str(mirror)]
    raw["data"]["expected"] = expected
    raw["prepare"].update(validation_size=500)
    raw["train"].update(epochs=2, seeds=[0, 1], defaults_seeds=2)
    raw["tune"].update(points=3, refine=1)
    raw["momentum_sweep"].update(momenta=[0.0, 0.9], effective_steps=[0.1, 0.316], seeds=2)
    raw["batch_sweep"].update(batch_sizes=[1, 32, "full"], train_size=None, seeds=2)
    raw["landscapes"].update(
        functions=["two_wells", "saddle"], starts=8, steps=100, trajectories=1, rates=[0.01, 0.1]
    )
    raw["variants"] = {
        "mbgd": raw["variants"]["mbgd"],
        "adam": raw["variants"]["adam"],
        "exploding": EXPLODING,
    }
    raw["compare"]["target_accuracy"] = 0.5
    return raw


def run(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MNIST_MIRROR", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("study")
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    for name in PROJECT_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source, target, ignore=shutil.ignore_patterns("__pycache__", "study.ipynb", "study.html")
            )
        else:
            shutil.copy(source, target)
    expected = make_fake_mnist(repo / "mirror" / "mnist.npz", n_train=3000, n_test=500, seed=0)
    YAML().dump(tiny_params(repo / "mirror" / "mnist.npz", expected), repo / "params.yaml")
    with (repo / ".gitignore").open("a") as ignore:
        ignore.write("/mirror/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny study"], repo)
    output = run(["dvc", "repro"], repo)
    (repo / "first_repro.log").write_text(output)
    return repo


def test_repro_runs_every_stage_and_writes_the_report(study):
    ran = ran_stages((study / "first_repro.log").read_text())
    per_variant = {f"variant@{variant}" for variant in VARIANTS}
    assert ran == {
        "check",
        "download",
        "prepare",
        "momentum",
        "batch_sweep",
        "landscapes",
        "compare",
        "report",
        *per_variant,
    }
    html = (study / "reports" / "study.html").read_text()
    assert "<html" in html and "exploding" in html
    # The report opens with its answers, then the claims, then the evidence.
    assert html.index("Answers to the primer's questions") < html.index("The claims and their verdicts")
    assert html.index("The claims and their verdicts") < html.rindex(">Setup and tuning<")
    assert (study / "reports" / "study.ipynb").exists()


def test_summary_has_both_protocols_with_intervals_over_seeds(study):
    summary = json.loads((study / "metrics" / "summary.json").read_text())
    assert set(summary) == set(VARIANTS)
    for variant in VARIANTS:
        assert set(summary[variant]) == {"defaults", "tuned"}
    accuracy = summary["adam"]["tuned"]["test_accuracy"]
    assert accuracy["n_seeds"] == 2 and accuracy["mean"] > 0.8  # the fake digits are learnable
    assert accuracy["ci_low"] <= accuracy["mean"] <= accuracy["ci_high"]
    tuned_rate = json.loads((study / "tuning" / "adam" / "best.json").read_text())["learning_rate"]
    assert summary["adam"]["tuned"]["learning_rate"] == tuned_rate
    runs = (study / "metrics" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 3 * 2 * 2  # variants x protocols x seeds
    assert (study / "models" / "adam" / "tuned" / "seed-1.keras").exists()
    assert len((study / "metrics" / "pairwise.csv").read_text().splitlines()) == 1 + 2 * 3 * 2
    momentum = (study / "metrics" / "momentum.csv").read_text().splitlines()
    assert len(momentum) == 1 + 3 * 2 * 2  # (0, 0.9, 0.9 Nesterov) x 2 effective steps x 2 seeds


def test_the_claims_are_tested_from_the_sweeps_and_the_landscapes(study):
    found = json.loads((study / "metrics" / "claims.json").read_text())
    assert len(found) == 8
    for claim in found:
        assert set(claim) >= {"id", "claim", "source", "verdicts", "tests", "notes"}
        assert set(claim["verdicts"]) == {"tuned", "defaults"}
        assert all(v["verdict"] in VERDICTS for v in claim["verdicts"].values())
    batch = next(c for c in found if c["id"] == "batch_tradeoffs")
    per_epoch = next(t for t in batch["tests"] if t["test"] == "batch 1 vs batch full, per epoch")
    assert per_epoch["a_learning_rate"] and per_epoch["b_learning_rate"]  # each size at its own rate
    momentum = next(c for c in found if c["id"] == "momentum")
    matched = [t for t in momentum["tests"] if "same effective step" in t["test"]]
    assert matched and all(t["a_effective_step"] == t["b_effective_step"] for t in matched)
    verdicts = json.loads((study / "metrics" / "verdicts.json").read_text())
    assert verdicts == {c["id"]: {p: v["verdict"] for p, v in c["verdicts"].items()} for c in found}
    sweep = (study / "metrics" / "batch_size.csv").read_text().splitlines()
    assert len(sweep) == 1 + 3 * 2  # batch sizes x seeds
    landscapes = pd.read_csv(study / "metrics" / "landscapes.csv")
    assert set(landscapes["test"]) == {"reach", "escape", "settle"}  # two_wells: 2 tests; saddle: 1


def test_a_diverged_variant_is_marked_and_the_study_goes_on(study):
    record = json.loads((study / "runs" / "exploding" / "defaults" / "seed-0" / "record.json").read_text())
    assert record["diverged"] is True
    assert record["diverged_epoch"] == 1
    assert record["epochs_run"] == 1
    summary = json.loads((study / "metrics" / "summary.json").read_text())
    assert summary["exploding"]["defaults"]["seeds_diverged"] >= 1
    trials = (study / "metrics" / "tuning.csv").read_text()
    assert "exploding" in trials and "True" in trials


def test_a_second_repro_does_nothing(study):
    output = run(["dvc", "repro"], study)
    assert ran_stages(output) == set()
    assert "up to date" in run(["dvc", "status"], study)


def test_metrics_and_plots_work_with_dvc(study):
    shown = run(["dvc", "metrics", "show"], study)
    for variant in VARIANTS:
        assert f"metrics/headline/{variant}.json" in shown
    assert "optimal_momentum" in shown  # the verdicts are DVC metrics too
    run(["dvc", "plots", "show", "-o", "dvc_plots"], study)
    assert (study / "dvc_plots" / "index.html").exists()


def test_changing_one_variant_reruns_only_it_and_what_follows(study):
    run(["git", "add", "-A"], study)
    run(["git", "commit", "-qm", "first results"], study)
    trials = (study / "tuning" / "adam" / "trials.csv").read_text()
    output = run(["dvc", "exp", "run", "-S", "variants.adam.learning_rate=0.003"], study)
    # The landscapes do not read a variant's default rate, and neither does tuning: adam's stage re-runs,
    # but its search resumes from the Optuna study, with every trial told, and trains none again.
    assert ran_stages(output) == {"check", "variant@adam", "compare", "report"}
    assert "adam: every tuning trial was already in the Optuna study: none trained again" in output
    assert (study / "tuning" / "adam" / "trials.csv").read_text() == trials
    shown = run(["dvc", "exp", "show", "--no-pager", "--csv"], study)
    assert "variants.adam.learning_rate" in shown and "0.003" in shown


def test_changing_one_search_range_retunes_only_that_variant(study):
    output = run(["dvc", "exp", "run", "-S", "variants.mbgd.search=[0.001,0.1]"], study)
    ran = ran_stages(output)
    assert ran == {"check", "variant@mbgd", "landscapes", "compare", "report"}
    assert "none trained again" not in output
    best = json.loads((study / "tuning" / "mbgd" / "best.json").read_text())
    assert best["search"] == [0.001, 0.1]
