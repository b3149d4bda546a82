"""A variant's params -> the Keras optimizer, learning-rate schedule and batch size it trains with.

A new optimizer variant is a params entry; a new optimizer family is one class in study/params.py and
one line in OPTIMIZERS below.
"""

import keras

from study.params import CosineSchedule, ExponentialSchedule

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}
NOT_OPTIMIZER_ARGUMENTS = {"optimizer", "batch_size", "learning_rate", "search", "schedule"}


def learning_rate(variant, steps_per_epoch: int):
    """A float, or a Keras schedule whose decay, given in epochs, is converted to optimizer steps."""
    schedule = variant.schedule
    if schedule is None:
        return variant.learning_rate
    decay_steps = max(1, round(schedule.decay_epochs * steps_per_epoch))
    if isinstance(schedule, ExponentialSchedule):
        return keras.optimizers.schedules.ExponentialDecay(
            variant.learning_rate, decay_steps, schedule.decay_rate, staircase=schedule.staircase
        )
    if isinstance(schedule, CosineSchedule):
        return keras.optimizers.schedules.CosineDecay(
            variant.learning_rate, decay_steps, alpha=schedule.alpha
        )
    raise TypeError(f"no Keras schedule for {type(schedule).__name__}")


def build_optimizer(variant, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The variant's Keras optimizer with every setting from params (the rest are Keras' defaults)."""
    settings = variant.model_dump(exclude=NOT_OPTIMIZER_ARGUMENTS)
    return OPTIMIZERS[variant.optimizer](learning_rate=learning_rate(variant, steps_per_epoch), **settings)


def state_bytes(optimizer: keras.optimizers.Optimizer) -> int:
    """Bytes of the optimizer's per-weight state: its slot variables (momentum, Adam's two moments).

    Scalars (the step counter, the learning rate) are left out: they do not grow with the model.
    """
    return sum(v.numpy().nbytes for v in optimizer.variables if len(v.shape) > 0)
