"""The report: its stage end to end on small synthetic results, and its findings on made-up tables.

Inputs are written in the formats train and evaluate write (records and test scores), and the tables
by compare itself or study.analysis's functions, so the report is tested on what the pipeline makes.
"""

import json
import shutil
from io import BytesIO
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reports import figures
from stages import compare, report
from study import analysis, params
from study.atomic import write_json
from study.errors import StudyError

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20


def study_params(variants: dict[str, dict] | list[str]) -> dict:
    """The project's params.yaml, with only the given variants (names from it, or new entries)."""
    raw = YAML(typ="safe", pure=True).load((REPO / "params.yaml").read_text())
    if isinstance(variants, list):
        variants = {name: raw["variants"][name] for name in variants}
    return raw | {"variants": variants}


def record(
    study, variant, accuracies, seconds_per_epoch=1.0, diverged_epoch=None, state=0, peak=100 * MIB, seed=0
):
    """A run record as study/training.py writes it, with made-up curves."""
    history = []
    for epoch, accuracy in enumerate(accuracies, start=1):
        diverged = epoch == diverged_epoch
        history.append(
            {
                "epoch": epoch,
                "loss": None if diverged else 1.0 - accuracy,
                "accuracy": accuracy,
                "val_loss": None if diverged else 1.05 - accuracy,
                "val_accuracy": accuracy,
                "learning_rate": study.variant(variant).learning_rate,
                "seconds": round(epoch * seconds_per_epoch, 4),
            }
        )
        if diverged:
            break
    return {
        "variant": variant,
        "seed": seed,
        "settings": study.variant(variant).model_dump(),
        "batch_size": study.batch_size(variant),
        "steps_per_epoch": study.steps_per_epoch(variant),
        "n_train": study.n_train,
        "epochs_planned": study.train.epochs,
        "epochs_run": len(history),
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "train_seconds": history[-1]["seconds"],
        "optimizer_state_bytes": state,
        "peak_memory_bytes": peak,
        "memory_kind": "rss",
        "history": history,
        "environment": {"device": "CPU: test", "tensorflow": "2.x", "keras": "3.x", "op_determinism": False},
    }


def evaluation(records: list[dict]) -> dict:
    """Test scores as stages/evaluate.py writes them: per seed, and their mean."""
    seeds = {}
    for r in records:
        accuracy = r["history"][-1]["val_accuracy"]
        per_class = {str(d): min(1.0, accuracy + (d - 5) / 200) for d in range(10)}
        loss = None if r["diverged"] else 1.0 - accuracy
        seeds[str(r["seed"])] = {
            "test_accuracy": accuracy,
            "test_loss": loss,
            "per_class_accuracy": per_class,
        }
    runs = list(seeds.values())
    return {
        "test_accuracy": sum(r["test_accuracy"] for r in runs) / len(runs),
        "test_loss": None
        if any(r["test_loss"] is None for r in runs)
        else sum(r["test_loss"] for r in runs) / len(runs),
        "per_class_accuracy": {
            d: sum(r["per_class_accuracy"][d] for r in runs) / len(runs)
            for d in runs[0]["per_class_accuracy"]
        },
        "seeds": seeds,
    }


def results_from(folder: Path, records: list[dict], target: float = 0.97) -> figures.Results:
    """Write the tables as compare does (study.analysis's functions), then load them as the report does."""
    evaluations = {
        v: evaluation([r for r in records if r["variant"] == v]) for v in {r["variant"] for r in records}
    }
    runs = analysis.runs_table(records, evaluations, target)
    runs.to_csv(folder / "runs.csv", index=False)
    write_json(folder / "summary.json", analysis.summary_json(analysis.summary_table(runs)))
    analysis.curves_table(records).to_csv(folder / "curves.csv", index=False)
    for variant, scores in evaluations.items():
        write_json(folder / "eval" / f"{variant}.json", scores)
    return figures.load(
        folder / "summary.json", folder / "runs.csv", folder / "curves.csv", folder / "eval", target
    )


