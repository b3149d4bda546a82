"""Train a group of runs together: the runs of one variant, stacked along a `members` axis.

Why: under `model.fit`, a run of this small network spends most of each step outside its arithmetic
(a step at batch 1 is about 0.3 MFLOP). Here a group of runs that share an optimizer variant and a
batch size (its seeds, and later its learning-rate grid) trains in compiled TensorFlow programs
(XLA-compiled for runs of XLA_MIN_STEPS steps or more): a `tf.while_loop` runs a whole epoch of steps
without returning to Python, and every step advances every member of the program.
benchmarks/bench_training.py measures the gain against plain and compiled fit.

A group runs as one program (a `Stack`) on a GPU, and on a CPU as a few stacks side by side, one
thread each (`stack_sizes` says why and how many): a `Group`. A member's result depends on its own
seed and settings, up to float rounding: how many members share its program changes the order in which
XLA sums. So how runs split into groups and stacks is a function of the params alone, pinned here
(STACKS, STACK_CACHE_BYTES, GROUP_BYTES), never of the machine's cores, cache or free memory: the same
params give the same numbers on any CPU of the same kind. Only how many threads run the stacks follows
the machine, which changes speed, not a result. On a GPU a group is one stack.

How the stacking works:
- Weights. Every weight gets a leading `members` axis. Member i starts from exactly the weights
  `build_model` gives after `keras.utils.set_random_seed(seed_i)`, as the per-run trainer starts
  (Dense: glorot_uniform kernel, zero bias), and one batched matmul (`einsum`) per layer computes every
  member's layer at once. Kernels are stored [members, out, in] and biases [members, 1, units]: with
  each output's weights contiguous, XLA's CPU matrix-vector product (batch 1) takes about 5 µs instead
  of about 100 µs with Keras' [in, out]. `MemberResult.model` is each member as a plain Keras model.
- Data. Member i shuffles the training split every epoch with its own `numpy.random.default_rng(seed_i)`
  (`epoch_orders`); a step gathers each member's batch, images [members, batch, 784]. A member's
  initial weights, data order and learning rate depend on its own seed and settings only, never on
  its group or its position in it. Members of one seed read the same batches: a stack that holds only
  such members (`seed_stacks`) gathers a batch once, [batch, 784], for all of them.
- Optimizer. One Keras optimizer, built from the variant's params as `build_optimizer` builds it,
  updates the stacked weights. Every optimizer in the study updates each weight element by element,
  so this is exactly one optimizer per member. Its learning rate is a `MemberLearningRates` schedule
  that returns a [members, 1, 1] tensor (each member's rate, times the variant's decay when it has
  one, in optimizer steps): it broadcasts over the member's slice of every weight.
- Loss. What is differentiated is the sum over members of each member's mean loss over its batch, so
  member i's gradient is exactly its own run's gradient: members share no arithmetic.
- Divergence. A member whose loss turns NaN or infinite is marked diverged at that step; from then on
  its gradients are replaced by zeros (`tf.where`), its history ends with that epoch (loss None, as the
  per-run trainer writes NaN) and the others train on unchanged.

Batches follow `model.fit`: ceil(n / batch) steps per epoch (`Study.steps_per_epoch`), the last batch
smaller when the batch does not divide the split. That batch is padded to the batch size, so that one
compiled program runs every step; its padding weighs nothing in the loss, the gradient or the
metrics. An epoch's loss and accuracy are means over its images (fit weighs each batch by its size);
validation is scored after every epoch, for all members at once. A `full` batch takes the whole split
at every step: its order then changes only the rounding of a sum, so every member reads the split in
place rather than gathering a [members, n, 784] copy. Memory is then the activations, [members, n,
units] a layer: 5 members on 50,000 images need a few hundred MB. Other batches gather [members,
batch, 784] floats per step.
"""

import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from study import runtime, timing
from study.errors import StudyError
from study.model import CLASSES, IMAGE_SHAPE, build_model
from study.params import Study
from study.runtime import PeakMemory
from study.variants import NOT_OPTIMIZER_ARGUMENTS, OPTIMIZERS, build_optimizer, learning_rate

IMAGE_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


