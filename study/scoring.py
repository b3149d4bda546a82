"""A trained network read from its `.keras` file and scored in NumPy: no TensorFlow, no Keras.

Why: the evaluate stage only multiplies a few matrices, but importing TensorFlow and rebuilding each
model with `keras.saving.load_model` cost seconds per stage. The network is study/model.py's:
Flatten -> Dense(units, activation) per entry of model.hidden_units -> Dense(10, softmax).

A `.keras` file (Keras 3) is a zip of `config.json` (the layers and their settings) and
`model.weights.h5` (an HDF5 group per layer, named as Keras' saver names it: the class in snake case,
numbered in order, `layers/dense`, `layers/dense_1`, ...; a Dense layer's `vars/0` is its kernel
[inputs, units] and `vars/1` its bias). Anything study/model.py does not build (another layer, a
missing bias, a shape that does not chain from 784 pixels to 10 digits) is refused as foreign.

The arithmetic is Keras' own (its TensorFlow backend), in float32: each activation is the formula
TensorFlow computes, and the loss is Keras' sparse categorical cross-entropy of probabilities, so the
scores match `model.predict` to float32 rounding.
"""

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from study.params import CLASSES, IMAGE_PIXELS

# Keras clips probabilities to [epsilon, 1 - epsilon] before their log (keras.backend.epsilon()).
EPSILON = 1e-7
# Images scored at once: enough that one layer's activations stay under this many bytes.
CHUNK_BYTES = 64 * 2**20
# tf.nn.selu's constants (Klambauer et al., 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class UnreadableModel(Exception):
    """The file is not a network this study trains; the message says why, in a few words."""