# --- the stage, end to end ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with three variants' results: one never reaches the target, one diverges."""
    raw = study_params(["bgd", "mbgd", "adam"])
    YAML().dump(raw, tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    for name in ("template.ipynb", "standalone.html.j2", "figures.py"):
        shutil.copy(REPO / "reports" / name, tmp_path / "reports" / name)
    study = params.validate(raw)
    records = [
        record(study, "bgd", [0.3, 0.5, 0.6, 0.65, 0.7], 0.5, peak=500 * MIB),
        record(study, "mbgd", [0.9, 0.95, 0.965, 0.972, 0.975], 1.0),
        record(study, "adam", [0.95, 0.098], 1.2, diverged_epoch=2, state=800_000),
    ]
    for r in records:
        write_json(tmp_path / "runs" / r["variant"] / "seed-0" / "record.json", r)
        write_json(tmp_path / "metrics" / "eval" / f"{r['variant']}.json", evaluation([r]))
    monkeypatch.chdir(tmp_path)
    compare.main()
    return tmp_path


def test_report_stage_writes_the_notebook_and_a_self_contained_page(project):
    report.main()

    notebook = json.loads((project / "reports/study.ipynb").read_text())
    outputs = [o for cell in notebook["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] in ("error", "stream")]  # no errors, no warnings
    html = (project / "reports/study.html").read_text()
    assert '<img src="http' not in html
    assert "<script src=" not in html  # opens offline: no require.js or MathJax from a CDN
    assert html.count("data:image/png;base64,") >= 6
    for heading in [
        "Setup",
        "Summary",
        "Gradient-descent variants: batch, stochastic, mini-batch",
        "Momentum and Nesterov",
        "Adaptive learning rates: Adam, RMSProp, Adagrad",
        "Learning-rate schedules",
        "High versus low learning rate",
        "Memory and time cost",
        "Test accuracy and per-class accuracy",
        "Diverged runs",
        "Reproducing this report",
    ]:
        assert heading in html
    assert "adam</code>, seed 0" in html and "in epoch 2" in html
    assert "no momentum variants" in html and "no learning-rate schedules" in html
    assert "figures.show(" not in html  # the code is hidden: the page reads as a document


def test_a_missing_input_is_a_one_line_error(project):
    (project / "plots/curves.csv").unlink()
    with pytest.raises(StudyError, match=r"plots/curves.csv is missing: run `dvc repro`") as error:
        report.main()
    assert "\n" not in str(error.value)
    assert not (project / "reports/study.html").exists()


def test_a_failing_cell_is_a_one_line_error_naming_it(project):
    template = json.loads((project / "reports/template.ipynb").read_text())
    template["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {}, "outputs": [],
         "source": "raise ValueError('no such variant: sgd\\nsecond line')"}
    )  # fmt: skip
    (project / "reports/template.ipynb").write_text(json.dumps(template))
    with pytest.raises(StudyError, match=r"failed in cell \d+: ValueError: no such variant: sgd$") as error:
        report.main()
    assert "\n" not in str(error.value)


# --- findings on made-up tables -------------------------------------------------------------------

PRIMER_LIKE = {  # (accuracies per epoch, seconds per epoch, peak memory) that agree with the primer
    "bgd": ([0.5, 0.6, 0.7, 0.75, 0.8], 0.5, 600 * MIB),
    "sgd": ([0.975, 0.98, 0.98, 0.981, 0.982], 3.5, 200 * MIB),
    "mbgd": ([0.9, 0.95, 0.972, 0.975, 0.976], 1.0, 300 * MIB),
}


def gd_results(folder, curves) -> figures.Results:
    study = params.validate(study_params(["bgd", "sgd", "mbgd"]))
    return results_from(folder, [record(study, v, a, s, peak=p) for v, (a, s, p) in curves.items()])


def test_tradeoffs_agree_with_the_primer_when_the_numbers_do(tmp_path):
    table = figures.tradeoffs_table(gd_results(tmp_path, PRIMER_LIKE))
    speed = table[("Convergence speed", "agrees")]
    memory = table[("Memory", "agrees")]
    # bgd never gets there: slowest in all four. sgd is first in epochs, not in steps or seconds.
    assert speed["BGD (bgd)"] == "yes"
    assert speed["MBGD (mbgd)"] == "partly: epochs, final accuracy"
    assert speed["SGD (sgd)"] == "partly: epochs, final accuracy"
    assert table.loc["SGD (sgd)", ("Convergence speed", "steps to 97%")] == "50,000"
    assert list(memory) == ["partly: peak"] * 3  # plain SGD keeps no state: all tie there


def test_tradeoffs_verdicts_flip_when_the_numbers_flip(tmp_path):
    flipped = {"bgd": PRIMER_LIKE["sgd"], "sgd": PRIMER_LIKE["bgd"], "mbgd": PRIMER_LIKE["mbgd"]}
    table = figures.tradeoffs_table(gd_results(tmp_path, flipped))
    for row in ("BGD (bgd)", "SGD (sgd)"):
        assert table.loc[row, ("Memory", "agrees")] == "no"
        assert table.loc[row, ("Convergence speed", "agrees")] == "no"


def test_gd_text_names_who_got_there_first(tmp_path):
    text = figures.gd_text(gd_results(tmp_path, PRIMER_LIKE))
    assert "in epochs `sgd` (1)" in text
    assert "in training seconds `mbgd` (3.0 s)" in text
    assert "Never reached 97% in 5 epochs:** `bgd`" in text
    assert "most for `bgd` (600.0 MiB" in text


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
    assert figures.agrees(claim, value, others, figures.SAME, relative=True) is expected


def test_momentum_verdict_follows_the_accuracies(tmp_path):
    study = params.validate(study_params(["mbgd", "momentum", "nesterov"]))

    def text(momentum_accuracy):
        records = [
            record(study, "mbgd", [0.9, 0.93, 0.95]),
            record(study, "momentum", [0.93, 0.96, momentum_accuracy]),
            record(study, "nesterov", [0.93, 0.96, 0.952]),
        ]
        return figures.momentum_text(results_from(tmp_path, records))

    better, worse = text(0.98), text(0.90)
    assert (
        "`momentum` (momentum 0.9): test accuracy 98.00% against 95.00% for `mbgd` (+3.00 points: better)"
        in better
    )
    assert "of 2 momentum variants against `mbgd`: 1 better by more than half a point" in better
    assert "0 worse by more than that, 1 within seed noise" in better
    assert "(-5.00 points: worse)" in worse
    assert "Nesterov against classical momentum:** `nesterov`: test accuracy 95.20% against 90.00%" in worse


def test_sections_whose_variants_are_absent_say_so_in_one_line(tmp_path):
    study = params.validate(study_params(["adam", "rmsprop"]))
    results = results_from(tmp_path, [record(study, v, [0.96, 0.97]) for v in ("adam", "rmsprop")])
    for text in (
        figures.gd_text(results),
        figures.momentum_text(results),
        figures.schedule_text(results),
        figures.learning_rate_text(results),
        figures.adaptive_text(results),
    ):
        assert "\n" not in text
    assert figures.learning_curves(results, results.section("momentum")) is None
    assert figures.tradeoffs_table(results)[("Convergence speed", "agrees")].eq("—").all()
    assert figures.diverged_text(results).startswith("No run diverged")


def test_the_learning_rate_answer_says_how_far_it_goes(tmp_path):
    raw = study_params(["mbgd", "mbgd_exponential"])
    study = params.validate(raw)
    records = [
        record(study, "mbgd", [0.9, 0.93, 0.95]),
        record(study, "mbgd_exponential", [0.94, 0.96, 0.97]),
    ]
    text = figures.learning_rate_text(results_from(tmp_path, records))
    assert text.startswith("**Only a partial answer.**")
    assert (
        "`mbgd_exponential` starts 5× higher (0.05): after the first epoch its validation accuracy was 94.00%"
        in text
    )

    raw["variants"]["mbgd_high"] = raw["variants"]["mbgd"] | {"learning_rate": 0.1}
    study = params.validate(raw)
    records.append(record(study, "mbgd_high", [0.8, 0.85, 0.9]))
    text = figures.learning_rate_text(results_from(tmp_path, records))
    assert "`mbgd_high` (0.1) and `mbgd` (0.01). These answer the question directly." in text


def test_every_figure_draws_with_all_variants_and_missing_values(tmp_path):
    study = params.validate(study_params(_all_variants()))
    records = [
        record(study, v, [0.9 + i / 200, 0.95, 0.96 + i / 400], 1 + i, state=i * 1000)
        for i, v in enumerate(study.variants)
    ]
    records[1] = record(study, "sgd", [0.9, 0.2], 5.0, diverged_epoch=2)
    results = results_from(tmp_path, records)
    drawn = [
        figures.learning_curves(results, results.variants),
        figures.learning_rate_figure(results, results.section("learning_rate")),
        figures.time_to_target_figure(results),
        figures.memory_figure(results),
        figures.test_accuracy_figure(results),
        figures.per_class_figure(results),
    ]
    for figure in drawn:
        figure.savefig(BytesIO(), format="png")
    assert (
        "`sgd`, seed 0: the training loss stopped being a finite number in epoch 2"
        in figures.diverged_text(results)
    )
    assert "sgd (diverged, epoch 2)" in [t.get_text() for t in drawn[0].legends[0].get_texts()]
    summary = figures.summary_table(results)
    assert (
        summary.loc["sgd", "diverged"] == "epoch 2" and summary.loc["sgd", "epochs to 97%"] == "not reached"
    )


def _all_variants() -> list[str]:
    return list(YAML(typ="safe", pure=True).load((REPO / "params.yaml").read_text())["variants"])


def test_several_seeds_are_averaged_and_their_spread_reported(tmp_path):
    raw = study_params(["mbgd", "adam"])
    study = params.validate(raw | {"train": raw["train"] | {"seeds": [0, 1]}})
    records = [
        record(study, "mbgd", [0.9, 0.95, 0.97], seed=0),
        record(study, "mbgd", [0.9, 0.93, 0.95], seed=1),
        record(study, "adam", [0.95, 0.97, 0.98], seed=0),
        record(study, "adam", [0.95, 0.5], diverged_epoch=2, seed=1),
    ]
    results = results_from(tmp_path, records)
    assert "Each variant trained from 2 seeds" in figures.evidence_text(results)
    assert "(`adam`)" in figures.evidence_text(results)  # the widest spread between seeds
    table = figures.summary_table(results)
    assert table.loc["adam", "diverged"] == "1 of 2 seeds (epoch 2)"
    assert table.loc["mbgd", "epochs to 97%"] == "3 (1 of 2 seeds)"
    assert "Diverged: 1 of 2 seeds (epoch 2)." in figures.adaptive_text(results)
