"""Train a variant's runs (one per seed) as one stacked group, and log each run as its own record.

The stacking itself lives in study/stacked.py. Here: the honest cost of one run (measured alone, see
`measure_solo`), one progress bar over runs x epochs, one DVCLive log per run written as its epochs
finish, and the self-describing record (runs/<variant>/seed-<seed>/record.json) that compare and the
report read: settings, seed, per-epoch curves, time, memory, divergence and the environment.
"""

from pathlib import Path

from dvclive import Live
from tqdm import tqdm

from study.params import Study
from study.stacked import MemberResult, measure_solo, train_group


def train_variant(
    study: Study,
    variant_name: str,
    seeds: list[int],
    train,
    validation,
    live_dirs: list[Path],
    learning_rates=None,
) -> list[MemberResult]:
    """Train one run per seed; each record carries the time and memory one run costs on its own."""
    solo = measure_solo(study, variant_name, train)
    lives = [Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) for folder in live_dirs]
    total = len(seeds) * study.train.epochs
    with tqdm(total=total, desc=f"train {variant_name} ({len(seeds)} runs)", unit="epoch") as progress:

        def on_epoch(epoch: int, rows: list[dict | None], first: int) -> None:
            for live, row in zip(lives[first : first + len(rows)], rows, strict=True):
                if row is not None:
                    log_epoch(live, row)
            progress.update(len(rows))

        results = train_group(
            study,
            variant_name,
            seeds,
            train,
            validation,
            learning_rates,
            on_epoch=on_epoch,
            seconds_per_step=solo["seconds_per_step"],
        )
    for live, result in zip(lives, results, strict=True):
        live.summary["diverged"] = result.record["diverged"]
        live.end()
        result.record.update(
            seconds_per_step=solo["seconds_per_step"],
            peak_memory_bytes=solo["peak_memory_bytes"],
            memory_kind=solo["memory_kind"],
        )
    return results


def log_epoch(live: Live, row: dict) -> None:
    """DVCLive's layout: train/loss, val/accuracy, ... so that DVC's plots group them."""
    for name, value in row.items():
        if name != "epoch" and value is not None:
            live.log_metric(_live_name(name), value, plot=True)
    live.next_step()


def _live_name(name: str) -> str:
    if name.startswith("val_"):
        return f"val/{name[4:]}"
    return name if name in ("learning_rate", "seconds", "steps") else f"train/{name}"
