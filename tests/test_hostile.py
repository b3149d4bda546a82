"""Hostile input and faults through the real `dvc repro`, in temporary git repositories holding the project.

A variant's name, whatever it holds, runs nothing: the `check` stage refuses it before DVC runs any other
command, and no command carries a name for a shell to read. Bad params stop DVC before it deletes any
output. A `dvc repro` killed mid-stage leaves no stage running and nothing half-written, and a second
one started at once succeeds. A fresh clone re-runs only what changed (`make study`'s commands).
Every server here stops by itself; every DVC command is bounded by a timeout.
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from ruamel.yaml import YAML

from study.params import VARIANT_NAME_RULE
from tests.fake_mnist import make_fake_mnist

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "stages", "study", "reports", ".dvc/plots", ".dvcignore", ".gitignore"]
LIMIT_S = 120  # any one DVC command; none here should come near it
HOSTILE_NAMES = ["x;touch pwned;echo", "x'y", 'x"y', "$(touch pwned)", "`touch pwned`", "x\ntouch pwned"]


def run(args: list[str], cwd: Path, check: bool = True, **env) -> subprocess.CompletedProcess:
    """A command as `make` would run it: the virtualenv first on PATH, no mirror from the caller's shell."""
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "DVC_NO_ANALYTICS": "1",
    }
    environment.pop("MNIST_MIRROR", None)
    result = subprocess.run(
        args, cwd=cwd, env=environment | env, capture_output=True, text=True, timeout=LIMIT_S
    )
    if check:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"^Running stage '(.*?)':$", output, flags=re.MULTILINE | re.DOTALL))


def project(folder: Path, sources: list[str]) -> tuple[Path, dict]:
    """The project's pipeline and code in a new git repository, on tiny fake MNIST fetched from `sources`
    (None: its own mirror); returns the folder and its params."""
    folder.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q"], folder)
    run(["dvc", "init", "-q"], folder)
    for name in PROJECT_FILES:
        source, target = ROOT / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            ignored = shutil.ignore_patterns("__pycache__", "study.ipynb", "study.html")
            shutil.copytree(source, target, ignore=ignored, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    mirror = folder.parent / f"{folder.name}-mirror" / "mnist.npz"
    expected = make_fake_mnist(mirror, n_train=600, n_test=100, seed=0)
    raw = YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())
    raw["data"].update(sources=sources or [str(mirror)], expected=expected, timeout_s=5.0, retries=1)
    raw["prepare"].update(validation_size=100)
    raw["batch_sweep"].update(batch_sizes=[1, 32, "full"], train_size=None)
    write_params(folder, raw)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-qm", "the study"], folder)
    return folder, raw


def write_params(folder: Path, raw: dict) -> None:
    YAML().dump(raw, folder / "params.yaml")


def with_variant(raw: dict, name: str) -> dict:
    return {**raw, "variants": {**raw["variants"], name: raw["variants"]["adam"]}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict]:
    return project(tmp_path_factory.mktemp("hostile") / "study", sources=[])


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_a_hostile_variant_name_runs_nothing_and_is_refused_in_one_line(repo, name):
    folder, raw = repo
    write_params(folder, with_variant(raw, name))
    try:
        result = run(["dvc", "repro"], folder, check=False)
    finally:
        write_params(folder, raw)
    assert result.returncode != 0
    assert ran_stages(result.stdout) == {"check"}  # the first stage; DVC stops at its failure
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert errors == [f"error: params.yaml: variants = {name!r}: not a variant name: use {VARIANT_NAME_RULE}"]
    assert "Traceback" not in result.stderr
    assert not [path for path in folder.parent.rglob("*") if "pwned" in path.name]
    assert run(["git", "status", "--porcelain"], folder).stdout == ""  # nothing written or deleted


