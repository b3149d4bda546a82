"""The stacked trainer does each run's own Keras math: a member trains as alone, and as plain Keras would.

Small learnable data (tests/fake_mnist.py's digits), 500 training images: a batch of 32 leaves a last,
smaller batch of 20, as model.fit would.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ruamel.yaml import YAML

from study import params, stacked
from study.errors import StudyError
from study.model import build_model
from study.stacked import epoch_orders, measure_solo, train_group
from study.variants import build_optimizer
from tests.fake_mnist import make_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 500
WEIGHTS = 1e-5  # group vs. one at a time: the same program, only the number of members differs
KERAS = 1e-4  # vs. a plain Keras model: the same math, summed in another order


def splits_of(path):
    arrays = np.load(path)
    scale = lambda x: (x / 255).astype(np.float32)  # noqa: E731
    return (scale(arrays["x_train"]), arrays["y_train"]), (scale(arrays["x_test"]), arrays["y_test"])


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    make_fake_mnist(path, n_train=N_TRAIN, n_test=100, seed=3)
    return splits_of(path)


def make_study(epochs: int, **variants) -> params.Study:
    """params.yaml on 500 images for `epochs` epochs; keyword arguments add or replace variants."""
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())
    raw["prepare"]["train_size"] = N_TRAIN
    raw["train"]["epochs"] = epochs
    raw["batch_sweep"]["batch_sizes"] = [1, 32, "full"]
    raw["variants"].update(variants)
    return params.validate(raw)


EPOCHS = 16
STUDY = make_study(EPOCHS)  # 256 steps at batch 32 (each epoch's last on 20 images), 8,000 at batch 1


@pytest.fixture(scope="module")
def run(splits):
    """train_group on the test data, each distinct group trained once per module: tests share results."""
    cache = {}

    def run(variant: str, seeds: tuple[int, ...], learning_rates: tuple[float, ...] | None = None):
        key = (variant, seeds, learning_rates)
        if key not in cache:
            rates = list(learning_rates) if learning_rates else None
            cache[key] = train_group(STUDY, variant, list(seeds), *splits, learning_rates=rates)
        return cache[key]

    return run


def weights(result) -> list[np.ndarray]:
    return result.model.get_weights()


def assert_same_run(actual, expected, tolerance=WEIGHTS):
    for a, e in zip(weights(actual), weights(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        got = [row[key] for row in actual.record["history"]]
        want = [row[key] for row in expected.record["history"]]
        np.testing.assert_allclose(
            np.array(got, float), np.array(want, float), rtol=tolerance, atol=tolerance
        )
    assert actual.record["diverged"] == expected.record["diverged"]


# Every optimizer family (sgd at batch 1, with momentum, with Nesterov's, adam, rmsprop, adagrad), a
# schedule, and the full batch.
@pytest.mark.parametrize(
    "variant", ["sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad", "mbgd_exponential", "bgd"]
)
def test_a_member_of_a_group_trains_as_it_would_alone(run, variant):
    group, alone = run(variant, (7, 1, 2)), run(variant, (1,))[0]
    assert_same_run(group[1], alone)
    history = group[1].record["history"]
    steps_per_epoch = STUDY.steps_per_epoch(variant)
    assert [row["steps"] for row in history] == [epoch * steps_per_epoch for epoch in range(1, EPOCHS + 1)]
    # Members differ: each has its own initial weights and data order.
    assert not np.allclose(weights(group[0])[0], weights(group[1])[0])
    assert group[0].record["history"][0]["loss"] != history[0]["loss"]


def test_a_members_result_does_not_depend_on_its_group_or_position(run):
    first_of_two = run("adam", (1, 5))[0]
    second_of_three = run("adam", (7, 1, 2))[1]
    assert_same_run(first_of_two, second_of_three)
    assert_same_run(first_of_two, run("adam", (1,))[0])


def keras_reference(study, name, seed, train, epochs, learning_rate=None):
    """The same run in plain Keras: build_model, build_optimizer, a GradientTape loop over the same batches.

    Returns the model and each epoch's mean training loss (per image, as fit's metric averages it).
    """
    variant = study.variant(name)
    if learning_rate is not None:
        variant = variant.model_copy(update={"learning_rate": learning_rate})
    keras.utils.set_random_seed(seed)
    model = build_model(study.model)
    optimizer = build_optimizer(variant, study.steps_per_epoch(name))
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x, y = train
    batch, orders = study.batch_size(name), epoch_orders(seed, len(y))
    epoch_losses = []
    for _ in range(epochs):
        order, total = next(orders), 0.0
        for start in range(0, len(y), batch):
            images, labels = x[order[start : start + batch]], y[order[start : start + batch]]
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            total += float(loss) * len(labels)
        epoch_losses.append(total / len(y))
    return model, epoch_losses


NESTEROV_COSINE = {  # SGD with Nesterov momentum and a cosine schedule: two features in one run
    "optimizer": "sgd",
    "batch_size": 32,
    "learning_rate": 0.05,
    "search": [1.0e-4, 1.0],
    "momentum": 0.9,
    "nesterov": True,
    "schedule": {"name": "cosine", "decay_epochs": 2},
}


@pytest.mark.parametrize("variant", ["adam", "nesterov_cosine"])
def test_a_member_does_the_math_of_a_plain_keras_model(splits, variant):
    study = make_study(epochs=2, nesterov_cosine=NESTEROV_COSINE)  # 32 steps, 2 of them on 20 images
    member = train_group(study, variant, [3, 9], *splits)[1]
    reference, losses = keras_reference(study, variant, 9, splits[0], epochs=2)
    for got, want in zip(weights(member), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=KERAS, atol=KERAS)
    np.testing.assert_allclose([row["loss"] for row in member.record["history"]], losses, rtol=KERAS)


def test_each_member_trains_with_its_own_learning_rate(run):
    group = run("mbgd_exponential", (1, 1, 2), (0.05, 0.2, 0.1))
    assert_same_run(group[1], run("mbgd_exponential", (1,), (0.2,))[0])
    assert group[1].record["settings"]["learning_rate"] == 0.2
    rates = [row["learning_rate"] for row in group[1].record["history"]]
    np.testing.assert_allclose(
        rates, [0.2 * 0.5**epoch for epoch in range(1, EPOCHS + 1)], rtol=1e-6
    )  # halves per epoch
    # The same seed at another rate is another run.
    assert not np.allclose(weights(group[0])[0], weights(group[1])[0])


@pytest.mark.parametrize("variant", ["mbgd", "adam", "sgd"])
def test_members_of_one_seed_share_their_batches_and_train_as_they_would_alone(run, variant):
    """A tuning grid's rates on one seed read the same batches: their stack gathers each batch once and
    computes every member's layer as one product, the same math summed in another order."""
    rates = (0.003, 0.01, 0.03) if variant == "adam" else (0.03, 0.1, 0.3)
    group = run(variant, (4, 4, 4), rates)
    assert stacked.Stack(STUDY, variant, [4, 4], [0.1, 0.2]).shared_order
    assert not stacked.Stack(STUDY, variant, [4, 5], [0.1, 0.2]).shared_order
    for member, rate in zip(group, rates, strict=True):
        assert_same_run(member, run(variant, (4,), (rate,))[0], tolerance=KERAS)
    assert not np.allclose(weights(group[0])[0], weights(group[1])[0])


