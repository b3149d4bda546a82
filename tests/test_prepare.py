"""The prepare stage and the checks that keep foreign data from reaching Keras.

The split must be a pure function of the seed (reruns compare the same images), hold the validation
images out of training, leave MNIST's test split exactly as shipped, and be the same bytes whenever and
wherever it is written (DVC compares a rebuilt data/prepared with dvc.lock's hash).
"""

import errno
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from study.data import (
    check_images,
    load_split,
    scale,
    split_train_validation,
    verify_mnist,
    write_prepared,
)
from study.errors import StudyError
from study.params import ExpectedData
from tests.fake_mnist import make_fake_mnist, write_params

ROOT = Path(__file__).parents[1]


def numbered_images(n):
    """Images whose first two pixels spell their index, so a split can be traced back to its sources."""
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.divmod(np.arange(n), 256)
    return x, (np.arange(n) % 10).astype(np.uint8)


def index(x):
    return x[:, 0, 0].astype(int) * 256 + x[:, 0, 1]


def prepared(n=20):
    """A split as prepare writes it: MNIST-like pixels (uint8) and labels."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def scaled(n=20):
    """The same images as the network reads them: float32 in [0, 1]."""
    x, y = prepared(n)
    return scale(x), y


@pytest.mark.parametrize(("train_size", "n_train"), [(None, 900), (300, 300), (5000, 900)])
def test_split_sizes(train_size, n_train):
    train, validation = split_train_validation(*numbered_images(1000), 100, seed=0, train_size=train_size)
    assert len(train[0]) == len(train[1]) == n_train
    assert len(validation[0]) == len(validation[1]) == 100


def test_split_depends_on_the_seed_only():
    x, y = numbered_images(1000)
    first, again, other = (split_train_validation(x, y, 100, seed, None) for seed in (0, 0, 1))
    assert np.array_equal(index(first[1][0]), index(again[1][0]))
    assert np.array_equal(index(first[0][0]), index(again[0][0]))
    assert not np.array_equal(index(first[1][0]), index(other[1][0]))


def test_validation_is_held_out_of_training():
    x, y = numbered_images(1000)
    (x_train, y_train), (x_validation, y_validation) = split_train_validation(x, y, 100, seed=3)
    train, validation = set(index(x_train)), set(index(x_validation))
    assert not train & validation
    assert train | validation == set(range(1000))
    assert np.array_equal(y_train, y[index(x_train)])  # labels travel with their images
    assert np.array_equal(y_validation, y[index(x_validation)])


def run_prepare(folder, *python: str):
    """The prepare stage as DVC runs it; `python` is code run first in its process (to break something)."""
    code = "; ".join([*python, "import runpy", "runpy.run_module('stages.prepare', run_name='__main__')"])
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prepare_stage(tmp_path):
    raw = tmp_path / "data/raw/mnist.npz"
    expected = make_fake_mnist(raw, n_train=600, n_test=100)
    write_params(tmp_path, expected, sources=[str(raw)], validation_size=100)
    done = run_prepare(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "train 500, validation 100, test 100" in done.stdout
    mnist = np.load(raw)
    splits = {name: load_split(tmp_path / "data/prepared", name) for name in ("train", "validation", "test")}
    for x, y in splits.values():
        assert x.dtype == np.float32 and y.dtype == np.uint8
        assert x.min() >= 0 and x.max() <= 1
    assert np.array_equal(splits["test"][0], mnist["x_test"] / np.float32(255))  # as shipped, in order
    assert np.array_equal(splits["test"][1], mnist["y_test"])
    seen = np.concatenate([splits["train"][0], splits["validation"][0]])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, mnist["x_train"] / np.float32(255)))

    # A second run, at another time, writes the same bytes: DVC finds nothing changed after it.
    first = {p.name: p.read_bytes() for p in (tmp_path / "data/prepared").iterdir()}
    assert run_prepare(tmp_path, "import time", "time.time = lambda: 2e9").returncode == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "data/prepared").iterdir()} == first


def test_a_full_disk_during_prepare_is_one_line_and_leaves_nothing(tmp_path):
    raw = tmp_path / "data/raw/mnist.npz"
    expected = make_fake_mnist(raw, n_train=600, n_test=100)
    write_params(tmp_path, expected, sources=[str(raw)], validation_size=100)
    full = run_prepare(
        tmp_path,
        "import errno, zipfile",
        "zipfile.ZipFile.writestr = lambda *a, **k: (_ for _ in ()).throw("
        "OSError(errno.ENOSPC, 'No space left on device'))",
    )
    assert full.returncode == 2
    assert full.stderr.count("\n") == 1 and "Traceback" not in full.stderr
    assert full.stderr.startswith(
        "error: data/prepared: not written: No space left on device: the disk is full"
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]  # no folder, no temporary one


def test_prepared_files_are_the_same_bytes_whenever_they_are_written(tmp_path, monkeypatch):
    splits = {"train": prepared(30), "validation": prepared(10), "test": scaled(10)}
    write_prepared(tmp_path / "a", splits)
    monkeypatch.setattr(time, "time", lambda: 2e9)  # another day: the zip's timestamps must not follow
    write_prepared(tmp_path / "b", splits)
    for name in ("train", "validation", "test"):
        a, b = (tmp_path / folder / f"{name}.npz" for folder in "ab")
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
        with zipfile.ZipFile(a) as archive:  # stored: deflate's bytes differ between zlib builds
            assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    x, y = load_split(tmp_path / "a", "test")
    assert x.dtype == np.float32 and np.array_equal(x, splits["test"][0])  # scaled images round-trip exactly
    assert np.array_equal(y, splits["test"][1])


def test_write_prepared_refuses_floats_that_are_not_pixels(tmp_path):
    x, y = scaled()
    with pytest.raises(StudyError, match="not pixels / 255"):
        write_prepared(tmp_path / "prepared", {"train": (x + np.float32(1e-3) * (x < 0.5), y)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda x, y: (x[:, :, :27], y), "shape (20, 28, 27), expected (n, 28, 28)"),
        (lambda x, y: (x, y[:-1]), "y has shape (19,), expected (20,)"),
        (lambda x, y: (x.astype(np.float64), y), "dtype float64, expected uint8 or float32"),
        (lambda x, y: (x, y.astype(np.int64)), "y has dtype int64, expected uint8"),
        (lambda x, y: (x, np.where(np.arange(20) == 3, 10, y).astype(np.uint8)), "y holds label 10"),
        (lambda x, y: (np.where(x > 0.5, np.nan, x).astype(np.float32), y), "NaN or infinite"),
        (lambda x, y: (x * 255, y), "expected pixels in [0, 1]"),
    ],
    ids=["image-shape", "label-count", "image-dtype", "label-dtype", "label-10", "nan", "unscaled"],
)
def test_foreign_data_is_caught(change, problem):
    with pytest.raises(StudyError) as error:
        check_images(*change(*scaled()), "elsewhere/train.npz")
    assert str(error.value).startswith("elsewhere/train.npz: ")
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"x": scaled()[0], "y": prepared()[1]}, "dtype float32, expected uint8"),
        ({"x": prepared()[0].astype(np.int8), "y": prepared()[1]}, "dtype int8, expected uint8"),
        ({"x": prepared()[0], "y": prepared()[1] + 10}, "y holds label"),
        ({"images": prepared()[0], "labels": prepared()[1]}, "expected exactly ['x', 'y']"),
    ],
    ids=["float", "signed", "labels", "keys"],
)
def test_load_split_refuses_a_foreign_file(tmp_path, arrays, problem):
    np.savez(tmp_path / "train.npz", **arrays)
    with pytest.raises(StudyError, match="dvc repro prepare") as error:
        load_split(tmp_path, "train")
    assert str(tmp_path / "train.npz") in str(error.value)
    assert problem in str(error.value)


def test_load_split_without_prepared_data(tmp_path):
    with pytest.raises(StudyError, match="not found: run `dvc repro prepare`"):
        load_split(tmp_path / "data/prepared", "train")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda arrays: arrays.pop("y_test"), "expected exactly"),
        (
            lambda arrays: arrays.update(x_train=arrays["x_train"][:-1], y_train=arrays["y_train"][:-1]),
            "x_train holds 599 images, expected 600",
        ),
        (lambda arrays: arrays.update(y_test=(arrays["y_test"] + 1) % 10), "y_test has sha256"),
        (lambda arrays: arrays.update(y_train=arrays["y_train"] + 10), "y_train holds label"),
        (lambda arrays: arrays.update(x_test=arrays["x_test"].astype(np.int8)), "x_test has dtype int8"),
        (lambda arrays: arrays.update(x_test=arrays["x_test"] / 255), "x_test declares 627328 bytes"),
        (lambda arrays: arrays.update(x_test=np.array([None, 1])), "x_test holds Python objects"),
    ],
    ids=["missing-array", "count", "digest", "labels", "dtype", "larger", "pickled"],
)
def test_verify_mnist_refuses_a_foreign_raw_file(tmp_path, change, problem):
    expected = ExpectedData.model_validate(make_fake_mnist(tmp_path / "mnist.npz", n_train=600, n_test=100))
    arrays = dict(np.load(tmp_path / "mnist.npz"))
    change(arrays)
    np.savez(tmp_path / "foreign.npz", **arrays)
    with pytest.raises(StudyError, match="dvc repro download") as error:
        verify_mnist(tmp_path / "foreign.npz", expected)
    assert str(tmp_path / "foreign.npz") in str(error.value)
    assert problem in str(error.value)


def test_verify_mnist_refuses_garbage_and_absence(tmp_path):
    expected = ExpectedData.model_validate(make_fake_mnist(tmp_path / "mnist.npz", n_train=60, n_test=10))
    (tmp_path / "garbage.npz").write_bytes(b"\x00" * 5000)
    with pytest.raises(StudyError, match=r"garbage\.npz: not an \.npz file"):
        verify_mnist(tmp_path / "garbage.npz", expected)
    with pytest.raises(StudyError, match=r"missing\.npz: not found"):
        verify_mnist(tmp_path / "missing.npz", expected)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, StudyError, OSError])
def test_write_prepared_is_all_or_nothing(tmp_path, monkeypatch, failure):
    folder = tmp_path / "prepared"
    splits = {"train": prepared(), "validation": prepared(), "test": prepared()}
    if failure is StudyError:
        splits["test"] = (splits["test"][0].astype(np.float32), splits["test"][1])  # not scaled
    else:
        write, calls = zipfile.ZipFile.writestr, []

        def fails_on_the_third_array(*args, **kwargs):
            calls.append(args)
            if len(calls) == 3:
                raise KeyboardInterrupt if failure is KeyboardInterrupt else OSError(errno.EDQUOT, "Quota")
            write(*args, **kwargs)

        monkeypatch.setattr(zipfile.ZipFile, "writestr", fails_on_the_third_array)
    with pytest.raises(KeyboardInterrupt if failure is KeyboardInterrupt else StudyError) as raised:
        write_prepared(folder, splits)
    if failure is OSError:
        assert str(raised.value).startswith(f"{folder}: not written: Quota: the disk quota is used up")
    assert list(tmp_path.iterdir()) == []


def test_write_prepared_replaces_a_previous_folder(tmp_path):
    folder = tmp_path / "prepared"
    write_prepared(folder, {"train": prepared(30), "stale": prepared()})
    os.mkfifo(tmp_path / f".prepared.{2**22 + 1}-dead.tmp")  # what a killed writer (no such pid) left
    write_prepared(folder, {"train": prepared(20), "validation": prepared(), "test": prepared()})
    assert sorted(path.name for path in folder.iterdir()) == ["test.npz", "train.npz", "validation.npz"]
    assert len(load_split(folder, "train")[0]) == 20
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prepared"]
