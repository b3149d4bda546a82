"""Run every optimizer on 2-D functions whose minima are known: `python -m stages.landscapes`.

study/landscapes.py says which optimizers (the variants' distinct settings: batch size means nothing
with an exact gradient), which rates and which tests. For each function in params.yaml's `landscapes`
and each optimizer, one program runs the tuning starts at every rate of `rates`, and each test's
evaluation starts at every rate too (`run_all` says why); the rate chosen from the tuning starts is
the optimizer's own best there, and its evaluation runs are kept. A momentum variant's evaluation
starts also run at plain SGD's best effective step (when a variant is plain SGD: it runs first). A
schedule's epoch is steps // train.epochs steps.

Writes metrics/landscapes_rates.csv (the tuning: one row per function, optimizer and rate),
metrics/landscapes.csv (one row per function, test, optimizer, setting and start), metrics/landscapes.json
(per function, test, optimizer and setting: shares, medians, the rate) and
plots/landscapes/trajectories.csv (paths at own best rates, thinned, for the report's contour plots:
the first `trajectories` starts of the reach or settle test and the escape test's first start).
"""

from dataclasses import asdict

import pandas as pd
from tqdm import tqdm

from study import params, runtime
from study.atomic import atomic_dir, atomic_file, write_json
from study.errors import run_stage
from study.landscape_runs import run_at_rates
from study.landscapes import (
    FUNCTIONS,
    MATCHED_STEP,
    OWN_BEST,
    choose_rate,
    evaluation_starts,
    matched_rate,
    mean_final_value,
    optimizers,
    outcomes,
    plain_sgd,
    summary,
    trajectory,
    tuning_starts,
)

FLOAT = "%.9g"  # enough digits to give back every float32 the optimizers computed
COLUMNS = [
    "function", "test", "variant", "stands_for", "setting", "learning_rate", "start", "reached_global",
    "escaped", "barrier_crossings", "steps_to_tolerance", "final_value", "diverged", "x0", "y0", "final_x",
    "final_y",
]  # fmt: skip
PATH_COLUMNS = ["function", "test", "variant", "start", "step", "x", "y"]
TUNING = "tuning"  # the tuning starts, beside each test's evaluation starts