EXPLODING = 1e10  # SGD's steps overflow float32 within the first epoch


def test_a_diverging_member_is_marked_and_does_not_change_the_others(splits, run):
    rows_per_epoch = []
    group = train_group(
        STUDY,
        "momentum",
        [1, 2, 3],
        *splits,
        learning_rates=[0.01, EXPLODING, 0.02],
        on_epoch=lambda epoch, rows, _: rows_per_epoch.append((epoch, rows)),
    )
    diverged = group[1].record
    _, keras_losses = keras_reference(STUDY, "momentum", 2, splits[0], epochs=1, learning_rate=EXPLODING)
    assert not np.isfinite(keras_losses[0])  # plain Keras sees the same run's loss blow up in epoch 1
    assert diverged["diverged"] and diverged["diverged_epoch"] == 1 and diverged["epochs_run"] == 1
    assert diverged["history"][0]["loss"] is None  # as the per-run trainer writes NaN
    # The others train to the end, exactly as they do without it.
    without = run("momentum", (1, 3), (0.01, 0.02))
    assert_same_run(group[0], without[0])
    assert_same_run(group[2], without[1])
    assert group[2].record["epochs_run"] == EPOCHS and not group[2].record["diverged"]
    # One hook call per epoch; the diverged member's row is None after its last epoch.
    assert [epoch for epoch, _ in rows_per_epoch] == list(range(1, EPOCHS + 1))
    assert rows_per_epoch[0][1][1] is diverged["history"][0]
    assert all(rows[1] is None and rows[0] is not None for _, rows in rows_per_epoch[1:])


