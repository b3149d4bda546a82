"""Each variant's params become the Keras optimizer, schedule and batch size the study says they do."""

from pathlib import Path

import keras
import numpy as np
import pytest

from study import params
from study.model import build_model
from study.variants import build_optimizer, learning_rate, state_bytes

STUDY = params.load(Path(__file__).resolve().parents[1] / "params.yaml")
N_WEIGHTS = 784 * 128 + 128 + 128 * 10 + 10  # the primer's MLP: 101,770 parameters


def optimizer_for(name: str):
    return build_optimizer(STUDY.variant(name), STUDY.steps_per_epoch(name))


@pytest.mark.parametrize(
    ("name", "cls", "config"),
    [
        ("bgd", keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
        ("sgd", keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
        ("mbgd", keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
        ("momentum", keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": False}),
        ("nesterov", keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}),
        ("adam", keras.optimizers.Adam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999}),
        ("rmsprop", keras.optimizers.RMSprop, {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0}),
        ("adagrad", keras.optimizers.Adagrad, {"learning_rate": 0.001, "initial_accumulator_value": 0.1}),
    ],
)
def test_constant_rate_variants_map_to_keras_optimizers(name, cls, config):
    optimizer = optimizer_for(name)
    assert type(optimizer) is cls
    actual = optimizer.get_config()
    for key, value in config.items():
        assert actual[key] == pytest.approx(value), key


@pytest.mark.parametrize(("name", "batch_size"), [("bgd", 50_000), ("sgd", 1), ("mbgd", 32), ("adam", 32)])
def test_batch_sizes(name, batch_size):
    assert STUDY.batch_size(name) == batch_size


def test_every_variant_in_params_builds():
    assert {type(optimizer_for(name)).__name__ for name in STUDY.variants} == {
        "SGD",
        "Adam",
        "RMSprop",
        "Adagrad",
    }


def test_exponential_decay_is_given_in_epochs_and_converted_to_steps():
    schedule = learning_rate(STUDY.variant("mbgd_exponential"), steps_per_epoch=1563)
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    assert schedule.decay_steps == 1563
    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(1563)) == pytest.approx(0.025)  # halved after one epoch
    assert float(schedule(3 * 1563)) == pytest.approx(0.05 / 8)


def test_cosine_decay_reaches_alpha_at_the_end_of_the_run():
    schedule = learning_rate(STUDY.variant("mbgd_cosine"), steps_per_epoch=100)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == 500  # 5 epochs of 100 steps
    assert float(schedule(250)) == pytest.approx(0.025)
    assert float(schedule(500)) == pytest.approx(0.0, abs=1e-9)


def test_decay_follows_the_variants_batch_size():
    variant = STUDY.variant("mbgd_exponential").model_copy(update={"batch_size": 1})
    assert learning_rate(variant, steps_per_epoch=50_000).decay_steps == 50_000


@pytest.mark.parametrize(
    ("name", "slots"),
    [("mbgd", 0), ("bgd", 0), ("momentum", 1), ("nesterov", 1), ("adam", 2), ("rmsprop", 1), ("adagrad", 1)],
)
def test_optimizer_state_counts_its_slots(name, slots):
    model = build_model(STUDY.model)
    optimizer = optimizer_for(name)
    optimizer.build(model.trainable_variables)
    assert state_bytes(optimizer) == slots * N_WEIGHTS * 4


def test_model_is_the_primers_mlp():
    model = build_model(STUDY.model)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense"]
    assert model.count_params() == N_WEIGHTS
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert np.allclose(model(np.zeros((2, 28, 28), np.float32)).numpy().sum(axis=1), 1.0)
