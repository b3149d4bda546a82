"""The network every variant trains: the primer's Flatten -> Dense(128, relu) -> Dense(10, softmax)."""

import keras

from study.params import Model

IMAGE_SHAPE = (28, 28)
CLASSES = 10


def build_model(spec: Model) -> keras.Sequential:
    """The MLP from params: one Dense layer per entry of hidden_units, then a softmax over the digits."""
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Flatten(),
            *(keras.layers.Dense(units, activation=spec.activation) for units in spec.hidden_units),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ],
        name="mlp",
    )
