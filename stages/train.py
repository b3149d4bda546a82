"""Train one optimizer variant once per seed: `python -m stages.train <variant>`.

Writes models/<variant>/seed-<s>.keras, runs/<variant>/seed-<s>/ (record.json and DVCLive's logs)
and metrics/train/<variant>.json. Everything is staged under temporary names and renamed at the end,
so an interrupted run leaves no partial output for DVC to cache.
"""

import sys

from tqdm import tqdm

from study import data, params, runtime
from study.atomic import atomic_dir, write_json
from study.errors import StudyError, run_stage
from study.training import train_run


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.train <variant>")
    study = params.load()
    name = sys.argv[1]
    study.variant(name)
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")

    device = runtime.setup_device()
    op_determinism = runtime.configure_determinism(study.train.deterministic, study.train.jit_compile)
    environment = runtime.environment(device, op_determinism, study.train.jit_compile)
    seeds = study.train.seeds

    finals = {}
    with (
        tqdm(total=len(seeds) * study.train.epochs, desc=f"train {name}", unit="epoch") as progress,
        atomic_dir(f"models/{name}") as models,
        atomic_dir(f"runs/{name}") as runs,
    ):
        for seed in seeds:
            model, record = train_run(study, name, seed, train, validation, runs / f"seed-{seed}", progress)
            model.save(models / f"seed-{seed}.keras")
            write_json(runs / f"seed-{seed}" / "record.json", record | {"environment": environment})
            finals[str(seed)] = final_metrics(record)
            if record["diverged"]:
                progress.write(f"{name} seed {seed}: diverged in epoch {record['diverged_epoch']}")
    write_json(f"metrics/train/{name}.json", {"device": device, "seeds": finals})


def final_metrics(record: dict) -> dict:
    last = record["history"][-1]
    return {
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "train_seconds": record["train_seconds"],
        "diverged": record["diverged"],
    }


if __name__ == "__main__":
    run_stage(main)