def test_an_exported_member_is_a_keras_model_that_predicts_as_the_member(run, splits, tmp_path):
    member = run("adam", (1, 5))[1]
    member.model.save(tmp_path / "seed-5.keras")  # what the train stage saves, the evaluate stage loads
    loaded = keras.saving.load_model(tmp_path / "seed-5.keras")
    images, labels = splits[1]
    probabilities = loaded.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities, member.model.predict(images, verbose=0))
    # Scored as the evaluate stage scores it, it is the member the trainer validated.
    last = member.record["history"][-1]
    loss = np.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    assert loss == pytest.approx(last["val_loss"], rel=1e-4, abs=1e-6)  # from probabilities, not logits
    assert np.mean(probabilities.argmax(axis=1) == labels) == pytest.approx(last["val_accuracy"], abs=1e-6)


def test_the_record_has_what_the_per_run_trainer_writes(splits):
    solo_seconds = 0.001
    record = train_group(STUDY, "adam", [0], *splits, seconds_per_step=solo_seconds)[0].record
    assert record["variant"] == "adam" and record["seed"] == 0 and record["settings"]["optimizer"] == "adam"
    assert record["batch_size"] == 32 and record["steps_per_epoch"] == 16 == STUDY.steps_per_epoch("adam")
    assert record["n_train"] == N_TRAIN and record["epochs_planned"] == record["epochs_run"] == EPOCHS
    assert record["optimizer_state_bytes"] == 2 * 4 * (784 * 128 + 128 + 128 * 10 + 10)  # Adam's 2 moments
    history = record["history"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert history[-1]["seconds"] == pytest.approx(EPOCHS * 16 * solo_seconds)  # steps x one run's step time
    assert record["train_seconds"] == history[-1]["seconds"]
    assert history[-1]["val_accuracy"] > 0.9  # the fake digits are easy
    assert history[-1]["loss"] < history[0]["loss"]


def test_measure_solo_times_one_run_after_warm_up(splits):
    solo = measure_solo(STUDY, "mbgd", splits[0], steps=20, repeats=3)
    assert 0 < solo["seconds_per_step"] < 0.1
    assert solo["peak_memory_bytes"] >= 0 and solo["steps_timed"] == 60


def test_scoring_inside_an_epoch_changes_nothing_but_adds_the_scores(run, splits):
    """Checkpoints split an epoch's compiled loop into parts; the run itself must not change."""
    plain = run("adam", (1, 5))
    spe = STUDY.steps_per_epoch("adam")
    checkpoints = [1, 2, 5, spe, spe + 3, 3 * spe - 1]
    scored = train_group(STUDY, "adam", [1, 5], *splits, checkpoints=checkpoints)
    for with_scores, without in zip(scored, plain, strict=True):
        assert_same_run(with_scores, without)
        rows = with_scores.record["checkpoints"]
        expected_steps = sorted({*checkpoints, *(e * spe for e in range(1, EPOCHS + 1))})
        assert [row["step"] for row in rows] == expected_steps
        at_epoch_end = {row["step"]: row for row in rows}
        for row in with_scores.record["history"]:  # an epoch's end is scored once, the same both ways
            assert at_epoch_end[row["steps"]]["val_accuracy"] == row["val_accuracy"]
        assert rows[0]["epoch"] == pytest.approx(1 / spe, abs=1e-6)
    assert "checkpoints" not in plain[0].record


@pytest.mark.parametrize("variant", ["momentum", "adam", "mbgd_exponential", "bgd"])
def test_an_xla_compiled_run_trains_as_the_same_run_in_graph_mode(splits, monkeypatch, variant):
    """Runs of at least XLA_MIN_STEPS steps are XLA-compiled, shorter ones not: the same math."""
    results = {}
    for minimum in (0, 10**9):  # every run compiled; none
        monkeypatch.setattr(stacked, "XLA_MIN_STEPS", minimum)
        results[minimum] = train_group(STUDY, variant, [1, 2], *splits)
        assert [r.record["xla"] for r in results[minimum]] == [minimum == 0] * 2
    for compiled, graph in zip(results[0], results[10**9], strict=True):
        assert_same_run(compiled, graph, tolerance=KERAS)


def test_whether_a_run_is_xla_compiled_follows_its_steps(run):
    assert (
        STUDY.steps_per_epoch("sgd") * EPOCHS
        >= stacked.XLA_MIN_STEPS
        > STUDY.steps_per_epoch("adam") * EPOCHS
    )
    assert run("sgd", (1,))[0].record["xla"] and not run("adam", (1,))[0].record["xla"]


def test_more_runs_than_memory_allows_train_as_several_groups_with_the_same_results(run, splits):
    together = run("adam", (7, 1, 2))
    split = train_group(STUDY, "adam", [7, 1, 2], *splits, members_per_group=2)
    for a, b in zip(split, together, strict=True):
        assert_same_run(a, b)
    assert [r.record["group_size"] for r in split] == [2, 2, 1]


def test_the_member_count_follows_the_params_not_the_machine(monkeypatch):
    full, small = stacked.group_members(STUDY, "bgd"), stacked.group_members(STUDY, "sgd")
    assert 1 <= full < small  # the whole split's activations weigh on every member
    monkeypatch.setattr(stacked.runtime, "free_memory_bytes", lambda: 1 << 40)
    assert stacked.group_members(STUDY, "bgd") == full  # a bigger machine groups the same runs the same way


def test_a_group_the_device_cannot_hold_is_refused_before_training(splits, monkeypatch):
    monkeypatch.setattr(stacked.runtime, "free_memory_bytes", lambda: 10 << 20)
    with pytest.raises(StudyError) as error:
        train_group(STUDY, "bgd", [0, 1, 2], *splits)
    needed = 3 * stacked.member_bytes(STUDY, "bgd") / 1e9
    assert str(error.value).startswith(f"bgd: a group of 3 runs needs about {needed:.1f} GB, but 0.0 GB")
    assert "model.hidden_units" in str(error.value) and "\n" not in str(error.value)


def test_a_group_split_into_stacks_side_by_side_trains_as_one_stack(run, splits, monkeypatch):
    seeds = [7, 1, 2, 4, 9]
    results = {}
    for sizes in ([2, 2, 1], [5]):
        monkeypatch.setattr(stacked, "stack_sizes", lambda study, name, members, sizes=sizes: sizes)
        results[len(sizes)] = train_group(STUDY, "momentum", seeds, *splits)
        assert results[len(sizes)][0].record["stack_sizes"] == sizes
    for a, b in zip(results[3], results[1], strict=True):
        assert_same_run(a, b)
    assert_same_run(results[3][1], run("momentum", (1,))[0])


def test_a_cpu_gets_pinned_stacks_and_at_batch_1_stacks_that_fit_a_pinned_cache(monkeypatch):
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: False)
    mib = 1 << 20
    member = stacked.step_bytes(STUDY, "sgd")  # ~0.4 MB: plain SGD keeps no copies of the weights
    assert stacked.step_bytes(STUDY, "momentum") > member and stacked.step_bytes(STUDY, "adam") > 2.9 * member
    assert stacked.stack_sizes(STUDY, "sgd", 15, cores=2, cache=2 * mib) == [4, 4, 4, 3]
    assert stacked.stack_sizes(STUDY, "sgd", 15, cores=2, cache=8 * mib) == [8, 7]  # one per core
    assert stacked.stack_sizes(STUDY, "sgd", 3, cores=4, cache=2 * mib) == [1, 1, 1]  # never empty
    assert stacked.stack_sizes(STUDY, "adam", 15, cores=2, cache=2 * mib) == [8, 7]  # batch 32: no split
    assert stacked.stack_sizes(STUDY, "sgd", 15, cores=2, cache=member // 2) == [15]  # outgrows the cache
    # Pinned: what this machine has does not enter.
    assert stacked.stack_sizes(STUDY, "sgd", 15) == [4, 4, 4, 3]
    monkeypatch.setattr(stacked.runtime, "cpu_cores", lambda: 64)
    assert stacked.stack_sizes(STUDY, "sgd", 15) == [4, 4, 4, 3]
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: True)
    assert stacked.stack_sizes(STUDY, "sgd", 15, cores=2, cache=2 * mib) == [15]


