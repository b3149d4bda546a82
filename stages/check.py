"""Stage `check`: params.yaml checked whole, before DVC runs or deletes anything else.

Every other stage depends on checked/params.ok, so a bad value, or a variant name that is not a plain
name, stops `dvc repro` here with one line, before any stage's outputs are touched. Writes
checked/params.ok (the same bytes whenever params.yaml is valid: a valid edit re-runs only the stages
that read what changed) and checked/tune/<variant>.json: what the landscapes read of a variant, every
setting as the schema completes it but `learning_rate`, the defaults protocol's rate, which they never
use (they search their own). DVC cannot depend on "a variant but one key" itself (a listed key must
exist, and variants of different optimizers have different keys), so the landscapes depend on these.
"""

import json

from study import params
from study.atomic import atomic_dir
from study.errors import run_stage

CHECKED = "checked"
NOT_TUNED = {"learning_rate"}  # what the landscapes never read of a variant


def main() -> None:
    study = params.load()
    with atomic_dir(CHECKED) as out:
        (out / "params.ok").write_text("params.yaml passed study/params.py's checks\n")
        (out / "tune").mkdir()
        for name, variant in study.variants.items():
            tuned = json.dumps(variant.model_dump(exclude=NOT_TUNED), indent=2, sort_keys=True)
            (out / "tune" / f"{name}.json").write_text(tuned + "\n")
    print(f"params.yaml: valid ({len(study.variants)} variants)")


if __name__ == "__main__":
    run_stage(main)
