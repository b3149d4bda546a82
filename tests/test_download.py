"""fetch_mnist against real HTTP servers on 127.0.0.1 that misbehave the ways mirrors do, or worse.

Every failure must end in one StudyError line naming each source and why it failed, and must leave
nothing at the destination or beside it: DVC would cache a partial file as if it were MNIST. A hostile
source (endless, trickling, huge, a zip bomb, a device) must cost no more than its deadline and a few
chunks of memory. Every server here stops by itself: its loops end when the test does, or after
TEST_LIMIT_S.
"""

import contextlib
import io
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from study import data, params
from study.data import fetch_mnist, sources_with_mirror, verify_mnist
from study.errors import StudyError
from study.params import ExpectedData
from tests.fake_mnist import make_fake_mnist, write_params

ROOT = Path(__file__).parents[1]
REAL_MNIST = ROOT.parent / "shared/data/mnist.npz"
TEST_LIMIT_S = 20  # no test here should come near this; a hang fails instead of blocking the suite


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake")
    expected = make_fake_mnist(folder / "mnist.npz", n_train=300, n_test=100)
    make_fake_mnist(folder / "other.npz", n_train=300, n_test=100, seed=1)
    return SimpleNamespace(
        path=folder / "mnist.npz",
        body=(folder / "mnist.npz").read_bytes(),
        other=(folder / "other.npz").read_bytes(),
        raw_expected=expected,
        expected=ExpectedData.model_validate(expected),
    )


@pytest.fixture(autouse=True)
def bounded(monkeypatch):
    """Short backoff, no mirror from the caller's shell, and a hard time limit for each test."""
    monkeypatch.setattr(data, "BACKOFF_S", 0.01)
    monkeypatch.delenv("MNIST_MIRROR", raising=False)

    def too_long(*_):
        pytest.fail(f"took longer than {TEST_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(TEST_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests[self.path] += 1
        self.server.routes[self.path](self)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start a server whose routes map a path to a function answering the request; stop it afterwards."""
    servers = []
    release = threading.Event()  # lets stalled handlers finish when the test is over

    def start(routes):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads, server.block_on_close = True, False
        server.routes, server.requests, server.release = routes, Counter(), release
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
        return server

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def send(body, status=200, length=None, headers=()):
    def answer(handler):
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def half_then(then):
    """Send headers promising the whole file and half of it, then `then(handler)`."""

    def answer(handler):
        body = handler.server.body
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        then(handler)

    return answer


def stall(handler):
    handler.server.release.wait(TEST_LIMIT_S)


def reset(handler):
    # Linger 0: close() sends a TCP reset, as a crashed proxy does, rather than an orderly end.
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()


def fetch(fake, sources, dest, **options):
    options = {"timeout_s": 2.0, "retries": 3, "expected": fake.expected, "progress": False} | options
    return fetch_mnist(sources, dest, **options)


def assert_failed_cleanly(error, dest, *sources_and_reasons):
    message = str(error.value)
    assert "\n" not in message
    assert "MNIST_MIRROR" in message
    for source, reason in sources_and_reasons:
        assert f"{source} (" in message
        assert reason in message.split(f"{source} (", 1)[1]
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left beside it


def refused_url():
    """A URL on a port nothing listens on: bind a port, then free it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist.npz"


def test_good_file(fake, serve, tmp_path):
    server = serve({"/mnist.npz": send(fake.body)})
    dest = tmp_path / "raw/mnist.npz"
    assert fetch(fake, [server.url("/mnist.npz")], dest) == server.url("/mnist.npz")
    assert dest.read_bytes() == fake.body
    assert list(dest.parent.iterdir()) == [dest]
    assert server.requests["/mnist.npz"] == 1


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_local_copy(fake, tmp_path, as_url):
    source = fake.path.as_uri() if as_url else str(fake.path)
    dest = tmp_path / "raw/mnist.npz"
    assert fetch(fake, [source], dest) == source
    assert dest.read_bytes() == fake.body


def test_mirror_is_tried_first(fake, serve, tmp_path, monkeypatch):
    server = serve({"/mnist.npz": send(fake.body)})
    monkeypatch.setenv("MNIST_MIRROR", "")
    assert sources_with_mirror([server.url("/mnist.npz")]) == [server.url("/mnist.npz")]
    monkeypatch.setenv("MNIST_MIRROR", str(fake.path))
    sources = sources_with_mirror([server.url("/mnist.npz")])
    assert sources == [str(fake.path), server.url("/mnist.npz")]
    assert fetch(fake, sources, tmp_path / "raw/mnist.npz") == str(fake.path)
    assert server.requests["/mnist.npz"] == 0


@pytest.mark.parametrize("route", [stall, half_then(stall)], ids=["before-headers", "mid-file"])
def test_stalled_server_fails_within_timeout(fake, serve, tmp_path, route):
    server = serve({"/mnist.npz": route})
    server.body = fake.body
    dest = tmp_path / "raw/mnist.npz"
    start = time.monotonic()
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest, timeout_s=0.5, retries=2)
    assert time.monotonic() - start < 2 * 0.5 + 1.5
    assert server.requests["/mnist.npz"] == 2
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), "timed out"))