def test_a_grid_given_seed_by_seed_trains_one_stack_per_seed_above_small_batches(monkeypatch):
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: False)
    by_seed = [4, 4, 4, 5, 5, 5, 6, 6, 6]  # three settings on each of three seeds
    assert stacked.seed_stacks(STUDY, "momentum", by_seed) == [3, 3, 3]
    assert stacked.seed_stacks(STUDY, "adam", [1, 1, 2, 2]) == [2, 2]
    assert stacked.seed_stacks(STUDY, "momentum", [4, 5, 6] * 3) is None  # seeds mixed
    assert stacked.seed_stacks(STUDY, "momentum", [4, 4, 5, 5, 4]) is None  # a seed in two places
    assert stacked.seed_stacks(STUDY, "momentum", [4, 4, 4]) is None  # fewer seeds than stacks
    assert stacked.seed_stacks(STUDY, "momentum", [4, 5, 6]) is None  # one member a seed: nothing shared
    assert stacked.seed_stacks(STUDY, "sgd", by_seed) is None  # batch 1: stacks that fit the cache
    assert stacked.seed_stacks(STUDY, "bgd", by_seed) is None  # full batch: one stack already shares
    group = stacked.Group(STUDY, "momentum", by_seed, [0.01, 0.02, 0.03] * 3)
    assert group.stack_sizes == [3, 3, 3] and all(stack.shared_order for stack in group.stacks)
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: True)
    assert stacked.seed_stacks(STUDY, "momentum", by_seed) is None  # a GPU runs one stack


