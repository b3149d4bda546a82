"""params.yaml is refused before any work, with one line naming the key, the bad value and what is valid."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from study import params
from study.errors import StudyError

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())


def refused(change) -> str:
    raw = copy.deepcopy(DEFAULTS)
    change(raw)
    with pytest.raises(StudyError) as error:
        params.validate(raw)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_shipped_params_are_valid():
    study = params.load(ROOT / "params.yaml")
    assert study.n_train == 50_000
    assert study.batch_size("bgd") == 50_000 and study.steps_per_epoch("bgd") == 1
    assert study.steps_per_epoch("mbgd") == 1563


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["variants"]["adam"].update(optimizer="adamw"), "variants.adam.optimizer = 'adamw'"),
        (
            lambda r: r["variants"]["mbgd_cosine"]["schedule"].update(name="linear"),
            "variants.mbgd_cosine.schedule.name = 'linear'",
        ),
    ],
    ids=["optimizer", "schedule"],
)
def test_unknown_names_list_the_valid_ones(change, expected):
    message = refused(change)
    assert expected in message
    assert "must be one of" in message


@pytest.mark.parametrize("value", [0, -0.1, float("nan"), float("inf")])
def test_learning_rate_must_be_a_positive_number(value):
    message = refused(lambda r: r["variants"]["adam"].update(learning_rate=value))
    assert message.startswith(f"params.yaml: variants.adam.learning_rate = {value!r}:")


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
def test_momentum_must_lie_in_zero_to_one(value):
    message = refused(lambda r: r["variants"]["momentum"].update(momentum=value))
    assert f"variants.momentum.momentum = {value!r}" in message


def test_nesterov_needs_momentum():
    message = refused(lambda r: r["variants"]["nesterov"].update(momentum=0.0))
    assert "variants.nesterov.nesterov = True" in message and "momentum > 0" in message


@pytest.mark.parametrize("value", [0, -4])
def test_batch_size_must_be_at_least_one(value):
    message = refused(lambda r: r["variants"]["mbgd"].update(batch_size=value))
    assert f"variants.mbgd.batch_size = {value}" in message and "'full'" in message


def test_batch_size_cannot_exceed_the_training_split():
    message = refused(lambda r: r["variants"]["mbgd"].update(batch_size=50_001))
    assert "variants.mbgd.batch_size = 50001" in message and "at most 50000" in message


def test_batch_size_limit_follows_train_size():
    message = refused(
        lambda r: (r["prepare"].update(train_size=1000), r["variants"]["mbgd"].update(batch_size=1001))
    )
    assert "at most 1000" in message


def test_epochs_must_be_at_least_one():
    assert "train.epochs = 0" in refused(lambda r: r["train"].update(epochs=0))


@pytest.mark.parametrize("value", [60_000, 70_000])
def test_validation_split_must_leave_training_data(value):
    message = refused(lambda r: r["prepare"].update(validation_size=value))
    assert f"prepare.validation_size = {value}" in message and "leaves no training data" in message


@pytest.mark.parametrize("value", [0, -0.5, 1.01])
def test_target_accuracy_lies_in_zero_to_one(value):
    assert f"compare.target_accuracy = {value!r}" in refused(
        lambda r: r["compare"].update(target_accuracy=value)
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda r: r["train"].update(epoch=3), "train.epoch"),
        (lambda r: r["variants"]["adam"].update(learnig_rate=0.1), "variants.adam.learnig_rate"),
        (lambda r: r["variants"]["adam"].update(momentum=0.9), "variants.adam.momentum"),
        (lambda r: r.update(trian={}), "trian"),
    ],
    ids=["section", "variant", "option-of-another-optimizer", "top-level"],
)
def test_unknown_keys_are_errors(change, key):
    message = refused(change)
    assert f"{key}: unknown key" in message


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            lambda r: r["variants"]["adam"].update(learning_rate="0.001"),
            "variants.adam.learning_rate = '0.001'",
        ),
        (lambda r: r["train"].update(epochs="5"), "train.epochs = '5'"),
        (lambda r: r["variants"]["mbgd"].update(batch_size="fulll"), "variants.mbgd.batch_size = 'fulll'"),
        (lambda r: r["train"].update(seeds=0), "train.seeds = 0"),
        (lambda r: r["train"].update(jit_compile="yes"), "train.jit_compile = 'yes'"),
    ],
    ids=["learning-rate", "epochs", "batch-size", "seeds", "flag"],
)
def test_wrong_types_are_refused_not_converted(change, key):
    assert key in refused(change)


def test_a_missing_key_is_named():
    message = refused(lambda r: r["variants"]["adam"].pop("learning_rate"))
    assert "variants.adam.learning_rate: missing" in message


def test_repeated_seeds_are_refused():
    assert "train.seeds = [0, 0]" in refused(lambda r: r["train"].update(seeds=[0, 0]))


def test_a_stage_refuses_bad_params_before_any_work(tmp_path):
    """The real stage process: exit status 2, one line on stderr, no output folder created."""
    text = (ROOT / "params.yaml").read_text().replace("learning_rate: 0.001\n", "learning_rate: -1.0\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", "adam"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: params.yaml: variants.adam.learning_rate = -1.0")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_invalid_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(StudyError, match="not valid YAML") as error:
        params.load(tmp_path / "params.yaml")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda r: r["variants"]["adam"].update(search=[1.0, 1.0e-4]),
            "variants.adam.search = [1.0, 0.0001]",
        ),
        (lambda r: r["variants"]["adam"].update(search=[0.0, 1.0]), "variants.adam.search.0 = 0.0"),
        (lambda r: r["variants"]["adam"].update(search=[1.0e-3]), "variants.adam.search = [0.001]"),
        (lambda r: r["tune"].update(points=1), "tune.points = 1"),
        (lambda r: r["tune"].update(epochs=0), "tune.epochs = 0"),
        (lambda r: r["momentum_sweep"].update(momenta=[0.9, 1.0]), "momentum_sweep.momenta.1 = 1.0"),
        (lambda r: r["momentum_sweep"].update(batch_size=60_000), "momentum_sweep.batch_size = 60000"),
    ],
    ids=["search-order", "search-zero", "search-length", "points", "tune-epochs", "momentum", "sweep-batch"],
)
def test_tuning_and_sweep_settings_are_checked(change, expected):
    assert expected in refused(change)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["batch_sweep"].update(batch_sizes=[1, 1]), "batch_sweep.batch_sizes = [1, 1]: must not"),
        (lambda r: r["batch_sweep"].update(batch_sizes=[1, 50_001]), "50001 is larger than the sweep's"),
        (lambda r: r["batch_sweep"].update(batch_sizes=[1, "half"]), "batch_sweep.batch_sizes.1 = 'half'"),
        (lambda r: r["batch_sweep"].update(points_per_decade=0), "batch_sweep.points_per_decade = 0"),
        (lambda r: r["landscapes"].update(functions=["himmelblau"]), "landscapes.functions.0 = 'himmelblau'"),
        (lambda r: r["landscapes"].update(functions=["saddle", "saddle"]), "must not repeat a function"),
        (lambda r: r["landscapes"].update(trajectories=201), "trajectories = 201: must be at most starts"),
        (lambda r: r["landscapes"].update(learning_rate_scale=0), "landscapes.learning_rate_scale: unknown"),
    ],
)
def test_sweep_and_landscape_settings_are_checked(change, expected):
    assert expected in refused(change)


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda r: r["momentum_sweep"].update(effective_steps=[0.1, INF]),
            "momentum_sweep.effective_steps.1 = inf",
        ),
        (lambda r: r["batch_sweep"].update(search=[1e-3, INF]), "batch_sweep.search.1 = inf"),
        (lambda r: r["landscapes"].update(rates=[0.1, NAN]), "landscapes.rates.1 = nan"),
        (lambda r: r["landscapes"].update(tolerance=INF), "landscapes.tolerance = inf"),
        (lambda r: r["variants"]["adam"].update(epsilon=INF), "variants.adam.epsilon = inf"),
        (lambda r: r["variants"]["rmsprop"].update(epsilon=NAN), "variants.rmsprop.epsilon = nan"),
        (
            lambda r: r["variants"]["adagrad"].update(initial_accumulator_value=INF),
            "initial_accumulator_value = inf",
        ),
        (lambda r: r["variants"]["adam"].update(beta_1=NAN), "variants.adam.beta_1 = nan"),
        (lambda r: r["variants"]["mbgd_cosine"]["schedule"].update(decay_epochs=INF), "decay_epochs = inf"),
        (lambda r: r["data"].update(timeout_s=INF), "data.timeout_s = inf"),
        (lambda r: r["compare"]["margins"].update(accuracy=NAN), "compare.margins.accuracy = nan"),
        (lambda r: r["compare"].update(memory_factor=INF), "compare.memory_factor = inf"),
        (lambda r: r["tune"].update(refine_step=NAN), "tune.refine_step = nan"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_number_must_be_finite(change, expected):
    message = refused(change)
    assert expected in message and "must be a finite number" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["train"].update(seeds=[0, 2**32]), "train.seeds.1 = 4294967296"),
        (lambda r: r["tune"].update(seeds=[100, -1]), "tune.seeds.1 = -1"),
        (lambda r: r["prepare"].update(seed=2**40), "prepare.seed = 1099511627776"),
        (lambda r: r["landscapes"].update(seed=2**32), "landscapes.seed = 4294967296"),
    ],
)
def test_seeds_lie_in_numpys_range(change, expected):
    message = refused(change)
    assert expected in message and ("4294967295" in message or "greater than or equal to 0" in message)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["train"].update(epochs=10**6), "train.epochs = 1000000"),
        (lambda r: r["tune"].update(points=10**4), "tune.points = 10000"),
        (lambda r: r["tune"].update(refine=10**4), "tune.refine = 10000"),
        (lambda r: r["data"].update(retries=10**9), "data.retries = 1000000000"),
        (lambda r: r["data"].update(timeout_s=1e9), "data.timeout_s = 1000000000.0"),
        (lambda r: r["landscapes"].update(steps=10**9), "landscapes.steps = 1000000000"),
        (lambda r: r["landscapes"].update(starts=10**9), "landscapes.starts = 1000000000"),
        (lambda r: r["batch_sweep"].update(memory_repeats=10**6), "batch_sweep.memory_repeats = 1000000"),
        (
            lambda r: r["batch_sweep"].update(full_batch_steps=10**9),
            "batch_sweep.full_batch_steps = 1000000000",
        ),
        (lambda r: r["model"].update(hidden_units=[10**9]), "model.hidden_units.0 = 1000000000"),
        (lambda r: r["model"].update(hidden_units=[8] * 100), "model.hidden_units = [8, 8"),
        (
            lambda r: r["momentum_sweep"].update(momenta=[i / 1000 for i in range(500)]),
            "momentum_sweep.momenta",
        ),
        (lambda r: r["train"].update(seeds=list(range(2000)), defaults_seeds=5), "train.seeds = [0, 1"),
    ],
    ids=lambda value: value.split(" =")[0] if isinstance(value, str) else "",
)
def test_counts_are_bounded(change, expected):
    assert expected in refused(change)


def test_a_network_too_large_for_this_machine_is_refused_before_training(monkeypatch):
    # 3 layers of 65,536 units at full batch: hundreds of GB, on a machine given 8 GB.
    monkeypatch.setattr(params.psutil, "virtual_memory", lambda: type("Memory", (), {"total": 8 << 30})())
    message = refused(lambda r: r["model"].update(hidden_units=[65536, 65536, 65536]))
    assert message.startswith(
        "params.yaml: model.hidden_units = [65536, 65536, 65536]: one run at batch 50000"
    )
    assert "GB" in message and "more than this machine's 8.6 GB of memory" in message
    study = params.load(ROOT / "params.yaml")  # the shipped network fits: a full-batch run is under 1 GB
    assert study.run_bytes(study.batch_size("bgd")) < 1e9


HOSTILE_NAMES = [
    "x;touch pwned;echo",
    "x'y",
    'x"y',
    "$(touch pwned)",
    "`touch pwned`",
    "x\ntouch pwned",
    "../../etc",
    "Adam",
    "a" * 300,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_a_variant_name_is_plain_and_short_and_refused_in_one_line(name):
    message = refused(lambda r: r["variants"].update({name: r["variants"]["adam"]}))
    shown = name if len(name) <= params.MAX_NAME else name[: params.MAX_NAME] + "..."
    assert message == f"params.yaml: variants = {shown!r}: not a variant name: use {params.VARIANT_NAME_RULE}"


def test_a_key_holding_a_newline_is_shown_on_one_line():
    message = refused(lambda r: r.update({"trian\nx": {}}))
    assert message.startswith("params.yaml: trian\\nx: unknown key")
