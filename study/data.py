"""MNIST for the study: fetch a faithful copy from the first source that has one, prove it, split it.

A mirror's zip container may differ from the canonical file, so a copy is accepted when its arrays match
the digests in params.yaml. Every file read here is checked before it reaches Keras: foreign or corrupt
data fails with one line naming the file and the problem, not with a shape error deep inside training.

A source can only cost so much: each gets at most DEADLINE_FACTOR x data.timeout_s in all (retries
included), however slowly its bytes trickle; no source may give more than `size_limit` bytes (twice
MNIST uncompressed: a larger Content-Length is refused before a byte is read); a local mirror must be a
regular file (not /dev/zero, a pipe or a folder); redirects are followed to http(s) only; and an .npz's
members are checked against their declared sizes before anything is decompressed.
"""

import functools
import hashlib
import http.client
import io
import math
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from tqdm import tqdm

from study.atomic import atomic_dir, atomic_file
from study.errors import StudyError, describe_os_error
from study.params import IMAGE_PIXELS

KEYS = ("x_train", "y_train", "x_test", "y_test")
MIRROR_HINT = (
    "set MNIST_MIRROR to a URL or a local copy of mnist.npz, or add one to data.sources in params.yaml"
)
BACKOFF_S = 1.0  # wait before an http(s) source's second attempt; doubles after each (tests shorten it)
CHUNK_BYTES = 1 << 16
DEADLINE_FACTOR = 10  # a source gets at most this many data.timeout_s in all: 5 min at the default 30 s
HEADER_BYTES = 1 << 16  # room for an .npy member's header and a zip's own records
MAX_SPLIT_BYTES = 1 << 31  # a prepared split's array: MNIST's largest is 47 MB
# Prepared splits are stored uncompressed with fixed timestamps: the same arrays give the same bytes on
# every machine (deflate's output varies between zlib builds), so a rebuilt data/prepared has the hash
# dvc.lock records, and nothing after `prepare` re-runs for it.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class _Rejected(Exception):
    """Why a source or a file is unusable; the public functions add where it happened and what to do."""


class _Transient(_Rejected):
    """A failure another attempt at the same URL may not repeat (timeout, reset, 5xx, short body)."""


def sources_with_mirror(sources: list[str]) -> list[str]:
    """The sources to try, MNIST_MIRROR first: a machine without internet names its copy there."""
    mirror = os.environ.get("MNIST_MIRROR", "").strip()
    return [mirror, *(source for source in sources if source != mirror)] if mirror else list(sources)


def raw_bytes(expected) -> int:
    """What MNIST's four arrays hold uncompressed: a byte per pixel and a byte per label."""
    return (expected.n_train + expected.n_test) * (IMAGE_PIXELS + 1)


def size_limit(expected) -> int:
    """The most bytes any source may give: a faithful copy, compressed or not, stays well below it."""
    return 2 * raw_bytes(expected) + 4 * HEADER_BYTES


def fetch_mnist(
    sources, dest, *, timeout_s: float, retries: int, expected, progress: bool = True, deadline_s=None
) -> str:
    """Put a verified MNIST at `dest` from the first source that gives one; return that source.

    Each candidate is written beside `dest` under a temporary name and renamed only once verified, so an
    error or an interruption never leaves a partial file for DVC to cache. `deadline_s` bounds each
    source, retries included (default DEADLINE_FACTOR x timeout_s).
    """
    limits = {"limit": size_limit(expected), "deadline_s": deadline_s or DEADLINE_FACTOR * timeout_s}
    failures = []
    for source in sources:
        try:
            with atomic_file(dest) as tmp:
                _copy(source, tmp, timeout_s=timeout_s, retries=retries, progress=progress, **limits)
                _read_mnist(tmp, expected)
            return source
        except _Rejected as reason:
            failures.append(f"{source} ({_one_line(reason)})")
    raise StudyError(f"could not get a verified MNIST from {'; '.join(failures)}: {MIRROR_HINT}")


def _copy(source: str, tmp: Path, *, timeout_s, retries, progress, limit: int, deadline_s: float) -> None:
    url = urlparse(source)
    if url.scheme in ("http", "https"):
        return _download(source, tmp, timeout_s, retries, progress, limit=limit, deadline_s=deadline_s)
    if url.scheme not in ("", "file"):
        raise _Rejected(f"unsupported scheme {url.scheme!r}: use http(s)://, file:// or a local path")
    path = Path(urllib.request.url2pathname(url.path) if url.scheme else source).expanduser()
    try:
        found = path.stat()
    except OSError as error:
        raise _Rejected(_describe(error)) from None
    if not stat.S_ISREG(found.st_mode):
        raise _Rejected(
            "not a regular file: a local mirror must be a copy of mnist.npz, not a device or a pipe"
        )
    if found.st_size > limit:
        raise _Rejected(f"{found.st_size} bytes, more than any copy of MNIST ({limit} at most)")
    try:
        source_file = open(path, "rb")  # noqa: SIM115 (closed below; reading and writing fail differently)
    except OSError as error:
        raise _Rejected(_describe(error)) from None
    with source_file, _writable(tmp) as out:
        received = 0
        while True:
            try:
                chunk = source_file.read(CHUNK_BYTES)
            except OSError as error:
                raise _Rejected(_describe(error)) from None
            if not chunk:
                return
            received += len(chunk)
            if received > limit:  # it grew while being read
                raise _Rejected(f"more than {limit} bytes: more than any copy of MNIST")
            _write(out, chunk, tmp)


