"""Tune one variant's learning rate on the validation split: `python -m stages.tune <variant>`.

Every variant gets the same trials (params.yaml's `tune`): a coarse grid over its own search range,
then a fine grid around the coarse best, every rate trained once per tuning seed for the training
horizon, scored by its mean final validation accuracy over those seeds. Writes
tuning/<variant>/trials.csv (one row per rate and tuning seed) and tuning/<variant>/best.json (the rate
the `tuned` protocol trains with, and whether it lies on the edge of the rates tried). The Optuna study
persists in tuning/<variant>/optuna.db, or in the database OPTUNA_STORAGE names (study/storage.py), so
an interrupted search resumes. This stage never loads the test split.
"""

import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from study import data, params, runtime, storage
from study.atomic import write_csv, write_json
from study.errors import StudyError, run_stage
from study.params import Study
from study.tuning import choose, mean_scores, search

COLUMNS = [
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


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.tune <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    url = storage.resolve(Path("tuning") / name)  # checked before any data is loaded or anything trained
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    tune_variant(study, name, url, train, validation)


def tune_variant(study: Study, name: str, url, train, validation) -> float:
    """Search the variant's rates, write tuning/<variant>/trials.csv and best.json, and return the rate
    the tuned protocol trains with."""
    variant = study.variant(name)
    tune = study.tune
    folder = Path("tuning") / name
    folder.mkdir(parents=True, exist_ok=True)
    rates = tune.points + 2 * tune.refine
    total = rates * len(tune.seeds) * study.tune_epochs
    desc = f"tune {name} ({rates} rates x {len(tune.seeds)} seeds)"
    with tqdm(total=total, desc=desc, unit="epoch") as progress:
        rows = search(
            study, name, url, train, validation, on_epoch=lambda _, runs, __: progress.update(len(runs))
        )
        trained = progress.n
        progress.update(progress.total - progress.n)  # rates told by an earlier, interrupted search
    if trained == 0:
        print(f"{name}: every tuning trial was already in the Optuna study: none trained again")
    chosen = choose(rows)
    tried = sorted({row["learning_rate"] for row in rows})
    if chosen is None:
        print(f"{name}: every learning rate diverged; the tuned protocol keeps {variant.learning_rate}")
        chosen = {"learning_rate": variant.learning_rate, "val_accuracy": None, "on_edge": None}
    else:
        print(
            f"{name}: tuned learning rate {chosen['learning_rate']:.3g}, mean validation accuracy "
            f"{chosen['val_accuracy']:.2%} over tuning seeds {tune.seeds} (trials in {storage.shown(url)})"
        )
    if chosen["on_edge"]:
        side = "lowest" if chosen["on_edge"] == "low" else "highest"
        print(
            f"warning: {name}'s best rate {chosen['learning_rate']:g} is the {side} tried "
            f"({tried[0]:g} to {tried[-1]:g}), even after refining; widen variants.{name}.search",
            file=sys.stderr,
        )

    scores = mean_scores(rows)
    table = pd.DataFrame(rows).assign(
        variant=name,
        mean_val_accuracy=lambda t: t.learning_rate.map(scores),
        chosen=lambda t: t.learning_rate.eq(chosen["learning_rate"]) & (chosen["val_accuracy"] is not None),
    )
    write_csv(folder / "trials.csv", table[COLUMNS])
    write_json(
        folder / "best.json",
        {
            "variant": name,
            **chosen,
            "all_diverged": chosen["val_accuracy"] is None,
            "rates_tried": len(tried),
            "searched": [tried[0], tried[-1]],
            "search": variant.search,
            "seeds": tune.seeds,
            "epochs": study.tune_epochs,
            "points": tune.points,
            "refine": tune.refine,
            "refine_step": tune.refine_step,
        },
    )
    return float(chosen["learning_rate"])


if __name__ == "__main__":
    run_stage(main)
