"""Time plain `model.fit`, compiled `model.fit` and the stacked trainer side by side, in one run.

    .venv/bin/python benchmarks/bench_training.py --quick    # 5,000 images, 2 epochs: about 3 minutes
    .venv/bin/python benchmarks/bench_training.py            # 50,000 images, 5 epochs (batch 1: 2): ~16 min

Three comparisons, each on the same data (the prepared training split, or its first images) and epochs:
- batch 1 (variant `sgd`): one run by plain fit, one by compiled fit, a group of 15 by the stacked
  trainer, whose cost per run is the group's time / 15;
- batch 32 (variant `mbgd`): the same, with a group of 10 (as the tuned protocol's 10 evaluation seeds);
- the tuning grid of one variant (`mbgd`): every rate of its coarse and fine grids on every tuning seed,
  as the variant stage's tuning trains them (each grid one stacked group: `study.tuning.score_rates`),
  against the same (rate, seed) runs one by one with compiled fit;
- the five-seed study: every variant in params.yaml x 5 seeds, one by one with compiled fit (compiled
  as study/training.py compiles it), against one stacked group per variant plus the short solo timing
  run (`measure_solo`) the variant stage makes for each variant's honest seconds. Plain fit is left out
  here: its batch-1 runs alone would take about half an hour on the full data.

A time is the wall-clock seconds of the whole training call: model set-up, XLA compilation, every step,
and every epoch's validation. Fit validates with batches of 1,000 images whatever its training batch
(faster than fit's default, which validates in training-sized batches); the stacked trainer scores
the validation split for all members at once. "Steady" is the last epoch's training time alone (no
compilation, no validation). Writes benchmarks/results.json and benchmarks/results.md.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
import psutil
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study import data, params  # noqa: E402
from study.model import build_model  # noqa: E402
from study.runtime import PeakMemory  # noqa: E402
from study.stacked import measure_solo, train_group  # noqa: E402
from study.tuning import coarse_then_fine, score_rates  # noqa: E402
from study.variants import build_optimizer  # noqa: E402

TARGETS = {"batch_1": 16.0, "batch_32": 4.0, "tuning_grid": 4.0, "study": 5.0}  # x compiled fit
VALIDATION_BATCH = 1000
STEPS_PER_EXECUTION = 256  # compiled fit: optimizer steps per call into the compiled program
SEEDS = [0, 1, 2, 3, 4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 training images, 2 epochs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="where results.* go")
    args = parser.parse_args()

    n_train, n_validation, epochs = (5_000, 2_000, 2) if args.quick else (None, None, 5)
    base = params.load(ROOT / "params.yaml")
    train = data.load_split(ROOT / "data/prepared", "train")
    validation = data.load_split(ROOT / "data/prepared", "validation")
    train = (train[0][:n_train], train[1][:n_train])
    validation = (validation[0][:n_validation], validation[1][:n_validation])
    study = base.model_copy(
        update={
            "prepare": base.prepare.model_copy(update={"train_size": len(train[1])}),
            "train": base.train.model_copy(update={"epochs": epochs}),
        }
    )
    batch_1_epochs = 2  # plain fit at batch 1 takes a minute or more per epoch of 50,000 steps

    results = {
        "command": " ".join(["python", "benchmarks/bench_training.py", *sys.argv[1:]]),
        "machine": machine(),
        "n_train": len(train[1]),
        "n_validation": len(validation[1]),
        "batch_1": compare_single(study, "sgd", 15, batch_1_epochs, train, validation),
        "batch_32": compare_single(study, "mbgd", 10, epochs, train, validation),
        "tuning_grid": compare_tuning_grid(study, "mbgd", train, validation),
        "study": compare_study(study, train, validation),
    }
    results["speedups"] = {
        "batch_1": results["batch_1"]["speedup_vs_compiled_fit"],
        "batch_32": results["batch_32"]["speedup_vs_compiled_fit"],
        "tuning_grid": results["tuning_grid"]["speedup_vs_compiled_fit"],
        "study": results["study"]["speedup_vs_compiled_fit"],
    }
    results["targets"] = TARGETS
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


def with_epochs(study: params.Study, epochs: int) -> params.Study:
    return study.model_copy(update={"train": study.train.model_copy(update={"epochs": epochs})})


def compare_single(study, variant: str, members: int, epochs: int, train, validation) -> dict:
    """One run by plain fit and by compiled fit; a group of `members` runs by the stacked trainer."""
    study = with_epochs(study, epochs)
    plain = fit_run(study, variant, 0, train, validation, compiled=False)
    compiled = fit_run(study, variant, 0, train, validation, compiled=True)
    stacked = stacked_group(study, variant, list(range(members)), train, validation)
    per_run = stacked["seconds"] / members
    return {
        "variant": variant,
        "batch_size": study.batch_size(variant),
        "epochs": epochs,
        "steps_per_run": epochs * study.steps_per_epoch(variant),
        "members": members,
        "plain_fit": plain,
        "compiled_fit": compiled,
        "stacked": stacked
        | {"seconds_per_run": per_run, "steady_epoch_seconds_per_run": stacked["steady"] / members},
        "speedup_vs_plain_fit": plain["seconds"] / per_run,
        "speedup_vs_compiled_fit": compiled["seconds"] / per_run,
        "steady_speedup_vs_compiled_fit": compiled["steady"] / (stacked["steady"] / members),
    }


def compare_tuning_grid(study, variant: str, train, validation) -> dict:
    """The variant stage's search for `variant` (coarse grid, then fine grid around its best; every rate on
    every tuning seed, at the tuning horizon), stacked as the stage trains it, then the same runs one by
    one with compiled fit."""
    budget = with_epochs(study, study.tune_epochs)
    low, high = study.variant(variant).search
    start = time.perf_counter()
    rows = coarse_then_fine(
        study.tune, low, high, lambda rates, _: score_rates(study, variant, rates, train, validation)
    )
    stacked_seconds = time.perf_counter() - start
    fits = [
        fit_run(
            budget, variant, row["seed"], train, validation, compiled=True, learning_rate=row["learning_rate"]
        )
        for row in rows
    ]
    fit_seconds = sum(fit["seconds"] for fit in fits)
    print(
        f"tuning grid {variant}: {fit_seconds:.1f} s by compiled fit, {stacked_seconds:.1f} s stacked",
        flush=True,
    )
    return {
        "variant": variant,
        "epochs": study.tune_epochs,
        "rates": sorted({row["learning_rate"] for row in rows}),
        "seeds": study.tune.seeds,
        "runs": len(rows),
        "compiled_fit_seconds": fit_seconds,
        "stacked_seconds": stacked_seconds,
        "speedup_vs_compiled_fit": fit_seconds / stacked_seconds,
        "val_accuracy_compiled_fit": [fit["val_accuracy"] for fit in fits],
        "val_accuracy_stacked": [row["val_accuracy"] for row in rows],
    }


def compare_study(study, train, validation) -> dict:
    """Every variant x 5 seeds: one by one with compiled fit, and as one stacked group per variant."""
    rows = {}
    for variant in study.variants:
        fits = [fit_run(study, variant, seed, train, validation, compiled=True) for seed in SEEDS]
        start = time.perf_counter()
        solo = measure_solo(study, variant, train)
        solo_seconds = time.perf_counter() - start
        stacked = stacked_group(study, variant, SEEDS, train, validation, solo["seconds_per_step"])
        rows[variant] = {
            "batch_size": study.batch_size(variant),
            "compiled_fit_seconds": sum(fit["seconds"] for fit in fits),
            "stacked_seconds": stacked["seconds"] + solo_seconds,
            "measure_solo_seconds": solo_seconds,
            "solo_seconds_per_step": solo["seconds_per_step"],
            "solo_peak_memory_bytes": solo["peak_memory_bytes"],
            "compiled_fit_peak_memory_bytes": max(fit["peak_memory_bytes"] for fit in fits),
            "stacked_group_peak_memory_bytes": stacked["peak_memory_bytes"],
            "val_accuracy_compiled_fit": [fit["val_accuracy"] for fit in fits],
            "val_accuracy_stacked": stacked["val_accuracy"],
        }
        print(
            f"study {variant}: {rows[variant]['compiled_fit_seconds']:.1f} s by compiled fit, "
            f"{rows[variant]['stacked_seconds']:.1f} s stacked",
            flush=True,
        )
    fit_total = sum(row["compiled_fit_seconds"] for row in rows.values())
    stacked_total = sum(row["stacked_seconds"] for row in rows.values())
    return {
        "epochs": study.train.epochs,
        "seeds": SEEDS,
        "variants": rows,
        "compiled_fit_seconds": fit_total,
        "stacked_seconds": stacked_total,
        "speedup_vs_compiled_fit": fit_total / stacked_total,
    }


class EpochClock(keras.callbacks.Callback):
    """Each epoch's training seconds, the clock paused while fit scores the validation split."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._paused = time.perf_counter(), False

    def on_test_begin(self, logs=None):
        if not self._paused:
            self.seconds.append(time.perf_counter() - self._start)
            self._paused = True

    def on_epoch_end(self, epoch, logs=None):
        if not self._paused:
            self.seconds.append(time.perf_counter() - self._start)


