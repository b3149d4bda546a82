"""What DVC shows of the study fits a screen: the headline is all `dvc metrics show` prints, in at most
70 lines of at most 200 characters, and the plots' ids and templates are ones DVC's page can draw."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from study import headline
from study.claims import CLAIMS
from study.params import PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
LINES, WIDTH = 70, 200
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")


def made_up_summary(variants: list[str]) -> dict:
    """What analysis.summary gives, for the fields the headline reads."""

    def stats(mean, half):
        return {"mean": mean, "std": 0.01, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": 10}

    return {
        variant: {
            protocol: {
                "test_accuracy": stats(0.9 + i / 1000 + (protocol == "tuned") / 100, 0.00123456),
                "learning_rate": 0.0017782794 * (i + 1),
            }
            for protocol in PROTOCOLS
        }
        for i, variant in enumerate(variants)
    }


def made_up_verdicts(claims: int) -> dict:
    verdicts = {"tuned": "no detectable effect", "defaults": "not tested"}
    return {f"claim_number_{i}": dict(verdicts) for i in range(claims)}


def metrics_show(repo: Path) -> list[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [DVC, "metrics", "show"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_variant_row_holds_each_protocols_accuracy_its_interval_and_the_tuned_rate():
    row = headline.variant_row(made_up_summary(["adam"])["adam"])
    assert row == {
        "defaults": 0.9,
        "defaults_ci": 0.0012,
        "tuned": 0.91,
        "tuned_ci": 0.0012,
        "tuned_rate": 0.001778,
    }


def test_a_missing_interval_is_left_empty_not_invented():
    summary = made_up_summary(["bgd"])
    summary["bgd"]["defaults"]["test_accuracy"] = {
        "mean": None, "std": None, "ci_low": None, "ci_high": None, "n_seeds": 0
    }
    row = headline.variant_row(summary["bgd"])
    assert row["defaults"] is None and row["defaults_ci"] is None and row["tuned"] == 0.91


def test_the_default_studys_headline_holds_about_60_values():
    variants = list(YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())["variants"])
    rows = headline.rows(made_up_summary(variants), made_up_verdicts(len(CLAIMS)))
    values = sum(len(row) for row in rows.values())
    assert values == 5 * len(variants) + 2 * len(CLAIMS)
    assert values <= 66, f"{values} values: the headline is meant to stay near 60"


def test_writing_again_leaves_no_row_of_a_variant_that_is_gone(tmp_path):
    folder = tmp_path / "metrics" / "headline"
    headline.write(folder, made_up_summary(["adam", "sgd"]), made_up_verdicts(2))
    headline.write(folder, made_up_summary(["adam"]), made_up_verdicts(1))
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json"))
    assert written == ["adam.json", "verdicts/claim_number_0.json"]
    assert json.loads((folder / "adam.json").read_text())["tuned_rate"] == 0.001778


@pytest.mark.skipif(DVC is None, reason="dvc is not installed")
def test_dvc_metrics_show_fits_a_screen_with_a_dozen_variants(tmp_path):
    """More variants than the default study, the claims it tests: still one short row each."""
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  compare:\n    cmd: 'true'\n    metrics:\n      - metrics/headline:\n"
        "          cache: false\n"
    )
    variants = [f"variant_with_a_long_name_{i}" for i in range(12)]
    verdicts = made_up_verdicts(len(CLAIMS))
    headline.write(tmp_path / "metrics" / "headline", made_up_summary(variants), verdicts)
    lines = metrics_show(tmp_path)
    assert len(lines) == 1 + len(variants) + len(CLAIMS)
    assert len(lines) <= LINES and max(map(len, lines)) <= WIDTH, "\n".join(lines)
    assert lines[0].split() == ["Path", "defaults", "defaults_ci", "tuned", "tuned_ci", "tuned_rate"]


def test_the_headline_is_all_that_dvc_yaml_declares_as_metrics():
    pipeline = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())
    declared = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in pipeline["stages"].values()
        for entry in stage.get("do", stage).get("metrics", [])
    ]
    assert declared == ["metrics/headline"]
    assert "metrics" not in pipeline


@pytest.mark.skipif(DVC is None, reason="dvc is not installed")
def test_dvc_metrics_show_on_the_committed_study_fits_a_screen():
    if not (ROOT / "metrics" / "headline").is_dir():
        pytest.skip("metrics/headline/ is not there: run `dvc repro compare` first")
    lines = metrics_show(ROOT)
    assert len(lines) <= LINES and max(map(len, lines)) <= WIDTH, "\n".join(lines)
    variants = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())["variants"]
    shown = {line.split()[0] for line in lines[1:]}
    assert {f"metrics/headline/{variant}.json" for variant in variants} <= shown


def test_plot_ids_are_ones_dvcs_page_can_use():
    """DVC writes a plot's id, spaces and punctuation replaced by `_`, into an HTML id and into a
    script's quoted string: a quote or a backslash there breaks the page's script."""
    pipeline = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())
    ids = [next(iter(plot)) for plot in pipeline["plots"]]
    assert ids and all(not set(plot_id) & set("'\"\\") for plot_id in ids), ids
    assert all(not plot_id[0].isdigit() for plot_id in ids), ids


def test_every_plot_template_is_vega_lite_with_dvcs_data_anchor():
    pipeline = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())
    templates = {next(iter(plot.values()))["template"] for plot in pipeline["plots"]}
    for template in templates:
        spec = json.loads((ROOT / template).read_text())
        assert "vega-lite" in spec["$schema"]
        assert spec["data"] == {"values": "<DVC_METRIC_DATA>"}, template
