"""Sweep plain SGD's batch size, each size at its own learning rate: `python -m stages.batch_sweep`.

Batch size and learning rate go together (Goyal et al. 2017; Shallue et al. 2019): at one rate for all,
a sweep over sizes is partly a sweep over rates. So each size in params.yaml's `batch_sweep` first
tunes its own rate with the same small budget as every other size (tune's coarse grid over
`batch_sweep.search`, then its fine grid around the best, every rate from the first
`batch_sweep.tuning_seeds` tuning seeds, scored on validation only at the size's own horizon), then
trains at that rate from the first `batch_sweep.seeds` of train.seeds.

The sweep trains on the first `batch_sweep.train_size` training images, so that full-batch descent can
take `full_batch_steps` steps (one per epoch); the other sizes train train.epochs epochs. Validation is
scored at log-spaced steps and after every epoch (`checkpoint_steps`), so sizes compare at equal
epochs, steps and seconds. Seconds are steps x what a step costs one run alone (`measure_solo`, timed
in this process with nothing else running). Peak memory is measured `memory_repeats` times per size,
each in a process of its own that measures one run of one size, with nothing but imports run before
it: in one process, memory freed by an earlier measurement is reused unseen and would read as none.
Every size is measured uncompiled by XLA (`measure_memory_alone` says why).
They are forked from a server that has only imported what this module imports (TensorFlow among them),
so none imports TensorFlow again. They run while the sizes tune (their figure is their own process's,
whatever else runs), two at a time on two cores.

Writes sweeps/batch_size/batch-<size>/ (seed-<s>/record.json per run, tuning.json, memory.json) and
from them, through study/batch_sizes.py: metrics/batch_size.csv (one row per run),
metrics/batch_tuning.csv (every trial), metrics/batch_memory.csv (every memory process),
metrics/batch_size.json (per size, means with 95% intervals, for `dvc metrics`) and
plots/batch_size_curves.csv (every validation score, for `dvc plots`).
"""

import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from study import analysis, batch_sizes, data, params, runtime
from study.atomic import atomic_dir, write_csv, write_json
from study.batch_sizes import analytic_memory_bytes, checkpoint_steps
from study.errors import StudyError, run_stage
from study.model import CLASSES
from study.params import SGDVariant, Study
from study.stacked import IMAGE_PIXELS, measure_solo, slots, train_group
from study.tuning import choose, coarse_then_fine, mean_scores, score_rates

MEMORY_PROCESSES = 2  # at once: forked, each costs ~1.8 s of CPU (spawned ~5.5 s, ~4 of them importing)
# What the memory processes' fork server imports: what this module imports, TensorFlow and Keras with
# study.stacked, but not this module itself. Each child runs it again as its __main__ (as `python -m`
# ran it here), and runpy warns when the module is already imported; with these imported, that is quick.
FORKSERVER_PRELOAD = ["study.analysis", "study.batch_sizes", "study.stacked", "study.tuning", "tqdm"]


def sweep_study(study: Study) -> Study:
    """The study as the sweep sees it: one plain SGD variant per batch size (`batch-32`, `batch-full`),
    on the first batch_sweep_n_train training images (so `n_train` and `steps_per_epoch` follow). A
    size's learning_rate is the low end of `search` until its tuning chooses one."""
    sweep = study.batch_sweep
    variants = {
        f"batch-{size}": SGDVariant(
            optimizer="sgd", batch_size=size, learning_rate=sweep.search[0], search=sweep.search
        )
        for size in sweep.batch_sizes
    }
    prepare = study.prepare.model_copy(update={"train_size": study.batch_sweep_n_train})
    return study.model_copy(update={"variants": variants, "prepare": prepare})


def at_horizon(sweep: Study, name: str) -> Study:
    """The sweep at one size's horizon, for its tuning and its runs alike: full-batch descent trains
    `full_batch_steps` epochs of one step, the other sizes train.epochs."""
    size = sweep.variants[name].batch_size
    epochs = sweep.batch_sweep.full_batch_steps if size == "full" else sweep.train.epochs
    return sweep.model_copy(
        update={
            "train": sweep.train.model_copy(update={"epochs": epochs}),
            # tune at the size's own horizon, on the sweep's share of the tuning seeds
            "tune": sweep.tune.model_copy(
                update={"epochs": None, "seeds": sweep.tune.seeds[: sweep.batch_sweep.tuning_seeds]}
            ),
        }
    )


