"""Score one variant's trained models on the test split: `python -m stages.evaluate <variant>`.

Writes metrics/eval/<variant>.json (per protocol: test loss and accuracy, per class, per seed and
their mean) and plots/confusion/<variant>.csv (true and predicted digit of every test image under
the tuned protocol, every seed, for DVC's confusion plot).
"""

import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from study import data, params
from study.atomic import atomic_file, write_json
from study.errors import StudyError, run_stage
from study.model import CLASSES
from study.params import PROTOCOLS


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.evaluate <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    x, y = data.load_split("data/prepared", "test")

    scores, predictions = {}, []
    for protocol in PROTOCOLS:
        seeds = {}
        for seed in study.train.protocol_seeds(protocol):
            model = load_model(Path(f"models/{name}/{protocol}/seed-{seed}.keras"), name)
            probabilities = model.predict(x, batch_size=2048, verbose=0)
            predicted = probabilities.argmax(axis=1)
            seeds[str(seed)] = {
                "test_accuracy": float(np.mean(predicted == y)),
                "test_loss": finite_or_none(keras.losses.sparse_categorical_crossentropy(y, probabilities)),
                "per_class_accuracy": per_class_accuracy(y, predicted),
            }
            if protocol == "tuned":
                predictions.append(pd.DataFrame({"seed": seed, "actual": y, "predicted": predicted}))
        scores[protocol] = {**mean_over_seeds(seeds), "seeds": seeds}

    write_json(f"metrics/eval/{name}.json", scores)
    with atomic_file(f"plots/confusion/{name}.csv") as tmp:
        pd.concat(predictions).to_csv(tmp, index=False)


def load_model(path: Path, variant: str) -> keras.Model:
    if not path.exists():
        raise StudyError(f"{path} is missing: run `dvc repro train@{variant}` first")
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError) as error:
        reason = " ".join(str(error).split())[:200]
        raise StudyError(
            f"{path} is not a readable Keras model ({reason}): run `dvc repro -f train@{variant}`"
        ) from None


def per_class_accuracy(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    return {
        str(digit): float(np.mean(predicted[actual == digit] == digit)) if np.any(actual == digit) else None
        for digit in range(CLASSES)
    }


def mean_over_seeds(seeds: dict) -> dict:
    """The mean of each metric over seeds (None where any seed's value is missing, e.g. a NaN loss)."""

    def mean(values):
        return None if any(v is None for v in values) else float(np.mean(values))

    runs = list(seeds.values())
    return {
        "test_accuracy": mean([r["test_accuracy"] for r in runs]),
        "test_loss": mean([r["test_loss"] for r in runs]),
        "per_class_accuracy": {
            digit: mean([r["per_class_accuracy"][digit] for r in runs])
            for digit in runs[0]["per_class_accuracy"]
        },
    }


def finite_or_none(losses) -> float | None:
    value = float(np.mean(keras.ops.convert_to_numpy(losses)))
    return value if np.isfinite(value) else None


if __name__ == "__main__":
    run_stage(main)
