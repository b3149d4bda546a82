"""Everything one optimizer variant needs, in one process: `python -m stages.variant <variant>`.

1. Tune its learning rate on the validation split with the tuning seeds (stages/tune.py):
   tuning/<variant>/trials.csv and best.json.
2. Train both protocols once per evaluation seed, as one stacked group (stages/train.py): `defaults` at
   the variant's own rate, `tuned` at the rate step 1 chose; models/<variant>, runs/<variant> and
   metrics/train/<variant>.json.
3. Score every saved model on the test split (stages/evaluate.py): metrics/eval/<variant>.json.

Why one stage rather than three: TensorFlow's import and the data's loading cost seconds per process,
as much as a tuning grid at small settings; one process per variant pays them once. A change to one
variant still re-runs only this variant's stage and what follows it. A change that leaves the tuning
search as it was (a seed list, a default rate) re-trains nothing for tuning: the search resumes from
its Optuna study, where every trial is already told (study/tuning.py). Each step is also a command of
its own, for working by hand: `python -m stages.tune adam`, `python -m stages.train adam`, ...
"""

import sys
from pathlib import Path

from stages.evaluate import evaluate_variant
from stages.train import train_protocols
from stages.tune import tune_variant
from study import data, params, runtime, storage
from study.errors import StudyError, run_stage


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.variant <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    url = storage.resolve(Path("tuning") / name)  # checked before any data is loaded or anything trained
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    device = runtime.setup_device()
    op_determinism = runtime.configure_determinism(study.train.deterministic)

    tuned_rate = tune_variant(study, name, url, train, validation)
    train_protocols(study, name, tuned_rate, train, validation, device, op_determinism)
    evaluate_variant(study, name)


if __name__ == "__main__":
    run_stage(main)
