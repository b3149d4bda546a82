"""Tune one variant's learning rate on the validation split: `python -m stages.tune <variant>`.

Every variant gets the same budget (params.yaml's `tune`); only its search range is its own. Writes
tuning/<variant>/trials.csv (every learning rate tried, its validation accuracy, whether it
diverged) and tuning/<variant>/best.json (the rate the `tuned` protocol trains with). The Optuna
study itself persists in tuning/<variant>/optuna.db, so an interrupted search resumes.
This stage never loads the test split.
"""

import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from study import data, params, runtime
from study.atomic import atomic_file, write_json
from study.errors import StudyError, run_stage
from study.tuning import best, search


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.tune <variant>")
    study = params.load()
    name = sys.argv[1]
    variant = study.variant(name)
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)

    folder = Path("tuning") / name
    folder.mkdir(parents=True, exist_ok=True)
    storage = study.tune.storage or f"sqlite:///{folder / 'optuna.db'}"
    total = study.tune.points * study.tune.epochs
    with tqdm(total=total, desc=f"tune {name} ({study.tune.points} rates)", unit="epoch") as progress:
        trials = search(
            study, name, storage, train, validation, on_epoch=lambda _, rows: progress.update(len(rows))
        )
    chosen = best(trials)
    if chosen is None:
        print(f"{name}: every learning rate diverged; the tuned protocol keeps {variant.learning_rate}")
        chosen = {"learning_rate": variant.learning_rate, "val_accuracy": None, "all_diverged": True}
    with atomic_file(folder / "trials.csv") as tmp:
        pd.DataFrame(trials).assign(
            variant=name, chosen=lambda t: t.learning_rate == chosen["learning_rate"]
        ).to_csv(tmp, index=False)
    budget = study.tune.model_dump(exclude={"storage"})  # a database URL may hold a password
    write_json(folder / "best.json", {"variant": name, **chosen, "search": variant.search, **budget})
    print(f"{name}: learning rate {chosen['learning_rate']:g} (validation accuracy {chosen['val_accuracy']})")


if __name__ == "__main__":
    run_stage(main)
