"""Run every variant on 2-D functions whose minima are known: `python -m stages.landscapes`.

For each function in params.yaml's `landscapes` and each variant, the variant's Keras optimizer (at its
learning rate times `learning_rate_scale`) takes `steps` steps from the same `starts` random points
(study/landscapes.py says why the functions are scaled as they are). A schedule's epoch is
steps // train.epochs steps. Writes metrics/landscapes.csv (one row per function, variant and start),
metrics/landscapes.json (per function and variant: the share of starts that ended in a global minimum,
the share that diverged, the median steps to get there) and plots/landscapes/trajectories.csv (the
first `trajectories` starts' paths, thinned, for the report's contour plots).
"""

from dataclasses import asdict

import pandas as pd
from tqdm import tqdm

from study import params, runtime
from study.atomic import atomic_dir, atomic_file, write_json
from study.errors import run_stage
from study.landscape_runs import run_variant
from study.landscapes import FUNCTIONS, outcomes, starts, summary, trajectory

FLOAT = "%.9g"  # enough digits to give back every float32 the optimizers computed


def main() -> None:
    study = params.load()
    runtime.setup_device()
    runtime.configure_determinism(study.train.deterministic)
    settings = study.landscapes
    steps_per_epoch = max(1, settings.steps // study.train.epochs)

    rows, shares, paths = [], {}, []
    total = len(settings.functions) * len(study.variants)
    with tqdm(total=total, desc="landscapes (functions x variants)", unit="run") as progress:
        for function in settings.functions:
            landscape = FUNCTIONS[function]
            points = starts(landscape, settings.starts, settings.seed)
            shares[function] = {}
            for name, variant in study.variants.items():
                rate = variant.learning_rate * settings.learning_rate_scale
                path = run_variant(
                    landscape,
                    variant.model_copy(update={"learning_rate": rate}),
                    points,
                    settings.steps,
                    steps_per_epoch,
                    study.train.jit_compile,
                )
                results = outcomes(landscape, path, settings.tolerance)
                shares[function][name] = summary(results)
                keys = {"function": function, "variant": name}
                rows += [keys | asdict(result) | {"learning_rate": rate} for result in results]
                for start in range(settings.trajectories):
                    steps, xy = trajectory(path[:, start])
                    paths.append(
                        pd.DataFrame(keys | {"start": start, "step": steps, "x": xy[:, 0], "y": xy[:, 1]})
                    )
                progress.update()

    table = pd.DataFrame(rows)
    table["steps_to_tolerance"] = table["steps_to_tolerance"].astype("Int64")  # empty when never
    with atomic_file("metrics/landscapes.csv") as tmp:
        table.to_csv(tmp, index=False, float_format=FLOAT)
    write_json("metrics/landscapes.json", shares)
    with atomic_dir("plots/landscapes") as out:
        columns = ["function", "variant", "start", "step", "x", "y"]
        (pd.concat(paths) if paths else pd.DataFrame(columns=columns)).to_csv(
            out / "trajectories.csv", index=False, float_format=FLOAT
        )
    share = table.pivot_table("reached_global", "variant", "function", sort=False)
    print(f"Share of {settings.starts} starts ending within {settings.tolerance:g} of a global minimum:")
    print(share[settings.functions].round(3).to_string())


if __name__ == "__main__":
    run_stage(main)