class _NotRetracing(logging.Filter):
    """Every Stack compiles programs of its own, by design (its variables are part of them), so the
    fifth group of a stage makes TensorFlow warn of "retracing", a warning meant for a function traced
    again by mistake: here it says nothing, and would bury the stage's own lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_NotRetracing())
CACHE_BOUND_BATCH = 4  # batches this small train faster in stacks that fit a core's cache (`stack_sizes`)
# A training program is XLA-compiled (when train.jit_compile) only for runs of at least XLA_MIN_STEPS
# optimizer steps. Measured on the 2-core CPU: compiling costs 0.4-0.6 s a program and saves about
# 0.5 ms a step at batch 32 (4 members: 0.45 ms a step against 1.0 ms in TensorFlow's graph mode), so
# it pays from about a thousand steps on; a full-batch step (0.65 s for 5 members) is one set of large
# products either way. Scoring is never XLA-compiled: a few large products, as fast in graph mode
# (0.30 s against 0.33 s for 14 members on the validation split), without the compilation.
XLA_MIN_STEPS = 1000
# How a group splits, pinned (see the module's docstring): into STACKS stacks side by side on a CPU, at
# batches up to CACHE_BOUND_BATCH into stacks small enough for STACK_CACHE_BYTES of cache (a core's L2
# on the 2-core CPU `stack_sizes` was measured on), and a group holds at most GROUP_BYTES of members
# (`member_bytes`: 5 full-batch members of the default network, any number of the others).
STACKS = 2
STACK_CACHE_BYTES = 2 << 20
GROUP_BYTES = 4 << 30
GPU_MEMORY_SHARE = 0.8  # of a GPU's free memory, what one group may take (the rest: XLA's own buffers)
SCORE_BYTES = 64 << 20  # the largest layer's activations per chunk when scoring a split


@dataclass
class MemberResult:
    """One run of a group: its trained Keras model and its record (the fields `train_run` writes)."""

    seed: int
    learning_rate: float
    model: keras.Sequential
    record: dict


class MemberLearningRates(keras.optimizers.schedules.LearningRateSchedule):
    """Each member's learning rate, as a [members, 1, 1] tensor: its own rate times the variant's decay."""

    def __init__(self, rates, decay: keras.optimizers.schedules.LearningRateSchedule | None = None):
        self.rates = np.asarray(rates, dtype=np.float32).reshape(-1, 1, 1)
        self.decay = decay  # the variant's schedule started from 1: the factor its decay has reached

    def __call__(self, step):
        rates = tf.constant(self.rates)
        return rates if self.decay is None else rates * self.decay(step)

    def get_config(self):
        return {"rates": self.rates.ravel().tolist(), "decay": self.decay}


def epoch_orders(seed: int, n: int) -> Iterator[np.ndarray]:
    """A member's order of the n training images, a new permutation each epoch, from its seed alone."""
    rng = np.random.default_rng(seed)
    while True:
        yield rng.permutation(n).astype(np.int32)


@timing.training()
def train_group(
    study: Study,
    variant_name: str,
    seeds: list[int],
    train,
    validation,
    learning_rates: list[float] | None = None,
    on_epoch: Callable[[int, list[dict | None], int], None] | None = None,
    seconds_per_step: float | None = None,
    checkpoints: Sequence[int] = (),
    members_per_group: int | None = None,
) -> list[MemberResult]:
    """Train one run of `variant_name` per seed, as one stacked program; return them in the seeds' order.

    `learning_rates`: one per seed (a seed may repeat with another rate); the variant's own when None.
    `on_epoch(epoch, rows, first)`: called after every epoch of every group with each of its members'
    history rows, None for a member that diverged in an earlier epoch; `first` is the index (among
    `seeds`) of the group's first member, as runs that train as several groups report group by group
    (a progress bar over runs x epochs advances by len(rows)).
    `seconds_per_step`: what a step costs one run alone (`measure_solo`); history's seconds are then
    steps x that, one run's honest time. Without it they are the group's wall-clock training time.
    `checkpoints`: optimizer steps (counted from the start of the run) after which validation is also
    scored inside an epoch; each record's `checkpoints` then lists every score, these and the epochs'.
    `members_per_group`: the most members one group holds; None: as many as GROUP_BYTES holds
    (`group_members`), whatever the machine. More runs than that train as several groups, one after
    another. A group that needs more than the device's free memory is refused before it trains.
    """
    limit = max(1, members_per_group or group_members(study, variant_name))
    _check_memory(study, variant_name, min(limit, len(seeds)))
    results: list[MemberResult] = []
    for first in range(0, len(seeds), limit):
        part = slice(first, first + limit)
        rates = None if learning_rates is None else learning_rates[part]
        results += _train_one_group(
            study,
            variant_name,
            seeds[part],
            train,
            validation,
            rates,
            None if on_epoch is None else functools.partial(_part_epoch, on_epoch, first),
            seconds_per_step,
            checkpoints,
        )
    return results


