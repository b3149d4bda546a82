"""Run one optimizer variant on a landscape from many starts at once, as one compiled program.

All starts live in one `keras.Variable` [starts, 2] and one Keras optimizer, built from the variant's
params exactly as for MNIST (`build_optimizer`), updates it. What is differentiated is the sum over
starts of the function's value, so start i's gradient is its own function's gradient at its own point,
and every optimizer in the study (SGD with or without momentum and Nesterov, Adam, RMSprop, Adagrad)
updates each element from that element's gradient and state alone: one optimizer over the stacked
starts is exactly one optimizer per start. A start whose value turns infinite or NaN therefore
changes no other start's path (tests/test_landscapes.py checks this).
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from study import timing
from study.landscapes import Landscape
from study.variants import build_optimizer


@timing.training()
def run_variant(
    landscape: Landscape, variant, starts: np.ndarray, steps: int, steps_per_epoch: int, jit_compile: bool
) -> np.ndarray:
    """Take `steps` optimizer steps from every start [n, 2]; return the path [steps + 1, n, 2].

    `variant`: a params variant at the learning rate to use. `steps_per_epoch`: what a schedule's
    epoch is in steps. Row 0 of the path is the starts; row k the points after k steps (float32).
    """
    position = keras.Variable(np.asarray(starts, dtype=np.float32), name="position")
    optimizer = build_optimizer(variant, steps_per_epoch)
    optimizer.build([position])

    def descend():
        def step(i, path):
            with tf.GradientTape() as tape:
                point = tf.convert_to_tensor(position)
                total = tf.reduce_sum(landscape.value(point[:, 0], point[:, 1], tf.math))
            optimizer.apply(tape.gradient(total, [position]), [position])
            return i + 1, path.write(i + 1, tf.convert_to_tensor(position))

        path = tf.TensorArray(tf.float32, size=steps + 1, element_shape=position.shape)
        path = path.write(0, tf.convert_to_tensor(position))
        _, path = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), path))
        return path.stack()

    # A new program for every run is by design (each has its own variable and optimizer); through a
    # partial, TensorFlow's retracing detector counts this run's traces alone and does not warn.
    return tf.function(functools.partial(descend), jit_compile=jit_compile)().numpy()
