"""Write outputs so that a crash, an interruption or a second run never leaves a half-written file behind.

DVC caches whatever a stage leaves in its outputs, so a partial file would be taken as good. Every
writer here writes to a temporary name in the destination's own folder and renames it when complete:
a rename within one file system is atomic. The temporary name is unique to the process and the call
(`.<name>.<pid>-<random>.tmp`), so two processes writing the same output (a stage orphaned by a killed
`dvc repro` and the next `dvc repro`) never share one. What a killed process (SIGKILL, power loss)
leaves behind is removed by the next writer of that output, once that process no longer runs.
"""

import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from study.errors import StudyError, describe_os_error


def temporary_name(path: Path) -> Path:
    """`.<name>.<pid>-<random>.tmp` beside `path`: this process's, and this call's, alone."""
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    path = _prepared(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise StudyError(f"{path}: not written: {describe_os_error(error)}") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds.

    The previous folder is renamed aside, then the new one into place, then the old one removed: at
    no moment does `path` hold a mixture of the two.
    """
    path = _prepared(path)
    tmp, old = temporary_name(path), temporary_name(path)
    try:
        tmp.mkdir()
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as error:
        raise StudyError(f"{path}: not written: {describe_os_error(error)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_csv(path: str | Path, table) -> None:
    """A pandas table as CSV, without its index."""
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)


def _prepared(path: str | Path) -> Path:
    """`path` as a Path whose folder exists, with any temporary copy a dead process left removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StudyError(f"{path}: not written: {describe_os_error(error)}") from None
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = leftover.name[len(path.name) + 2 :].partition("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            with suppress(OSError):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return path
