"""Time the whole default study and say where the time goes: `python benchmarks/bench_study.py`.

Copies the project into a temporary git repository, runs `dvc repro` there from scratch with MNIST
from a local mirror, and has every stage report (study/timing.py) how long its process lived, how
much of that was Python start-up and imports, and how much was training (the stacked trainer's
loops, XLA compilation included) and how much arithmetic that training did. The rest of a stage is
data loading, saving and writing records; what lies between stages is DVC's own work (hashing,
locking, checking out). The arithmetic floor is the study's arithmetic at the rate this CPU sustains
on a large matrix product (benchmarks/cpu_peak.py), measured just before the run: no implementation
of the same protocol trains faster on this machine. Writes benchmarks/study_time.md and
benchmarks/study_time.json.

    python benchmarks/bench_study.py [--mirror ../shared/data/mnist.npz] [-S tune.points=5 ...]
    python benchmarks/bench_study.py --keep   # the same, then its results replace the project's
    python benchmarks/bench_study.py --here   # `dvc repro -f` in the project itself: the outputs stay

`--keep` and `--here` time the run whose outputs are then committed, so that the figures in README and
the committed results come from one run; `--keep` from scratch in a fresh copy, as a clone would.
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
    parser.add_argument("--keep", action="store_true", help="copy the fresh copy's results into the project")
    args = parser.parse_args()
    if (args.here or args.keep) and args.overrides:
        parser.error("--here and --keep run the project's own params.yaml: edit it instead of passing -S")
    if args.here and args.keep:
        parser.error("--here already leaves its results in the project")

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
        peak = cpu_peak(env)
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, env=env, check=True)
        wall = time.perf_counter() - start
        stages = [json.loads(line) for line in timings.read_text().splitlines()]
        if args.keep:
            keep_results(repo)
    result = breakdown(wall, stages, args.overrides, peak, here=args.here)
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
    if overrides:  # as it is otherwise: dvc.lock records its hash, and a rewrite would change it
        override(repo / "params.yaml", overrides)
    # DVCLive wants a commit to attach its experiment to, as in a real clone.
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "bench"), ("EMAIL", "bench@localhost"))
    }
    for command in (["git", "add", "-A"], ["git", "commit", "-qm", "benchmark copy"]):
        subprocess.run(command, cwd=repo, env=env | identity, check=True)


def override(path: Path, overrides: list[str]) -> None:
    """params.yaml with each `key=value` (a YAML value) set."""
    yaml = YAML()
    raw = yaml.load(path.read_text())
    for setting in overrides:
        key, _, value = setting.partition("=")
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = YAML(typ="safe").load(value)
    yaml.dump(raw, path)


def keep_results(repo: Path) -> None:
    """The fresh copy's results over the project's: every output dvc.lock lists (each replaced whole,
    so no file of an older run stays), dvc.lock itself and DVC's cache. The code and params are the
    project's own, so `dvc status` there is then clean."""
    lock = YAML(typ="safe").load((repo / "dvc.lock").read_text())
    outs = sorted({out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])})
    for path in outs:
        source, target = repo / path, ROOT / path
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shutil.copy2(repo / "dvc.lock", ROOT / "dvc.lock")
    shutil.copytree(repo / ".dvc" / "cache", ROOT / ".dvc" / "cache", dirs_exist_ok=True)


def cpu_peak(env: dict) -> float:
    """GFLOP/s of a large XLA-compiled matrix product on this machine, in a fresh process."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cpu_peak.py")],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["gflops"]


def breakdown(wall: float, stages: list[dict], overrides: list[str], peak: float, here: bool = False) -> dict:
    by_kind: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for stage in stages:
        kind = by_kind[stage["stage"].split()[0]]
        kind["stages"] += 1
        for key in ("total_seconds", "startup_seconds", "training_seconds", "flops"):
            kind[key] += stage.get(key, 0.0)
    total = {
        key: sum(s.get(key, 0.0) for s in stages)
        for key in ("total_seconds", "startup_seconds", "training_seconds", "flops")
    }
    training = total["training_seconds"]
    floor = total["flops"] / (peak * 1e9)
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
        "training_tflop": round(total["flops"] / 1e12, 2),
        "peak_gflops": peak,
        "training_gflops": round(total["flops"] / training / 1e9, 1) if training else None,
        "arithmetic_floor_seconds": round(floor, 1),
        "stages": len(stages),
        "by_stage": {
            name: {k: round(v / 1e12, 2) if k == "flops" else round(v, 1) for k, v in kind.items()}
            for name, kind in by_kind.items()
        },
    }


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | {int(k['stages'])} | {k['total_seconds']:.1f} | {k['startup_seconds']:.1f} | "
        f"{k['training_seconds']:.1f} | {k['flops']:.2f} | {rate(k['flops'], k['training_seconds'])} |"
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

## The arithmetic floor

The training did {result["training_tflop"]} TFLOP (every image of every step, forward pass and gradients,
and every validation pass: multiply-adds count two; activations and optimizer updates left out). This
CPU sustains {result["peak_gflops"]} GFLOP/s on a large matrix product (`benchmarks/cpu_peak.py`), so
no implementation of the same protocol trains in less than **{result["arithmetic_floor_seconds"]} s**
here. The stacked trainer ran at {result["training_gflops"]} GFLOP/s: its products are small (a batch
of 1 to 32 images per member and step) and a step's updates read and write every weight.

| stage | processes | seconds | start-up s | training s | training TFLOP | GFLOP/s |
| --- | --- | --- | --- | --- | --- | --- |
{rows}
"""


def rate(tflop: float, seconds: float) -> str:
    return f"{tflop * 1e3 / seconds:.0f}" if seconds > 0.5 and tflop > 0 else "—"


if __name__ == "__main__":
    main()
