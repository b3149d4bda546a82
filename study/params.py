"""The schema of params.yaml: every stage validates the whole file here before it does any work.

A bad value is refused with one line naming the key, the value and what is valid, e.g.
`params.yaml: variants.adam.learning_rate = -0.1: must be greater than 0`. Unknown keys are errors, not
silently ignored, and types are strict: a string where a number belongs is refused, not converted.
Every number is finite (`.inf` and `.nan` are refused everywhere), every count is bounded, seeds lie
in NumPy's range, variant names are short and plain (they become stage names and folder names), and
a network too large for this machine's memory is refused here, before any stage trains it.
"""

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError

from study.errors import StudyError

PARAMS_FILE = "params.yaml"
IMAGE_PIXELS, CLASSES = 28 * 28, 10  # MNIST's images and digits: the network's input and output widths
# Every variant trains under both: at its own learning rate from params.yaml, and at the rate the
# variant's tuning chose for it on the validation split with the same budget as every other variant.
PROTOCOLS = ("defaults", "tuned")


class Strict(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` anywhere (a rate, an epsilon, a tolerance, a timeout) is
    # refused, rather than accepted and turned into a run that diverges or a wait that never ends.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


PositiveInt = Annotated[int, Field(ge=1)]
# Bounds on counts: far beyond what a study on MNIST needs, they stop a typo (an extra digit or three)
# from becoming a run that never ends or a list that exhausts memory.
MAX_EPOCHS = 1000
MAX_SEEDS = 1000
MAX_GRID = 100  # rates, momenta, steps or batch sizes in one grid
MAX_VARIANTS = 100
MAX_NAME = 40  # a variant's name: part of stage names and folder names
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# Rates are computed in float32 (at most 3.4e38): a bound well inside it keeps every grid finite.
def _rate_range(search: list[float]) -> list[float]:
    """A search range of learning rates: [low, high], both finite, low below high."""
    if not search[0] < search[1] or not all(map(math.isfinite, search)):
        raise ValueError("must be [low, high] with 0 < low < high")
    return search


LearningRate = Annotated[float, Field(gt=0, le=1e30)]
# A seed goes to numpy.random.default_rng and keras.utils.set_random_seed, which take 0 .. 2**32 - 1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ExpectedData(Strict):
    file_sha256: Sha256 | None = None
    n_train: Annotated[int, Field(ge=1, le=10_000_000)]
    n_test: Annotated[int, Field(ge=1, le=10_000_000)]
    array_sha256: dict[Literal["x_train", "y_train", "x_test", "y_test"], Sha256]


class Data(Strict):
    sources: list[str] = Field(min_length=1, max_length=20)
    timeout_s: Annotated[float, Field(gt=0, le=3600)]  # a socket timeout: an hour without a byte is dead
    retries: Annotated[int, Field(ge=1, le=10)]
    expected: ExpectedData


class Prepare(Strict):
    validation_size: PositiveInt
    seed: Seed
    train_size: PositiveInt | None = None


class Model(Strict):
    hidden_units: list[Annotated[int, Field(ge=1, le=65536)]] = Field(min_length=1, max_length=16)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "selu", "swish"]


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("must not repeat a seed")
    return seeds


class Train(Strict):
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
    seeds: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS)
    defaults_seeds: PositiveInt
    jit_compile: bool
    deterministic: bool

    _distinct = field_validator("seeds")(_distinct_seeds)

    @model_validator(mode="after")
    def _defaults_within(self):
        if self.defaults_seeds > len(self.seeds):
            raise _KeyError(
                "train.defaults_seeds",
                self.defaults_seeds,
                f"must be at most the number of train.seeds ({len(self.seeds)})",
            )
        return self

    @property
    def default_seeds(self) -> list[int]:
        """The seeds the defaults protocol trains: the first `defaults_seeds` evaluation seeds."""
        return self.seeds[: self.defaults_seeds]

    def protocol_seeds(self, protocol: str) -> list[int]:
        return self.default_seeds if protocol == "defaults" else list(self.seeds)


class ExponentialSchedule(Strict):
    """lr * decay_rate ** (epoch / decay_epochs), evaluated per optimizer step."""

    name: Literal["exponential"]
    decay_epochs: Annotated[float, Field(gt=0, le=MAX_EPOCHS)]
    decay_rate: Annotated[float, Field(gt=0, le=1)]
    staircase: bool = False


class CosineSchedule(Strict):
    """lr follows half a cosine from its start to alpha * lr over decay_epochs, then stays there."""

    name: Literal["cosine"]
    decay_epochs: Annotated[float, Field(gt=0, le=MAX_EPOCHS)]
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0


Schedule = Annotated[ExponentialSchedule | CosineSchedule, Field(discriminator="name")]
BatchSize = PositiveInt | Literal["full"]


class VariantBase(Strict):
    # Whether the optimizer scales each weight's step by that weight's own gradient history (Adam,
    # RMSprop, Adagrad): what makes a variant "adaptive" to the claims (study/claims.py, `roles`), so
    # that a new optimizer family (say AdamW) says so here, with its settings, and nowhere else.
    adaptive: ClassVar[bool] = False
    batch_size: BatchSize
    learning_rate: LearningRate
    search: Annotated[list[LearningRate], Field(min_length=2, max_length=2)]
    schedule: Schedule | None = None

    _finite_lr = field_validator("learning_rate")(_finite)

    _increasing = field_validator("search")(_rate_range)


class SGDVariant(VariantBase):
    optimizer: Literal["sgd"]
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov = True: needs momentum > 0 (Nesterov's look-ahead is a momentum method)"
            )
        return self


# A small number added to a denominator: above 1 it is no longer small.
Epsilon = Annotated[float, Field(gt=0, le=1)]


class AdamVariant(VariantBase):
    adaptive: ClassVar[bool] = True
    optimizer: Literal["adam"]
    beta_1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta_2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    epsilon: Epsilon = 1e-7


class RMSpropVariant(VariantBase):
    adaptive: ClassVar[bool] = True
    optimizer: Literal["rmsprop"]
    rho: Annotated[float, Field(ge=0, lt=1)] = 0.9
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    epsilon: Epsilon = 1e-7


class AdagradVariant(VariantBase):
    adaptive: ClassVar[bool] = True
    optimizer: Literal["adagrad"]
    initial_accumulator_value: Annotated[float, Field(ge=0, le=1e6)] = 0.1
    epsilon: Epsilon = 1e-7


Variant = Annotated[
    SGDVariant | AdamVariant | RMSpropVariant | AdagradVariant, Field(discriminator="optimizer")
]
VARIANT_NAME = r"^[a-z][a-z0-9_]*$"
VARIANT_NAME_RULE = f"lowercase letters, digits and _, starting with a letter, at most {MAX_NAME} characters"


class Tune(Strict):
    seeds: list[Seed] = Field(min_length=2, max_length=MAX_SEEDS)
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = None
    points: Annotated[int, Field(ge=2, le=MAX_GRID)]
    refine: Annotated[int, Field(ge=0, le=MAX_GRID)]
    refine_step: Annotated[float, Field(gt=0, le=1)]

    _distinct = field_validator("seeds")(_distinct_seeds)


class MomentumSweep(Strict):
    momenta: list[Annotated[float, Field(ge=0, lt=1)]] = Field(min_length=2, max_length=MAX_GRID)
    effective_steps: list[LearningRate] = Field(min_length=1, max_length=MAX_GRID)
    batch_size: PositiveInt
    seeds: PositiveInt

    @model_validator(mode="after")
    def _plain_twin(self):
        if 0.0 not in self.momenta:
            raise _KeyError(
                "momentum_sweep.momenta", self.momenta, "must include 0.0: plain SGD, every setting's twin"
            )
        if len(set(self.momenta)) != len(self.momenta) or len(set(self.effective_steps)) != len(
            self.effective_steps
        ):
            raise ValueError("momenta and effective_steps: must not repeat a value")
        return self


class BatchSweep(Strict):
    batch_sizes: list[BatchSize] = Field(min_length=2, max_length=MAX_GRID)
    train_size: PositiveInt | None = None
    full_batch_steps: Annotated[int, Field(ge=100, le=100_000)]
    search: Annotated[list[LearningRate], Field(min_length=2, max_length=2)]
    tuning_seeds: PositiveInt
    seeds: PositiveInt
    memory_repeats: Annotated[int, Field(ge=3, le=20)]
    target_accuracy: Annotated[float, Field(gt=0, le=1)]
    points_per_decade: Annotated[int, Field(ge=1, le=10)]

    _increasing = field_validator("search")(_rate_range)

    @field_validator("batch_sizes")
    @classmethod
    def _distinct(cls, sizes: list) -> list:
        if len(set(sizes)) != len(sizes):
            raise ValueError("must not repeat a batch size")
        return sizes


# The 2-D test functions study/landscapes.py defines, by name.
LANDSCAPES = ("bowl", "two_wells", "rastrigin", "rosenbrock", "saddle")


class Landscapes(Strict):
    functions: list[Literal[LANDSCAPES]] = Field(min_length=1)
    starts: Annotated[int, Field(ge=1, le=100_000)]
    seed: Seed
    steps: Annotated[int, Field(ge=1, le=1_000_000)]
    tolerance: Annotated[float, Field(gt=0, le=1)]  # a distance to a minimum, on functions of scale ~1
    rates: list[LearningRate] = Field(min_length=1, max_length=MAX_GRID)
    trajectories: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.functions)) != len(self.functions):
            raise ValueError("functions: must not repeat a function")
        if self.trajectories > self.starts:
            raise ValueError(f"trajectories = {self.trajectories}: must be at most starts ({self.starts})")
        return self


class Margins(Strict):
    accuracy: Annotated[float, Field(gt=0, lt=1)]
    share: Annotated[float, Field(gt=0, lt=1)]
    steps: Annotated[float, Field(gt=0, lt=1)]


class Compare(Strict):
    target_accuracy: Annotated[float, Field(gt=0, le=1)]
    confidence: Annotated[float, Field(gt=0.5, lt=1)]
    margins: Margins
    memory_factor: Annotated[float, Field(gt=1)]
    unstable_accuracy: Annotated[float, Field(gt=0, lt=1)]


class Study(Strict):
    data: Data
    prepare: Prepare
    model: Model
    train: Train
    tune: Tune
    momentum_sweep: MomentumSweep
    batch_sweep: BatchSweep
    landscapes: Landscapes
    variants: dict[Annotated[str, Field(pattern=VARIANT_NAME, max_length=MAX_NAME)], Variant] = Field(
        min_length=1, max_length=MAX_VARIANTS
    )
    compare: Compare

    @field_validator("variants", mode="before")
    @classmethod
    def _plain_names(cls, variants):
        """A name becomes stage names (`variant@<name>`) and folders (`models/<name>`): it is checked
        before anything else, and shown quoted, so that a quote or a newline in it stays visible."""
        for name in variants if isinstance(variants, dict) else ():
            if not (isinstance(name, str) and len(name) <= MAX_NAME and re.fullmatch(VARIANT_NAME, name)):
                shown = name[:MAX_NAME] + "..." if isinstance(name, str) and len(name) > MAX_NAME else name
                raise _KeyError("variants", shown, f"not a variant name: use {VARIANT_NAME_RULE}")
        return variants

    @property
    def tune_epochs(self) -> int:
        """The tuning horizon: tune.epochs, or the training horizon when it is null."""
        return self.tune.epochs or self.train.epochs

    @property
    def n_train(self) -> int:
        """Images the optimizers train on: what the validation split and train_size leave."""
        remaining = self.data.expected.n_train - self.prepare.validation_size
        return min(remaining, self.prepare.train_size or remaining)

    @property
    def batch_sweep_n_train(self) -> int:
        """Images the batch-size sweep trains on: batch_sweep.train_size of the training split, at most
        all of it."""
        return min(self.n_train, self.batch_sweep.train_size or self.n_train)

    @model_validator(mode="after")
    def _splits_fit(self):
        remaining = self.data.expected.n_train - self.prepare.validation_size
        if remaining < 1:
            raise _KeyError(
                "prepare.validation_size",
                self.prepare.validation_size,
                f"leaves no training data: must be less than the {self.data.expected.n_train} "
                "training images",
            )
        if overlap := sorted(set(self.tune.seeds) & set(self.train.seeds)):
            raise _KeyError(
                "tune.seeds",
                self.tune.seeds,
                f"{overlap} also in train.seeds: tuning seeds must differ from the evaluation seeds",
            )
        for key, wanted in (
            ("momentum_sweep.seeds", self.momentum_sweep.seeds),
            ("batch_sweep.seeds", self.batch_sweep.seeds),
        ):
            if wanted > len(self.train.seeds):
                raise _KeyError(
                    key, wanted, f"must be at most the number of train.seeds ({len(self.train.seeds)})"
                )
        if self.batch_sweep.tuning_seeds > len(self.tune.seeds):
            raise _KeyError(
                "batch_sweep.tuning_seeds",
                self.batch_sweep.tuning_seeds,
                f"must be at most the number of tune.seeds ({len(self.tune.seeds)})",
            )
        if self.momentum_sweep.batch_size > self.n_train:
            raise _KeyError(
                "momentum_sweep.batch_size",
                self.momentum_sweep.batch_size,
                f"is larger than the training split ({self.n_train} images)",
            )
        for name, variant in self.variants.items():
            if variant.batch_size != "full" and variant.batch_size > self.n_train:
                raise _KeyError(
                    f"variants.{name}.batch_size",
                    variant.batch_size,
                    f"is larger than the training split ({self.n_train} images): "
                    f"use at most {self.n_train}, or `full`",
                )
        for size in self.batch_sweep.batch_sizes:
            if size != "full" and size > self.batch_sweep_n_train:
                raise _KeyError(
                    "batch_sweep.batch_sizes",
                    self.batch_sweep.batch_sizes,
                    f"{size} is larger than the sweep's training images ({self.batch_sweep_n_train})",
                )
        return self

    @model_validator(mode="after")
    def _fits_in_memory(self):
        """A network or a batch too large for this machine is refused now, not after hours of stages."""
        batches = [self.batch_size(name) for name in self.variants] + [self.momentum_sweep.batch_size]
        batches += [
            self.batch_sweep_n_train if size == "full" else size for size in self.batch_sweep.batch_sizes
        ]
        needed, memory = self.run_bytes(max(batches)), psutil.virtual_memory().total
        if needed > memory:
            raise _KeyError(
                "model.hidden_units",
                self.model.hidden_units,
                f"one run at batch {max(batches)} needs about {_bytes(needed)} (weights, gradients, "
                f"optimizer slots, activations), more than this machine's {_bytes(memory)} of memory: "
                "use fewer or smaller layers, or smaller batches",
            )
        return self

    def run_bytes(self, batch_size: int) -> int:
        """A generous estimate of what one run holds while it trains: its weights with their gradients,
        up to two optimizer slots and a copy (5 x 4 bytes per weight), and one batch's activations, kept
        for the backward pass with their gradients (4 copies of every layer's output, the input's
        included)."""
        widths = [IMAGE_PIXELS, *self.model.hidden_units, CLASSES]
        weights = sum((a + 1) * b for a, b in itertools.pairwise(widths))
        return 4 * (5 * weights + 4 * batch_size * sum(widths))

    def batch_size(self, variant: str) -> int:
        size = self.variants[variant].batch_size
        return self.n_train if size == "full" else size

    def steps_per_epoch(self, variant: str) -> int:
        return math.ceil(self.n_train / self.batch_size(variant))

    def variant(self, name: str):
        if name not in self.variants:
            raise StudyError(f"unknown variant {name!r}: params.yaml defines {', '.join(self.variants)}")
        return self.variants[name]


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


class _KeyError(ValueError):
    """A cross-field error that knows which key it belongs to."""

    def __init__(self, key: str, value, reason: str):
        super().__init__(f"{key} = {value!r}: {reason}")


def load(path: str | Path = PARAMS_FILE) -> Study:
    """Read and validate params.yaml; raise StudyError with one line on the first problem."""
    path = Path(path)
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path} not found: run the stages from the project's root folder") from None
    except YAMLError as error:
        reason = " ".join(str(error).split())
        raise StudyError(f"{path} is not valid YAML: {reason}") from None
    return validate(raw, source=str(path))


def validate(raw, source: str = PARAMS_FILE) -> Study:
    if not isinstance(raw, dict):
        raise StudyError(
            f"{source}: expected a mapping of sections (data, prepare, ...), got {type(raw).__name__}"
        )
    try:
        return Study.model_validate(raw)
    except ValidationError as error:
        message = describe(error.errors(), raw)
        # One line: a key itself may hold a newline (values are shown quoted, keys as written).
        raise StudyError(f"{source}: {message}".replace("\r", "\\r").replace("\n", "\\n")) from None


def describe(problems: list[dict], raw: dict) -> str:
    """Turn pydantic's errors into one line, `key = value: what is valid`, about the first bad key."""
    first = problems[0]
    message = _message(first)
    if isinstance(first.get("ctx", {}).get("error"), _KeyError):
        return message  # a cross-field _KeyError already names its key, wherever it was raised
    key = _clean_key(first["loc"], raw, keep_last=first["type"] == "missing")
    if first["type"] == "value_error" and message.split(" ", 1)[0] in _model_fields(key, raw):
        return f"{key}.{message}"  # a check across one section's fields names its own key
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown key (misspelled?); valid keys here: {_valid_keys(key, raw)}"
    if first["type"] == "missing":
        return f"{key}: missing; add it to params.yaml"
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = first["ctx"]
        tag = ctx["discriminator"].strip("'")
        if first["type"] == "union_tag_not_found":
            return f"{key}.{tag}: missing; say which one"
        return f"{key}.{tag} = {ctx['tag']!r}: must be one of {ctx['expected_tags']}"
    # A value checked against a union (a batch size is a number or `full`) fails once per member.
    reasons = dict.fromkeys(_message(p) for p in problems if _clean_key(p["loc"], raw) == key)
    return f"{key} = {_lookup(raw, key)!r}: {' or '.join(reasons)}"


def _message(problem: dict) -> str:
    message = problem["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return message.replace("input should be", "must be")


def _clean_key(loc: tuple, raw: dict, keep_last: bool = False) -> str:
    """The error's location in params.yaml's own keys, without the union tags pydantic adds."""
    parts: list[str] = []
    node = raw
    for i, part in enumerate(map(str, loc)):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif not (keep_last and i == len(loc) - 1 and isinstance(node, dict)):
            continue  # a union member's name, not a key
        parts.append(part)
    return ".".join(parts)


def _lookup(raw, key: str):
    node = raw
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _valid_keys(key: str, raw: dict) -> str:
    return ", ".join(_model_fields(key.rpartition(".")[0], raw)) or "see params.yaml's comments"


def _model_fields(key: str, raw: dict) -> list[str]:
    model = _model_at(key, raw)
    return list(model.model_fields) if model else []


def _model_at(key: str, raw: dict):
    model = Study
    node = raw
    parts = key.split(".") if key else []
    i = 0
    while i < len(parts):
        part = parts[i]
        node = node.get(part) if isinstance(node, dict) else None
        if model is Study and part == "variants" and i + 1 < len(parts):
            i += 1
            node = node.get(parts[i]) if isinstance(node, dict) else None
            model = _VARIANTS.get((node or {}).get("optimizer"))
        elif model is not None and part in model.model_fields:
            field = model.model_fields[part]
            if part == "schedule":
                model = _SCHEDULES.get((node or {}).get("name"))
            else:
                model = (
                    field.annotation
                    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
                    else None
                )
        else:
            return None
        i += 1
    return model


_VARIANTS = {"sgd": SGDVariant, "adam": AdamVariant, "rmsprop": RMSpropVariant, "adagrad": AdagradVariant}
_SCHEDULES = {"exponential": ExponentialSchedule, "cosine": CosineSchedule}