def _download(url: str, tmp: Path, timeout_s, retries, progress, *, limit: int, deadline_s: float) -> None:
    deadline, attempts = time.monotonic() + deadline_s, 0
    while attempts < retries:
        if attempts:
            wait = BACKOFF_S * 2 ** (attempts - 1)
            if time.monotonic() + wait >= deadline:
                break  # no time left for another attempt
            time.sleep(wait)
        attempts += 1
        try:
            return _get(url, tmp, timeout_s, progress, limit=limit, deadline=deadline, deadline_s=deadline_s)
        except _Transient as reason:
            last = reason
    raise _Rejected(f"{last}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}")


def _get(url: str, tmp: Path, timeout_s, progress, *, limit: int, deadline: float, deadline_s: float) -> None:
    """One attempt. The socket timeout bounds each wait for a byte; the deadline bounds the whole source:
    at the deadline a timer shuts the attempt's connections, whatever read they are in (headers too)."""
    connections: list[http.client.HTTPConnection] = []
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, args=(connections,))
    timer.start()
    received, size = 0, None
    too_slow = f"too slow: not done within {deadline_s:g} s ({DEADLINE_FACTOR} x data.timeout_s per source)"
    try:
        with _opener(connections).open(url, timeout=timeout_s) as response, _writable(tmp) as out:
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else None
            if size is not None and size > limit:
                raise _Rejected(f"announces {size} bytes, more than any copy of MNIST ({limit} at most)")
            hidden = None if progress else True  # None: tqdm hides the bar when not on a terminal (logs)
            with tqdm(
                total=size, unit="B", unit_scale=True, desc="mnist.npz", leave=False, disable=hidden
            ) as bar:
                while chunk := response.read1(CHUNK_BYTES):  # what has arrived: a trickle returns often
                    received += len(chunk)
                    if received > limit:
                        raise _Rejected(f"sent more than {limit} bytes, more than any copy of MNIST")
                    if time.monotonic() > deadline:
                        raise _Rejected(too_slow)
                    _write(out, chunk, tmp)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        error.close()
        reason = f"HTTP {error.code} {_one_line(error.reason)}"
        if error.code in (408, 429) or error.code >= 500:
            raise _Transient(reason) from None
        raise _Rejected(f"{reason}, not retried") from None  # any other 4xx answers the same way every time
    except (OSError, http.client.HTTPException, ValueError) as error:
        if time.monotonic() >= deadline:
            raise _Rejected(too_slow) from None
        raise _Transient(_network_reason(error, timeout_s)) from None
    finally:
        timer.cancel()
    if time.monotonic() >= deadline:
        raise _Rejected(too_slow)
    if size is not None and received != size:
        raise _Transient(f"truncated: connection closed after {received} of {size} bytes")


