"""Time the whole default study and say where the time goes: `python benchmarks/bench_study.py`.

Copies the project into a temporary git repository, runs `dvc repro` there from scratch with MNIST
from a local mirror, and has every stage report (study/timing.py) how long its process lived, how
much of that was Python start-up and imports, and how much was training (the stacked trainer's
loops, XLA compilation included). The rest of a stage is data loading, saving and writing records;
what lies between stages is DVC's own work (hashing, locking, checking out). Writes
benchmarks/study_time.md and benchmarks/study_time.json.

    python benchmarks/bench_study.py [--mirror ../shared/data/mnist.npz] [-S tune.points=5 ...]
    python benchmarks/bench_study.py --here   # `dvc repro -f` in the project itself: the outputs stay

`--here` times the run whose outputs are then committed, so that the figures in README and the
committed results come from one run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ["dvc.yaml", "params.yaml", "stages", "study", "reports", ".dvc/plots", ".dvcignore", ".gitignore"]
OUTPUTS = ["study.html", "study.ipynb", "__pycache__"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("-S", dest="overrides", action="append", default=[], help="params key=value (YAML)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "study_time"))
    parser.add_argument("--here", action="store_true", help="dvc repro -f in the project itself")
    args = parser.parse_args()
    if args.here and args.overrides:
        parser.error("--here runs the project's own params.yaml: edit it instead of passing -S")

    with tempfile.TemporaryDirectory(prefix="study-bench-") as folder:
        timings = Path(folder) / "timing.jsonl"
        env = {**os.environ, "MNIST_MIRROR": args.mirror, "STUDY_TIMING": str(timings)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the stages' python, dvc
        if args.here:
            repo, command = ROOT, ["dvc", "repro", "-f"]
            # From scratch means every tuning trial too: an Optuna database left by an earlier run would
            # let the searches resume and train nothing.
            for database in ROOT.glob("tuning/*/optuna.db*"):
                database.unlink()
        else:
            repo, command = Path(folder) / "study", ["dvc", "repro"]
            repo.mkdir()
            copy_project(repo, args.overrides, env)
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, env=env, check=True)
        wall = time.perf_counter() - start
        stages = [json.loads(line) for line in timings.read_text().splitlines()]
    result = breakdown(wall, stages, args.overrides, here=args.here)
    Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def copy_project(repo: Path, overrides: list[str], env: dict) -> None:
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    for name in PROJECT:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*OUTPUTS), dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    yaml = YAML()
    raw = yaml.load((repo / "params.yaml").read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = YAML(typ="safe").load(value)
    yaml.dump(raw, repo / "params.yaml")
    # DVCLive wants a commit to attach its experiment to, as in a real clone.
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "bench"), ("EMAIL", "bench@localhost"))
    }
    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "benchmark copy"]):
        subprocess.run(command, cwd=repo, env=env | identity, check=True)


def breakdown(wall: float, stages: list[dict], overrides: list[str], here: bool = False) -> dict:
    by_kind: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for stage in stages:
        kind = by_kind[stage["stage"].split()[0]]
        kind["stages"] += 1
        for key in ("total_seconds", "startup_seconds", "training_seconds"):
            kind[key] += stage[key]
    total = {
        key: sum(s[key] for s in stages) for key in ("total_seconds", "startup_seconds", "training_seconds")
    }
    training = total["training_seconds"]
    return {
        "command": "python benchmarks/bench_study.py "
        + ("--here" if here else " ".join(f"-S {o}" for o in overrides)),
        "where": "the project itself (`dvc repro -f`)" if here else "a fresh temporary copy (`dvc repro`)",
        "wall_seconds": round(wall, 1),
        "training_seconds": round(training, 1),
        "startup_seconds": round(total["startup_seconds"], 1),
        "in_stage_other_seconds": round(total["total_seconds"] - total["startup_seconds"] - training, 1),
        "dvc_seconds": round(wall - total["total_seconds"], 1),
        "overhead_share": round(1 - training / wall, 3),
        "stages": len(stages),
        "by_stage": {name: {k: round(v, 1) for k, v in kind.items()} for name, kind in by_kind.items()},
    }


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | {int(k['stages'])} | {k['total_seconds']:.1f} | {k['startup_seconds']:.1f} | "
        f"{k['training_seconds']:.1f} |"
        for name, k in result["by_stage"].items()
    )
    return f"""# Where the default study's time goes

Command: `{result["command"].strip()}`: every stage of the pipeline from scratch, in {result["where"]}.

- Wall time: **{result["wall_seconds"]} s** for {result["stages"]} stages.
- Training (the stacked trainer's loops, XLA compilation included): {result["training_seconds"]} s.
- Python start-up and imports (TensorFlow above all), per stage process: {result["startup_seconds"]} s.
- The rest inside stages (loading data, saving models, writing records, the report's kernel): \
{result["in_stage_other_seconds"]} s.
- DVC between stages (hashing, locking): {result["dvc_seconds"]} s.
- Overhead around training: **{result["overhead_share"]:.0%}** of the wall time.

| stage | processes | seconds | start-up s | training s |
| --- | --- | --- | --- | --- |
{rows}
"""


if __name__ == "__main__":
    main()
