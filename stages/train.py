"""Train one optimizer variant once per seed: `python -m stages.train <variant>`.

The variant's runs train together as one compiled program (study/stacked.py), each from its own seed.
Writes models/<variant>/seed-<s>.keras, runs/<variant>/seed-<s>/ (record.json and DVCLive's logs)
and metrics/train/<variant>.json. Everything is staged under temporary names and renamed at the end,
so an interrupted run leaves no partial output for DVC to cache.
"""

import sys

from study import data, params, runtime
from study.atomic import atomic_dir, write_json
from study.errors import StudyError, run_stage
from study.training import train_variant


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.train <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")

    device = runtime.setup_device()
    op_determinism = runtime.configure_determinism(study.train.deterministic)
    environment = runtime.environment(device, op_determinism, study.train.jit_compile)
    seeds = study.train.seeds

    with atomic_dir(f"models/{name}") as models, atomic_dir(f"runs/{name}") as runs:
        results = train_variant(study, name, seeds, train, validation, [runs / f"seed-{s}" for s in seeds])
        for result in results:
            result.model.save(models / f"seed-{result.seed}.keras")
            write_json(
                runs / f"seed-{result.seed}" / "record.json", result.record | {"environment": environment}
            )
            if result.record["diverged"]:
                print(f"{name} seed {result.seed}: diverged in epoch {result.record['diverged_epoch']}")
    write_json(
        f"metrics/train/{name}.json",
        {"device": device, "seeds": {str(r.seed): final(r.record) for r in results}},
    )


def final(record: dict) -> dict:
    last = record["history"][-1]
    return {
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "train_seconds": record["train_seconds"],
        "diverged": record["diverged"],
    }


if __name__ == "__main__":
    run_stage(main)
