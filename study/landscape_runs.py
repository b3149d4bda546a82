"""Run one optimizer on a landscape from many starts, at many rates, as one compiled program.

All starts live in one `keras.Variable` and one Keras optimizer, built from the variant's params as
for MNIST, updates it. What is differentiated is the sum over starts of the function's value, so start
i's gradient is its own function's gradient at its own point, and every optimizer in the study (SGD
with or without momentum and Nesterov, Adam, RMSprop, Adagrad) updates each element from that
element's gradient, state and learning rate alone: one optimizer over the stacked starts is exactly
one optimizer per start. Each start has its own learning rate, as each member of study/stacked.py's
stacks has (`MemberLearningRates`, times the variant's decay when it has one), so the starts of every
rate of a grid run in one program. A start whose value turns infinite or NaN changes no other start's
path (tests/test_landscapes.py checks both: stacked runs equal separate ones to the bit).
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from study import timing
from study.landscapes import Landscape
from study.stacked import MemberLearningRates
from study.variants import NOT_OPTIMIZER_ARGUMENTS, OPTIMIZERS, learning_rate


@timing.training()
def run_variant(
    landscape: Landscape,
    variant,
    starts: np.ndarray,
    steps: int,
    steps_per_epoch: int,
    jit_compile: bool,
    learning_rates=None,
) -> np.ndarray:
    """Take `steps` optimizer steps from every start [n, 2]; return the path [steps + 1, n, 2].

    `variant`: a params variant. `learning_rates`: one per start (the variant's own for every start
    when None), each times the variant's schedule when it has one. `steps_per_epoch`: what a
    schedule's epoch is in steps. Row 0 of the path is the starts; row k the points after k steps
    (float32).
    """
    starts = np.asarray(starts, dtype=np.float32)
    rates = np.full(len(starts), variant.learning_rate) if learning_rates is None else learning_rates
    # Each start is a member [1, 2] whose rate, [members, 1, 1], broadcasts over its point.
    position = keras.Variable(starts[:, None, :], name="position")
    decay = learning_rate(variant.model_copy(update={"learning_rate": 1.0}), steps_per_epoch)
    schedule = MemberLearningRates(rates, None if isinstance(decay, float) else decay)
    settings = variant.model_dump(exclude=NOT_OPTIMIZER_ARGUMENTS)
    optimizer = OPTIMIZERS[variant.optimizer](learning_rate=schedule, **settings)
    optimizer.build([position])

    def descend():
        def step(i, path):
            with tf.GradientTape() as tape:
                point = tf.convert_to_tensor(position)
                total = tf.reduce_sum(landscape.value(point[..., 0], point[..., 1], tf.math))
            optimizer.apply(tape.gradient(total, [position]), [position])
            return i + 1, path.write(i + 1, tf.convert_to_tensor(position)[:, 0])

        path = tf.TensorArray(tf.float32, size=steps + 1, element_shape=starts.shape)
        path = path.write(0, tf.convert_to_tensor(position)[:, 0])
        _, path = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), path))
        return path.stack()

    # A new program for every run is by design (each has its own variable and optimizer); through a
    # partial, TensorFlow's retracing detector counts this run's traces alone and does not warn.
    return tf.function(functools.partial(descend), jit_compile=jit_compile)().numpy()


def run_at_rates(
    landscape: Landscape, variant, runs: list, steps: int, steps_per_epoch: int, jit_compile: bool
) -> list[np.ndarray]:
    """Several sets of starts, each at its own rate, in one program: `runs` is [(starts [n, 2], rate)];
    returns each set's path [steps + 1, n, 2], in order."""
    points = np.concatenate([np.asarray(starts) for starts, _ in runs])
    rates = np.concatenate([np.full(len(starts), rate) for starts, rate in runs])
    path = run_variant(landscape, variant, points, steps, steps_per_epoch, jit_compile, rates)
    ends = np.cumsum([len(starts) for starts, _ in runs])
    return np.split(path, ends[:-1], axis=1)
