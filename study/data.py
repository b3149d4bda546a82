"""MNIST for the study: fetch a faithful copy from the first source that has one, prove it, split it.

A mirror's zip container may differ from the canonical file, so a copy is accepted when its arrays match
the digests in params.yaml. Every file read here is checked before it reaches Keras: foreign or corrupt
data fails with one line naming the file and the problem, not with a shape error deep inside training.
"""

import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from tqdm import tqdm

from study.atomic import atomic_dir, atomic_file
from study.errors import StudyError

KEYS = ("x_train", "y_train", "x_test", "y_test")
MIRROR_HINT = (
    "set MNIST_MIRROR to a URL or a local copy of mnist.npz, or add one to data.sources in params.yaml"
)
BACKOFF_S = 1.0  # wait before an http(s) source's second attempt; doubles after each (tests shorten it)
CHUNK_BYTES = 1 << 16


class _Rejected(Exception):
    """Why a source or a file is unusable; the public functions add where it happened and what to do."""


class _Transient(_Rejected):
    """A failure another attempt at the same URL may not repeat (timeout, reset, 5xx, short body)."""


def sources_with_mirror(sources: list[str]) -> list[str]:
    """The sources to try, MNIST_MIRROR first: a machine without internet names its copy there."""
    mirror = os.environ.get("MNIST_MIRROR", "").strip()
    return [mirror, *(source for source in sources if source != mirror)] if mirror else list(sources)


def fetch_mnist(sources, dest, *, timeout_s: float, retries: int, expected, progress: bool = True) -> str:
    """Put a verified MNIST at `dest` from the first source that gives one; return that source.

    Each candidate is written beside `dest` under a temporary name and renamed only once verified, so an
    error or an interruption never leaves a partial file for DVC to cache.
    """
    failures = []
    for source in sources:
        try:
            with atomic_file(dest) as tmp:
                _copy(source, tmp, timeout_s=timeout_s, retries=retries, progress=progress)
                _read_mnist(tmp, expected)
            return source
        except _Rejected as reason:
            failures.append(f"{source} ({reason})")
    raise StudyError(f"could not get a verified MNIST from {'; '.join(failures)}: {MIRROR_HINT}")


def _copy(source: str, tmp: Path, *, timeout_s: float, retries: int, progress: bool) -> None:
    url = urlparse(source)
    if url.scheme in ("http", "https"):
        return _download(source, tmp, timeout_s=timeout_s, retries=retries, progress=progress)
    if url.scheme not in ("", "file"):
        raise _Rejected(f"unsupported scheme {url.scheme!r}: use http(s)://, file:// or a local path")
    path = Path(urllib.request.url2pathname(url.path) if url.scheme else source).expanduser()
    try:
        shutil.copyfile(path, tmp)
    except OSError as error:
        raise _Rejected(_describe(error)) from None


def _download(url: str, tmp: Path, *, timeout_s: float, retries: int, progress: bool) -> None:
    for attempt in range(retries):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            return _get(url, tmp, timeout_s=timeout_s, progress=progress)
        except _Transient as reason:
            last = reason
    raise _Rejected(f"{last}; gave up after {retries} attempt{'s' if retries > 1 else ''}")


