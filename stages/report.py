"""Write the study's report: `python -m stages.report`.

Executes reports/template.ipynb with Papermill on what compare, evaluate, the sweeps and the landscapes
wrote (INPUTS), saves the executed notebook as reports/study.ipynb and a self-contained HTML page (code
hidden, figures embedded) as reports/study.html. The report only reads tables: it never trains, and it
decides nothing (every verdict it shows is metrics/claims.json's, every answer metrics/answers.json's).
The page names the commit it was built from and when.
"""

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from study import params
from study.atomic import atomic_file
from study.errors import StudyError, run_stage

TEMPLATE = Path("reports/template.ipynb")
HTML_TEMPLATE = Path("reports/standalone.html.j2")
INPUTS = {  # every file the notebook reads: dvc.yaml's report stage lists each of them
    "claims_path": "metrics/claims.json",
    "answers_path": "metrics/answers.json",
    "summary_path": "metrics/summary.json",
    "runs_path": "metrics/runs.csv",
    "curves_path": "plots/curves.csv",
    "eval_dir": "metrics/eval",
    "tuning_path": "metrics/tuning.csv",
    "tuning_protocol_path": "metrics/tuning.json",
    "momentum_path": "metrics/momentum.csv",
    "batch_summary_path": "metrics/batch_size.json",
    "batch_tuning_path": "metrics/batch_tuning.csv",
    "batch_curves_path": "plots/batch_size_curves.csv",
    "landscapes_path": "metrics/landscapes.csv",
    "landscape_shares_path": "metrics/landscapes.json",
    "trajectories_path": "plots/landscapes/trajectories.csv",
}


def commit() -> str | None:
    """The commit the report's code and tables were built on (None outside a git repository)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return found.stdout.strip() or None


def main() -> None:
    study = params.load()
    for path in [TEMPLATE, HTML_TEMPLATE, *map(Path, INPUTS.values())]:
        if not path.exists():
            raise StudyError(f"{path} is missing: run `dvc repro` to train, evaluate and compare first")

    try:
        notebook = papermill.execute_notebook(
            str(TEMPLATE),
            None,  # returned, not written: saved below under a temporary name
            parameters={
                **INPUTS,
                "compare": study.compare.model_dump(),  # how claims were judged, said beside them
                "batch_target_accuracy": study.batch_sweep.target_accuracy,
                "commit": commit(),
                "built": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            },
            kernel_name="python3",
            cwd=".",
            log_output=False,
            progress_bar=False,
            # The kernel's own log is noise here (a warning about local TCP, the interrupt Jupyter sends
            # it at shutdown): what fails in a cell comes back as PapermillExecutionError below.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except papermill.PapermillExecutionError as error:
        reason = (str(error.evalue).strip().splitlines() or [""])[0]
        raise StudyError(f"{TEMPLATE} failed in cell {error.exec_count}: {error.ename}: {reason}") from None

    with atomic_file("reports/study.ipynb") as tmp:
        nbformat.write(notebook, tmp)
    # Code hidden, so the page reads as a document; figures are base64 data in it, so it is one file.
    exporter = HTMLExporter(
        exclude_input=True,
        exclude_output_prompt=True,
        embed_images=True,
        template_name="lab",
        template_file=str(HTML_TEMPLATE.resolve()),
    )
    html, _ = exporter.from_notebook_node(notebook)
    with atomic_file("reports/study.html") as tmp:
        tmp.write_text(html, encoding="utf-8")
    print("wrote reports/study.ipynb and reports/study.html")


if __name__ == "__main__":
    run_stage(main)
