"""A small MNIST stand-in: the exact format of mnist.npz, few images, quick to learn.

Each digit class is a fixed random stroke pattern plus per-image noise, so a small network separates the
classes within an epoch or two: tests exercise the whole pipeline in seconds, without the real file.
"""

import hashlib
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

PARAMS = Path(__file__).parents[1] / "params.yaml"


def make_fake_mnist(path, n_train: int = 3000, n_test: int = 500, seed: int = 0) -> dict:
    """Write a fake mnist.npz at `path`; return the `data.expected` mapping for params.yaml that it meets."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 28, 28)) < 0.25  # ink on about a quarter of the pixels, unlike per class
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        flipped = rng.random((n, 28, 28)) < 0.1  # 10% of the pixels differ from the class's pattern
        ink = prototypes[labels] ^ flipped
        images = np.where(ink, rng.integers(150, 256, (n, 28, 28)), rng.integers(0, 60, (n, 28, 28)))
        arrays[f"x_{part}"] = images.astype(np.uint8)
        arrays[f"y_{part}"] = labels
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return {
        "file_sha256": None,
        "n_train": n_train,
        "n_test": n_test,
        "array_sha256": {key: hashlib.sha256(array.tobytes()).hexdigest() for key, array in arrays.items()},
    }


def write_params(folder, expected: dict, sources: list[str], validation_size: int | None = None) -> Path:
    """Copy the project's params.yaml into `folder`, pointed at fake data, so stages can run there.

    The validation split defaults to a sixth of the training images, as MNIST's 10,000 of 60,000.
    """
    yaml = YAML(typ="safe", pure=True)
    study = yaml.load(PARAMS.read_text())
    study["data"].update(sources=sources, expected=expected)
    study["prepare"].update(validation_size=validation_size or expected["n_train"] // 6)
    study["batch_sweep"]["batch_sizes"] = [1, 32, "full"]
    path = Path(folder) / "params.yaml"
    yaml.dump(study, path)
    return path