def with_rate(sized: Study, name: str, rate: float) -> Study:
    variants = sized.variants | {name: sized.variants[name].model_copy(update={"learning_rate": rate})}
    return sized.model_copy(update={"variants": variants})


def tune(sized: Study, name: str, train, validation, on_epoch) -> dict:
    """The size's own rate: coarse grid, then fine grid around its best, each rate from every tuning
    seed (validation only); `choose` picks the best mean and says whether it is on the edge."""
    low, high = sized.batch_sweep.search

    def scored(rates: list[float], stage: str) -> list[dict]:
        return [
            {"stage": stage} | row for row in score_rates(sized, name, rates, train, validation, on_epoch)
        ]

    trials = coarse_then_fine(sized.tune, low, high, scored)
    chosen = choose(trials)
    if chosen is None:
        raise StudyError(
            f"batch_sweep.search = {[low, high]}: every rate diverged at batch size "
            f"{sized.variants[name].batch_size}; lower the range"
        )
    means = mean_scores(trials)
    return {
        "epochs": sized.tune_epochs,
        "chosen": chosen,
        "trials": [row | {"mean_val_accuracy": means[row["learning_rate"]]} for row in trials],
    }


def measure_memory_alone(sized: Study, name: str) -> dict:
    """One run of one size alone, in a process of its own (`measure_solo`): its peak memory and its pid.

    Every size runs in TensorFlow's graph mode here, whether or not it trains XLA-compiled: the peak
    counts what the run sets up and allocates, and XLA's compiler, whose own memory (some 40-50 MiB
    here) would count too, compiles only runs of 1,000 steps or more (study/stacked.py), so with it
    the sizes would differ by the compiler's memory rather than by their batches."""
    runtime.map_inherited_file_pages()
    runtime.setup_device()
    x, y = data.load_split("data/prepared", "train")
    uncompiled = sized.model_copy(update={"train": sized.train.model_copy(update={"jit_compile": False})})
    solo = measure_solo(uncompiled, name, (x[: sized.n_train], y[: sized.n_train]))
    return {
        "pid": os.getpid(),
        "peak_memory_bytes": solo["peak_memory_bytes"],
        "memory_kind": solo["memory_kind"],
    }


def train_at_rate(
    out: Path, sized: Study, name: str, tuned: dict, memory: list[dict], seeds, shared: dict, on_epoch
) -> float:
    """Train the size at its chosen rate from the evaluation seeds, its seconds from one run alone timed
    here (the memory processes are done by now), and write its records, tuning.json and memory.json
    under `out`; return its seconds per step. `shared`: the splits and environment every size shares."""
    chosen = tuned["chosen"]
    sized = with_rate(sized, name, chosen["learning_rate"])
    solo = measure_solo(sized, name, shared["train"])
    steps = sized.train.epochs * sized.steps_per_epoch(name)
    results = train_group(
        sized,
        name,
        seeds,
        shared["train"],
        shared["validation"],
        on_epoch=on_epoch,
        seconds_per_step=solo["seconds_per_step"],
        checkpoints=checkpoint_steps(steps, sized.batch_sweep.points_per_decade),
    )
    widths = [IMAGE_PIXELS, *sized.model.hidden_units, CLASSES]
    size = {"batch_label": str(sized.variants[name].batch_size), "batch_size": sized.batch_size(name)}
    repeats = [{"repeat": i, **m} for i, m in enumerate(memory)]
    analytic = analytic_memory_bytes(widths, sized.batch_size(name), slots(sized, name))
    for result in results:
        record = result.record | {
            **size,
            "seconds_per_step": solo["seconds_per_step"],
            "peak_memory_bytes": statistics.median(m["peak_memory_bytes"] for m in repeats),
            "memory_kind": repeats[0]["memory_kind"],
            "analytic_memory_bytes": analytic,
            "tuning": chosen | {"trials": len(tuned["trials"]), "seeds": sized.tune.seeds},
            "environment": shared["environment"],
        }
        write_json(out / f"seed-{result.seed}" / "record.json", record)
    write_json(out / "tuning.json", size | tuned)
    write_json(out / "memory.json", size | {"analytic_memory_bytes": analytic, "repeats": repeats})
    return solo["seconds_per_step"]


