"""Write outputs so that a crash or an interruption never leaves a half-written file behind.

DVC caches whatever a stage leaves in its outputs, so a partial file would be taken as good. Every
writer here writes to a temporary name in the destination's own folder and renames it when complete:
a rename within one file system is atomic. The temporary name is fixed (`.<name>.tmp`), so what a
killed process (SIGKILL, power loss) leaves behind is replaced by the next attempt, never piled up.
"""

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_csv(path: str | Path, table) -> None:
    """A pandas table as CSV, without its index."""
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)