def _part_epoch(on_epoch, first: int, epoch: int, rows: list[dict | None]) -> None:
    on_epoch(epoch, rows, first)


def flops_per_image(study: Study) -> tuple[float, float]:
    """The arithmetic of one image through the network: a training step's (forward pass, then the
    gradients of every weight and of every layer's input but the image's) and a scoring pass's
    (forward only). Multiply-adds count two; activations, the loss and the optimizer's update are left
    out, so that the study's total is a floor: less than what any implementation must do."""
    widths = [IMAGE_PIXELS, *study.model.hidden_units, CLASSES]
    products = [2 * a * b for a, b in itertools.pairwise(widths)]
    forward = sum(products)
    return forward + sum(products) + sum(products[1:]), forward


def member_bytes(study: Study, variant_name: str) -> int:
    """A generous estimate of what one member adds to a group: one run's (`Study.run_bytes`)."""
    return study.run_bytes(study.batch_size(variant_name))


def _network_size(study: Study) -> tuple[int, int]:
    """The network's weights (kernels and biases) and its units per image (the input's included)."""
    widths = [IMAGE_PIXELS, *study.model.hidden_units, CLASSES]
    return sum((a + 1) * b for a, b in itertools.pairwise(widths)), sum(widths)


def group_members(study: Study, variant_name: str) -> int:
    """How many members of the variant one group holds, at least one. On a CPU, as many as GROUP_BYTES
    holds: a function of the params alone, so that the same runs group the same way on every CPU. On a
    GPU, as many as GPU_MEMORY_SHARE of the device's free memory holds (a group is one program there,
    and the more members it runs at once the better the device is used); a group split for lack of
    memory changes only the rounding of its members' sums, and each record names its device."""
    if runtime.on_gpu():
        return max(
            1, int(runtime.free_memory_bytes() * GPU_MEMORY_SHARE) // member_bytes(study, variant_name)
        )
    return max(1, GROUP_BYTES // member_bytes(study, variant_name))


def _check_memory(study: Study, variant_name: str, members: int) -> None:
    """Refuse, in one line, a group the device cannot hold, rather than let it fail mid-training."""
    needed, free = members * member_bytes(study, variant_name), runtime.free_memory_bytes()
    if needed > free:
        raise StudyError(
            f"{variant_name}: a group of {members} runs needs about {needed / 1e9:.1f} GB, but "
            f"{free / 1e9:.1f} GB of memory is free: close other programs, or use fewer or smaller "
            "layers (model.hidden_units) or smaller batches"
        )


def _train_one_group(
    study: Study,
    variant_name: str,
    seeds: list[int],
    train,
    validation,
    learning_rates: list[float] | None,
    on_epoch: Callable[[int, list[dict | None]], None] | None,
    seconds_per_step: float | None,
    checkpoints: Sequence[int],
) -> list[MemberResult]:
    group = Group(study, variant_name, seeds, learning_rates)
    x, y = _training_tensors(study, train)
    validation_chunks = _chunks(validation, group.size, study.model)
    orders = [epoch_orders(seed, group.n_train) for seed in seeds]
    train_flops, score_flops = flops_per_image(study)
    n_validation = len(validation[1])
    histories: list[list[dict]] = [[] for _ in seeds]
    scored: list[list[dict]] = [[] for _ in seeds]
    diverged_epoch: list[int | None] = [None] * group.size
    wall_seconds, wall_by_epoch = 0.0, []
    for epoch in range(1, study.train.epochs + 1):
        alive_before = group.alive.copy()
        indices, counts = group.batches(np.stack([next(o) for o in orders]))
        done = (epoch - 1) * group.steps_per_epoch
        stops = sorted({s - done for s in checkpoints if done < s < done + group.steps_per_epoch})
        loss_sum, correct, first = np.zeros(group.size), np.zeros(group.size), 0
        for stop in [*stops, group.steps_per_epoch]:
            start = time.perf_counter()
            losses, hits = group.train_steps(x, y, indices, counts, first, stop)
            wall_seconds += time.perf_counter() - start
            timing.count_flops(group.size * float(np.sum(counts[first:stop])) * train_flops)
            loss_sum, correct, first = loss_sum + losses, correct + hits, stop
            if checkpoints:
                val_loss, val_accuracy = group.score(*validation_chunks)
                timing.count_flops(group.size * n_validation * score_flops)
                seconds = wall_seconds if seconds_per_step is None else (done + stop) * seconds_per_step
                for i in np.flatnonzero(group.alive):
                    scored[i].append(
                        {
                            "step": done + stop,
                            "epoch": round((done + stop) / group.steps_per_epoch, 6),
                            "seconds": round(seconds, 6),
                            "val_loss": float(val_loss[i]),
                            "val_accuracy": float(val_accuracy[i]),
                        }
                    )
        wall_by_epoch.append(round(wall_seconds, 4))
        if not checkpoints:
            val_loss, val_accuracy = group.score(*validation_chunks)
            timing.count_flops(group.size * n_validation * score_flops)
        rates = group.learning_rates()
        steps = epoch * group.steps_per_epoch
        seconds = wall_seconds if seconds_per_step is None else steps * seconds_per_step
        rows: list[dict | None] = []
        for i in range(group.size):
            if not alive_before[i]:
                rows.append(None)
                continue
            finite = bool(group.alive[i])
            if not finite:
                diverged_epoch[i] = epoch
            row = {
                "epoch": epoch,
                "loss": float(loss_sum[i]) / group.n_train if finite else None,
                "accuracy": float(correct[i]) / group.n_train if finite else None,
                "val_loss": float(val_loss[i]) if finite else None,
                "val_accuracy": float(val_accuracy[i]) if finite else None,
                "learning_rate": float(rates[i]),
                "seconds": round(seconds, 4),
                "steps": steps,
            }
            histories[i].append(row)
            rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch, rows)

    variant = study.variant(variant_name)
    return [
        MemberResult(
            seed,
            group.rates[i],
            group.export(i),
            {
                "variant": variant_name,
                "seed": seed,
                "settings": variant.model_dump() | {"learning_rate": group.rates[i]},
                "batch_size": group.batch_size,
                "steps_per_epoch": group.steps_per_epoch,
                "n_train": group.n_train,
                "epochs_planned": study.train.epochs,
                "epochs_run": len(histories[i]),
                "diverged": diverged_epoch[i] is not None,
                "diverged_epoch": diverged_epoch[i],
                "train_seconds": histories[i][-1]["seconds"],
                "optimizer_state_bytes": group.optimizer_state_bytes(),
                "group_size": group.size,
                "stack_sizes": group.stack_sizes,  # how the group ran: one compiled program per stack
                "xla": group.xla,  # whether those programs were XLA-compiled (XLA_MIN_STEPS)
                "group_epoch_seconds": wall_by_epoch,  # the group's own clock, whatever `seconds` says
                "history": histories[i],
            }
            | ({"checkpoints": scored[i]} if checkpoints else {}),
        )
        for i, seed in enumerate(seeds)
    ]


