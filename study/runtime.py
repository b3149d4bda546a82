"""Where and how a run executes: the device, seeding and determinism, library versions, and memory.

Everything here is recorded next to each run's metrics, so a number can be traced to what made it.
"""

import contextlib
import ctypes
import gc
import os
import platform
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import psutil
import tensorflow as tf


def setup_device() -> str:
    """Use the first GPU when one is visible (growing its memory as needed), else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores"


def on_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def free_memory_bytes() -> int:
    """Free memory where training runs: the first GPU's, as nvidia-smi reports it, else the machine's."""
    if on_gpu() and shutil.which("nvidia-smi"):
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "--id=0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return int(result.stdout.strip()) * 2**20
    return psutil.virtual_memory().available


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers narrow), at least one.
    It decides how many threads train a group's stacks side by side, which changes speed only: how a
    group splits never depends on the machine (study/stacked.py)."""
    return max(1, len(os.sched_getaffinity(0)))


def configure_determinism(deterministic: bool) -> bool:
    """Turn on TensorFlow's op determinism when params ask for it; return whether it is on.

    With it, an op that has no deterministic kernel raises instead of silently varying between runs.
    tests/test_training.py reruns a training and compares every number.
    """
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return deterministic


def environment(device: str, op_determinism: bool, jit_compile: bool) -> dict:
    return {
        "device": device,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "jit_compile": jit_compile,
        "op_determinism": op_determinism,
    }


class PeakMemory:
    """Peak memory of training above its level just before: process RSS on the CPU, device memory on a GPU.

    Linux lets a process reset its own peak-RSS counter (VmHWM) through /proc/self/clear_refs; where
    that is not possible, a thread samples RSS every few milliseconds instead.
    """

    def __init__(self):
        self.kind = "gpu" if on_gpu() else "rss"
        self.peak_bytes = 0

    def __enter__(self):
        if self.kind == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")
            self._start = tf.config.experimental.get_memory_info("GPU:0")["current"]
            return self
        gc.collect()
        _release_freed_memory()
        self._start = psutil.Process().memory_info().rss
        self._hwm = _reset_hwm()
        if not self._hwm:
            self._sampled = self._start
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.kind == "gpu":
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        elif self._hwm:
            peak = _read_hwm()
        else:
            self._stop.set()
            self._thread.join()
            peak = self._sampled
        self.peak_bytes = max(0, peak - self._start)
        return False

    def _sample(self):
        process = psutil.Process()
        while not self._stop.wait(0.005):
            self._sampled = max(self._sampled, process.memory_info().rss)


def _release_freed_memory() -> None:
    """Hand memory that earlier work freed back to the OS (glibc's malloc_trim): otherwise a later
    measurement reuses it without raising RSS and reads as using nothing."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _read_hwm() > 0
    except OSError:
        return False


def _read_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def map_inherited_file_pages() -> None:
    """In a process forked from a fork server that has only imported, map the file pages (libraries'
    code and data) that the server has mapped, as a spawned process has them after its own imports.

    On fork, Linux does not copy the page-table entries of file mappings: the child maps each such page
    again when it first touches it, and its RSS grows. The ~300 MiB that the server's imports mapped
    would then count, as far as the run touches them (~8 MiB), as the run's own memory. Mapping them
    first takes ~0.2 s. Only mappings identical in both processes are touched; where /proc cannot be
    read (not Linux), nothing is.
    """
    page, server = os.sysconf("SC_PAGE_SIZE"), os.getppid()
    with (
        contextlib.suppress(OSError),
        open("/proc/self/maps") as own,
        open(f"/proc/{server}/maps") as maps,
        open(f"/proc/{server}/pagemap", "rb") as pagemap,
    ):
        mine = set(own)
        for line in maps:
            fields = line.split()
            if line not in mine or len(fields) < 6 or fields[1][0] != "r" or not fields[5].startswith("/"):
                continue  # not here alike, not readable or not a file's
            if fields[5].startswith("/dev/"):
                continue  # a device's memory: never touched
            start, end = (int(address, 16) for address in fields[0].split("-"))
            pagemap.seek(start // page * 8)  # one 8-byte entry per page; bit 63: mapped
            entries = np.frombuffer(pagemap.read((end - start) // page * 8), np.uint64)
            for i in np.flatnonzero(entries >> np.uint64(63)):
                ctypes.string_at(start + int(i) * page, 1)