def _get(url: str, tmp: Path, *, timeout_s: float, progress: bool) -> None:
    """One attempt. The socket timeout bounds each wait for a byte: a stalled server fails in timeout_s."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else None
            received = 0
            hidden = None if progress else True  # None: tqdm hides the bar when not on a terminal (logs)
            with tqdm(
                total=size, unit="B", unit_scale=True, desc="mnist.npz", leave=False, disable=hidden
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        error.close()
        reason = f"HTTP {error.code} {_one_line(error.reason)}"
        if error.code in (408, 429) or error.code >= 500:
            raise _Transient(reason) from None
        raise _Rejected(f"{reason}, not retried") from None  # any other 4xx answers the same way every time
    except TimeoutError:
        raise _Transient(f"timed out: no data for {timeout_s:g} s") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise _Transient(f"timed out: no answer in {timeout_s:g} s") from None
        raise _Transient(f"cannot connect: {_describe(error.reason)}") from None
    except (OSError, http.client.HTTPException) as error:
        raise _Transient(_describe(error)) from None
    if size is not None and received != size:
        raise _Transient(f"truncated: connection closed after {received} of {size} bytes")


def verify_mnist(path, expected) -> dict[str, np.ndarray]:
    """Load `path` and prove it is the MNIST that params.yaml's data.expected describes; return its arrays.

    The whole-file digest (expected.file_sha256) identifies only the canonical container; a mirror's copy
    is as good when its arrays match, so the content is what is checked, whichever file this is.
    """
    try:
        return _read_mnist(path, expected)
    except _Rejected as reason:
        raise StudyError(f"{path}: {reason}; run `dvc repro download` to fetch a verified copy") from None


def _read_mnist(path, expected) -> dict[str, np.ndarray]:
    arrays = _load_npz(path, KEYS)
    for part, count in (("train", expected.n_train), ("test", expected.n_test)):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        _check_pair(x, y, (np.uint8,), names=(f"x_{part}", f"y_{part}"))
        if len(x) != count:
            raise _Rejected(f"x_{part} holds {len(x)} images, expected {count}")
    for key in KEYS:
        found = hashlib.sha256(arrays[key].tobytes()).hexdigest()
        if found != expected.array_sha256[key]:
            raise _Rejected(
                f"{key} has sha256 {found[:12]}..., expected {expected.array_sha256[key][:12]}...: "
                "its pixels or labels differ from MNIST's"
            )
    return arrays


def _load_npz(path, keys) -> dict[str, np.ndarray]:
    """Read an .npz without unpickling anything, so a foreign file can only fail, never run code."""
    if not Path(path).is_file():
        raise _Rejected("not found")
    if not zipfile.is_zipfile(path):
        raise _Rejected("not an .npz file: not a zip archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if sorted(npz.files) != sorted(keys):
                raise _Rejected(f"holds arrays {sorted(npz.files)}, expected exactly {list(keys)}")
            return {key: npz[key] for key in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise _Rejected(f"not a readable .npz file: {_one_line(error)}") from None


def check_images(x, y, where) -> None:
    """Check images and labels as the study stores them: raw uint8 or prepared float32 in [0, 1].

    Cheap enough to run on every load, it stops foreign data before Keras turns it into a vague error.
    """
    try:
        _check_pair(x, y, (np.uint8, np.float32))
    except _Rejected as reason:
        raise StudyError(f"{where}: {reason}; rerun `dvc repro` to rebuild it") from None


def _check_pair(x, y, x_dtypes: tuple, names=("x", "y")) -> None:
    x_name, y_name = names
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise _Rejected(f"{x_name} has shape {x.shape}, expected (n, 28, 28) images")
    if y.ndim != 1 or len(y) != len(x):
        raise _Rejected(f"{y_name} has shape {y.shape}, expected ({len(x)},): one label per image")
    if len(x) == 0:
        raise _Rejected(f"{x_name} holds no images")
    if x.dtype not in x_dtypes:
        valid = " or ".join(np.dtype(dtype).name for dtype in x_dtypes)
        raise _Rejected(f"{x_name} has dtype {x.dtype}, expected {valid}")
    if y.dtype != np.uint8:
        raise _Rejected(f"{y_name} has dtype {y.dtype}, expected uint8")
    if y.max() > 9:
        raise _Rejected(f"{y_name} holds label {y.max()}, expected digits 0..9")
    if x.dtype == np.float32 and not np.isfinite(x).all():
        raise _Rejected(f"{x_name} holds NaN or infinite values, expected pixels in [0, 1]")
    if x.dtype == np.float32 and (x.min() < 0 or x.max() > 1):
        raise _Rejected(f"{x_name} holds values in [{x.min():g}, {x.max():g}], expected pixels in [0, 1]")


def split_train_validation(x, y, validation_size: int, seed: int, train_size: int | None = None):
    """Hold `validation_size` random training images out; train on `train_size` of the rest (None: all).

    The permutation depends on the seed only, so the same params always hold out the same images.
    """
    order = np.random.default_rng(seed).permutation(len(x))
    validation, rest = order[:validation_size], order[validation_size:]
    train = rest[:train_size] if train_size is not None else rest
    return (x[train], y[train]), (x[validation], y[validation])


def write_prepared(folder, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write each split as `<name>.npz` (x float32 in [0, 1], y uint8); the folder appears only when complete.

    Compressed: scaled MNIST shrinks from 220 MB to 30 MB in DVC's cache, for about a second more per stage.
    """
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        for name, (x, y) in splits.items():
            try:
                _check_pair(x, y, (np.float32,))
            except _Rejected as reason:
                raise StudyError(f"{folder / name}.npz: not written: {reason}") from None
            np.savez_compressed(tmp / f"{name}.npz", x=x, y=y)


def load_split(folder, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one prepared split (train, validation or test) as (images, labels), checked."""
    path = Path(folder) / f"{name}.npz"
    if not path.is_file():
        raise StudyError(f"{path} not found: run `dvc repro prepare` to write the prepared splits")
    try:
        arrays = _load_npz(path, ("x", "y"))
        _check_pair(arrays["x"], arrays["y"], (np.float32,))
    except _Rejected as reason:
        raise StudyError(f"{path}: {reason}; run `dvc repro prepare` to rewrite it") from None
    return arrays["x"], arrays["y"]


def _describe(error) -> str:
    """An exception's reason without its errno or traceback: `Connection refused`."""
    return _one_line(getattr(error, "strerror", None) or str(error) or type(error).__name__)


def _one_line(text) -> str:
    return " ".join(str(text).split())