def test_connection_closed_mid_file_is_retried(fake, serve, tmp_path):
    server = serve({"/mnist.npz": half_then(reset)})
    server.body = fake.body
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert server.requests["/mnist.npz"] == 3
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), "3 attempts"))
    assert "reset" in str(error.value) or "truncated" in str(error.value)


def test_truncated_file_is_retried(fake, serve, tmp_path):
    server = serve({"/mnist.npz": send(fake.body[:-1000], length=len(fake.body))})
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert server.requests["/mnist.npz"] == 3
    short = f"truncated: connection closed after {len(fake.body) - 1000} of {len(fake.body)} bytes"
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), short))


@pytest.mark.parametrize(
    ("content", "reason"),
    [("other", "x_train has sha256"), ("garbage", "not an .npz file")],
    ids=["wrong-digest", "garbage"],
)
def test_wrong_content_is_rejected(fake, serve, tmp_path, content, reason):
    body = fake.other if content == "other" else b"<html>not found</html>" * 100
    server = serve({"/mnist.npz": send(body)})
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert server.requests["/mnist.npz"] == 1  # the server answered in full: asking again gives the same
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), reason))


def test_not_found_is_not_retried(fake, serve, tmp_path):
    server = serve({"/mnist.npz": send(b"no such file", status=404)})
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert server.requests["/mnist.npz"] == 1
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), "HTTP 404"))


def test_server_error_is_retried(fake, serve, tmp_path):
    def fail_once(handler):
        first = handler.server.requests["/mnist.npz"] == 1
        send(b"try again", status=500)(handler) if first else send(fake.body)(handler)

    server = serve({"/mnist.npz": fail_once})
    dest = tmp_path / "raw/mnist.npz"
    assert fetch(fake, [server.url("/mnist.npz")], dest) == server.url("/mnist.npz")
    assert server.requests["/mnist.npz"] == 2
    assert dest.read_bytes() == fake.body


def test_redirect_is_followed(fake, serve, tmp_path):
    server = serve({})
    server.routes.update(
        {
            "/old": send(b"", status=302, headers=[("Location", server.url("/mnist.npz"))]),
            "/mnist.npz": send(fake.body),
        }
    )
    dest = tmp_path / "raw/mnist.npz"
    assert fetch(fake, [server.url("/old")], dest) == server.url("/old")
    assert dest.read_bytes() == fake.body


def test_dead_mirror_falls_through_to_the_next(fake, serve, tmp_path):
    server = serve({"/mnist.npz": send(fake.body)})
    sources = [refused_url(), server.url("/mnist.npz")]
    assert fetch(fake, sources, tmp_path / "raw/mnist.npz") == server.url("/mnist.npz")


def test_every_failing_source_is_named(fake, tmp_path):
    sources = ["http://mnist-mirror.invalid/mnist.npz", refused_url(), str(tmp_path / "missing.npz")]
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, sources, dest, timeout_s=0.5, retries=2)
    assert_failed_cleanly(
        error,
        dest,
        (sources[0], "2 attempts"),
        (sources[1], "Connection refused"),
        (sources[2], "No such file"),
    )


def test_interrupted_download_leaves_nothing(fake, serve, tmp_path):
    def interrupt(handler):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # as if Ctrl-C mid-download
        stall(handler)

    server = serve({"/mnist.npz": half_then(interrupt)})
    server.body = fake.body
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(KeyboardInterrupt):
        fetch(fake, [server.url("/mnist.npz")], dest, timeout_s=5.0)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


@pytest.mark.skipif(not REAL_MNIST.exists(), reason=f"no local copy of MNIST at {REAL_MNIST}")
def test_real_mnist_is_verified():
    arrays = verify_mnist(REAL_MNIST, params.load(ROOT / "params.yaml").data.expected)
    assert arrays["x_train"].shape == (60000, 28, 28)
    assert arrays["y_test"].shape == (10000,)


