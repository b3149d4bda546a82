"""The evaluate stage scores saved models in NumPy exactly as Keras would, and never imports TensorFlow.

Each network is study/model.py's, saved by Keras as the train stage saves it, with weights large
enough that every activation is used well past its linear part and some digits get probabilities
below Keras' clipping: a wrong formula or a missing clip shows.
"""

import io
import json
import os
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from study import scoring
from study.model import build_model
from study.params import Model
from study.scoring import UnreadableModel
from tests.workspace import ROOT, make_workspace

ACTIVATIONS = typing.get_args(Model.model_fields["activation"].annotation)
PROBABILITIES = 1e-5  # NumPy's float32 matmul vs. TensorFlow's: the same sums in another order


def saved_network(path: Path, activation: str = "relu", hidden_units=(32, 16), seed: int = 0) -> keras.Model:
    """study/model.py's network with random weights (std 0.2), saved to `path` as the train stage saves it."""
    model = build_model(Model(hidden_units=list(hidden_units), activation=activation))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(path)
    return model


def images(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.uint8)


def keras_loss(labels, probabilities) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))


def test_every_activation_the_schema_allows_is_scored():
    assert set(scoring.HIDDEN_ACTIVATIONS) == set(ACTIVATIONS)


def predicted(activation: str, scores: np.ndarray) -> np.ndarray:
    """`activation(scores)` for one image, as model.predict computes it: the scores are a Dense layer's
    bias (its kernel 0). Eager Keras differs at NaN and inf: its relu keeps NaN, its gelu(inf) is inf."""
    layer = keras.layers.Dense(len(scores), activation=activation)
    model = keras.Sequential([keras.Input((1,)), layer])
    layer.set_weights([np.zeros((1, len(scores)), np.float32), scores.astype(np.float32)])
    return model.predict(np.ones((1, 1), np.float32), verbose=0)[0]


SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, 0]  # what a diverged run's scores can be


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_hidden_activation_is_keras_own(activation):
    scores = np.concatenate([np.linspace(-30, 30, 6001), SPECIAL]).astype(np.float32)
    with np.errstate(all="ignore"):
        mine = scoring.ACTIVATIONS[activation](scores[None])[0]
    # NaN where NaN; atol: TensorFlow's fused gelu is off by up to 7e-7 in its tail near -5
    np.testing.assert_allclose(mine, predicted(activation, scores), rtol=1e-6, atol=1e-6)


def test_the_softmax_is_keras_own_even_where_scores_overflowed():
    nan, inf = np.nan, np.inf
    rows = [
        *np.random.default_rng(0).normal(0, 10, (3, 10)),
        [nan, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, nan, 0, 5, 0, 0, 0, 0, 0, 0],
        [inf, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [inf, nan, 0, 0, 0, 0, 0, 0, 0, 0],
        [-inf, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [-inf] * 10,
        [nan] * 10,
        [1e30, -1e30, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    for row in np.array(rows, np.float32):
        with np.errstate(all="ignore"):
            mine = scoring.softmax(row[None])[0]
        np.testing.assert_allclose(mine, predicted("softmax", row), rtol=1e-6, atol=1e-7, err_msg=str(row))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_a_saved_network_predicts_as_keras_predicts_it(tmp_path, activation):
    model = saved_network(tmp_path / "seed-0.keras", activation)
    x, _ = images()
    network = scoring.read_network(tmp_path / "seed-0.keras")
    assert [(layer.kernel.shape, layer.activation) for layer in network] == [
        ((784, 32), activation),
        ((32, 16), activation),
        ((16, 10), "softmax"),
    ]
    probabilities = scoring.predict(network, x)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), rtol=0, atol=PROBABILITIES)


def test_the_loss_is_keras_sparse_cross_entropy_with_its_clipping():
    rng = np.random.default_rng(2)
    probabilities = rng.dirichlet(np.full(10, 0.3), 500).astype(np.float32)
    probabilities[:50] = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 50)]  # exact 0 and 1: clipped
    labels = rng.integers(0, 10, 500)
    losses = scoring.cross_entropy(labels, probabilities)
    assert losses.max() == pytest.approx(-np.log(1e-7), rel=1e-3)  # a certain wrong answer costs ln(1e7)
    np.testing.assert_allclose(losses, keras_loss(labels, probabilities), rtol=1e-5, atol=1e-6)


def test_scoring_in_chunks_gives_the_same_probabilities(tmp_path, monkeypatch):
    saved_network(tmp_path / "seed-0.keras")
    network = scoring.read_network(tmp_path / "seed-0.keras")
    x, _ = images(n=101)
    whole = scoring.predict(network, x)
    monkeypatch.setattr(scoring, "CHUNK_BYTES", 4 * 32 * 7)  # 7 images at a time, the last chunk 3
    np.testing.assert_allclose(scoring.predict(network, x), whole, rtol=0, atol=1e-6)  # BLAS blocks differ


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nan_weights_score_as_keras_scores_them(tmp_path, activation):
    """A NaN in one hidden unit's weights (Keras' relu then gives 0, the others NaN), then in all of them."""
    model = saved_network(tmp_path / "seed-0.keras", activation)
    x, y = images()
    weights = model.get_weights()
    for diverged in ([0], range(len(weights))):
        for i in diverged:
            weights[i].flat[0] = np.nan
        model.set_weights(weights)
        model.save(tmp_path / "seed-0.keras")
        probabilities = scoring.predict(scoring.read_network(tmp_path / "seed-0.keras"), x)
        expected = model.predict(x, verbose=0)
        np.testing.assert_allclose(probabilities, expected, rtol=0, atol=PROBABILITIES)  # NaN where NaN
        losses = scoring.cross_entropy(y, probabilities)
        np.testing.assert_allclose(losses, keras_loss(y, expected), rtol=1e-5, atol=1e-6)
    assert np.isnan(losses).all()