def test_a_group_holds_pinned_bytes_on_a_cpu_and_what_a_gpus_free_memory_holds(monkeypatch):
    member = stacked.member_bytes(STUDY, "bgd")  # full batch: the largest members
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: False)
    monkeypatch.setattr(stacked.runtime, "free_memory_bytes", lambda: 1 << 50)
    assert stacked.group_members(STUDY, "bgd") == stacked.GROUP_BYTES // member  # free memory plays no part
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: True)
    monkeypatch.setattr(
        stacked.runtime, "free_memory_bytes", lambda: int(12.5 * member / stacked.GPU_MEMORY_SHARE)
    )
    assert stacked.group_members(STUDY, "bgd") == 12
    monkeypatch.setattr(stacked.runtime, "free_memory_bytes", lambda: 0)
    assert stacked.group_members(STUDY, "bgd") == 1  # never empty


CLOCKS = ("seconds", "train_seconds", "group_epoch_seconds")  # wall-clock time: the one thing that may differ


def without_clocks(record: dict) -> dict:
    record = {key: value for key, value in record.items() if key not in CLOCKS}
    record["history"] = [{k: v for k, v in row.items() if k not in CLOCKS} for row in record["history"]]
    return record


MACHINES = {  # cores, level-2 cache per core, free memory
    "small": (1, 256 << 10, 3 << 30),
    "large": (16, 32 << 20, 1 << 40),
}


def test_two_machines_give_identical_records(splits, monkeypatch):
    """The same params and seeds on a 1-core machine with a small cache and little memory, and on a
    16-core one with a large cache and plenty: the same groups, the same stacks, the same numbers."""
    study = make_study(epochs=2)
    monkeypatch.setattr(stacked.runtime, "on_gpu", lambda: False)
    records = {}
    for machine, (cores, cache, free) in MACHINES.items():
        monkeypatch.setattr(stacked.runtime, "cpu_cores", lambda cores=cores: cores)
        # The study no longer reads a cache size (it once did, from /sys): were it to, this would be it.
        monkeypatch.setattr(stacked.runtime, "l2_cache_bytes", lambda *_, cache=cache: cache, raising=False)
        monkeypatch.setattr(stacked.runtime, "free_memory_bytes", lambda free=free: free)
        records[machine] = {
            variant: [without_clocks(r.record) for r in train_group(study, variant, [3, 1, 4, 5, 9], *splits)]
            for variant in ("sgd", "adam")  # batch 1: split to fit a cache; batch 32: one stack per core
        }
    assert records["small"] == records["large"]  # every number equal, not merely close
    assert records["small"]["sgd"][0]["stack_sizes"] == stacked.stack_sizes(study, "sgd", 5)


AFFINITY_RUN = """
import hashlib, json, os, sys
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: int(sys.argv[1])]))  # before TensorFlow
sys.path.insert(0, sys.argv[2])
from tests.test_stacked import make_study, splits_of, train_group, without_clocks
study, (train, validation) = make_study(epochs=1), splits_of(sys.argv[3])
records = {v: [without_clocks(r.record) for r in train_group(study, v, [3, 1, 4], train, validation)]
           for v in ("sgd", "adam", "bgd")}
print(hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to compare with one")
def test_one_core_and_two_cores_give_identical_records(tmp_path):
    """Real processes, not stand-ins: TensorFlow sizes its thread pools from the cores it may use, and
    the group's stacks run on as many threads. None of that may change a number."""
    path = tmp_path / "mnist.npz"
    make_fake_mnist(path, n_train=N_TRAIN, n_test=100, seed=3)
    digests = [
        subprocess.run(
            [sys.executable, "-c", AFFINITY_RUN, str(cores), str(ROOT), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout.split()[-1]
        for cores in (1, 2)
    ]
    assert digests[0] == digests[1]


def test_runs_that_train_as_several_groups_report_each_groups_first_member(splits):
    calls = []
    results = train_group(
        STUDY,
        "momentum",
        [1, 2, 3],
        *splits,
        on_epoch=lambda epoch, rows, first: calls.append((epoch, len(rows), first)),
        members_per_group=2,
    )
    assert calls == [(e, 2, 0) for e in range(1, EPOCHS + 1)] + [(e, 1, 2) for e in range(1, EPOCHS + 1)]
    assert [r.seed for r in results] == [1, 2, 3]