def main() -> None:
    study = params.load()
    sweep = sweep_study(study)
    x, y = data.load_split("data/prepared", "train")
    device = runtime.setup_device()
    determinism = runtime.configure_determinism(study.train.deterministic)
    shared = {  # what every size trains with
        "train": (x[: sweep.n_train], y[: sweep.n_train]),
        "validation": data.load_split("data/prepared", "validation"),
        "environment": runtime.environment(device, determinism, study.train.jit_compile),
    }
    settings = sweep.batch_sweep
    seeds = study.train.seeds[: settings.seeds]
    sized = {name: at_horizon(sweep, name) for name in sweep.variants}

    trials = (study.tune.points + 2 * study.tune.refine) * study.batch_sweep.tuning_seeds
    total = sum(s.train.epochs * (trials + len(seeds)) for s in sized.values())
    tuned, clock = {}, {name: {} for name in sized}
    with tqdm(total=total, desc=f"batch-size sweep ({len(sized)} sizes)", unit="epoch") as progress:
        advance = lambda _, rows, __: progress.update(len(rows))  # noqa: E731
        # Every memory measurement in a process of its own (max_tasks_per_child=1), while the sizes tune,
        # forked from a server that has imported TensorFlow and Keras (FORKSERVER_PRELOAD) and done
        # nothing else: no tensor, op or TensorFlow runtime (thread pools, devices) exists there, so a
        # child inherits none and starts TensorFlow's runtime itself, as a spawned process would.
        # PeakMemory counts the peak above the level just before the run, so what a child shares with
        # the server does not count (`runtime.map_inherited_file_pages`: for library pages too).
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(FORKSERVER_PRELOAD)
        with ProcessPoolExecutor(MEMORY_PROCESSES, mp_context=forkserver, max_tasks_per_child=1) as pool:
            pending = {
                name: [pool.submit(measure_memory_alone, s, name) for _ in range(settings.memory_repeats)]
                for name, s in sized.items()
            }
            for name, s in sized.items():
                start = time.perf_counter()
                tuned[name] = tune(s, name, shared["train"], shared["validation"], advance)
                clock[name]["tuned"] = time.perf_counter() - start
                progress.set_postfix_str(f"{name}: rate {tuned[name]['chosen']['learning_rate']:g}")
            start = time.perf_counter()
        waited = time.perf_counter() - start  # for memory processes still running after tuning
        memory = {name: [future.result() for future in futures] for name, futures in pending.items()}

        with atomic_dir("sweeps/batch_size") as out:
            for name, s in sized.items():
                start = time.perf_counter()
                step = train_at_rate(out / name, s, name, tuned[name], memory[name], seeds, shared, advance)
                clock[name]["trained"] = time.perf_counter() - start
                progress.set_postfix_str(f"{name}: {step * 1e6:.0f} µs a step alone")

    for name, seconds in clock.items():
        chosen = tuned[name]["chosen"]
        edge = chosen["on_edge"]
        warning = f"; ON THE {edge.upper()} EDGE of the rates tried: widen batch_sweep.search" if edge else ""
        tqdm.write(
            f"{name}: rate {chosen['learning_rate']:g}{warning}; tuned in {seconds['tuned']:.1f} s, "
            f"trained in {seconds['trained']:.1f} s"
        )
    tqdm.write(
        f"memory: {len(sized) * settings.memory_repeats} processes, {waited:.1f} s waited after tuning"
    )

    sweep_dir = Path("sweeps/batch_size")
    runs, curves = batch_sizes.batch_table(
        sweep_dir, settings.target_accuracy, study.compare.unstable_accuracy
    )
    memory_rows = batch_sizes.memory_table(sweep_dir)
    write_csv("metrics/batch_size.csv", analysis.with_not_reached(runs))
    write_csv("metrics/batch_tuning.csv", batch_sizes.tuning_table(sweep_dir))
    write_csv("metrics/batch_memory.csv", memory_rows)
    write_json("metrics/batch_size.json", batch_sizes.batch_summary(runs, memory_rows))
    write_csv("plots/batch_size_curves.csv", curves)


if __name__ == "__main__":
    run_stage(main)