def _network_reason(error, timeout_s) -> str:
    if isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError):
        return f"timed out: no data for {timeout_s:g} s"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect: {_describe(error.reason)}"
    return _describe(error)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only, without reading the redirect's own body (it could be endless)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        fp.close()
        if urlparse(newurl).scheme not in ("http", "https"):
            raise _Rejected(f"redirected to {newurl}: only http(s) redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(connections: list) -> urllib.request.OpenerDirector:
    """urllib's opener, keeping every connection it makes in `connections`, so that they can be shut."""

    def tracked(connection_class, *args, **kwargs):
        connection = connection_class(*args, **kwargs)
        connections.append(connection)
        return connection

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(functools.partial(tracked, http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(
                functools.partial(tracked, http.client.HTTPSConnection), req, context=self._context
            )

    return urllib.request.build_opener(Http, Https, _HttpOnlyRedirects)


def _shut(connections: list) -> None:
    for connection in list(connections):
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with suppress(OSError):  # already closed: nothing to shut
                sock.shutdown(socket.SHUT_RDWR)


class _writable:
    """`open(tmp, "wb")`, where failing to write is the destination's fault, not the source's."""

    def __init__(self, tmp: Path):
        self.tmp = tmp

    def __enter__(self):
        try:
            self.file = open(self.tmp, "wb")
        except OSError as error:
            raise StudyError(f"{self.tmp.parent}: cannot write: {describe_os_error(error)}") from None
        return self.file

    def __exit__(self, *exc):
        try:
            self.file.close()
        except OSError as error:
            if exc[0] is None:
                raise StudyError(f"{self.tmp.parent}: cannot write: {describe_os_error(error)}") from None
        return False


def _write(out, chunk: bytes, tmp: Path) -> None:
    try:
        out.write(chunk)
    except OSError as error:
        raise StudyError(f"{tmp.parent}: cannot write: {describe_os_error(error)}") from None


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
    limits = {}
    for part, count in (("train", expected.n_train), ("test", expected.n_test)):
        limits[f"x_{part}"] = count * IMAGE_PIXELS + HEADER_BYTES
        limits[f"y_{part}"] = count + HEADER_BYTES
    arrays = _load_npz(path, limits)
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


def _load_npz(path, limits: dict[str, int]) -> dict[str, np.ndarray]:
    """Read an .npz's arrays, `limits` naming each and its most bytes, without unpickling anything (a
    foreign file can only fail, never run code) and without decompressing more than its limit: each
    member's declared size, and the shape its .npy header declares, are checked before it is read."""
    if not Path(path).is_file():
        raise _Rejected("not found")
    if not zipfile.is_zipfile(path):
        raise _Rejected("not an .npz file: not a zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            if sorted(members) != sorted(limits) or len(members) != len(archive.infolist()):
                names = sorted(info.filename.removesuffix(".npy") for info in archive.infolist())
                raise _Rejected(f"holds arrays {names}, expected exactly {sorted(limits)}")
            arrays = {}
            for key in limits:
                info = members[key]
                if info.file_size > limits[key]:
                    raise _Rejected(
                        f"{key} declares {info.file_size} bytes uncompressed, more than its {limits[key]} "
                        "at most: not decompressed"
                    )
                with archive.open(info) as member:
                    _check_header(key, member, info.file_size)
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise _Rejected(f"not a readable .npz file: {_one_line(error)}") from None


def _check_header(key: str, member, declared: int) -> None:
    version = np.lib.format.read_magic(member)
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read_header(member)
    if dtype.hasobject:
        raise _Rejected(f"{key} holds Python objects, expected numbers")
    if math.prod(shape) * dtype.itemsize > declared:
        raise _Rejected(f"{key} declares shape {shape}, more than its {declared} bytes can hold")


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


def scale(pixels: np.ndarray) -> np.ndarray:
    """MNIST's pixels (uint8) as the network reads them: float32 in [0, 1], as the Keras primer feeds them."""
    return pixels.astype(np.float32) / 255


def split_train_validation(x, y, validation_size: int, seed: int, train_size: int | None = None):
    """Hold `validation_size` random training images out; train on `train_size` of the rest (None: all).

    The permutation depends on the seed only, so the same params always hold out the same images.
    """
    order = np.random.default_rng(seed).permutation(len(x))
    validation, rest = order[:validation_size], order[validation_size:]
    train = rest[:train_size] if train_size is not None else rest
    return (x[train], y[train]), (x[validation], y[validation])


def write_prepared(folder, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write each split as `<name>.npz`: MNIST's own pixels (uint8) and labels; the folder appears only
    when complete. Images given already scaled (float32, as `load_split` returns them) are stored as the
    pixels they came from. Byte for byte the same on every machine (ZIP_DATE says why).
    """
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        for name, (x, y) in splits.items():
            try:
                pixels = _pixels(x)
                _check_pair(pixels, y, (np.uint8,))
            except _Rejected as reason:
                raise StudyError(f"{folder / name}.npz: not written: {reason}") from None
            _write_npz(tmp / f"{name}.npz", {"x": pixels, "y": y})


def _pixels(x: np.ndarray) -> np.ndarray:
    if x.dtype != np.float32:
        return x
    _check_pair(x, np.zeros(len(x), np.uint8), (np.float32,))
    pixels = np.rint(x * 255).astype(np.uint8)
    if not np.array_equal(scale(pixels), x):
        raise _Rejected("x holds values that are not pixels / 255: not scaled MNIST")
    return pixels


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.create_system, info.external_attr = 3, 0o644 << 16  # Unix, rw-r--r--: as on any machine
            archive.writestr(info, buffer.getvalue())


def load_split(folder, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one prepared split (train, validation or test) as (images float32 in [0, 1], labels), checked."""
    path = Path(folder) / f"{name}.npz"
    if not path.is_file():
        raise StudyError(f"{path} not found: run `dvc repro prepare` to write the prepared splits")
    try:
        arrays = _load_npz(path, {"x": MAX_SPLIT_BYTES, "y": MAX_SPLIT_BYTES})
        _check_pair(arrays["x"], arrays["y"], (np.uint8,))
    except _Rejected as reason:
        raise StudyError(f"{path}: {reason}; run `dvc repro prepare` to rewrite it") from None
    return scale(arrays["x"]), arrays["y"]


def _describe(error) -> str:
    """An exception's reason without its errno or traceback: `Connection refused`."""
    return _one_line(getattr(error, "strerror", None) or str(error) or type(error).__name__)


def _one_line(text) -> str:
    return " ".join(str(text).split())