def run_stage(folder, name, **env):
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=TEST_LIMIT_S,
    )


def test_download_stage(fake, tmp_path):
    write_params(tmp_path, fake.raw_expected, sources=[str(tmp_path / "missing.npz")])
    failed = run_stage(tmp_path, "download")
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
    assert "MNIST_MIRROR" in failed.stderr
    assert not (tmp_path / "data/raw/mnist.npz").exists()

    done = run_stage(tmp_path, "download", MNIST_MIRROR=str(fake.path))
    assert done.returncode == 0, done.stderr
    assert str(fake.path) in done.stdout
    assert (tmp_path / "data/raw/mnist.npz").read_bytes() == fake.body


# Hostile sources: each must be refused within its deadline, in a bounded amount of memory, leaving
# nothing behind. Limits are those of the fake MNIST here (400 images: about 0.9 MB at most).


@pytest.fixture
def memory():
    """Peak memory Python allocates during the test (NumPy's arrays included), in bytes."""
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()


MEMORY_BOUND = 8 << 20  # a few chunks and the fake arrays; a decompressed bomb or a buffered body is far more


def endless(handler):
    """No Content-Length, and zeros until the client hangs up (or the test ends)."""
    handler.send_response(200)
    handler.end_headers()
    deadline = time.monotonic() + TEST_LIMIT_S
    with contextlib.suppress(OSError):
        while not handler.server.release.is_set() and time.monotonic() < deadline:
            handler.wfile.write(bytes(CHUNK))


def trickle(handler):
    """The whole file promised, then one byte every 50 ms: never silent long enough for a read to time out."""
    body = handler.server.body
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(OSError):
        for byte in body:
            if handler.server.release.wait(0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()


def trickle_headers(handler):
    """The status line itself, a byte every 50 ms."""
    with contextlib.suppress(OSError):
        for byte in b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if handler.server.release.wait(0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()


CHUNK = 1 << 16


@pytest.mark.parametrize("mirror", ["/dev/zero", "file:///dev/zero", "fifo", "folder"])
def test_a_local_mirror_must_be_a_regular_file(fake, tmp_path, monkeypatch, memory, mirror):
    if mirror == "fifo":
        mirror = str(tmp_path / "pipe")
        os.mkfifo(mirror)  # reading it would wait for a writer forever
    elif mirror == "folder":
        mirror = str(tmp_path)
    monkeypatch.setenv("MNIST_MIRROR", mirror)
    dest = tmp_path / "raw/mnist.npz"
    start = time.monotonic()
    with pytest.raises(StudyError) as error:
        fetch(fake, sources_with_mirror([]), dest)
    assert time.monotonic() - start < 1 and memory() < MEMORY_BOUND
    assert_failed_cleanly(error, dest, (mirror, "not a regular file"))


def test_a_local_file_larger_than_any_mnist_is_refused_unread(fake, tmp_path, memory):
    huge = tmp_path / "huge.npz"
    with open(huge, "wb") as out:
        out.truncate(10 << 30)  # sparse: 10 GB that take no disk
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [str(huge)], dest)
    assert memory() < MEMORY_BOUND
    assert_failed_cleanly(error, dest, (str(huge), f"{10 << 30} bytes, more than any copy of MNIST"))


def test_an_endless_response_is_cut_at_the_size_limit(fake, serve, tmp_path, memory):
    server = serve({"/mnist.npz": endless})
    dest = tmp_path / "raw/mnist.npz"
    start = time.monotonic()
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert time.monotonic() - start < 5 and memory() < MEMORY_BOUND
    limit = data.size_limit(fake.expected)
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), f"sent more than {limit} bytes"))
    assert server.requests["/mnist.npz"] == 1  # not retried: a second attempt would send the same


def test_a_content_length_beyond_the_limit_is_refused_before_reading(fake, serve, tmp_path):
    server = serve({"/mnist.npz": half_then(stall)})
    server.body = bytes(data.size_limit(fake.expected) + 1)
    dest = tmp_path / "raw/mnist.npz"
    start = time.monotonic()
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert time.monotonic() - start < 2  # not a byte of the body waited for
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), f"announces {len(server.body)} bytes"))