@timing.training()
def measure_solo(study: Study, variant_name: str, train, steps: int | None = None, repeats: int = 5) -> dict:
    """What a step of the variant costs one run on its own: a group of 1, compiled, after a warm-up.

    The median over `repeats` timed chunks of `steps` steps (default: an epoch's, at most 500), and the
    peak memory above the start (`PeakMemory`) of setting the run up, compiling it and running it.
    """
    x, y = _training_tensors(study, train)  # the data: loaded before training, the same for every run
    _warm_up_xla()
    with PeakMemory() as memory:
        group = Stack(study, variant_name, [0], [study.variant(variant_name).learning_rate])
        steps = steps or min(group.steps_per_epoch, 500)
        order = next(epoch_orders(0, group.n_train))
        chunk = group.batches(np.resize(order, (1, steps * group.batch_size)))
        group.train_steps(x, y, *chunk)  # warm-up: tracing and XLA compilation
        chunk_seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            group.train_steps(x, y, *chunk)
            chunk_seconds.append(time.perf_counter() - start)
    timing.count_flops((repeats + 1) * float(np.sum(chunk[1])) * flops_per_image(study)[0])
    return {
        "seconds_per_step": float(np.median(chunk_seconds)) / steps,
        "peak_memory_bytes": memory.peak_bytes,
        "memory_kind": memory.kind,
        "steps_timed": steps * repeats,
    }