def test_the_stage_writes_what_keras_scores(tmp_path):
    """The evaluate stage, run for real: accuracy, loss and per-class accuracy as Keras gives them."""
    folder = make_workspace(tmp_path, seeds=(0, 1))
    models = {}
    for protocol in ("defaults", "tuned"):
        (folder / "models" / "adam" / protocol).mkdir(parents=True)
        for seed in (0, 1):
            path = folder / "models" / "adam" / protocol / f"seed-{seed}.keras"
            models[protocol, seed] = saved_network(path, seed=len(models))
    result = subprocess.run(
        [sys.executable, "-m", "stages.evaluate", "adam"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((folder / "metrics" / "eval" / "adam.json").read_text())
    test = np.load(folder / "data" / "prepared" / "test.npz")
    x, y = (test["x"] / 255).astype(np.float32), test["y"]
    for (protocol, seed), model in models.items():
        probabilities = model.predict(x, verbose=0)
        predicted = probabilities.argmax(axis=1)
        written = scores[protocol]["seeds"][str(seed)]
        assert written["test_accuracy"] == np.mean(predicted == y)
        assert written["test_loss"] == pytest.approx(np.mean(keras_loss(y, probabilities)), rel=1e-6)
        assert written["per_class_accuracy"] == {
            str(digit): float(np.mean(predicted[y == digit] == digit)) for digit in range(10)
        }


def test_the_stage_imports_neither_tensorflow_nor_keras():
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import stages.evaluate, sys; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'",
        ],
        cwd=ROOT,
        check=True,
        timeout=60,
    )


# Foreign files: refused with the reason, never scored.


def rewritten(good: Path, path: Path, drop: str | None = None, weights: bytes | None = None) -> Path:
    """A copy of the .keras file `good` without the member `drop`, or with other weights."""
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as copy:
        for name in source.namelist():
            if name == "model.weights.h5" and weights is not None:
                copy.writestr(name, weights)
            elif name != drop:
                copy.writestr(name, source.read(name))
    return path


def with_bias(good: Path, group: str, bias: np.ndarray) -> bytes:
    """good's weights, the bias at `group` replaced."""
    with zipfile.ZipFile(good) as archive:
        store = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(store, "r+") as weights:
        del weights[f"{group}/vars/1"]
        weights[f"{group}/vars/1"] = bias
    return store.getvalue()


def test_foreign_files_are_refused_with_their_reason(tmp_path):
    good = tmp_path / "good.keras"
    saved_network(good)
    (tmp_path / "text.keras").write_text("not a model")
    refused = {
        "text.keras": "not a readable zip archive",
        "no-weights.keras": "no item named 'model.weights.h5'",
        "no-config.keras": "no item named 'config.json'",
        "bias.keras": r"layers/dense_1 has kernel \(32, 16\) and bias \(17,\) for 16 units",
        "float64.keras": "layers/dense holds float64 weights, expected float32",
    }
    rewritten(good, tmp_path / "no-weights.keras", drop="model.weights.h5")
    rewritten(good, tmp_path / "no-config.keras", drop="config.json")
    rewritten(
        good, tmp_path / "bias.keras", weights=with_bias(good, "layers/dense_1", np.zeros(17, np.float32))
    )
    rewritten(good, tmp_path / "float64.keras", weights=with_bias(good, "layers/dense", np.zeros(32)))
    for name, reason in refused.items():
        with pytest.raises(UnreadableModel, match=reason):
            scoring.read_network(tmp_path / name)


def test_a_network_the_study_does_not_build_is_refused(tmp_path):
    foreign = {
        "its layers are Flatten, Dense;": [keras.layers.Dense(10, "softmax")],  # no hidden layer
        "Flatten, Dropout, Dense, Dense;": [
            keras.layers.Dropout(0.5),
            keras.layers.Dense(8, "relu"),
            keras.layers.Dense(10, "softmax"),
        ],
        "Dense layer 2 has activation 'linear', expected softmax": [
            keras.layers.Dense(8, "relu"),
            keras.layers.Dense(10),
        ],
        "Dense layer 1 has activation 'softplus', expected relu, tanh": [
            keras.layers.Dense(8, "softplus"),
            keras.layers.Dense(10, "softmax"),
        ],
        "the network gives 5 outputs, expected 10 digits": [
            keras.layers.Dense(8, "relu"),
            keras.layers.Dense(5, "softmax"),
        ],
    }
    for i, (reason, layers) in enumerate(foreign.items()):
        keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), *layers]).save(
            tmp_path / f"{i}.keras"
        )
        with pytest.raises(UnreadableModel, match=reason):
            scoring.read_network(tmp_path / f"{i}.keras")