def test_commands_pass_variant_names_to_no_shell(repo, tmp_path):
    """Each foreach stage run alone (-s skips `check`), with `python` replaced by a stand-in that records
    what it was given: the command carries no name, DVC_STAGE carries it verbatim."""
    folder, raw = repo
    hostile = raw | {"variants": raw["variants"] | {name: raw["variants"]["adam"] for name in HOSTILE_NAMES}}
    write_params(folder, hostile)
    (folder / "data" / "prepared").mkdir(parents=True)
    (folder / "checked" / "tune").mkdir(parents=True)
    for name in HOSTILE_NAMES:  # what `check` would have written, had it accepted the names
        (folder / "checked" / "tune" / f"{name}.json").write_text("{}")
    (folder / "checked" / "params.ok").write_text("")
    stand_in = tmp_path / "bin" / "python"
    stand_in.parent.mkdir()
    stand_in.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['CALLS'], 'a') as calls:\n"
        "    calls.write(json.dumps([sys.argv[1:], os.environ.get('DVC_STAGE')]) + '\\n')\n"
        "sys.exit(1)\n"
    )
    stand_in.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    # Last stage first: running a stage deletes its outputs, which the stage after it reads.
    stages = [f"variant@{name}" for name in HOSTILE_NAMES]
    try:
        result = run(
            ["dvc", "repro", "-s", "--ignore-errors", *stages],
            folder,
            check=False,
            PATH=f"{stand_in.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            CALLS=str(calls),
        )
    finally:
        write_params(folder, raw)
        for made in ("data", "checked"):
            shutil.rmtree(folder / made, ignore_errors=True)
        run(["git", "checkout", "-q", "--", "."], folder)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert sorted(stage for _, stage in recorded) == sorted(stages)  # every stage's command ran...
    for argv, stage in recorded:  # ... with its name in DVC_STAGE alone
        assert argv == ["-m", f"stages.{stage.partition('@')[0]}"]
    assert not [path for path in folder.parent.rglob("*") if "pwned" in path.name]


def test_bad_params_stop_dvc_before_it_deletes_any_output(repo):
    """`dvc repro momentum` with a non-finite step: once, DVC deleted sweeps/momentum, then the stage
    refused the params. Now `check` refuses them first, and no output is touched."""
    folder, raw = repo
    kept = folder / "sweeps" / "momentum" / "m0.9-s0.1" / "seed-0" / "record.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    bad = raw | {"momentum_sweep": raw["momentum_sweep"] | {"effective_steps": [0.1, float("inf")]}}
    write_params(folder, bad)
    try:
        result = run(["dvc", "repro", "momentum"], folder, check=False)
        assert result.returncode != 0 and ran_stages(result.stdout) == {"check"}
        line = "error: params.yaml: momentum_sweep.effective_steps.1 = inf: must be a finite number"
        assert line in result.stderr.splitlines()
        assert kept.read_text() == "{}"
    finally:
        write_params(folder, raw)
        shutil.rmtree(folder / "sweeps")


class Trickle(BaseHTTPRequestHandler):
    """The fake MNIST, promised whole, sent a kilobyte every 100 ms: a download that takes its time."""

    def do_GET(self):
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        deadline = time.monotonic() + LIMIT_S
        try:
            for start in range(0, len(body), 1024):
                if self.server.release.wait(0.1) or time.monotonic() > deadline:
                    return
                self.wfile.write(body[start : start + 1024])
                self.wfile.flush()
        except OSError:
            return

    def log_message(self, *args):
        pass