@pytest.mark.parametrize("route", [trickle, trickle_headers], ids=["body", "headers"])
def test_a_trickling_server_is_abandoned_at_the_deadline(fake, serve, tmp_path, memory, route):
    server = serve({"/mnist.npz": route})
    server.body = fake.body
    dest = tmp_path / "raw/mnist.npz"
    start = time.monotonic()
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest, timeout_s=1.0, deadline_s=2.0)
    assert 2.0 <= time.monotonic() - start < 2.0 + 1.0 + 0.5  # the deadline, plus at most one read's timeout
    assert memory() < MEMORY_BOUND
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), "too slow: not done within 2 s"))
    assert server.requests["/mnist.npz"] == 1  # the deadline covers retries too


def test_a_source_gets_deadline_factor_timeouts_in_all(fake, serve, tmp_path, monkeypatch):
    server = serve({"/mnist.npz": trickle})
    server.body = fake.body
    monkeypatch.setattr(data, "DEADLINE_FACTOR", 3)
    with pytest.raises(StudyError, match=r"too slow: not done within 1\.5 s \(3 x data\.timeout_s"):
        fetch(fake, [server.url("/mnist.npz")], tmp_path / "raw/mnist.npz", timeout_s=0.5)


def test_a_small_zip_declaring_a_huge_array_is_refused_before_decompressing(fake, serve, tmp_path, memory):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            with archive.open(f"{key}.npy", "w") as member:  # 64 MB of zeros in about 64 kB
                for _ in range(64):
                    member.write(bytes(1 << 20))
    assert len(bomb.getvalue()) < 1 << 20
    server = serve({"/mnist.npz": send(bomb.getvalue())})
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    assert memory() < MEMORY_BOUND
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), f"declares {64 << 20} bytes uncompressed"))


def test_an_npy_header_declaring_more_than_its_member_holds_is_refused(fake, tmp_path, memory):
    lying = tmp_path / "lying.npz"
    arrays = dict(np.load(fake.path))
    with zipfile.ZipFile(lying, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            if key == "x_test":  # its header says 10**12 images; the member holds 100
                header = buffer.getvalue().replace(b"(100, 28, 28)", b"(1000000000000, 28, 28)", 1)
                buffer = io.BytesIO(header)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(StudyError, match=r"x_test declares shape \(1000000000000, 28, 28\), more than"):
        verify_mnist(lying, fake.expected)
    assert memory() < MEMORY_BOUND


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/mnist.npz", "file:///etc/passwd"])
def test_a_redirect_leaves_http_only_for_http(fake, serve, tmp_path, target):
    server = serve({"/mnist.npz": send(b"", status=302, headers=[("Location", target)])})
    dest = tmp_path / "raw/mnist.npz"
    with pytest.raises(StudyError) as error:
        fetch(fake, [server.url("/mnist.npz")], dest)
    reason = f"redirected to {target}: only http(s) redirects" if target.startswith("ftp") else "HTTP 302"
    assert_failed_cleanly(error, dest, (server.url("/mnist.npz"), reason))


def test_a_redirects_own_body_is_not_read(fake, serve, tmp_path, memory):
    def endless_redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", handler.server.url("/mnist.npz"))
        endless_body(handler)

    def endless_body(handler):
        handler.end_headers()
        deadline = time.monotonic() + TEST_LIMIT_S
        with contextlib.suppress(OSError):
            while not handler.server.release.is_set() and time.monotonic() < deadline:
                handler.wfile.write(bytes(CHUNK))

    server = serve({"/old": endless_redirect, "/mnist.npz": send(fake.body)})
    dest = tmp_path / "raw/mnist.npz"
    assert fetch(fake, [server.url("/old")], dest) == server.url("/old")
    assert dest.read_bytes() == fake.body and memory() < MEMORY_BOUND


def test_a_destination_that_cannot_be_written_is_named_not_the_source(fake, serve, tmp_path):
    server = serve({"/mnist.npz": send(fake.body)})
    dest = tmp_path / "raw/mnist.npz"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # a disk that fills after 4 kB
    try:
        with pytest.raises(StudyError) as error:
            fetch(fake, [server.url("/mnist.npz")], dest)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(error.value).startswith(f"{dest.parent}: cannot write: File too large")
    assert server.requests["/mnist.npz"] == 1  # the source is fine: not retried, not blamed
    assert list(dest.parent.iterdir()) == []


def test_download_stage_refuses_dev_zero_in_one_line(fake, tmp_path):
    write_params(tmp_path, fake.raw_expected, sources=[str(tmp_path / "missing.npz")])
    refused = run_stage(tmp_path, "download", MNIST_MIRROR="/dev/zero")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(
        "error: could not get a verified MNIST from /dev/zero (not a regular file"
    )
    assert list((tmp_path / "data/raw").iterdir()) == []
