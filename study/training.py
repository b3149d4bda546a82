"""Train one run (a variant and a seed) and write what it did as a self-describing record.

The record (runs/<variant>/seed-<seed>/record.json) holds the variant's settings, the seed, the
per-epoch curves, time, memory, divergence and the environment; compare and the report read only it.
"""

import math
import time
from pathlib import Path

import keras
import numpy as np
from dvclive import Live

from study.model import build_model
from study.params import Study
from study.runtime import PeakMemory
from study.variants import build_optimizer, state_bytes


def train_run(study: Study, variant_name: str, seed: int, train, validation, live_dir: Path, progress=None):
    """Train `variant_name` from `seed` on (x, y) arrays; return the trained model and its record."""
    variant = study.variant(variant_name)
    batch_size = study.batch_size(variant_name)
    steps_per_epoch = study.steps_per_epoch(variant_name)

    keras.utils.set_random_seed(seed)
    model = build_model(study.model)
    optimizer = build_optimizer(variant, steps_per_epoch)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=study.train.jit_compile,
        # Never more steps per call than an epoch has: bgd's single step is then one call per epoch.
        steps_per_execution=min(study.train.steps_per_execution, steps_per_epoch),
    )
    recorder = EpochRecorder(live_dir, progress)
    with PeakMemory() as memory:
        model.fit(
            *train,
            batch_size=batch_size,
            epochs=study.train.epochs,
            validation_data=validation,
            shuffle=True,
            verbose=0,
            callbacks=[recorder],
        )
    recorder.close()

    record = {
        "variant": variant_name,
        "seed": seed,
        "settings": variant.model_dump(),
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "n_train": len(train[1]),
        "epochs_planned": study.train.epochs,
        "epochs_run": len(recorder.history),
        "diverged": recorder.diverged_epoch is not None,
        "diverged_epoch": recorder.diverged_epoch,
        "train_seconds": recorder.history[-1]["seconds"] if recorder.history else 0.0,
        "optimizer_state_bytes": state_bytes(optimizer),
        "peak_memory_bytes": memory.peak_bytes,
        "memory_kind": memory.kind,
        "history": recorder.history,
    }
    return model, record


class EpochRecorder(keras.callbacks.Callback):
    """Per epoch: losses, accuracies, learning rate and cumulative training seconds, to DVCLive too.

    Seconds count the optimizer's steps only: the clock pauses while Keras scores the validation split.
    The first epoch also pays for XLA's compilation (about a second), as any real run does.

    A loss that turns NaN or infinite stops the run at once and marks the epoch it happened in: one
    diverged variant must not crash the study, and the weights after that point mean nothing.
    """

    def __init__(self, live_dir: Path, progress=None):
        super().__init__()
        self.live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        self.progress = progress
        self.history: list[dict] = []
        self.diverged_epoch: int | None = None
        self._seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._paused = False

    def on_train_batch_end(self, batch, logs=None):
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        if not self._paused:  # validation starts: stop the clock for this epoch
            self._seconds += time.perf_counter() - self._epoch_start
            self._paused = True

    def on_epoch_end(self, epoch, logs=None):
        if not self._paused:
            self._seconds += time.perf_counter() - self._epoch_start
        logs = logs or {}
        row = {
            "epoch": epoch + 1,
            "loss": _finite_or_none(logs.get("loss")),
            "accuracy": _finite_or_none(logs.get("accuracy")),
            "val_loss": _finite_or_none(logs.get("val_loss")),
            "val_accuracy": _finite_or_none(logs.get("val_accuracy")),
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "seconds": round(self._seconds, 4),
        }
        if row["loss"] is None and self.diverged_epoch is None:
            self.diverged_epoch = epoch + 1
            self.model.stop_training = True
        self.history.append(row)
        for name, value in row.items():
            if name != "epoch" and value is not None:
                self.live.log_metric(_live_name(name), value, plot=True)
        self.live.next_step()
        if self.progress is not None:
            self.progress.update(1)

    def close(self):
        if self.progress is not None and self.diverged_epoch is not None:
            # A diverged run ends early: count its skipped epochs so the bar's total stays right.
            self.progress.update(self.params["epochs"] - len(self.history))
        self.live.summary["diverged"] = self.diverged_epoch is not None
        self.live.end()


def _live_name(name: str) -> str:
    """DVCLive's layout: train/loss, val/accuracy, ... so DVC's plots group them."""
    if name.startswith("val_"):
        return f"val/{name[4:]}"
    return name if name in ("learning_rate", "seconds") else f"train/{name}"


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(np.asarray(value))
    return value if math.isfinite(value) else None