def main() -> None:
    study = params.load()
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    settings = study.landscapes
    found = optimizers(study.variants)
    plain = plain_sgd(found)
    run = {
        "steps": settings.steps,
        "steps_per_epoch": max(1, settings.steps // study.train.epochs),
        "jit_compile": study.train.jit_compile,
    }

    rows, tuning, shares, paths = [], [], {}, []
    with tqdm(total=len(settings.functions) * len(found), desc="landscapes", unit="program") as progress:
        for function in settings.functions:
            landscape = FUNCTIONS[function]
            starts = {TUNING: tuning_starts(landscape, settings.starts, settings.seed)} | {
                test: evaluation_starts(landscape, test, settings.starts, settings.seed)
                for test in landscape.tests
            }
            shares[function] = {test: {} for test in landscape.tests}
            best = {}
            # Plain SGD first: its best rate sets the momentum variants' matched step.
            for name in sorted(found, key=lambda name: name != plain):
                optimizer = found[name]
                matched = None
                if optimizer.momentum is not None and plain is not None:
                    matched = matched_rate(best[plain], optimizer.momentum)
                ran = run_all(landscape, optimizer, starts, settings.rates, matched, run)
                tried = tuning_table(landscape, optimizer, settings, ran)
                best[name] = tried.loc[tried["chosen"], "learning_rate"].item()
                tuning.append(tried)
                for setting, rate in ((OWN_BEST, best[name]), (MATCHED_STEP, matched)):
                    for test in landscape.tests if rate is not None else ():
                        results = outcomes(landscape, ran[test, rate], settings.tolerance, test)
                        keys = {
                            "function": function,
                            "test": test,
                            "variant": name,
                            "stands_for": " ".join(optimizer.stands_for),
                            "setting": setting,
                            "learning_rate": rate,
                        }
                        rows += [keys | asdict(result) for result in results]
                        shares[function][test].setdefault(name, {})[setting] = summary(results) | {
                            "learning_rate": rate
                        }
                        kept = settings.trajectories if test != "escape" else min(1, settings.trajectories)
                        if setting == OWN_BEST:
                            paths += [kept_path(ran[test, rate], start, keys) for start in range(kept)]
                progress.update()

    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("steps_to_tolerance", "barrier_crossings"):
        table[column] = table[column].astype("Int64")  # empty when never, or not counted in that test
    table["escaped"] = table["escaped"].astype("boolean")  # empty outside the escape test
    with atomic_file("metrics/landscapes.csv") as tmp:
        table.to_csv(tmp, index=False, float_format=FLOAT)
    with atomic_file("metrics/landscapes_rates.csv") as tmp:
        pd.concat(tuning).to_csv(tmp, index=False, float_format=FLOAT)
    write_json("metrics/landscapes.json", shares)
    with atomic_dir("plots/landscapes") as out:
        (pd.concat(paths) if paths else pd.DataFrame(columns=PATH_COLUMNS)).to_csv(
            out / "trajectories.csv", index=False, float_format=FLOAT
        )
    print(
        f"Share of {settings.starts} starts ending within {settings.tolerance:g} of a global minimum "
        "(escape: ending in a global minimum's basin):"
    )
    table["ended"] = table["escaped"].fillna(table["reached_global"]).astype(float)
    shares_table = table.pivot_table("ended", ["variant", "setting"], ["function", "test"], sort=False)
    print(shares_table.round(3).to_string())


def run_all(landscape, optimizer, starts: dict, rates: list, matched: float | None, run: dict) -> dict:
    """Every run of one optimizer on one function, in one program: the tuning starts at every rate of
    the grid, and each test's evaluation starts at every rate and at the matched step. Compiling the
    program, not its arithmetic, is what costs, so the evaluation starts run at every rate rather than
    in a second program; only the chosen rate's are kept, and the choice reads the tuning starts alone.
    Returns {(TUNING or test, rate): path}."""
    tests = [what for what in starts if what != TUNING]
    plan = [(TUNING, rate) for rate in rates] + [
        (test, rate) for rate in dict.fromkeys([*rates, matched]) if rate is not None for test in tests
    ]
    ran = run_at_rates(landscape, optimizer.variant, [(starts[what], rate) for what, rate in plan], **run)
    return dict(zip(plan, ran, strict=True))


def tuning_table(landscape, optimizer, settings, ran: dict) -> pd.DataFrame:
    """Per rate of the grid, from the tuning starts: the share that ended in a global minimum (and the
    tie-breaks); and which rate was chosen."""
    ended = [outcomes(landscape, ran[TUNING, rate], settings.tolerance) for rate in settings.rates]
    tried = pd.DataFrame(
        {
            "function": landscape.name,
            "variant": optimizer.name,
            "learning_rate": settings.rates,
            "share_global": [summary(results)["share_global"] for results in ended],
            "mean_final_value": [mean_final_value(results) for results in ended],
            "median_steps_to_tolerance": [summary(results)["median_steps_to_tolerance"] for results in ended],
        }
    )
    best = choose_rate(
        settings.rates, tried["share_global"], tried["mean_final_value"], tried["median_steps_to_tolerance"]
    )
    return tried.assign(chosen=tried["learning_rate"] == best)


def kept_path(path, start: int, keys: dict) -> pd.DataFrame:
    """One start's path, thinned, as rows of plots/landscapes/trajectories.csv."""
    steps, xy = trajectory(path[:, start])
    where = {key: keys[key] for key in ("function", "test", "variant")}
    return pd.DataFrame(where | {"start": start, "step": steps, "x": xy[:, 0], "y": xy[:, 1]})


if __name__ == "__main__":
    run_stage(main)
