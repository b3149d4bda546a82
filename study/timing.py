"""Where a stage's time goes: process start-up and imports, training, and the rest.

Set STUDY_TIMING to a file path and every stage appends one JSON line to it when it ends:
its name, the seconds since its process started (Python start-up and imports included), and the
seconds spent inside the training loops (`training()` blocks) and the floating-point operations
those loops did (`count_flops`, told by study/stacked.py), from which benchmarks/bench_study.py
derives the arithmetic floor of the study on the machine. It runs the whole pipeline that way and
adds the lines up; without the variable nothing is written.
"""

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

_training_seconds = 0.0
_flops = 0.0


@contextmanager
def training():
    """Count the enclosed block as training: the optimizer's compiled steps and their scoring."""
    global _training_seconds
    start = time.perf_counter()
    try:
        yield
    finally:
        _training_seconds += time.perf_counter() - start


def count_flops(flops: float) -> None:
    """Add arithmetic the training loops did (multiply-adds count two)."""
    global _flops
    _flops += flops


def report(main_started: float) -> None:
    """Append the stage's line; `main_started` is when its main() began (imports done)."""
    path = os.environ.get("STUDY_TIMING")
    if not path:
        return
    started = psutil.Process().create_time()
    line = {
        "stage": " ".join([Path(sys.argv[0]).stem, *sys.argv[1:]]),
        "total_seconds": round(time.time() - started, 3),
        "startup_seconds": round(main_started - started, 3),
        "training_seconds": round(_training_seconds, 3),
        "flops": _flops,
    }
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")
