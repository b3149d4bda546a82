"""A small study folder for running stages for real: params.yaml on tiny settings and data/prepared."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from study import data
from tests.fake_mnist import make_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
EXPLODING = {
    "optimizer": "sgd",
    "batch_size": 32,
    "learning_rate": 1.0e6,
    "search": [1.0e9, 1.0e10],
    "momentum": 0.0,
}


def make_workspace(folder: Path, seeds=(0,), epochs: int = 2) -> Path:
    """params.yaml (2 variants: adam and one that diverges), data/prepared from fake MNIST."""
    expected = make_fake_mnist(folder / "mnist.npz", n_train=2000, n_test=300, seed=1)
    arrays = np.load(folder / "mnist.npz")
    scale = lambda x: (x / 255).astype(np.float32)  # noqa: E731
    train, validation = data.split_train_validation(scale(arrays["x_train"]), arrays["y_train"], 400, 0)
    data.write_prepared(
        folder / "data" / "prepared",
        {"train": train, "validation": validation, "test": (scale(arrays["x_test"]), arrays["y_test"])},
    )
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())
    raw["data"]["expected"] = expected
    raw["prepare"]["validation_size"] = 400
    raw["train"].update(epochs=epochs, seeds=list(seeds), defaults_seeds=len(seeds))
    raw["tune"].update(points=3, refine=1, epochs=1)
    raw["momentum_sweep"].update(momenta=[0.0, 0.9], effective_steps=[0.1, 0.316], seeds=min(2, len(seeds)))
    raw["batch_sweep"].update(batch_sizes=[1, 32, "full"], train_size=None, seeds=min(2, len(seeds)))
    raw["landscapes"].update(functions=["two_wells", "saddle"], starts=8, steps=100, trajectories=1)
    raw["variants"] = {"adam": raw["variants"]["adam"], "exploding": EXPLODING}
    set_params(folder, raw)
    return folder


def set_params(folder: Path, raw: dict) -> None:
    YAML().dump(raw, folder / "params.yaml")


def get_params(folder: Path) -> dict:
    return YAML(typ="safe", pure=True).load((folder / "params.yaml").read_text())


def fake_tuning(folder: Path, variant: str, learning_rate: float) -> None:
    """What the tune stage leaves for the train stage, without tuning."""
    (folder / "tuning" / variant).mkdir(parents=True, exist_ok=True)
    (folder / "tuning" / variant / "best.json").write_text(json.dumps({"learning_rate": learning_rate}))


def stage(folder: Path, *args: str) -> subprocess.Popen:
    """Start `python -m <args>` in `folder`, as DVC would."""
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return out + err


def record(folder: Path, variant: str, seed: int = 0, protocol: str = "defaults") -> dict:
    return json.loads((folder / "runs" / variant / protocol / f"seed-{seed}" / "record.json").read_text())
