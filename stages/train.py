"""Train one optimizer variant under both protocols, once per seed: `python -m stages.train <variant>`.

Protocols: `defaults` trains at the variant's own learning rate from params.yaml, once per seed of
the first train.defaults_seeds; `tuned` at the rate the tune stage chose on the validation split with
its own tuning seeds (tuning/<variant>/best.json), once per evaluation seed. All of a variant's
runs (protocols x seeds) train together as one group of compiled programs (study/stacked.py), each
from its own seed. Writes models/<variant>/<protocol>/seed-<s>.keras, runs/<variant>/<protocol>/seed-<s>/
(record.json and DVCLive's logs) and metrics/train/<variant>.json. Everything is staged under
temporary names and renamed at the end, so an interrupted run leaves no partial output.
"""

import json
import sys
from pathlib import Path

from study import data, params, runtime
from study.atomic import atomic_dir, write_json
from study.errors import StudyError, run_stage
from study.params import PROTOCOLS, Study
from study.training import train_variant


def main() -> None:
    if len(sys.argv) != 2:
        raise StudyError("usage: python -m stages.train <variant>")
    study = params.load()
    name = sys.argv[1]
    tuned_rate = tuned_learning_rate(name)
    train = data.load_split("data/prepared", "train")
    validation = data.load_split("data/prepared", "validation")
    device = runtime.setup_device()
    op_determinism = runtime.configure_determinism(study.train.deterministic)
    train_protocols(study, name, tuned_rate, train, validation, device, op_determinism)


def train_protocols(study: Study, name: str, tuned_rate: float, train, validation, device, op_determinism):
    """Train every run of both protocols as one group; write models/<variant>, runs/<variant> and
    metrics/train/<variant>.json."""
    rates = {"defaults": study.variant(name).learning_rate, "tuned": tuned_rate}
    environment = runtime.environment(device, op_determinism, study.train.jit_compile)
    runs_of = [(protocol, seed) for protocol in PROTOCOLS for seed in study.train.protocol_seeds(protocol)]

    finals: dict[str, dict] = {protocol: {} for protocol in PROTOCOLS}
    with atomic_dir(f"models/{name}") as models, atomic_dir(f"runs/{name}") as runs:
        results = train_variant(
            study,
            name,
            [seed for _, seed in runs_of],
            train,
            validation,
            [runs / protocol / f"seed-{seed}" for protocol, seed in runs_of],
            learning_rates=[rates[protocol] for protocol, _ in runs_of],
        )
        for (protocol, seed), result in zip(runs_of, results, strict=True):
            (models / protocol).mkdir(exist_ok=True)
            result.model.save(models / protocol / f"seed-{seed}.keras")
            record = {"protocol": protocol, **result.record, "environment": environment}
            write_json(runs / protocol / f"seed-{seed}" / "record.json", record)
            finals[protocol][str(seed)] = final(record)
            if record["diverged"]:
                print(f"{name} ({protocol}) seed {seed}: diverged in epoch {record['diverged_epoch']}")
    write_json(f"metrics/train/{name}.json", {"device": device, **finals})


def tuned_learning_rate(name: str) -> float:
    path = Path("tuning") / name / "best.json"
    if not path.exists():
        raise StudyError(f"{path} is missing: run `dvc repro variant@{name}` first")
    return float(json.loads(path.read_text())["learning_rate"])


def final(record: dict) -> dict:
    last = record["history"][-1]
    return {
        "learning_rate": record["settings"]["learning_rate"],
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "train_seconds": record["train_seconds"],
        "diverged": record["diverged"],
    }


if __name__ == "__main__":
    run_stage(main)