@functools.cache
def _warm_up_xla() -> None:
    """Compile and run one tiny XLA program, so that the compiler's one-time start-up (a few hundred MB
    of the process) is not counted as the memory of whichever run is measured first."""
    tf.function(lambda a: tf.reduce_sum(tf.nn.relu(a @ a)), jit_compile=True)(tf.ones([8, 8]))


def stack_sizes(
    study: Study, variant_name: str, members: int, cores: int = STACKS, cache: int = STACK_CACHE_BYTES
) -> list[int]:
    """How many members each of a group's stacks holds: one stack on a GPU; on a CPU, `cores` stacks,
    split further at small batches until each fits `cache`. Pinned (STACKS, STACK_CACHE_BYTES): the
    machine's own cores and cache only decide how many threads run the stacks (`Group`).

    Measured on a 2-core CPU (2 MiB of L2 per core), members at batch 32: 140-177 µs per member-step
    as one stack of 10, 95-139 µs as two stacks of 5 side by side. One stack's fused loops are each
    split across the cores, which then wait for each other at the end of every op; with stacks side
    by side, a core that one stack leaves waiting has another stack's work to do.
    At batches up to CACHE_BOUND_BATCH a step's arithmetic is too little to hide its memory traffic,
    so there a core's stack is split further until each fits the core's L2 cache (`step_bytes`):
    batch 1, 15 members: 20 µs as one stack, 13.5 µs as two, 8.2 µs as four (4, 4, 4, 3). At batch 8
    that split gains 4%, and at batch 32 nothing: 14 members of plain SGD or Adam as (4, 4, 3, 3)
    rather than (7, 7) trained a whole variant stage in the same time (38-40 s and 52 s), the compiled
    programs' cost (about 0.5 s a stack) eating what the smaller stacks gained. A member whose
    step alone outgrows the cache (full-batch descent) has ops big enough to share the cores well: its
    group stays one stack.
    """
    if runtime.on_gpu():
        return [members]
    member = step_bytes(study, variant_name)
    if member > cache:
        return [members]
    stacks = cores
    if study.batch_size(variant_name) <= CACHE_BOUND_BATCH:
        per_core = -(-members // cores)
        stacks *= -(-per_core * member // cache)
    stacks = min(members, stacks)
    return [len(part) for part in np.array_split(np.arange(members), stacks)]


def seed_stacks(study: Study, variant_name: str, seeds: list[int]) -> list[int] | None:
    """One stack per seed, where the seeds come in runs (a grid's settings, seed by seed) of at least two
    members, at least as many as `STACKS`, at a batch above CACHE_BOUND_BATCH; else None.

    A stack of one seed's members gathers each batch once and runs every layer of all of them as one
    product (`Stack.shared_order`). Measured on the 2-core CPU, momentum 0.9 at batch 32, 3 rates x 5
    seeds: 2.9 s an epoch as five such stacks of 3 against 3.6 s as (8, 7) with the seeds mixed. At
    small batches a step's products are too small to gain, and stacks must fit the cache
    (`stack_sizes`); a full batch is shared by every member already. A function of the params and the
    seeds alone, like `stack_sizes`.
    """
    runs = [len(list(run)) for _, run in itertools.groupby(seeds)]
    if (
        runtime.on_gpu()
        or study.batch_size(variant_name) <= CACHE_BOUND_BATCH
        or step_bytes(study, variant_name) > STACK_CACHE_BYTES
        or len(runs) != len(set(seeds))  # a seed in two places: not seed by seed
        or len(runs) < STACKS
        or min(runs) < 2
    ):
        return None
    return runs


def step_bytes(study: Study, variant_name: str) -> int:
    """What one member's step reads and writes: its weights, its optimizer's copies of them (`slots`)
    and one batch's activations."""
    weights, units = _network_size(study)
    return 4 * (weights * (1 + slots(study, variant_name)) + study.batch_size(variant_name) * units)


def slots(study: Study, variant_name: str) -> int:
    """How many copies of the weights the variant's optimizer keeps (plain SGD 0, momentum 1, Adam 2),
    counted on a one-number probe."""
    optimizer = build_optimizer(study.variant(variant_name), study.steps_per_epoch(variant_name))
    optimizer.build([keras.Variable(np.zeros(1, np.float32))])
    return sum(1 for v in optimizer.variables if tuple(v.shape) == (1,))


class Group:
    """A group's members as `stack_sizes` says: one or more `Stack`s, trained side by side on up to one
    thread per core (TensorFlow releases Python's lock while a compiled program runs). Its methods are
    a Stack's, over all members in the seeds' order. The threads change only when a stack runs, never
    what it computes."""

    def __init__(self, study: Study, variant_name: str, seeds: list[int], learning_rates=None):
        rates = learning_rates or [study.variant(variant_name).learning_rate] * len(seeds)
        if len(rates) != len(seeds):
            raise StudyError(f"{len(rates)} learning rates for {len(seeds)} seeds: give one per seed")
        self.stack_sizes = seed_stacks(study, variant_name, seeds) or stack_sizes(
            study, variant_name, len(seeds)
        )
        self.bounds = list(itertools.pairwise(np.cumsum([0, *self.stack_sizes]).tolist()))
        self.stacks = [Stack(study, variant_name, seeds[a:b], rates[a:b]) for a, b in self.bounds]
        first = self.stacks[0]
        self.size, self.n_train, self.batch_size = len(seeds), first.n_train, first.batch_size
        self.steps_per_epoch, self.batches = first.steps_per_epoch, first.batches
        self.rates = [rate for stack in self.stacks for rate in stack.rates]
        self.xla = first.xla

    @property
    def alive(self) -> np.ndarray:
        return np.concatenate([stack.alive for stack in self.stacks])

    def train_steps(self, x, y, indices, counts, first=0, stop=None) -> tuple[np.ndarray, np.ndarray]:
        return self._joined(lambda stack, a, b: stack.train_steps(x, y, indices[:, a:b], counts, first, stop))

    def score(self, x, y, weight) -> tuple[np.ndarray, np.ndarray]:
        return self._joined(lambda stack, a, b: stack.score(x, y, weight))

    def learning_rates(self) -> np.ndarray:
        return np.concatenate([stack.learning_rates() for stack in self.stacks])

    def optimizer_state_bytes(self) -> int:
        return self.stacks[0].optimizer_state_bytes()

    def export(self, i: int) -> keras.Sequential:
        k = next(k for k, (a, b) in enumerate(self.bounds) if a <= i < b)
        return self.stacks[k].export(i - self.bounds[k][0])

    def _joined(self, work) -> tuple[np.ndarray, np.ndarray]:
        """`work(stack, first member, end member)` on every stack at once; its two arrays, joined."""
        if len(self.stacks) == 1:
            parts = [work(self.stacks[0], *self.bounds[0])]
        else:
            with ThreadPoolExecutor(min(len(self.stacks), runtime.cpu_cores())) as pool:
                parts = list(
                    pool.map(lambda k: work(self.stacks[k], *self.bounds[k]), range(len(self.stacks)))
                )
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Stack:
    """Members stacked along a leading axis: their weights, the one optimizer over them, and the
    compiled step and scoring loops (one XLA program each)."""

    def __init__(self, study: Study, variant_name: str, seeds: list[int], learning_rates: list[float]):
        variant = study.variant(variant_name)
        self.size = len(seeds)
        self.n_train = study.n_train
        self.batch_size = study.batch_size(variant_name)
        self.steps_per_epoch = study.steps_per_epoch(variant_name)
        self.full_batch = self.batch_size >= self.n_train
        # Members of one seed read the same images in the same order (`epoch_orders`): a stack of such
        # members (a tuning grid's rates on one seed) gathers each batch once, and each layer of all its
        # members is one large product rather than one small product per member (`logits`).
        self.shared_order = len(set(seeds)) == 1
        self.rates = [float(rate) for rate in learning_rates]  # one per seed: `Group` checks

        # Member i starts where the per-run trainer starts from seed i.
        self.models = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            self.models.append(build_model(study.model))
        dense = [layer for layer in self.models[0].layers if isinstance(layer, keras.layers.Dense)]
        self.activations = [layer.activation for layer in dense[:-1]] + [None]  # softmax: in the loss
        self.weights = [
            keras.Variable(_stack([model.get_weights()[j] for model in self.models]), name=f"stacked_{j}")
            for j in range(2 * len(dense))
        ]

        # The variant's optimizer as build_optimizer makes it, with one learning rate per member.
        decay = learning_rate(variant.model_copy(update={"learning_rate": 1.0}), self.steps_per_epoch)
        schedule = MemberLearningRates(self.rates, None if isinstance(decay, float) else decay)
        settings = variant.model_dump(exclude=NOT_OPTIMIZER_ARGUMENTS)
        self.optimizer = OPTIMIZERS[variant.optimizer](learning_rate=schedule, **settings)
        self.optimizer.build(self.weights)
        self.alive = np.ones(self.size, dtype=bool)
        # One compiled program each per stack (the stack's variables are part of it).
        self.xla = study.train.jit_compile and self.steps_per_epoch * study.train.epochs >= XLA_MIN_STEPS
        self._compiled_steps = tf.function(self._steps, jit_compile=self.xla)
        self._compiled_score = tf.function(self._score, jit_compile=False)

    def logits(self, x):
        """x: each member's own images [members, batch, 784], or images all members share [batch, 784]."""
        h = x
        for j, activation in enumerate(self.activations):
            kernel, bias = self.weights[2 * j], self.weights[2 * j + 1]
            h = tf.einsum("mbi,moi->mbo" if len(h.shape) == 3 else "bi,moi->mbo", h, kernel) + bias
            if activation is not None:
                h = activation(h)
        return h

    def batches(self, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each member's image order [members, k] as the step loop takes it: indices [steps, members,
        batch], and how many of each step's images are real (the last batch may be padded)."""
        members, k = orders.shape
        steps = -(-k // self.batch_size)
        padded = np.zeros((members, steps * self.batch_size), np.int32)
        padded[:, :k] = orders
        indices = padded.reshape(members, steps, self.batch_size).transpose(1, 0, 2)
        counts = np.minimum(self.batch_size, k - self.batch_size * np.arange(steps)).astype(np.int32)
        return np.ascontiguousarray(indices), counts

    def train_steps(
        self, x, y, indices: np.ndarray, counts: np.ndarray, first: int = 0, stop: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run steps [first, stop) of those `batches` describes (all by default); return each member's
        summed loss and correct answers over them. The bounds are tensors, not shapes: one compiled
        program serves every part of an epoch."""
        stop = len(counts) if stop is None else stop
        alive, loss_sum, correct = self._compiled_steps(
            x, y, indices, counts, self.alive, tf.constant(first), tf.constant(stop)
        )
        self.alive = alive.numpy()
        return loss_sum.numpy(), correct.numpy()

    def _steps(self, x, y, indices, counts, alive, first, stop):
        def step(i, alive, loss_sum, correct):
            if self.full_batch:  # every member takes the whole split, read in place
                images, labels = x, tf.broadcast_to(y, [self.size, self.batch_size])
            elif self.shared_order:  # every member takes the same batch
                images = tf.gather(x, indices[i, 0])
                labels = tf.broadcast_to(tf.gather(y, indices[i, 0]), [self.size, self.batch_size])
            else:
                images, labels = tf.gather(x, indices[i]), tf.gather(y, indices[i])
            real = tf.cast(tf.range(self.batch_size) < counts[i], tf.float32)  # 0 on a last batch's padding
            with tf.GradientTape() as tape:
                logits = self.logits(images)
                losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits) * real
                member_loss = tf.reduce_sum(losses, axis=1) / tf.cast(counts[i], tf.float32)
                total = tf.reduce_sum(member_loss)  # member i's gradient: its own mean loss's gradient
            gradients = tape.gradient(total, self.weights)
            alive = alive & tf.math.is_finite(member_loss)
            keep = alive[:, None, None]
            self.optimizer.apply([tf.where(keep, g, tf.zeros_like(g)) for g in gradients], self.weights)
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
            loss_sum += tf.where(alive, tf.reduce_sum(losses, axis=1), 0.0)
            correct += tf.reduce_sum(hits * real, axis=1)
            return i + 1, alive, loss_sum, correct

        zeros = tf.zeros([self.size])
        state = (first, alive, zeros, zeros)
        _, alive, loss_sum, correct = tf.while_loop(lambda i, *_: i < stop, step, state)
        return alive, loss_sum, correct

    def score(self, x, y, weight) -> tuple[np.ndarray, np.ndarray]:
        """Every member's mean loss and accuracy over a split given as padded chunks (`_chunks`)."""
        loss_sum, correct = self._compiled_score(x, y, weight)
        n = float(np.sum(weight))
        return loss_sum.numpy() / n, correct.numpy() / n

    def _score(self, x, y, weight):
        def chunk(i, loss_sum, correct):
            logits = self.logits(x[i])
            labels = tf.broadcast_to(y[i], tf.shape(logits)[:2])
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
            return (
                i + 1,
                loss_sum + tf.reduce_sum(losses * weight[i], 1),
                correct + tf.reduce_sum(hits * weight[i], 1),
            )

        zeros = tf.zeros([self.size])
        chunks = tf.shape(x)[0]
        _, loss_sum, correct = tf.while_loop(lambda i, *_: i < chunks, chunk, (tf.constant(0), zeros, zeros))
        return loss_sum, correct

    def learning_rates(self) -> np.ndarray:
        """Each member's learning rate now (after the steps run so far), as the per-run trainer logs it."""
        return np.asarray(self.optimizer.learning_rate).reshape(-1)

    def optimizer_state_bytes(self) -> int:
        """One member's share of the optimizer's per-weight state (slot variables), as `state_bytes`."""
        slots = [v for v in self.optimizer.variables if len(v.shape) > 0]
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in slots) // self.size

    def export(self, i: int) -> keras.Sequential:
        """Member i as the plain Keras model (uncompiled) that `build_model` makes, with its weights."""
        slices = [w.numpy()[i] for w in self.weights]  # kernels [out, in], biases [1, units]
        model = self.models[i]
        model.set_weights([w.T if j % 2 == 0 else w[0] for j, w in enumerate(slices)])
        return model


def _stack(weights: list[np.ndarray]) -> np.ndarray:
    """The members' copies of one Keras weight: kernels [in, out] -> [members, out, in], biases
    [units] -> [members, 1, units]."""
    return np.stack([w.T if w.ndim == 2 else w[None] for w in weights])


def _training_tensors(study: Study, split) -> tuple[tf.Tensor, tf.Tensor]:
    x, y = split
    if len(y) != study.n_train:
        raise StudyError(
            f"the training split holds {len(y)} images, params.yaml says {study.n_train}: "
            "run `dvc repro prepare` to rewrite it"
        )
    return tf.constant(x.reshape(len(x), -1), tf.float32), tf.constant(y, tf.int32)


def _chunks(split, members: int, spec) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """A split as [chunks, rows, 784] images, labels and weights (0 on the last chunk's padding)."""
    x, y = split
    n = len(y)
    rows = max(1, min(n, SCORE_BYTES // (4 * members * max(*spec.hidden_units, 10))))
    chunks = -(-n // rows)
    pad = chunks * rows - n
    images = np.concatenate([x.reshape(n, -1), np.zeros((pad, x[0].size), np.float32)])
    labels = np.concatenate([y.astype(np.int32), np.zeros(pad, np.int32)])
    weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return (
        tf.constant(images.reshape(chunks, rows, -1)),
        tf.constant(labels.reshape(chunks, rows)),
        tf.constant(weight.reshape(chunks, rows)),
    )