@dataclass(frozen=True)
class Dense:
    """One layer: activation(inputs @ kernel + bias)."""

    kernel: np.ndarray  # [inputs, units], float32
    bias: np.ndarray  # [units], float32
    activation: str


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: the sigmoid is then 0
        return 1 / (1 + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, Keras' default (`approximate=False`), as TensorFlow writes it; NaN at +inf, as
    model.predict gives it (its fused CPU kernel), where the formula would give +inf."""
    from scipy.special import erfc  # only a gelu network pays for importing SciPy

    return np.where(x == np.inf, np.nan, 0.5 * x * erfc(-x * np.float32(0.7071067811865476)))


def elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def softmax(x: np.ndarray) -> np.ndarray:
    """TensorFlow's softmax, also where a digit's score is NaN or +inf (a diverged run): that digit's
    probability is NaN and every other digit's 0, so the run predicts that digit, as in Keras. (Where
    NaN and +inf are scattered over a row, TensorFlow's CPU kernel also gives NaN to some neighbours.)"""
    exp = np.exp(x - x.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    overflowed = np.isnan(x) | (x == np.inf)
    rows = overflowed.any(axis=1)
    probabilities[rows] = np.where(overflowed[rows], np.nan, 0)
    return probabilities


# Every hidden activation study/params.py allows (model.activation), then the output's. relu maps NaN
# to 0 (fmax), as model.predict does on the CPU, where TensorFlow fuses the matmul and its relu: a run
# whose weights hold a NaN in one hidden unit scores as Keras scores it.
HIDDEN_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.fmax(x, 0),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "gelu": gelu,
    "elu": elu,
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "swish": lambda x: x * sigmoid(x),
}
ACTIVATIONS = {**HIDDEN_ACTIVATIONS, "softmax": softmax}
# config.json names an activation by Keras' function for it: `swish` is saved as `silu`.
SAVED_NAMES = {"silu": "swish"}


def read_network(path: str | Path) -> list[Dense]:
    """The Dense layers of a `.keras` file that study/model.py's network was saved to, in order.

    Raises UnreadableModel (not a zip, no config or weights, a layer or shape the network has not)
    or OSError (the file cannot be read at all).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError):  # damaged, encrypted, ...
        raise UnreadableModel("not a readable zip archive") from None
    except KeyError as error:  # zipfile: "There is no item named 'config.json' in the archive"
        raise UnreadableModel(str(error).strip("'\"")) from None
    except (ValueError, UnicodeDecodeError):
        raise UnreadableModel("its config.json is not JSON") from None
    layers = _dense_layers(config)
    try:
        with h5py.File(io.BytesIO(weights), "r") as store:
            network = [_read_dense(store, name, units, activation) for name, units, activation in layers]
    except (OSError, KeyError, TypeError, ValueError):  # what h5py raises on a file it cannot parse
        raise UnreadableModel("its model.weights.h5 is not a readable HDF5 file") from None
    _check_shapes(network)
    return network


def _dense_layers(config) -> list[tuple[str, int, str]]:
    """(weights group, units, activation) of each Dense layer in config.json, after one Flatten."""
    try:
        if config["class_name"] != "Sequential":
            raise UnreadableModel(f"a {config['class_name']}, not the study's Sequential network")
        entries = [(entry["class_name"], entry["config"]) for entry in config["config"]["layers"]]
    except (KeyError, TypeError):
        raise UnreadableModel("its config.json does not describe a Keras model") from None
    kinds = [kind for kind, _ in entries if kind != "InputLayer"]  # the saver stores no InputLayer group
    if kinds[:1] != ["Flatten"] or len(kinds) < 3 or set(kinds[1:]) != {"Dense"}:
        found = ", ".join(kinds)
        raise UnreadableModel(
            f"its layers are {found}; expected Flatten, hidden Dense layers, an output Dense"
        )
    layers = []
    for i, (_, settings) in enumerate(entry for entry in entries if entry[0] == "Dense"):
        try:
            units, activation = settings["units"], settings["activation"]
        except (KeyError, TypeError):
            raise UnreadableModel("a Dense layer without units or activation") from None
        activation = SAVED_NAMES.get(activation, activation)
        last = i == len(kinds) - 2
        valid = ("softmax",) if last else tuple(HIDDEN_ACTIVATIONS)
        if activation not in valid:
            expected = ", ".join(valid)
            raise UnreadableModel(f"Dense layer {i + 1} has activation {activation!r}, expected {expected}")
        layers.append((f"layers/dense_{i}" if i else "layers/dense", units, activation))
    return layers


def _read_dense(store: h5py.File, name: str, units, activation: str) -> Dense:
    group = store.get(f"{name}/vars")
    if not isinstance(group, h5py.Group) or sorted(group) != ["0", "1"]:
        raise UnreadableModel(f"its weights have no kernel and bias at {name}")
    kernel, bias = group["0"], group["1"]
    for weights in (kernel, bias):
        if weights.dtype != np.float32:
            raise UnreadableModel(f"{name} holds {weights.dtype} weights, expected float32")
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],) or kernel.shape[1] != units:
        raise UnreadableModel(f"{name} has kernel {kernel.shape} and bias {bias.shape} for {units} units")
    return Dense(kernel[()], bias[()], activation)


def _check_shapes(network: list[Dense]) -> None:
    """The layers chain from the image's pixels to one score per digit."""
    width = IMAGE_PIXELS
    for i, layer in enumerate(network, 1):
        if layer.kernel.shape[0] != width:
            raise UnreadableModel(f"Dense layer {i} takes {layer.kernel.shape[0]} inputs, expected {width}")
        width = layer.kernel.shape[1]
    if width != CLASSES:
        raise UnreadableModel(f"the network gives {width} outputs, expected {CLASSES} digits")


def predict(network: list[Dense], images: np.ndarray) -> np.ndarray:
    """Each image's probability of each digit, [n, 10] float32, as `model.predict` gives them."""
    x = images.reshape(len(images), -1).astype(np.float32, copy=False)
    widest = max(layer.kernel.shape[1] for layer in network)
    rows = max(1, CHUNK_BYTES // (4 * widest))
    return np.concatenate([_forward(network, x[start : start + rows]) for start in range(0, len(x), rows)])


def _forward(network: list[Dense], x: np.ndarray) -> np.ndarray:
    # A diverged run's weights overflow to inf and NaN: its scores are then NaN, as Keras gives them,
    # and the stage reports them as missing, so NumPy's warnings about them would say nothing new.
    with np.errstate(all="ignore"):
        for layer in network:
            x = ACTIVATIONS[layer.activation](x @ layer.kernel + layer.bias)
    return x


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Each image's loss, as keras.losses.sparse_categorical_crossentropy computes it from probabilities.

    Keras clips the probabilities to [EPSILON, 1 - EPSILON], takes their log, and hands those to a
    softmax cross-entropy: -log p[label] + log(sum of the clipped p), the latter 0 to rounding.
    """
    with np.errstate(invalid="ignore"):  # NaN probabilities (a diverged run) give a NaN loss
        logits = np.log(np.clip(probabilities, EPSILON, 1 - EPSILON))
        shifted = logits - logits.max(axis=1, keepdims=True)
        return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]
