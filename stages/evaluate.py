"""Score one variant's trained models on the test split: `python -m stages.evaluate <variant>`.

Writes metrics/eval/<variant>.json (per protocol: test loss and accuracy, per class, per seed and
their mean). The models are scored in NumPy (study/scoring.py), as Keras scores them, from the saved
files: what is scored is exactly what models/ keeps.
"""

import sys
from pathlib import Path

import numpy as np

from study import data, params, scoring
from study.atomic import write_json
from study.errors import StudyError, run_stage
from study.params import CLASSES, PROTOCOLS, Study


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.evaluate <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    evaluate_variant(study, name)


def evaluate_variant(study: Study, name: str) -> None:
    """Score every saved model of the variant on the test split; write metrics/eval/<variant>.json."""
    x, y = data.load_split("data/prepared", "test")
    scores = {}
    for protocol in PROTOCOLS:
        seeds = {}
        for seed in study.train.protocol_seeds(protocol):
            network = read_network(Path(f"models/{name}/{protocol}/seed-{seed}.keras"), name)
            probabilities = scoring.predict(network, x)
            predicted = probabilities.argmax(axis=1)
            seeds[str(seed)] = {
                "test_accuracy": float(np.mean(predicted == y)),
                "test_loss": finite_or_none(scoring.cross_entropy(y, probabilities)),
                "per_class_accuracy": per_class_accuracy(y, predicted),
            }
        scores[protocol] = {**mean_over_seeds(seeds), "seeds": seeds}

    write_json(f"metrics/eval/{name}.json", scores)
    print(
        f"{name}: test accuracy "
        + ", ".join(f"{protocol} {percent(scores[protocol]['test_accuracy'])}" for protocol in PROTOCOLS)
        + " (mean over seeds)"
    )


def read_network(path: Path, variant: str) -> list[scoring.Dense]:
    if not path.exists():
        raise StudyError(f"{path} is missing: run `dvc repro variant@{variant}` first")
    try:
        return scoring.read_network(path)
    except (scoring.UnreadableModel, OSError) as error:
        reason = " ".join(str(error).split())[:200]
        raise StudyError(
            f"{path} is not a readable Keras model ({reason}): run `dvc repro -f variant@{variant}`"
        ) from None


def per_class_accuracy(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    return {
        str(digit): float(np.mean(predicted[actual == digit] == digit)) if np.any(actual == digit) else None
        for digit in range(CLASSES)
    }


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


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


def finite_or_none(losses: np.ndarray) -> float | None:
    value = float(np.mean(losses))
    return value if np.isfinite(value) else None


if __name__ == "__main__":
    run_stage(main)