def fit_run(
    study, variant_name: str, seed: int, train, validation, compiled: bool, learning_rate=None
) -> dict:
    """One run with model.fit: plain (the primer's), or compiled as study/training.py compiles it; at
    the variant's own learning rate, or `learning_rate`."""
    steps_per_epoch = study.steps_per_epoch(variant_name)
    variant = study.variant(variant_name)
    if learning_rate is not None:
        variant = variant.model_copy(update={"learning_rate": learning_rate})
    clock = EpochClock()
    with PeakMemory() as memory:
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = build_model(study.model)
        model.compile(
            optimizer=build_optimizer(variant, steps_per_epoch),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=compiled,
            steps_per_execution=min(STEPS_PER_EXECUTION, steps_per_epoch) if compiled else 1,
        )
        history = model.fit(
            *train,
            batch_size=study.batch_size(variant_name),
            epochs=study.train.epochs,
            validation_data=validation,
            validation_batch_size=VALIDATION_BATCH,
            shuffle=True,
            verbose=0,
            callbacks=[clock],
        )
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "steady": clock.seconds[-1],
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "peak_memory_bytes": memory.peak_bytes,
    }


def stacked_group(study, variant_name: str, seeds, train, validation, seconds_per_step=None) -> dict:
    with PeakMemory() as memory:
        start = time.perf_counter()
        members = train_group(
            study, variant_name, seeds, train, validation, seconds_per_step=seconds_per_step
        )
        seconds = time.perf_counter() - start
    wall = members[0].record["group_epoch_seconds"]  # the group's own clock, whatever history says
    return {
        "seconds": seconds,
        "steady": wall[-1] - (wall[-2] if len(wall) > 1 else 0.0),
        "val_accuracy": [m.record["history"][-1]["val_accuracy"] for m in members],
        "peak_memory_bytes": memory.peak_bytes,
    }


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "gpu": bool(tf.config.list_physical_devices("GPU")),
    }


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [
        "# Training benchmark: plain fit, compiled fit and the stacked trainer",
        "",
        f"Command: `{results['command']}`; {results['n_train']:,} training and "
        f"{results['n_validation']:,} validation images; TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, {machine['cores']} cores (load average at the end: "
        f"{machine['load_average']}).",
        "",
        "Seconds are wall-clock for the whole training: set-up, compilation, every step and every epoch's",
        "validation. Per run, the stacked trainer's time is its group's time divided by the group's size.",
        "Steady: the last epoch's training alone (no compilation, no validation).",
        "",
        "| comparison | epochs | steps per run | plain fit s/run | compiled fit s/run | stacked s/run "
        "| × plain fit | × compiled fit | steady × compiled fit | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in (("batch_1", "batch 1"), ("batch_32", "batch 32")):
        r = results[key]
        lines.append(
            f"| {label} (`{r['variant']}`, group of {r['members']}) | {r['epochs']} | {r['steps_per_run']:,} "
            f"| {r['plain_fit']['seconds']:.2f} | {r['compiled_fit']['seconds']:.2f} "
            f"| {r['stacked']['seconds_per_run']:.2f} | {r['speedup_vs_plain_fit']:.1f}× "
            f"| **{r['speedup_vs_compiled_fit']:.1f}×** | {r['steady_speedup_vs_compiled_fit']:.1f}× "
            f"| ≥{TARGETS[key]:g}× |"
        )
    g = results["tuning_grid"]
    fit_per_run, stacked_per_run = g["compiled_fit_seconds"] / g["runs"], g["stacked_seconds"] / g["runs"]
    lines.append(
        f"| tuning grid (`{g['variant']}`: {len(g['rates'])} rates × {len(g['seeds'])} tuning seeds, "
        f"as its tuning groups them) | {g['epochs']} | {results['batch_32']['steps_per_run']:,} | — "
        f"| {fit_per_run:.2f} | {stacked_per_run:.2f} | — | **{g['speedup_vs_compiled_fit']:.1f}×** | — "
        f"| ≥{TARGETS['tuning_grid']:g}× |"
    )
    s = results["study"]
    lines += [
        "",
        f"## The five-seed study: every variant × {len(s['seeds'])} seeds, {s['epochs']} epochs",
        "",
        f"Compiled fit, one run after another: **{s['compiled_fit_seconds']:.1f} s**; stacked, one group per "
        f"variant plus its solo timing run: **{s['stacked_seconds']:.1f} s**; "
        f"**{s['speedup_vs_compiled_fit']:.1f}×** (target ≥{TARGETS['study']:g}×).",
        "",
        "| variant | batch | compiled fit s | stacked s (solo timing s) | solo µs/step "
        "| val. accuracy, fit | val. accuracy, stacked | peak MiB: fit run / stacked group |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in s["variants"].items():
        fit_acc = np.array(row["val_accuracy_compiled_fit"])
        stacked_acc = np.array([np.nan if a is None else a for a in row["val_accuracy_stacked"]], float)
        fit_mib, stacked_mib = (
            row[f"{k}_peak_memory_bytes"] / 2**20 for k in ("compiled_fit", "stacked_group")
        )
        lines.append(
            f"| `{name}` | {row['batch_size']} | {row['compiled_fit_seconds']:.1f} "
            f"| {row['stacked_seconds']:.1f} ({row['measure_solo_seconds']:.1f}) "
            f"| {row['solo_seconds_per_step'] * 1e6:.0f} "
            f"| {fit_acc.mean():.4f} ± {fit_acc.std():.4f} "
            f"| {np.nanmean(stacked_acc):.4f} ± {np.nanstd(stacked_acc):.4f} "
            f"| {fit_mib:.0f} / {stacked_mib:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