@pytest.fixture
def trickling(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads, server.block_on_close = True, False
    server.release = threading.Event()
    server.body = b""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_a_killed_dvc_repro_leaves_no_stage_running_and_nothing_half_written(tmp_path, trickling):
    url = f"http://127.0.0.1:{trickling.server_address[1]}/mnist.npz"
    folder, _ = project(tmp_path / "study", sources=[url])
    mirror = tmp_path / "study-mirror" / "mnist.npz"
    trickling.body = mirror.read_bytes()
    raw_folder = folder / "data" / "raw"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("MNIST_MIRROR", None)
    first = subprocess.Popen(
        ["dvc", "repro", "download"],
        cwd=folder,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + LIMIT_S
        while not list(raw_folder.glob(".mnist.npz.*.tmp")):  # the download is under way
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.1)
        stage = next(
            p for p in psutil.Process(first.pid).children(recursive=True) if "stages.download" in p.cmdline()
        )
        first.kill()  # SIGKILL: DVC gets no chance to stop its stage
        first.wait()
        # At once, while the orphaned stage may still be running: a second run, from a mirror that works.
        second = run(["dvc", "repro", "download"], folder, MNIST_MIRROR=str(mirror))
        assert "Running stage 'download'" in second.stdout
        stage.wait(timeout=5)  # the orphan noticed DVC had gone, and stopped
    finally:
        first.kill()
        for process in psutil.Process().children(recursive=True):  # this test's own, if any remain
            with contextlib.suppress(psutil.Error):
                process.kill()
    assert (raw_folder / "mnist.npz").read_bytes() == mirror.read_bytes()
    assert not [path.name for path in raw_folder.iterdir() if path.name.endswith(".tmp")]
    assert "up to date" in run(["dvc", "status", "download"], folder).stdout


def study_commands() -> list[list[str]]:
    """The commands `make study` runs, from the Makefile's recipe."""
    recipe = (ROOT / "Makefile").read_text().split("\nstudy:", 1)[1].split("\n\n", 1)[0]
    return [line.strip().split() for line in recipe.splitlines()[1:] if line.startswith("\t")]


def placeholders(folder: Path) -> None:
    """Every output but `check`'s and the data's, as stand-in files: enough for `dvc commit` to record a
    finished study without running it."""
    code = (
        "from pathlib import Path\nfrom dvc.repo import Repo\n"
        "for stage in Repo('.').index.stages:\n"
        "    if stage.name in ('check', 'download', 'prepare'):\n        continue\n"
        "    for out in stage.outs:\n"
        "        path = Path(out.def_path)\n"
        "        file = path if path.suffix else path / 'part.txt'\n"
        "        file.parent.mkdir(parents=True, exist_ok=True)\n"
        "        file.write_text(str(path))\n"
    )
    run([sys.executable, "-c", code], folder)


@pytest.mark.slow
def test_a_fresh_clone_reruns_only_what_changed(tmp_path):
    origin, raw = project(tmp_path / "origin", sources=[])
    run(["dvc", "repro", "prepare"], origin)  # for real: check, download, prepare
    placeholders(origin)
    (origin / "tuning" / "adam" / "optuna.db").write_text("a search's own state: gitignored")
    run(["dvc", "commit", "-f", "-q"], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "results"], origin)
    assert run(["dvc", "repro", "--allow-missing", "--dry"], origin).stdout.count("Running stage") == 0

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    # What a clone lacks is DVC's cache (data/, models/), and nothing else differs.
    status = json.loads(run(["dvc", "status", "--json"], clone).stdout)
    for stage, changes in status.items():
        for change in changes:
            for kind, paths in change.items():
                assert kind in ("changed outs", "changed deps"), (stage, change)
                for path, state in paths.items():
                    assert state in ("not in cache", "deleted") and path.split("/")[0] in ("data", "models")
    assert "compare" not in status  # the Optuna database, gitignored, is not part of its dependency tuning/
    assert status["variant@adam"] == [
        {"changed deps": {"data/prepared": "deleted"}},
        {"changed outs": {"models/adam": "not in cache"}},
    ]

    prepare, repro = study_commands()
    assert repro[:3] == ["dvc", "repro", "--allow-missing"]
    run(prepare, clone)  # download and split again: the same bytes, so dvc.lock does not change
    assert run(["git", "status", "--porcelain"], clone).stdout == ""
    assert ran_stages(run([*repro, "--dry"], clone).stdout) == set()

    def changed(**variant) -> set[str]:
        write_params(clone, raw | {"variants": raw["variants"] | {"adam": raw["variants"]["adam"] | variant}})
        return ran_stages(run([*repro, "--dry"], clone).stdout)

    # The dry run lists the stages whose own inputs changed; what follows them runs when their outputs do.
    # (The landscapes read a variant's search range through checked/tune/, which changes once check runs.)
    assert changed(learning_rate=0.003) == {"check", "variant@adam", "compare"}
    assert changed(search=[1e-3, 0.1]) == {"check", "variant@adam", "compare"}
